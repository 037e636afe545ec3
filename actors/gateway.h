/* gateway: the actor that handles the HTTP gateway's requests (transports/http/server.h):
 * `GET /healthz` (the process is alive: 200), `GET /readyz` (the database answers through the
 * pool and its schema is the one this binary migrates to: 200, else 503 problem `not-ready`),
 * /v1/... handed to the tenant's session actor through the directory (actors/api/directory.h:
 * tenant from the credential or Host, suspension, rate limit), anything else 404 problem
 * `not-found` (405 for another method on the two health paths). The readiness check is
 * asynchronous: the request is kept until the pool answers or the ask times out. `dossier
 * serve` has GET/HEAD /healthz answered on the HTTP loops themselves (health_path,
 * transports/http/server.h), so only its other methods reach this actor. */
#pragma once

#include <stdint.h>

#include "actors/api/api.h"
#include "actors/tenants.h"
#include "runtime/rt.h"

typedef struct ds_gateway_cfg {
    ds_actor_id_t pool;          /* transports/pg/pool.h */
    int64_t schema_version;      /* the highest migration version compiled in */
    uint32_t ready_timeout_ms;   /* the pool's answer must come within [2000] */
    const ds_api_env_t *api;     /* the HTTP API's environment; NULL: no /v1 routes */
    const ds_tenants_t *tenants; /* tenants known at start, with their groups (may be NULL) */
} ds_gateway_cfg_t;

/* arg: a ds_gateway_cfg_t * (copied). */
extern const ds_behaviour_t ds_gateway_behaviour;
