/* users: /v1/users and /v1/users/{id}. Every principal of the tenant may read the directory;
 * admins create, change and deactivate. DELETE deactivates (the row stays: the audit trail and
 * authorship keep naming it) and revokes the user's sessions, as a password change does. The
 * plan's user limit is checked under a per-tenant lock in dossier.user_create, so racing
 * creates cannot pass it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "actors/api/session_int.h"
#include "actors/password.h"

typedef struct user_change {
    char password[DS_PASSWORD_MAX_BYTES + 1];
    size_t password_len;
    bool has_password;
    char hash[DS_PASSWORD_ENCODED_MAX + 1];
    int hash_rc;
    char roles[40];
    bool has_roles;
    char max_users[24]; /* the plan's user limit as text, "" when unlimited */
    char version[16];
    bool has_version;
    ds_password_cost_t cost; /* auth.password_* */
    bool reactivating;       /* PATCH status: active (a seat is checked first) */
} user_change_t;

static void user_change_free(void *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, sizeof(user_change_t));
        free(p);
    }
}

int api_h_users_list(ds_api_call_t *c)
{
    char sql[1024];
    int rc = ds_api_list_sql(sql, sizeof(sql), "dossier.api_user", "dossier.users", NULL);
    return rc < 0 ? rc : ds_api_list(c, sql, NULL, 0);
}

int api_h_users_get(ds_api_call_t *c)
{
    ds_pg_req_t *r = ds_pg_req_new();
    const char *p[] = {c->match.params[0]};
    int rc = ds_pg_req_add(
        r, "SELECT dossier.api_user(u), u.row_version FROM dossier.users u WHERE u.id = $1::uuid",
        1, p);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, ds_api_step_object);
}

static void users_hash(void *arg)
{
    user_change_t *u = arg;
    u->hash_rc = ds_password_hash_cost(&u->cost, u->password, u->password_len, u->hash);
    OPENSSL_cleanse(u->password, sizeof(u->password));
}

/* Reads password and roles of the body into u; answers 400 and returns -EINVAL when the
 * password breaks the policy or roles name no role. */
static int users_body_common(ds_api_call_t *c, user_change_t *u)
{
    const ds_config_t *cfg = c->session->env->cfg;
    u->cost = (ds_password_cost_t){cfg->auth.password_memory_kib, cfg->auth.password_iterations,
                                   cfg->auth.password_lanes};
    if (c->session->max_users != UINT64_MAX) {
        (void)snprintf(u->max_users, sizeof(u->max_users), "%llu",
                       (unsigned long long)c->session->max_users);
    }
    const char *pw = NULL;
    if (ds_json_get_string(c->body, "password", &pw, &u->password_len)) {
        const char *why = NULL;
        if (ds_password_policy_check(pw, u->password_len, &why) != 0) {
            char detail[160];
            (void)snprintf(detail, sizeof(detail), "password: %s", why);
            (void)ds_api_problem_ex(c, 400, "validation-failed", detail, NULL, 0,
                                    json_pack("[{s:s, s:s}]", "field", "password", "reason", why));
            return -EINVAL;
        }
        if (u->password_len >= sizeof(u->password)) { /* the policy caps it; be sure anyway */
            (void)ds_api_problem(c, 400, "validation-failed", "password: is too long");
            return -EINVAL;
        }
        memcpy(u->password, pw, u->password_len);
        u->has_password = true;
    }
    size_t n = 0;
    if (ds_json_get_count(c->body, "roles", &n)) {
        unsigned roles = 0;
        for (size_t i = 0; i < n; i++) {
            const char *item = ds_json_get_item(c->body, "roles", i);
            unsigned bit = ds_api_roles_parse(item, strlen(item));
            if (bit == 0 || strlen(item) > 6) {
                (void)ds_api_problem_ex(c, 400, "validation-failed",
                                        "roles: must be viewer, editor or admin", NULL, 0,
                                        json_pack("[{s:s, s:s}]", "field", "roles", "reason",
                                                  "must be viewer, editor or admin"));
                return -EINVAL;
            }
            roles |= bit;
        }
        ds_api_roles_format(roles, u->roles, sizeof(u->roles));
        u->has_roles = true;
    }
    return 0;
}

/* --- create ------------------------------------------------------------------------------- */

static int users_created(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    const ds_pg_value_t *id = r.code == 0 && r.nstmts > 1 && r.stmts[1].nrows == 1
                                  ? ds_pg_rows_at(&r.stmts[1], 0, 2)
                                  : NULL;
    if (id != NULL && id->len == DS_API_UUID_LEN) {
        memcpy(c->object_id, id->ptr, DS_API_UUID_LEN);
        c->object_id[DS_API_UUID_LEN] = '\0';
    }
    rc = ds_api_object_reply(c, &r, 1, 201, "/v1/users/");
    ds_pg_reply_fini(&r);
    return rc;
}

