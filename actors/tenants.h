/* tenants: the node's view of its tenants at start-up: each tenant's effective plan (its plan
 * from the config with its per-tenant overrides applied) and the runtime group that schedules
 * its actors, weighted and bounded by that plan (DESIGN.md §3: groups take their weights and
 * limits from the plan).
 *
 * Loading is synchronous libpq (node start-up only). A loaded ds_tenants_t is read-only. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "config/config.h"
#include "runtime/rt.h"

typedef struct ds_tenant_entry {
    char id[37];
    char slug[64];
    char status[16]; /* active | suspended | offboarding */
    ds_plan_kind_t kind;
    ds_plan_t plan; /* effective: the config's plan with the tenant's overrides */
    uint32_t group; /* the runtime group, once ds_tenants_make_groups() ran */
} ds_tenant_entry_t;

typedef struct ds_tenants {
    ds_tenant_entry_t *items;
    size_t count;
} ds_tenants_t;

/* The runtime group settings a plan asks for. */
ds_group_cfg_t ds_tenant_group_cfg(const ds_plan_t *plan);

/* Loads every tenant with its overrides (conn: the owner role). 0 and *out (free with
 * ds_tenants_free()); -EIO (*why: PostgreSQL's message); -EINVAL when a stored override does
 * not fit the plan table (*why names tenant and key). */
int ds_tenants_load(PGconn *conn, const ds_config_t *cfg, ds_tenants_t **out, char **why);

/* Creates one group per tenant in rt. 0, or the first ds_group_new() error. */
int ds_tenants_make_groups(ds_tenants_t *tenants, ds_rt_t *rt);

/* The entry of slug, or NULL. */
const ds_tenant_entry_t *ds_tenants_find(const ds_tenants_t *tenants, const char *slug);

void ds_tenants_free(ds_tenants_t **tp);
