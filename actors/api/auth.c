/* auth: POST /v1/auth/login, /v1/auth/refresh and /v1/auth/logout (docs/identity.md).
 *
 * Login runs in three rounds: (1) one transaction reads the throttle of the account and of
 * the client address and the user's row; (2) argon2id verification on the work pool, against
 * a dummy hash when the email matches no user (or one without a password), so every failed
 * login costs the same and says the same; (3) one transaction records the outcome (session
 * and refresh token, or the failure counts with backoff) with its audit entry. The tenant is
 * the session's, which the gateway chose from the Host subdomain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "actors/api/session_int.h"
#include "actors/password.h"

/* Verified when the email matches nothing, so that path costs one argon2id too: the node makes
 * one at its configured cost at start (ds_api_env_t.dummy_hash); this one is the default's. */
static const char auth_dummy_hash[] =
    "$argon2id$v=19$m=19456,t=2,p=1$ScNmOOZcg46i546phz72aA$hojHaAgbtuhnzQYGuAS2UNzBTiNxFt5uk/"
    "+9q6cnPPc";

typedef struct login {
    char email[DS_JSON_EMAIL_MAX + 1];
    char password[1025];
    size_t password_len;
    char account_hex[65]; /* SHA-256 of "account:" lower(email) */
    char address_hex[65]; /* SHA-256 of "address:" ip */
    char pair_hex[65];    /* SHA-256 of "pair:" lower(email) "\n" ip */
    bool serialized;      /* holds its account's slot in the session (one login at a time) */
    const char *dummy;    /* the dummy hash at the configured cost */
    char user_id[DS_API_UUID_LEN + 1];
    char hash[DS_PASSWORD_ENCODED_MAX + 1];
    unsigned roles;
    bool found;
    bool active;
    bool verified;
    char retry_after[16];
    char refresh[DS_TOKEN_OPAQUE_LEN + 1];
    char refresh_hex[65];
} login_t;

static void login_free(void *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, sizeof(login_t));
        free(p);
    }
}

static int auth_sha256_hex(const char *prefix, const char *s, char out[65])
{
    uint8_t md[32];
    unsigned n = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    bool ok = m != NULL && EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(m, prefix, strlen(prefix)) == 1 &&
              EVP_DigestUpdate(m, s, strlen(s)) == 1 && EVP_DigestFinal_ex(m, md, &n) == 1;
    EVP_MD_CTX_free(m);
    if (!ok) {
        return -EIO;
    }
    for (size_t i = 0; i < sizeof(md); i++) {
        (void)snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    return 0;
}

/* The token pair answered by login and refresh. */
static int auth_tokens(ds_api_call_t *c, const char *user, unsigned roles, const char *refresh)
{
    ds_token_claims_t claims;
    char access[DS_TOKEN_MAX_LEN + 1];
    size_t len = 0;
    const ds_token_ring_t *ring = c->session->env->ring;
    int rc =
        ds_token_claims_init(ring, user, c->session->tenant, roles, (int64_t)time(NULL), &claims);
    if (rc == 0) {
        rc = ds_token_sign(ring, &claims, access, &len);
    }
    if (rc < 0) {
        return rc;
    }
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:s}", "access_token", access, "token_type", "Bearer",
                  "expires_in", (json_int_t)(claims.exp - claims.iat), "refresh_token", refresh);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    OPENSSL_cleanse(access, sizeof(access));
    if (body == NULL) {
        return -ENOMEM;
    }
    rc = ds_api_reply(c, 200, NULL, 0, body, strlen(body));
    OPENSSL_cleanse(body, strlen(body));
    free(body);
    return rc;
}

/* Round 3 of a success: the session is open. */
static int login_opened(ds_api_call_t *c, const ds_msg_t *reply)
{
    login_t *l = c->data;
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    if (r.code != 0) {
        rc = ds_api_fail_pg(c, &r);
    } else {
        rc = auth_tokens(c, l->user_id, l->roles, l->refresh);
    }
    ds_pg_reply_fini(&r);
    return rc;
}

/* Round 3 of a failure: the counts are kept; answer 401 whatever the reason. */
static int login_refused(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    if (r.code != 0) {
        rc = ds_api_pg_problem(c, &r);
    } else {
        rc = ds_api_problem(c, 401, "unauthorized", "the email or password is wrong");
    }
    ds_pg_reply_fini(&r);
    return rc;
}