static int users_create_tx(ds_api_call_t *c, const ds_msg_t *reply)
{
    (void)reply;
    user_change_t *u = c->data;
    if (u->has_password && u->hash_rc != 0) {
        return -EIO;
    }
    const char *email = NULL;
    const char *name = "";
    (void)ds_json_get_string(c->body, "email", &email, NULL);
    (void)ds_json_get_string(c->body, "display_name", &name, NULL);
    const char *p1[] = {email, name, u->has_password ? u->hash : NULL,
                        u->has_roles ? u->roles : "{viewer}",
                        u->max_users[0] != '\0' ? u->max_users : NULL};
    ds_pg_req_t *r = ds_pg_req_new();
    int rc =
        ds_pg_req_add(r, "SELECT dossier.user_create($1, $2, $3, $4::text[], $5::bigint)", 5, p1);
    const char *ap[10];
    ds_api_audit_params(c, "success", NULL, ap);
    /* The object is the new row, named from the row itself ($6 and $10 of the usual audit
     * parameters, the object and the details, do not apply). */
    const char *p2[] = {ap[0], ap[1], ap[2], ap[3], ap[4], ap[6], ap[7], ap[8], email};
    if (rc == 0) {
        rc = ds_pg_req_add(r,
                           "SELECT dossier.api_user(u), u.row_version, u.id,"
                           " dossier.audit_append($1, $2::uuid, $3, $4, $5, u.id, $6::inet, $7,"
                           " $8, jsonb_build_object('email', u.email, 'roles', u.roles))"
                           " FROM dossier.users u WHERE lower(u.email) = lower($9)",
                           9, p2);
    }
    if (rc == 0) {
        rc = ds_api_idem_complete_stmt(
            r, c,
            "SELECT dossier.api_user(u) FROM dossier.users u WHERE lower(u.email) = lower($1)",
            "SELECT '/v1/users/' || u.id FROM dossier.users u WHERE lower(u.email) = lower($1)",
            email);
    }
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, users_created);
}

static const ds_json_field_t users_create_fields[] = {
    {.name = "email", .type = DS_JSON_EMAIL, .required = true},
    {.name = "password", .type = DS_JSON_STRING, .secret = true, .max_len = 1024},
    {.name = "display_name", .type = DS_JSON_STRING, .max_len = 200},
    {.name = "roles", .type = DS_JSON_STRING_ARRAY, .min_len = 1, .max_len = 3, .item_max_len = 16},
};

int api_h_users_create(ds_api_call_t *c)
{
    if (ds_api_body(c, users_create_fields, 4) < 0) {
        return 0;
    }
    user_change_t *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return -ENOMEM;
    }
    u->hash_rc = -ECANCELED; /* until the work runs */
    c->data = u;
    c->data_free = user_change_free;
    c->action = "user.create";
    c->object_type = "user";
    if (users_body_common(c, u) < 0) {
        return 0;
    }
    if (u->has_password) {
        return ds_api_work(c, users_hash, u, users_create_tx);
    }
    return users_create_tx(c, NULL);
}

/* --- update and deactivate ---------------------------------------------------------------- */

static int users_updated(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    user_change_t *u = c->data;
    uint32_t k = u->reactivating ? 1 : 0; /* the update's statement */
    if (r.code == 0 && r.stmts[k].nrows == 0 && u->has_version && r.nstmts > k + 1 &&
        r.stmts[k + 1].nrows == 1) {
        rc = ds_api_fail(c, "failure", "precondition", 412, "precondition-failed",
                         "the user has changed since the ETag given in If-Match");
    } else if (c->match.route == DS_API_ROUTE_users_delete && r.code == 0 &&
               r.stmts[k].nrows == 1) {
        rc = ds_api_reply(c, 204, NULL, 0, NULL, 0);
    } else {
        rc = ds_api_object_reply(c, &r, k, 200, NULL);
    }
    ds_pg_reply_fini(&r);
    return rc;
}

