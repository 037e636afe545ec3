/* directory: the gateway's map from a request to its tenant's session actor (actors/api/api.h).
 *
 * The tenant of a /v1 request is taken from, by route (actors/api/routes.def):
 *   - DS_API_BEARER: the Authorization credential — an access token (verified here, then again
 *     by the session) or an API key (its tenant is in its clear part; the session checks it);
 *   - DS_API_REFRESH: the refresh token in the JSON body (its clear tenant part);
 *   - DS_API_LOGIN: the Host header's first label, a tenant slug (acme.localhost:8080).
 * Never from a query parameter or another body field. A credential that names no tenant is a
 * 401, an unknown slug a 404; a suspended or offboarding tenant gets 403 tenant-suspended.
 *
 * Each tenant known to the node has an entry: its status and effective plan (read with the
 * control plane's routing functions through the pool and cached for DS_API_DIR_TTL_MS: the
 * first request after that waits for a fresh read, so a suspension takes effect within
 * seconds; if the database cannot answer, what is known is used), its
 * runtime group (made from its plan on first sight, or given at start), its session actor
 * (spawned on first use, in that group) and its request-rate bucket (the plan's
 * api_requests_per_minute; an empty bucket answers 429 rate-limited with Retry-After and the
 * RateLimit-* fields). Requests for a tenant being looked up wait in its entry (at most
 * DS_API_DIR_WAIT_MAX; more are 503). A send to the session that its mailbox or its group's
 * byte cap refuses is answered 503 with Retry-After: that tenant only.
 *
 * The directory belongs to the gateway actor; every call runs on its turn. */
#pragma once

#include "actors/api/api.h"
#include "actors/tenants.h"

enum {
    DS_API_DIR_TTL_MS = 3000,
    DS_API_DIR_WAIT_MAX = 256,
    DS_API_DIR_LOOKUP_TIMEOUT_MS = 5000,
};

typedef struct ds_api_dir ds_api_dir_t;

/* A directory over env (kept by reference), with the tenants loaded at start (their groups
 * made; may be NULL). */
ds_api_dir_t *ds_api_dir_new(const ds_api_env_t *env, const ds_tenants_t *preload);
void ds_api_dir_free(ds_api_dir_t **dp);

/* Routes the request in *msgp (req decoded from it): forwards it to its tenant's session,
 * keeps it until the tenant is looked up, or answers it. Takes *msgp in every case but an
 * error return. */
int ds_api_dir_route(ds_api_dir_t *d, ds_ctx_t *ctx, ds_msg_t **msgp, const ds_http_request_t *req);

/* A reply (or timeout) the gateway could not place: true if it answered a lookup of ours. */
bool ds_api_dir_reply(ds_api_dir_t *d, ds_ctx_t *ctx, const ds_msg_t *reply);
