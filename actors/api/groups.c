/* groups: /v1/groups, /v1/groups/{id} and its members. Reads: every principal of the tenant;
 * changes: admins. Each change and its audit entry are one statement (WITH ... RETURNING,
 * then audit_append over the returned row), so an entry exists exactly when the change does;
 * a change that finds nothing writes a failure entry instead (ds_api_fail). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/api/session_int.h"

static const char groups_member_where[] =
    "r.id IN (SELECT m.user_id FROM dossier.group_members m WHERE m.group_id = $3::uuid)";

int api_h_groups_list(ds_api_call_t *c)
{
    char sql[1024];
    int rc = ds_api_list_sql(sql, sizeof(sql), "dossier.api_group", "dossier.groups", NULL);
    return rc < 0 ? rc : ds_api_list(c, sql, NULL, 0);
}

int api_h_groups_members_list(ds_api_call_t *c)
{
    char list[1024];
    char sql[1280];
    int rc = ds_api_list_sql(list, sizeof(list), "dossier.api_user", "dossier.users",
                             groups_member_where);
    int n = snprintf(sql, sizeof(sql),
                     "SELECT CASE WHEN EXISTS (SELECT 1 FROM dossier.groups g"
                     " WHERE g.id = $3::uuid) THEN (%s) END",
                     list);
    if (rc < 0 || n < 0 || (size_t)n >= sizeof(sql)) {
        return -EMSGSIZE;
    }
    const char *extra[] = {c->match.params[0]};
    return ds_api_list(c, sql, extra, 1);
}

/* One object (json, row_version) or 404; 201 with Location for creates. */
static int groups_object_done(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    bool created = c->match.route == DS_API_ROUTE_groups_create;
    if (c->match.route == DS_API_ROUTE_groups_update && r.code == 0 && r.stmts[0].nrows == 0 &&
        r.nstmts > 1 && r.stmts[1].nrows == 1) {
        rc = ds_api_fail(c, "failure", "precondition", 412, "precondition-failed",
                         "the group has changed since the ETag given in If-Match");
    } else {
        rc = ds_api_object_reply(c, &r, 0, created ? 201 : 200, created ? "/v1/groups/" : NULL);
    }
    ds_pg_reply_fini(&r);
    return rc;
}

int api_h_groups_get(ds_api_call_t *c)
{
    ds_pg_req_t *r = ds_pg_req_new();
    const char *p[] = {c->match.params[0]};
    int rc = ds_pg_req_add(
        r, "SELECT dossier.api_group(g), g.row_version FROM dossier.groups g WHERE g.id = $1::uuid",
        1, p);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, groups_object_done);
}

/* Runs sql (the audit parameters $1..$10, then extra as $11..) and then done. */
static int groups_change(ds_api_call_t *c, const char *sql, const char *details,
                         const char *const *extra, size_t nextra, ds_api_step_t done)
{
    const char *p[16];
    ds_api_audit_params(c, "success", details, p);
    for (size_t i = 0; i < nextra && i < 6; i++) {
        p[10 + i] = extra[i];
    }
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = ds_pg_req_add(r, sql, (uint32_t)(10 + nextra), p);
    if (rc == 0 && c->match.route == DS_API_ROUTE_groups_update) {
        const char *q[] = {c->match.params[0]};
        rc = ds_pg_req_add(r, "SELECT 1 FROM dossier.groups g WHERE g.id = $1::uuid", 1, q);
    }
    if (rc == 0 && c->match.route == DS_API_ROUTE_groups_create) {
        rc = ds_api_idem_complete_stmt(
            r, c, "SELECT dossier.api_group(g) FROM dossier.groups g WHERE g.id = $1::uuid",
            "'/v1/groups/' || $1", c->new_id);
    }
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, done);
}

static const ds_json_field_t groups_fields[] = {
    {.name = "name", .type = DS_JSON_STRING, .required = true, .min_len = 1, .max_len = 200},
    {.name = "description", .type = DS_JSON_STRING, .max_len = 2000},
};
static const ds_json_field_t groups_patch_fields[] = {
    {.name = "name", .type = DS_JSON_STRING, .min_len = 1, .max_len = 200},
    {.name = "description", .type = DS_JSON_STRING, .max_len = 2000},
};