static const char users_update_sql[] =
    "WITH u AS (UPDATE dossier.users u SET"
    " display_name = COALESCE($11, u.display_name),"
    " roles = COALESCE($12::text[], u.roles),"
    " status = COALESCE($13, u.status),"
    " deactivated_at = CASE WHEN $13 = 'deactivated' AND u.status <> 'deactivated' THEN now()"
    " WHEN $13 = 'active' THEN NULL ELSE u.deactivated_at END,"
    " password_hash = COALESCE($14, u.password_hash),"
    " password_changed_at = CASE WHEN $14 IS NULL THEN u.password_changed_at ELSE now() END"
    " WHERE u.id = $6::uuid AND ($15::integer IS NULL OR u.row_version = $15::integer)"
    " RETURNING u.*)"
    " SELECT dossier.api_user(u), u.row_version,"
    " dossier.audit_append($1, $2::uuid, $3, $4, $5, $6::uuid, $7::inet, $8, $9, $10::jsonb),"
    " CASE WHEN $13 = 'deactivated' THEN dossier.api_revoke_sessions(u.id, 'user_deactivated')"
    " WHEN $14 IS NOT NULL THEN dossier.api_revoke_sessions(u.id, 'password_change') END"
    " FROM u";

static int users_update_tx(ds_api_call_t *c, const ds_msg_t *reply)
{
    (void)reply;
    user_change_t *u = c->data;
    if (u->has_password && u->hash_rc != 0) {
        return -EIO;
    }
    bool del = c->match.route == DS_API_ROUTE_users_delete;
    const char *name = NULL;
    const char *status = del ? "deactivated" : NULL;
    if (c->body != NULL) {
        (void)ds_json_get_string(c->body, "display_name", &name, NULL);
        (void)ds_json_get_string(c->body, "status", &status, NULL);
    }
    json_t *d = json_pack("{s:b, s:b, s:s?, s:s?}", "password", u->has_password, "roles_changed",
                          u->has_roles, "status", status, "display_name", name);
    char *details = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    const char *p[15];
    ds_api_audit_params(c, "success", details, p);
    p[10] = name;
    p[11] = u->has_roles ? u->roles : NULL;
    p[12] = status;
    p[13] = u->has_password ? u->hash : NULL;
    p[14] = u->has_version ? u->version : NULL;
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = 0;
    u->reactivating = status != NULL && strcmp(status, "active") == 0;
    if (u->reactivating) {
        /* Reactivating takes a seat: the plan's user limit, under its lock. */
        const char *q[] = {c->match.params[0], u->max_users[0] != '\0' ? u->max_users : NULL};
        rc = ds_pg_req_add(r, "SELECT dossier.user_reactivate($1::uuid, $2::bigint)", 2, q);
    }
    if (rc == 0) {
        rc = ds_pg_req_add(r, users_update_sql, 15, p);
    }
    free(details);
    const char *p2[] = {c->match.params[0]};
    if (rc == 0) {
        rc = ds_pg_req_add(r, "SELECT 1 FROM dossier.users u WHERE u.id = $1::uuid", 1, p2);
    }
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, users_updated);
}

static const ds_json_field_t users_update_fields[] = {
    {.name = "display_name", .type = DS_JSON_STRING, .max_len = 200},
    {.name = "roles", .type = DS_JSON_STRING_ARRAY, .min_len = 1, .max_len = 3, .item_max_len = 16},
    {.name = "status", .type = DS_JSON_STRING, .min_len = 6, .max_len = 11},
    {.name = "password", .type = DS_JSON_STRING, .secret = true, .max_len = 1024},
};

static int users_change(ds_api_call_t *c, bool del)
{
    user_change_t *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return -ENOMEM;
    }
    u->hash_rc = -ECANCELED; /* until the work runs */
    c->data = u;
    c->data_free = user_change_free;
    c->action = del ? "user.deactivate" : "user.update";
    c->object_type = "user";
    memcpy(c->object_id, c->match.params[0], sizeof(c->object_id));
    if (!del) {
        if (ds_api_body(c, users_update_fields, 4) < 0 || users_body_common(c, u) < 0) {
            return 0;
        }
        const char *status = NULL;
        if (ds_json_get_string(c->body, "status", &status, NULL) && strcmp(status, "active") != 0 &&
            strcmp(status, "deactivated") != 0) {
            return ds_api_problem(c, 400, "validation-failed",
                                  "status: must be active or deactivated");
        }
        int v = ds_api_if_match(c, u->version, sizeof(u->version));
        if (v < 0) {
            return 0;
        }
        u->has_version = v == 1;
    }
    if (u->has_password) {
        return ds_api_work(c, users_hash, u, users_update_tx);
    }
    return users_update_tx(c, NULL);
}

int api_h_users_update(ds_api_call_t *c)
{
    return users_change(c, false);
}

int api_h_users_delete(ds_api_call_t *c)
{
    return users_change(c, true);
}