static int login_record(ds_api_call_t *c, login_t *l)
{
    ds_pg_req_t *r = ds_pg_req_new();
    int rc;
    c->action = "auth.login";
    c->object_type = "user";
    if (l->found) {
        memcpy(c->object_id, l->user_id, sizeof(c->object_id));
    }
    if (l->verified && l->active) {
        c->who = DS_API_USER;
        memcpy(c->who_id, l->user_id, sizeof(c->who_id));
        rc = ds_token_opaque_new(DS_TOKEN_PREFIX_REFRESH, c->session->tenant, l->refresh);
        if (rc == 0) {
            rc = ds_token_opaque_hash_hex(l->refresh, strlen(l->refresh), l->refresh_hex);
        }
        char refresh_s[16];
        char session_s[16];
        (void)snprintf(refresh_s, sizeof(refresh_s), "%u", c->session->env->refresh_ttl_s);
        (void)snprintf(session_s, sizeof(session_s), "%u", c->session->env->session_ttl_s);
        ds_http_header_t ua = {0};
        char agent[513] = "";
        if (ds_http_header_get(c->req.headers, "user-agent", &ua) == 0) {
            size_t n = ua.value_len < sizeof(agent) - 1 ? ua.value_len : sizeof(agent) - 1;
            for (size_t i = 0; i < n; i++) { /* printable ASCII only: it is stored as text */
                char ch = ua.value[i];
                agent[i] = ch >= 0x20 && ch < 0x7f ? ch : '?';
            }
            agent[n] = '\0';
        }
        const char *p[] = {l->user_id,
                           l->account_hex,
                           l->pair_hex,
                           l->refresh_hex,
                           refresh_s,
                           session_s,
                           c->ip[0] != '\0' ? c->ip : NULL,
                           agent};
        if (rc == 0) {
            rc = ds_pg_req_add(r,
                               "SELECT dossier.api_login_succeeded($1::uuid, decode($2, 'hex'),"
                               " decode($3, 'hex'), decode($4, 'hex'), $5::integer, $6::integer,"
                               " $7::inet, $8)",
                               8, p);
        }
        if (rc == 0) {
            rc = ds_api_audit_stmt(r, c, "success", NULL);
        }
        return rc == 0 ? ds_api_tx(c, &r, login_opened) : (ds_pg_req_free(&r), rc);
    }
    const char *p[] = {l->account_hex, l->address_hex, l->pair_hex};
    rc = ds_pg_req_add(r,
                       "SELECT dossier.api_login_failed(decode($1, 'hex'), decode($2, 'hex'),"
                       " decode($3, 'hex'))",
                       3, p);
    if (rc == 0) {
        rc = ds_api_audit_stmt(r, c, "failure",
                               !l->found      ? "{\"reason\":\"unknown_email\"}"
                               : !l->verified ? "{\"reason\":\"bad_password\"}"
                                              : "{\"reason\":\"deactivated\"}");
    }
    return rc == 0 ? ds_api_tx(c, &r, login_refused) : (ds_pg_req_free(&r), rc);
}

static void login_verify(void *arg)
{
    login_t *l = arg;
    const char *hash = l->hash[0] != '\0' ? l->hash : l->dummy;
    bool ok = ds_password_verify(hash, l->password, l->password_len);
    l->verified = ok && l->hash[0] != '\0';
    OPENSSL_cleanse(l->password, sizeof(l->password));
}

/* Round 2: argon2id has run. */
static int login_verified(ds_api_call_t *c, const ds_msg_t *reply)
{
    (void)reply;
    return login_record(c, c->data);
}

/* Round 1's answer: the throttles and the user. */
static int login_looked_up(ds_api_call_t *c, const ds_msg_t *reply)
{
    login_t *l = c->data;
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    if (r.code != 0) {
        rc = ds_api_pg_problem(c, &r);
        ds_pg_reply_fini(&r);
        return rc;
    }
    const ds_pg_value_t *locked = ds_api_value(&r, 0);
    long secs = locked != NULL ? strtol(locked->ptr, NULL, 10) : 0;
    const ds_pg_rows_t *u = &r.stmts[1];
    if (u->nrows == 1) {
        const ds_pg_value_t *id = ds_pg_rows_at(u, 0, 0);
        const ds_pg_value_t *hash = ds_pg_rows_at(u, 0, 1);
        const ds_pg_value_t *roles = ds_pg_rows_at(u, 0, 2);
        const ds_pg_value_t *status = ds_pg_rows_at(u, 0, 3);
        l->found = id->len == DS_API_UUID_LEN;
        (void)snprintf(l->user_id, sizeof(l->user_id), "%.*s", (int)id->len, id->ptr);
        if (!hash->null && hash->len < sizeof(l->hash)) {
            memcpy(l->hash, hash->ptr, hash->len);
            l->hash[hash->len] = '\0';
        }
        l->roles = ds_api_roles_parse(roles->ptr, roles->len);
        l->active = status->len == 6 && memcmp(status->ptr, "active", 6) == 0;
    }
    ds_pg_reply_fini(&r);
    if (secs > 0) {
        c->action = "auth.login";
        (void)snprintf(l->retry_after, sizeof(l->retry_after), "%ld", secs);
        c->fail_headers[0] =
            (ds_http_header_t){"Retry-After", 11, l->retry_after, (uint32_t)strlen(l->retry_after)};
        c->fail_nheaders = 1;
        return ds_api_fail(c, "denied", "throttled", 429, "login-throttled",
                           "too many failed logins: try again later");
    }
    return ds_api_work(c, login_verify, l, login_verified);
}