int api_h_groups_create(ds_api_call_t *c)
{
    if (ds_api_body(c, groups_fields, 2) < 0) {
        return 0;
    }
    c->action = "group.create";
    c->object_type = "group";
    int rc = ds_api_uuid_v7(c->new_id);
    if (rc < 0) {
        return rc;
    }
    memcpy(c->object_id, c->new_id, sizeof(c->object_id));
    const char *name = NULL;
    const char *desc = NULL;
    (void)ds_json_get_string(c->body, "name", &name, NULL);
    (void)ds_json_get_string(c->body, "description", &desc, NULL);
    const char *extra[] = {name, desc};
    json_t *d = json_pack("{s:s}", "name", name);
    char *details = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    rc = groups_change(c,
                       "WITH g AS (INSERT INTO dossier.groups (id, name, description)"
                       " VALUES ($6::uuid, $11, COALESCE($12, '')) RETURNING *)"
                       " SELECT dossier.api_group(g), g.row_version, dossier.audit_append($1,"
                       " $2::uuid, $3, $4, $5, $6::uuid, $7::inet, $8, $9, $10::jsonb) FROM g",
                       details, extra, 2, groups_object_done);
    free(details);
    return rc;
}

int api_h_groups_update(ds_api_call_t *c)
{
    if (ds_api_body(c, groups_patch_fields, 2) < 0) {
        return 0;
    }
    c->action = "group.update";
    c->object_type = "group";
    memcpy(c->object_id, c->match.params[0], sizeof(c->object_id));
    char version[16];
    int v = ds_api_if_match(c, version, sizeof(version));
    if (v < 0) {
        return 0;
    }
    const char *name = NULL;
    const char *desc = NULL;
    (void)ds_json_get_string(c->body, "name", &name, NULL);
    (void)ds_json_get_string(c->body, "description", &desc, NULL);
    const char *extra[] = {name, desc, v == 1 ? version : NULL};
    json_t *d = json_pack("{s:s?, s:b}", "name", name, "description_changed", desc != NULL);
    char *details = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    int rc = groups_change(
        c,
        "WITH g AS (UPDATE dossier.groups g SET name = COALESCE($11, g.name),"
        " description = COALESCE($12, g.description) WHERE g.id = $6::uuid"
        " AND ($13::integer IS NULL OR g.row_version = $13::integer) RETURNING g.*)"
        " SELECT dossier.api_group(g), g.row_version, dossier.audit_append($1, $2::uuid, $3, $4,"
        " $5, $6::uuid, $7::inet, $8, $9, $10::jsonb) FROM g",
        details, extra, 3, groups_object_done);
    free(details);
    return rc;
}

int api_h_groups_delete(ds_api_call_t *c)
{
    c->action = "group.delete";
    c->object_type = "group";
    memcpy(c->object_id, c->match.params[0], sizeof(c->object_id));
    return groups_change(c,
                         "WITH g AS (DELETE FROM dossier.groups g WHERE g.id = $6::uuid"
                         " RETURNING g.id, g.name)"
                         " SELECT g.id, dossier.audit_append($1, $2::uuid, $3, $4, $5, $6::uuid,"
                         " $7::inet, $8, $9, jsonb_build_object('name', g.name)"
                         " || $10::jsonb) FROM g",
                         NULL, NULL, 0, ds_api_step_204);
}

static int groups_member(ds_api_call_t *c, bool add)
{
    c->action = add ? "group.member_add" : "group.member_remove";
    c->object_type = "group";
    memcpy(c->object_id, c->match.params[0], sizeof(c->object_id));
    const char *extra[] = {c->match.params[1]};
    json_t *d = json_pack("{s:s}", "user_id", c->match.params[1]);
    char *details = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    int rc = groups_change(
        c,
        add ? "WITH m AS (INSERT INTO dossier.group_members (group_id, user_id)"
              " VALUES ($6::uuid, $11::uuid) ON CONFLICT ON CONSTRAINT group_members_pair_key"
              " DO UPDATE SET user_id = EXCLUDED.user_id RETURNING id)"
              " SELECT m.id, dossier.audit_append($1, $2::uuid, $3, $4, $5, $6::uuid, $7::inet,"
              " $8, $9, $10::jsonb) FROM m"
            : "WITH m AS (DELETE FROM dossier.group_members m WHERE m.group_id = $6::uuid"
              " AND m.user_id = $11::uuid RETURNING m.id)"
              " SELECT m.id, dossier.audit_append($1, $2::uuid, $3, $4, $5, $6::uuid, $7::inet,"
              " $8, $9, $10::jsonb) FROM m",
        details, extra, 1, ds_api_step_204);
    free(details);
    return rc;
}

int api_h_groups_member_put(ds_api_call_t *c)
{
    return groups_member(c, true);
}

int api_h_groups_member_delete(ds_api_call_t *c)
{
    return groups_member(c, false);
}
