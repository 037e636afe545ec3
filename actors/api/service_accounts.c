/* service_accounts: /v1/service-accounts and their API keys (admins only). A key is shown
 * once, in the 201 of its creation; the database keeps SHA-256 of it and its first 12
 * characters (to tell keys apart in listings). A replayed create (Idempotency-Key) answers the
 * stored response, which never holds the key: create another key if the first answer was lost.
 * Scopes: [] (whatever the account's roles allow) or ["read"] (GET only). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "actors/api/session_int.h"

enum {
    SA_PREFIX_LEN = 12,
};

typedef struct sa_key {
    char key[DS_TOKEN_OPAQUE_LEN + 1];
    char hash[2 * DS_TOKEN_HASH_LEN + 1];
    char prefix[SA_PREFIX_LEN + 1];
    char id[DS_API_UUID_LEN + 1];
    char scopes[32];
    char roles[40];
} sa_key_t;

static void sa_key_free(void *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, sizeof(sa_key_t));
        free(p);
    }
}

int api_h_service_accounts_list(ds_api_call_t *c)
{
    char sql[1024];
    int rc = ds_api_list_sql(sql, sizeof(sql), "dossier.api_service_account",
                             "dossier.service_accounts", NULL);
    return rc < 0 ? rc : ds_api_list(c, sql, NULL, 0);
}

static int sa_object_done(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    bool created = c->match.route == DS_API_ROUTE_service_accounts_create ||
                   c->match.route == DS_API_ROUTE_service_accounts_key_create;
    const ds_pg_value_t *future =
        created && r.code == 0 && r.nstmts > 1 ? ds_api_value(&r, 1) : NULL;
    if (c->match.route == DS_API_ROUTE_service_accounts_key_create && r.code == 0 &&
        r.stmts[0].nrows == 0 && future != NULL && future->len == 1 && future->ptr[0] == 'f') {
        ds_pg_reply_fini(&r);
        return ds_api_fail(c, "failure", "expired", 400, "validation-failed",
                           "expires_at: must be in the future");
    }
    const char *loc =
        c->match.route == DS_API_ROUTE_service_accounts_create ? "/v1/service-accounts/" : NULL;
    rc = ds_api_object_reply(c, &r, 0, created ? 201 : 200, loc);
    ds_pg_reply_fini(&r);
    return rc;
}

int api_h_service_accounts_get(ds_api_call_t *c)
{
    ds_pg_req_t *r = ds_pg_req_new();
    const char *p[] = {c->match.params[0]};
    int rc = ds_pg_req_add(
        r,
        "SELECT (dossier.api_service_account(s)::jsonb || jsonb_build_object('api_keys',"
        " COALESCE((SELECT jsonb_agg(dossier.api_api_key(k) ORDER BY k.id)"
        " FROM dossier.api_keys k WHERE k.service_account_id = s.id), '[]'::jsonb)))::json,"
        " s.row_version FROM dossier.service_accounts s WHERE s.id = $1::uuid",
        1, p);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, sa_object_done);
}

/* Reads scopes and roles of the body into k as text[] literals; 400 and -EINVAL if bad. */
static int sa_body_lists(ds_api_call_t *c, sa_key_t *k, bool with_roles)
{
    size_t n = 0;
    (void)snprintf(k->scopes, sizeof(k->scopes), "{}");
    if (ds_json_get_count(c->body, "scopes", &n) && n == 1 &&
        strcmp(ds_json_get_item(c->body, "scopes", 0), "read") == 0) {
        (void)snprintf(k->scopes, sizeof(k->scopes), "{read}");
    } else if (n > 0) {
        (void)ds_api_problem(c, 400, "validation-failed",
                             "scopes: must be [] (all the account may do) or [\"read\"]");
        return -EINVAL;
    }
    (void)snprintf(k->roles, sizeof(k->roles), "{viewer}");
    if (with_roles && ds_json_get_count(c->body, "roles", &n)) {
        unsigned roles = 0;
        for (size_t i = 0; i < n; i++) {
            const char *item = ds_json_get_item(c->body, "roles", i);
            unsigned bit = strlen(item) <= 6 ? ds_api_roles_parse(item, strlen(item)) : 0;
            if (bit == 0) {
                (void)ds_api_problem(c, 400, "validation-failed",
                                     "roles: must be viewer, editor or admin");
                return -EINVAL;
            }
            roles |= bit;
        }
        ds_api_roles_format(roles, k->roles, sizeof(k->roles));
    }
    return 0;
}

