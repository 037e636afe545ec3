/* grants: /v1/grants and the permission reports of folders and documents (docs/access.md).
 *
 * Who may grant: a tenant admin, or a principal whose effective role on the target is admin
 * (dossier.effective_role: grants on the object and its ancestor folders, to it or its
 * groups). A target the caller cannot see at all is 404, whether it exists or not; one it sees
 * without the admin role is 403. Both checks and the insert are one statement. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/api/session_int.h"

static const char *grants_ptype(const ds_api_call_t *c)
{
    return c->who == DS_API_SERVICE_ACCOUNT ? "service_account" : "user";
}

int api_h_grants_list(ds_api_call_t *c)
{
    static const char *const names[] = {"folder_id", "document_id", "user_id", "group_id"};
    char vals[4][DS_API_UUID_LEN + 1];
    const char *extra[4];
    for (size_t i = 0; i < 4; i++) {
        int rc = ds_api_query(c, names[i], vals[i], sizeof(vals[i]));
        if (rc < 0 || (rc == 1 && !ds_token_uuid_valid(vals[i], strlen(vals[i])))) {
            char detail[64];
            (void)snprintf(detail, sizeof(detail), "%s must be a uuid", names[i]);
            return ds_api_problem(c, 400, "bad-request", detail);
        }
        extra[i] = rc == 1 ? vals[i] : NULL;
    }
    char sql[1400];
    int rc = ds_api_list_sql(sql, sizeof(sql), "dossier.api_grant", "dossier.grants",
                             "($3::uuid IS NULL OR r.folder_id = $3::uuid)"
                             " AND ($4::uuid IS NULL OR r.document_id = $4::uuid)"
                             " AND ($5::uuid IS NULL OR r.user_id = $5::uuid)"
                             " AND ($6::uuid IS NULL OR r.group_id = $6::uuid)");
    return rc < 0 ? rc : ds_api_list(c, sql, extra, 4);
}

int api_h_grants_get(ds_api_call_t *c)
{
    ds_pg_req_t *r = ds_pg_req_new();
    const char *p[] = {c->match.params[0]};
    int rc = ds_pg_req_add(
        r, "SELECT dossier.api_grant(g), 1 FROM dossier.grants g WHERE g.id = $1::uuid", 1, p);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, ds_api_step_object);
}

static int grants_created(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    if (r.code == 0 && r.stmts[0].nrows == 0) {
        const ds_pg_value_t *seen = ds_api_value(&r, 1);
        rc = seen != NULL ? ds_api_fail(c, "denied", "role", 403, "forbidden",
                                        "granting on this object needs the admin role on it")
                          : ds_api_fail(c, "denied", "not_visible", 404, "not-found", NULL);
    } else {
        rc = ds_api_object_reply(c, &r, 0, 201, "/v1/grants/");
    }
    ds_pg_reply_fini(&r);
    return rc;
}

static const ds_json_field_t grants_fields[] = {
    {.name = "role", .type = DS_JSON_STRING, .required = true, .min_len = 5, .max_len = 6},
    {.name = "folder_id", .type = DS_JSON_UUID},
    {.name = "document_id", .type = DS_JSON_UUID},
    {.name = "user_id", .type = DS_JSON_UUID},
    {.name = "group_id", .type = DS_JSON_UUID},
    {.name = "service_account_id", .type = DS_JSON_UUID},
};

static const char grants_insert_sql[] =
    "WITH g AS (INSERT INTO dossier.grants (id, role, folder_id, document_id, user_id, group_id,"
    " service_account_id, created_by)"
    " SELECT $6::uuid, $11, $12::uuid, $13::uuid, $14::uuid, $15::uuid, $16::uuid,"
    " CASE WHEN $1 = 'user' THEN $2::uuid END"
    " WHERE $17::boolean OR dossier.effective_role($1, $2::uuid,"
    " CASE WHEN $12 IS NOT NULL THEN 'folder' ELSE 'document' END,"
    " COALESCE($12::uuid, $13::uuid)) = 'admin' RETURNING *)"
    " SELECT dossier.api_grant(g), 1, dossier.audit_append($1, $2::uuid, $3, $4, $5, $6::uuid,"
    " $7::inet, $8, $9, $10::jsonb) FROM g";

/* Whether the caller sees the target at all (403 rather than 404 when the insert refused). */
static const char grants_seen_sql[] =
    "SELECT 1 WHERE dossier.effective_role($1, $2::uuid, $3, $4::uuid) IS NOT NULL";

static int grants_create_tx(ds_api_call_t *c, const char *const v[6], const char *details)
{
    const char *p[17];
    ds_api_audit_params(c, "success", details, p);
    for (size_t i = 0; i < 6; i++) {
        p[10 + i] = v[i];
    }
    p[16] = (c->roles & DS_ROLE_ADMIN) ? "true" : "false";
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = ds_pg_req_add(r, grants_insert_sql, 17, p);
    const char *q[] = {grants_ptype(c), c->who_id, v[1] != NULL ? "folder" : "document",
                       v[1] != NULL ? v[1] : v[2]};
    if (rc == 0) {
        rc = ds_pg_req_add(r, grants_seen_sql, 4, q);
    }
    if (rc == 0) {
        rc = ds_api_idem_complete_stmt(
            r, c, "SELECT dossier.api_grant(g) FROM dossier.grants g WHERE g.id = $1::uuid",
            "'/v1/grants/' || $1", c->new_id);
    }
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, grants_created);
}

