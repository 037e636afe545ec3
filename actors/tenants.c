/* tenants: effective plans and runtime groups. See actors/tenants.h. */
#include "actors/tenants.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mem.h"

ds_group_cfg_t ds_tenant_group_cfg(const ds_plan_t *plan)
{
    return (ds_group_cfg_t){
        .weight = plan->scheduler_weight,
        .mailbox_limit = plan->mailbox_limit,
        .bytes_cap = plan->bytes_in_flight,
    };
}

/* Applies the rows of the overrides result that belong to e (tenant id in column 0). */
static int tenants_apply(ds_tenant_entry_t *e, PGresult *ov, char **why)
{
    for (int r = 0; r < PQntuples(ov); r++) {
        if (strcmp(PQgetvalue(ov, r, 0), e->id) != 0) {
            continue;
        }
        const char *key = PQgetvalue(ov, r, 1);
        const char *value = PQgetisnull(ov, r, 2) ? "unlimited" : PQgetvalue(ov, r, 2);
        ds_config_error_t err = {0};
        if (ds_plan_override(&e->plan, key, value, &err) < 0) {
            *why = ds_xasprintf("tenant %s: override %s=%s: %s", e->slug, key, value, err.message);
            return -EINVAL;
        }
    }
    return 0;
}

int ds_tenants_load(PGconn *conn, const ds_config_t *cfg, ds_tenants_t **out, char **why)
{
    PGresult *t = PQexec(conn, "SELECT id, slug, plan, status FROM dossier.tenants ORDER BY slug");
    PGresult *ov = PQexec(conn, "SELECT tenant_id, key, value FROM dossier.tenant_plan_overrides");
    int rc = 0;
    if (PQresultStatus(t) != PGRES_TUPLES_OK || PQresultStatus(ov) != PGRES_TUPLES_OK) {
        *why = ds_xasprintf("could not read tenants: %s", PQerrorMessage(conn));
        rc = -EIO;
    }
    ds_tenants_t *ts = ds_xcalloc(1, sizeof(*ts));
    size_t n = rc == 0 ? (size_t)PQntuples(t) : 0;
    ts->items = ds_xcalloc(n + 1, sizeof(ts->items[0]));
    for (size_t i = 0; i < n && rc == 0; i++) {
        ds_tenant_entry_t *e = &ts->items[ts->count++];
        (void)snprintf(e->id, sizeof(e->id), "%s", PQgetvalue(t, (int)i, 0));
        (void)snprintf(e->slug, sizeof(e->slug), "%s", PQgetvalue(t, (int)i, 1));
        (void)snprintf(e->status, sizeof(e->status), "%s", PQgetvalue(t, (int)i, 3));
        if (ds_plan_parse_kind(PQgetvalue(t, (int)i, 2), &e->kind) < 0) {
            *why = ds_xasprintf("tenant %s: unknown plan %s", e->slug, PQgetvalue(t, (int)i, 2));
            rc = -EINVAL;
            break;
        }
        e->plan = *ds_config_plan(cfg, e->kind);
        rc = tenants_apply(e, ov, why);
    }
    PQclear(t);
    PQclear(ov);
    if (rc < 0) {
        ds_tenants_free(&ts);
        return rc;
    }
    *out = ts;
    return 0;
}

int ds_tenants_make_groups(ds_tenants_t *tenants, ds_rt_t *rt)
{
    for (size_t i = 0; i < tenants->count; i++) {
        ds_group_cfg_t g = ds_tenant_group_cfg(&tenants->items[i].plan);
        int rc = ds_group_new(rt, &g, &tenants->items[i].group);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

const ds_tenant_entry_t *ds_tenants_find(const ds_tenants_t *tenants, const char *slug)
{
    for (size_t i = 0; i < tenants->count; i++) {
        if (strcmp(tenants->items[i].slug, slug) == 0) {
            return &tenants->items[i];
        }
    }
    return NULL;
}

void ds_tenants_free(ds_tenants_t **tp)
{
    ds_tenants_t *t = *tp;
    if (t == NULL) {
        return;
    }
    free(t->items);
    free(t);
    *tp = NULL;
}