static const ds_json_field_t login_fields[] = {
    {.name = "email", .type = DS_JSON_EMAIL, .required = true},
    {.name = "password",
     .type = DS_JSON_STRING,
     .required = true,
     .secret = true,
     .min_len = 1,
     .max_len = 1024},
};

int api_h_auth_login(ds_api_call_t *c)
{
    if (ds_api_body(c, login_fields, 2) < 0) {
        return 0;
    }
    login_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return -ENOMEM;
    }
    c->data = l;
    c->data_free = login_free;
    l->dummy = c->session->env->dummy_hash != NULL ? c->session->env->dummy_hash : auth_dummy_hash;
    const char *email = NULL;
    const char *password = NULL;
    (void)ds_json_get_string(c->body, "email", &email, NULL);
    (void)ds_json_get_string(c->body, "password", &password, &l->password_len);
    if (l->password_len >= sizeof(l->password)) {
        return ds_api_problem(c, 400, "validation-failed", "password: is too long");
    }
    memcpy(l->password, password, l->password_len);
    size_t n = strlen(email);
    for (size_t i = 0; i < n && i < DS_JSON_EMAIL_MAX; i++) {
        char ch = email[i];
        l->email[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    int rc = auth_sha256_hex("account:", l->email, l->account_hex);
    if (rc == 0) {
        rc = auth_sha256_hex("address:", c->ip, l->address_hex);
    }
    char pair[DS_JSON_EMAIL_MAX + DS_API_IP_MAX + 2];
    (void)snprintf(pair, sizeof(pair), "%s\n%s", l->email, c->ip);
    if (rc == 0) {
        rc = auth_sha256_hex("pair:", pair, l->pair_hex);
    }
    if (rc < 0) {
        return rc;
    }
    /* One login at a time per account in this tenant: parallel guesses would all read "not
     * locked" before any failure is counted. */
    if (!ds_api_session_account_take(c, l->account_hex)) {
        (void)snprintf(l->retry_after, sizeof(l->retry_after), "1");
        ds_http_header_t ra = {"Retry-After", 11, l->retry_after, 1};
        return ds_api_problem_ex(c, 429, "login-throttled",
                                 "another login for this account is in progress", &ra, 1, NULL);
    }
    l->serialized = true;
    ds_pg_req_t *r = ds_pg_req_new();
    const char *p1[] = {l->account_hex, l->address_hex, l->pair_hex};
    const char *p2[] = {l->email};
    if (rc == 0) {
        rc = ds_pg_req_add(r,
                           "SELECT dossier.api_login_locked(decode($1, 'hex'), decode($2, 'hex'),"
                           " decode($3, 'hex'))",
                           3, p1);
    }
    if (rc == 0) {
        rc = ds_pg_req_add(r,
                           "SELECT id, password_hash, roles, status FROM dossier.users"
                           " WHERE lower(email) = $1",
                           1, p2);
    }
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, login_looked_up);
}

/* --- refresh -----------------------------------------------------------------------------
 * A token that matches no row of the tenant is refused without an audit entry: its tenant
 * part is in the clear, so auditing it would let anyone write into any tenant's trail. A
 * token that matches (rotated, revoked, expired, or live) is audited with its outcome. */

static int refresh_done(ds_api_call_t *c, const ds_msg_t *reply)
{
    login_t *l = c->data;
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    if (r.code != 0) {
        rc = ds_api_pg_problem(c, &r);
        ds_pg_reply_fini(&r);
        return rc;
    }
    const ds_pg_rows_t *rows = &r.stmts[0];
    const ds_pg_value_t *outcome = rows->nrows == 1 ? ds_pg_rows_at(rows, 0, 0) : NULL;
    if (outcome != NULL && outcome->len == 2 && memcmp(outcome->ptr, "ok", 2) == 0) {
        const ds_pg_value_t *user = ds_pg_rows_at(rows, 0, 1);
        const ds_pg_value_t *roles = ds_pg_rows_at(rows, 0, 2);
        (void)snprintf(l->user_id, sizeof(l->user_id), "%.*s", (int)user->len, user->ptr);
        l->roles = ds_api_roles_parse(roles->ptr, roles->len);
        ds_pg_reply_fini(&r);
        return auth_tokens(c, l->user_id, l->roles, l->refresh);
    }
    ds_pg_reply_fini(&r);
    return ds_api_problem(c, 401, "unauthorized", "the refresh token is not valid");
}