static int sa_new_key(ds_api_call_t *c, sa_key_t *k)
{
    int rc = ds_token_opaque_new(DS_TOKEN_PREFIX_API_KEY, c->session->tenant, k->key);
    if (rc == 0) {
        rc = ds_token_opaque_hash_hex(k->key, strlen(k->key), k->hash);
    }
    if (rc == 0) {
        rc = ds_api_uuid_v7(k->id);
    }
    memcpy(k->prefix, k->key, SA_PREFIX_LEN);
    k->prefix[SA_PREFIX_LEN] = '\0';
    return rc;
}

static sa_key_t *sa_key_new(ds_api_call_t *c)
{
    sa_key_t *k = calloc(1, sizeof(*k));
    if (k != NULL) {
        c->data = k;
        c->data_free = sa_key_free;
    }
    return k;
}

static const ds_json_field_t sa_fields[] = {
    {.name = "name", .type = DS_JSON_STRING, .required = true, .min_len = 1, .max_len = 200},
    {.name = "description", .type = DS_JSON_STRING, .max_len = 2000},
    {.name = "roles", .type = DS_JSON_STRING_ARRAY, .min_len = 1, .max_len = 3, .item_max_len = 16},
    {.name = "scopes", .type = DS_JSON_STRING_ARRAY, .max_len = 1, .item_max_len = 16},
};

static const char sa_create_sql[] =
    "WITH s AS (INSERT INTO dossier.service_accounts (id, name, description, roles, created_by)"
    " VALUES ($6::uuid, $11, COALESCE($12, ''), $13::text[],"
    " CASE WHEN $1 = 'user' THEN $2::uuid END) RETURNING *),"
    " k AS (INSERT INTO dossier.api_keys (id, service_account_id, name, key_prefix, key_hash,"
    " scopes, created_by) SELECT $14::uuid, s.id, 'default', $15, decode($16, 'hex'),"
    " $17::text[], s.created_by FROM s RETURNING *)"
    " SELECT json_build_object('service_account', dossier.api_service_account(s), 'api_key',"
    " dossier.api_api_key(k)::jsonb || jsonb_build_object('key', $18::text)), s.row_version,"
    " dossier.audit_append($1, $2::uuid, $3, $4, $5, $6::uuid, $7::inet, $8, $9, $10::jsonb)"
    " FROM s, k";

int api_h_service_accounts_create(ds_api_call_t *c)
{
    if (ds_api_body(c, sa_fields, 4) < 0) {
        return 0;
    }
    sa_key_t *k = sa_key_new(c);
    if (k == NULL) {
        return -ENOMEM;
    }
    c->action = "service_account.create";
    c->object_type = "service_account";
    if (sa_body_lists(c, k, true) < 0) {
        return 0;
    }
    int rc = ds_api_uuid_v7(c->new_id);
    if (rc == 0) {
        rc = sa_new_key(c, k);
    }
    if (rc < 0) {
        return rc;
    }
    memcpy(c->object_id, c->new_id, sizeof(c->object_id));
    const char *name = NULL;
    const char *desc = NULL;
    (void)ds_json_get_string(c->body, "name", &name, NULL);
    (void)ds_json_get_string(c->body, "description", &desc, NULL);
    json_t *d =
        json_pack("{s:s, s:s, s:s}", "name", name, "api_key_id", k->id, "key_prefix", k->prefix);
    char *details = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    const char *p[18];
    ds_api_audit_params(c, "success", details, p);
    const char *extra[] = {name, desc, k->roles, k->id, k->prefix, k->hash, k->scopes, k->key};
    memcpy(&p[10], extra, sizeof(extra));
    ds_pg_req_t *r = ds_pg_req_new();
    rc = ds_pg_req_add(r, sa_create_sql, 18, p);
    free(details);
    if (rc == 0) {
        rc = ds_api_idem_complete_stmt(
            r, c,
            "SELECT json_build_object('service_account', dossier.api_service_account(s))"
            " FROM dossier.service_accounts s WHERE s.id = $1::uuid",
            "'/v1/service-accounts/' || $1", c->new_id);
    }
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, sa_object_done);
}

int api_h_service_accounts_delete(ds_api_call_t *c)
{
    c->action = "service_account.disable";
    c->object_type = "service_account";
    memcpy(c->object_id, c->match.params[0], sizeof(c->object_id));
    const char *p[10];
    ds_api_audit_params(c, "success", NULL, p);
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = ds_pg_req_add(
        r,
        "WITH s AS (UPDATE dossier.service_accounts s SET status = 'disabled',"
        " disabled_at = COALESCE(s.disabled_at, now()) WHERE s.id = $6::uuid RETURNING s.id),"
        " k AS (UPDATE dossier.api_keys k SET revoked_at = now() FROM s"
        " WHERE k.service_account_id = s.id AND k.revoked_at IS NULL RETURNING k.id)"
        " SELECT s.id, dossier.audit_append($1, $2::uuid, $3, $4, $5, $6::uuid, $7::inet, $8,"
        " $9, $10::jsonb || jsonb_build_object('keys_revoked', (SELECT count(*) FROM k)))"
        " FROM s",
        10, p);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, ds_api_step_204);
}

