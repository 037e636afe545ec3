/* control: operator actions on the control plane (tenants, their plans and overrides), each
 * written to dossier.control_audit in the same transaction as the change.
 *
 * These run as the owner role over a synchronous libpq connection: for commands (`dossier
 * tenant ...`) and node start-up (the demo tenant), never from an actor. Every function returns
 * 0, or a negative code and, when why is not NULL, a malloc'ed one-line reason in *why:
 *   -EEXIST   a tenant with that slug exists
 *   -ENOENT   no tenant with that slug
 *   -EINVAL   a malformed slug, plan, region, status or override
 *   -EIO      the database failed (reason from PostgreSQL) */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

typedef struct ds_tenant_spec {
    const char *slug;   /* [a-z0-9-], 2..63, starts with a letter */
    const char *name;   /* display name */
    const char *plan;   /* standard | professional | enterprise */
    const char *region; /* the config's region by default */
} ds_tenant_spec_t;

/* Who did it, for the audit rows: "cli:<user>" or "serve:<node>". */
typedef struct ds_control_actor {
    const char *who;
} ds_control_actor_t;

/* Creates a tenant: 0 and its id (a UUID, 36 characters + NUL) in id_out. */
int ds_control_tenant_create(PGconn *conn, const ds_control_actor_t *actor,
                             const ds_tenant_spec_t *spec, char id_out[37], char **why);

/* Sets a tenant's status: "active" (resume), "suspended" (suspend) or "offboarding". */
int ds_control_tenant_set_status(PGconn *conn, const ds_control_actor_t *actor, const char *slug,
                                 const char *status, char **why);

/* Per-tenant plan overrides (dossier.tenant_plan_overrides). The key and value are validated
 * against the plan table (config/config.h, ds_plan_override()) by the caller. */
typedef enum ds_override_op {
    DS_OVERRIDE_SET,       /* key = value */
    DS_OVERRIDE_UNLIMITED, /* key = unlimited (stored as NULL) */
    DS_OVERRIDE_REMOVE,    /* back to the plan's value */
} ds_override_op_t;

int ds_control_tenant_override(PGconn *conn, const ds_control_actor_t *actor, const char *slug,
                               const char *key, ds_override_op_t op, uint64_t value, char **why);

/* Prints the tenants (slug NULL: all, else that one, with its overrides) to stdout as a table,
 * or as JSON (one object for a slug, {"items": [...]} for all). */
int ds_control_tenant_print(PGconn *conn, const char *slug, bool json, char **why);

/* The actor of the current process: "cli:<login name>" (static storage). */
const char *ds_control_cli_actor(void);