static const ds_json_field_t refresh_fields[] = {
    {.name = "refresh_token",
     .type = DS_JSON_STRING,
     .required = true,
     .secret = true,
     .min_len = 1,
     .max_len = 256},
};

int api_h_auth_refresh(ds_api_call_t *c)
{
    if (ds_api_body(c, refresh_fields, 1) < 0) {
        return 0;
    }
    login_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return -ENOMEM;
    }
    c->data = l;
    c->data_free = login_free;
    const char *tok = NULL;
    size_t len = 0;
    (void)ds_json_get_string(c->body, "refresh_token", &tok, &len);
    char tenant[DS_TOKEN_UUID_LEN + 1];
    char old_hex[65];
    if (ds_token_opaque_parse(DS_TOKEN_PREFIX_REFRESH, tok, len, tenant) != 0 ||
        strcmp(tenant, c->session->tenant) != 0 || ds_token_opaque_hash_hex(tok, len, old_hex)) {
        return ds_api_problem(c, 401, "unauthorized", "the refresh token is not valid");
    }
    int rc = ds_token_opaque_new(DS_TOKEN_PREFIX_REFRESH, c->session->tenant, l->refresh);
    if (rc == 0) {
        rc = ds_token_opaque_hash_hex(l->refresh, strlen(l->refresh), l->refresh_hex);
    }
    char ttl[16];
    (void)snprintf(ttl, sizeof(ttl), "%u", c->session->env->refresh_ttl_s);
    const char *p[] = {old_hex, l->refresh_hex, ttl, c->ip[0] != '\0' ? c->ip : NULL,
                       c->request_id};
    ds_pg_req_t *r = ds_pg_req_new();
    if (rc == 0) {
        rc = ds_pg_req_add(
            r,
            "WITH r AS (SELECT * FROM dossier.api_refresh(decode($1, 'hex'), decode($2, 'hex'),"
            " $3::integer))"
            " SELECT r.outcome, r.user_id, r.roles, dossier.audit_append("
            " CASE WHEN r.user_id IS NULL THEN 'anonymous' ELSE 'user' END, r.user_id, NULL,"
            " CASE WHEN r.outcome = 'reuse' THEN 'auth.token_reuse' ELSE 'auth.refresh' END,"
            " CASE WHEN r.session_id IS NULL THEN NULL ELSE 'session' END, r.session_id,"
            " $4::inet, $5, CASE r.outcome WHEN 'ok' THEN 'success' WHEN 'reuse' THEN 'denied'"
            " ELSE 'failure' END, jsonb_build_object('outcome', r.outcome)) FROM r"
            " WHERE r.outcome <> 'invalid'",
            5, p);
    }
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, refresh_done);
}

/* --- logout ------------------------------------------------------------------------------- */

static int logout_done(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    rc = r.code != 0 ? ds_api_fail_pg(c, &r) : ds_api_reply(c, 204, NULL, 0, NULL, 0);
    ds_pg_reply_fini(&r);
    return rc;
}

static const ds_json_field_t logout_fields[] = {
    {.name = "refresh_token", .type = DS_JSON_STRING, .secret = true, .min_len = 1, .max_len = 256},
    {.name = "everywhere", .type = DS_JSON_BOOLEAN},
};

int api_h_auth_logout(ds_api_call_t *c)
{
    if (ds_api_body(c, logout_fields, 2) < 0) {
        return 0;
    }
    c->action = "auth.logout";
    c->object_type = "user";
    if (c->who != DS_API_USER) {
        return ds_api_fail(c, "denied", "not_a_user", 403, "forbidden",
                           "only users log out; revoke an API key instead");
    }
    memcpy(c->object_id, c->who_id, sizeof(c->object_id));
    bool everywhere = false;
    (void)ds_json_get_bool(c->body, "everywhere", &everywhere);
    const char *tok = NULL;
    size_t len = 0;
    char hex[65] = "";
    bool has_token = ds_json_get_string(c->body, "refresh_token", &tok, &len);
    if (!has_token && !everywhere) {
        return ds_api_problem(c, 400, "validation-failed",
                              "give the session's refresh_token, or everywhere: true");
    }
    if (has_token && ds_token_opaque_hash_hex(tok, len, hex) != 0) {
        return -EIO;
    }
    const char *p[] = {c->who_id, has_token ? hex : NULL, everywhere ? "true" : "false"};
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = ds_pg_req_add(r, "SELECT dossier.api_logout($1::uuid, decode($2, 'hex'), $3::boolean)",
                           3, p);
    if (rc == 0) {
        rc = ds_api_audit_stmt(r, c, "success",
                               everywhere ? "{\"everywhere\":true}" : "{\"everywhere\":false}");
    }
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, logout_done);
}