int api_h_grants_create(ds_api_call_t *c)
{
    if (ds_api_body(c, grants_fields, 6) < 0) {
        return 0;
    }
    c->action = "grant.create";
    c->object_type = "grant";
    char ids[5][DS_API_UUID_LEN + 1];
    const char *v[6] = {NULL};
    (void)ds_json_get_string(c->body, "role", &v[0], NULL);
    int targets = 0;
    int principals = 0;
    for (size_t i = 1; i < 6; i++) {
        if (ds_json_get_uuid(c->body, grants_fields[i].name, ids[i - 1])) {
            v[i] = ids[i - 1];
            targets += i <= 2;
            principals += i > 2;
        }
    }
    if (strcmp(v[0], "viewer") != 0 && strcmp(v[0], "editor") != 0 && strcmp(v[0], "admin") != 0) {
        return ds_api_problem(c, 400, "validation-failed", "role: must be viewer, editor or admin");
    }
    if (targets != 1 || principals != 1) {
        return ds_api_problem(c, 400, "validation-failed",
                              "give exactly one of folder_id and document_id, and exactly one of"
                              " user_id, group_id and service_account_id");
    }
    int rc = ds_api_uuid_v7(c->new_id);
    if (rc < 0) {
        return rc;
    }
    memcpy(c->object_id, c->new_id, sizeof(c->object_id));
    json_t *d = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?}", "role", v[0], "folder_id", v[1],
                          "document_id", v[2], "user_id", v[3], "group_id", v[4],
                          "service_account_id", v[5]);
    char *details = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    rc = grants_create_tx(c, v, details);
    free(details);
    return rc;
}

int api_h_grants_delete(ds_api_call_t *c)
{
    c->action = "grant.delete";
    c->object_type = "grant";
    memcpy(c->object_id, c->match.params[0], sizeof(c->object_id));
    const char *p[11];
    ds_api_audit_params(c, "success", NULL, p);
    p[10] = (c->roles & DS_ROLE_ADMIN) ? "true" : "false";
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = ds_pg_req_add(
        r,
        "WITH g AS (DELETE FROM dossier.grants g WHERE g.id = $6::uuid AND ($11::boolean OR"
        " dossier.effective_role($1, $2::uuid, CASE WHEN g.folder_id IS NOT NULL THEN 'folder'"
        " ELSE 'document' END, COALESCE(g.folder_id, g.document_id)) = 'admin') RETURNING g.*)"
        " SELECT g.id, dossier.audit_append($1, $2::uuid, $3, $4, $5, $6::uuid, $7::inet, $8, $9,"
        " dossier.api_grant(g)::jsonb || $10::jsonb) FROM g",
        11, p);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, ds_api_step_204);
}

/* GET /v1/folders: the folders the caller may see (all of them for tenant admins), by id.
 * The folder routes proper (create, move, rename, trash) come with the documents. */
int api_h_folders_list(ds_api_call_t *c)
{
    char sql[1400];
    int rc = ds_api_list_sql(sql, sizeof(sql), "dossier.api_folder", "dossier.folders",
                             "r.deleted_at IS NULL AND ($3::boolean OR dossier.effective_role($4,"
                             " $5::uuid, 'folder', r.id) IS NOT NULL)");
    const char *extra[] = {(c->roles & DS_ROLE_ADMIN) ? "true" : "false", grants_ptype(c),
                           c->who_id};
    return rc < 0 ? rc : ds_api_list(c, sql, extra, 3);
}

/* --- permissions ---------------------------------------------------------------------------- */

static const char grants_permissions_sql[] =
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM dossier.folders f WHERE $3 = 'folder'"
    " AND f.id = $4::uuid AND f.deleted_at IS NULL UNION ALL SELECT 1 FROM dossier.documents d"
    " WHERE $3 = 'document' AND d.id = $4::uuid AND d.deleted_at IS NULL)"
    " AND ($5::boolean OR dossier.effective_role($1, $2::uuid, $3, $4::uuid) IS NOT NULL)"
    " THEN json_build_object('object_type', $3, 'object_id', $4::uuid,"
    " 'items', COALESCE((SELECT json_agg(json_build_object('principal_type', q.principal_type,"
    " 'principal_id', q.principal_id, 'role', q.role, 'via', q.via)"
    " ORDER BY q.principal_type, q.principal_id) FROM (SELECT p.principal_type, p.principal_id,"
    " (array_agg(p.grant_role ORDER BY array_position(ARRAY['viewer','editor','admin'],"
    " p.grant_role) DESC))[1] AS role, json_agg(json_build_object('grant_id', p.grant_id,"
    " 'role', p.grant_role, 'folder_id', p.via_folder_id, 'document_id', p.via_document_id,"
    " 'group_id', p.via_group_id, 'inherited', p.inherited)) AS via"
    " FROM dossier.object_permissions($3, $4::uuid) p"
    " GROUP BY p.principal_type, p.principal_id) q), '[]'::json),"
    " 'tenant_admins', COALESCE((SELECT json_agg(json_build_object('principal_type', a.t,"
    " 'principal_id', a.id) ORDER BY a.t, a.id) FROM (SELECT 'user' AS t, u.id"
    " FROM dossier.users u WHERE 'admin' = ANY (u.roles) AND u.status = 'active' UNION ALL"
    " SELECT 'service_account', s.id FROM dossier.service_accounts s"
    " WHERE 'admin' = ANY (s.roles) AND s.status = 'active') a), '[]'::json)) END";

static int grants_permissions(ds_api_call_t *c, const char *kind)
{
    const char *p[] = {grants_ptype(c), c->who_id, kind, c->match.params[0],
                       (c->roles & DS_ROLE_ADMIN) ? "true" : "false"};
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = ds_pg_req_add(r, grants_permissions_sql, 5, p);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, ds_api_step_value);
}

int api_h_folders_permissions(ds_api_call_t *c)
{
    return grants_permissions(c, "folder");
}

int api_h_documents_permissions(ds_api_call_t *c)
{
    return grants_permissions(c, "document");
}