static const ds_json_field_t sa_key_fields[] = {
    {.name = "name", .type = DS_JSON_STRING, .max_len = 200},
    {.name = "scopes", .type = DS_JSON_STRING_ARRAY, .max_len = 1, .item_max_len = 16},
    {.name = "expires_at", .type = DS_JSON_STRING, .min_len = 10, .max_len = 40},
};

int api_h_service_accounts_key_create(ds_api_call_t *c)
{
    if (ds_api_body(c, sa_key_fields, 3) < 0) {
        return 0;
    }
    sa_key_t *k = sa_key_new(c);
    if (k == NULL) {
        return -ENOMEM;
    }
    c->action = "api_key.create";
    c->object_type = "service_account";
    memcpy(c->object_id, c->match.params[0], sizeof(c->object_id));
    if (sa_body_lists(c, k, false) < 0) {
        return 0;
    }
    int rc = sa_new_key(c, k);
    if (rc < 0) {
        return rc;
    }
    memcpy(c->new_id, k->id, sizeof(c->new_id));
    const char *name = "";
    const char *expires = NULL;
    (void)ds_json_get_string(c->body, "name", &name, NULL);
    (void)ds_json_get_string(c->body, "expires_at", &expires, NULL);
    json_t *d = json_pack("{s:s, s:s}", "api_key_id", k->id, "key_prefix", k->prefix);
    char *details = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    const char *p[16];
    ds_api_audit_params(c, "success", details, p);
    const char *extra[] = {k->id, name, k->prefix, k->hash, k->scopes, expires};
    memcpy(&p[10], extra, sizeof(extra));
    ds_pg_req_t *r = ds_pg_req_new();
    rc = ds_pg_req_add(
        r,
        "WITH k AS (INSERT INTO dossier.api_keys (id, service_account_id, name, key_prefix,"
        " key_hash, scopes, expires_at, created_by) SELECT $11::uuid, s.id, $12, $13,"
        " decode($14, 'hex'), $15::text[], $16::timestamptz, CASE WHEN $1 = 'user' THEN"
        " $2::uuid END FROM dossier.service_accounts s WHERE s.id = $6::uuid"
        " AND s.status = 'active' AND ($16::timestamptz IS NULL OR $16::timestamptz > now())"
        " RETURNING *)"
        " SELECT (dossier.api_api_key(k)::jsonb || jsonb_build_object('key', $17::text))::json,"
        " NULL, dossier.audit_append($1, $2::uuid, $3, $4, $5, $6::uuid, $7::inet, $8, $9,"
        " $10::jsonb) FROM k",
        17,
        (const char *[]){p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11],
                         p[12], p[13], p[14], p[15], k->key});
    free(details);
    if (rc == 0) { /* statement 1: whether expires_at (if any) is in the future */
        const char *q[] = {expires};
        rc = ds_pg_req_add(r, "SELECT $1::timestamptz IS NULL OR $1::timestamptz > now()", 1, q);
    }
    if (rc == 0) {
        rc = ds_api_idem_complete_stmt(
            r, c, "SELECT dossier.api_api_key(k) FROM dossier.api_keys k WHERE k.id = $1::uuid",
            "NULL::text", c->new_id);
    }
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, sa_object_done);
}

int api_h_service_accounts_key_delete(ds_api_call_t *c)
{
    c->action = "api_key.revoke";
    c->object_type = "service_account";
    memcpy(c->object_id, c->match.params[0], sizeof(c->object_id));
    const char *p[11];
    json_t *d = json_pack("{s:s}", "api_key_id", c->match.params[1]);
    char *details = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    ds_api_audit_params(c, "success", details, p);
    p[10] = c->match.params[1];
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = ds_pg_req_add(
        r,
        "WITH k AS (UPDATE dossier.api_keys k SET revoked_at = now() WHERE k.id = $11::uuid"
        " AND k.service_account_id = $6::uuid AND k.revoked_at IS NULL RETURNING k.id)"
        " SELECT k.id, dossier.audit_append($1, $2::uuid, $3, $4, $5, $6::uuid, $7::inet, $8,"
        " $9, $10::jsonb) FROM k",
        11, p);
    free(details);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, ds_api_step_204);
}
