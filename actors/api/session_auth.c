/* session_auth: a call's first step — its route, who is calling (access token or API key, for
 * this tenant only), whether its role allows the route, and its Idempotency-Key. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "actors/api/session_int.h"
#include "runtime/log.h"

static const ds_http_header_t auth_challenge[] = {
    {"WWW-Authenticate", 16, "Bearer error=\"invalid_token\"", 28},
};

static int auth_unauthorized(ds_api_call_t *c, const char *detail)
{
    return ds_api_problem_ex(c, 401, "unauthorized", detail, auth_challenge, 1, NULL);
}

/* The bearer credential of the Authorization header: 0 and the token in *tok and *len, or -ENOENT.
 */
static int auth_bearer(const ds_api_call_t *c, const char **tok, size_t *len)
{
    ds_http_header_t h;
    if (ds_http_header_get(c->req.headers, "authorization", &h) != 0 || h.value_len < 8 ||
        strncasecmp(h.value, "Bearer ", 7) != 0) {
        return -ENOENT;
    }
    size_t i = 7;
    while (i < h.value_len && h.value[i] == ' ') {
        i++;
    }
    *tok = h.value + i;
    *len = h.value_len - i;
    return *len > 0 ? 0 : -ENOENT;
}

/* Kinds of object every principal of the tenant may read (users and groups form the
 * directory); the others only admins see, so a refusal on them is a 404. */
static bool auth_kinds_readable(const char *kinds)
{
    return strstr(kinds, "service_account") == NULL && strstr(kinds, "api_key") == NULL &&
           strstr(kinds, "grant") == NULL;
}

static int auth_idempotency(ds_api_call_t *c)
{
    ds_http_header_t h;
    if (!(c->route->flags & DS_API_IDEMPOTENT) ||
        ds_http_header_get(c->req.headers, "idempotency-key", &h) != 0) {
        return 0;
    }
    bool ok = h.value_len >= 1 && h.value_len <= DS_API_IDEM_KEY_MAX;
    for (uint32_t i = 0; ok && i < h.value_len; i++) {
        ok = h.value[i] > 0x20 && h.value[i] < 0x7f;
    }
    if (!ok) {
        (void)ds_api_problem(c, 400, "bad-request",
                             "Idempotency-Key must be 1 to 255 visible ASCII characters");
        return -EINVAL;
    }
    memcpy(c->idem_key, h.value, h.value_len);
    c->idem_key[h.value_len] = '\0';
    /* The request's fingerprint: method, path and body. */
    uint8_t md[32];
    unsigned mdlen = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    bool hashed = m != NULL && EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
                  EVP_DigestUpdate(m, c->req.method.ptr, c->req.method.len) == 1 &&
                  EVP_DigestUpdate(m, "\n", 1) == 1 &&
                  EVP_DigestUpdate(m, c->req.path.ptr, c->req.path.len) == 1 &&
                  EVP_DigestUpdate(m, "\n", 1) == 1 &&
                  EVP_DigestUpdate(m, c->req.body.ptr, c->req.body.len) == 1 &&
                  EVP_DigestFinal_ex(m, md, &mdlen) == 1;
    EVP_MD_CTX_free(m);
    if (!hashed) {
        return -EIO;
    }
    for (size_t i = 0; i < sizeof(md); i++) {
        (void)snprintf(c->idem_hash + 2 * i, 3, "%02x", md[i]);
    }
    c->idem = true;
    return 0;
}

/* The principal is known: the route's role, the key's scope, then the handler. */
static int auth_authorized(ds_api_call_t *c)
{
    unsigned f = c->route->flags;
    if ((f & DS_API_ADMIN) && !(c->roles & DS_ROLE_ADMIN)) {
        bool hidden = !auth_kinds_readable(c->route->param_kinds) && c->match.nparams > 0;
        if (f & DS_API_MUTATES) {
            c->action = "access.denied";
            return hidden ? ds_api_fail(c, "denied", "role", 404, "not-found", NULL)
                          : ds_api_fail(c, "denied", "role", 403, "forbidden",
                                        "this action needs the admin role");
        }
        return hidden ? ds_api_not_found(c)
                      : ds_api_problem(c, 403, "forbidden", "this resource needs the admin role");
    }
    if ((f & DS_API_MUTATES) && c->read_only) {
        c->action = "access.denied";
        return ds_api_fail(c, "denied", "scope", 403, "forbidden",
                           "this API key is scoped to reads");
    }
    int rc = auth_idempotency(c);
    if (rc < 0) {
        return rc == -EINVAL ? 0 : rc;
    }
    return ds_api_session_dispatch(c);
}

/* The API key lookup's answer: service account id, roles, scopes. */
static int auth_key_done(ds_api_call_t *c, const ds_msg_t *reply)
{
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
    if (rows->nrows != 1 || rows->ncols != 3) {
        ds_pg_reply_fini(&r);
        return auth_unauthorized(c, "the API key is not valid");
    }
    const ds_pg_value_t *id = ds_pg_rows_at(rows, 0, 0);
    const ds_pg_value_t *roles = ds_pg_rows_at(rows, 0, 1);
    const ds_pg_value_t *ro = ds_pg_rows_at(rows, 0, 2);
    if (id->null || id->len != DS_API_UUID_LEN) {
        ds_pg_reply_fini(&r);
        return -EPROTO;
    }
    c->who = DS_API_SERVICE_ACCOUNT;
    memcpy(c->who_id, id->ptr, DS_API_UUID_LEN);
    c->who_id[DS_API_UUID_LEN] = '\0';
    c->roles = roles->null ? 0 : ds_api_roles_parse(roles->ptr, roles->len);
    c->read_only = !ro->null && ro->len == 1 && ro->ptr[0] == 't';
    ds_pg_reply_fini(&r);
    if (c->roles == 0) {
        return auth_unauthorized(c, "the API key is not valid");
    }
    return auth_authorized(c);
}

/* dsk_...: the key names its tenant; it must be ours, then the database says whose it is. A
 * key scoped to ["read"] may only read. last_used_at is kept to the minute. */
static int auth_api_key(ds_api_call_t *c, const char *tok, size_t len)
{
    char tenant[DS_TOKEN_UUID_LEN + 1];
    char hash[2 * DS_TOKEN_HASH_LEN + 1];
    if (ds_token_opaque_parse(DS_TOKEN_PREFIX_API_KEY, tok, len, tenant) != 0 ||
        strcmp(tenant, c->session->tenant) != 0 || ds_token_opaque_hash_hex(tok, len, hash) != 0) {
        return auth_unauthorized(c, "the API key is not valid");
    }
    ds_pg_req_t *r = ds_pg_req_new();
    const char *p[] = {hash};
    int rc = ds_pg_req_add(
        r,
        "WITH k AS (UPDATE dossier.api_keys k SET last_used_at = now()"
        " WHERE k.key_hash = decode($1, 'hex') AND k.revoked_at IS NULL"
        " AND (k.expires_at IS NULL OR k.expires_at > now())"
        " AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')"
        " RETURNING k.id)"
        " SELECT s.id, s.roles, k.scopes = ARRAY['read']"
        " FROM dossier.api_keys k JOIN dossier.service_accounts s"
        " ON s.tenant_id = k.tenant_id AND s.id = k.service_account_id"
        " WHERE k.key_hash = decode($1, 'hex') AND k.revoked_at IS NULL"
        " AND (k.expires_at IS NULL OR k.expires_at > now()) AND s.status = 'active'",
        1, p);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, auth_key_done);
}

static int auth_access_token(ds_api_call_t *c, const char *tok, size_t len)
{
    ds_token_claims_t claims;
    int rc = ds_token_verify(c->session->env->ring, tok, len, (int64_t)time(NULL), &claims);
    if (rc == -ETIME) {
        return ds_api_problem_ex(c, 401, "unauthorized", "the access token has expired",
                                 (const ds_http_header_t[]){{"WWW-Authenticate", 16,
                                                             "Bearer error=\"invalid_token\", "
                                                             "error_description=\"token expired\"",
                                                             62}},
                                 1, NULL);
    }
    if (rc < 0 || strcmp(claims.tid, c->session->tenant) != 0) {
        return auth_unauthorized(c, "the access token is not valid");
    }
    c->who = DS_API_USER;
    memcpy(c->who_id, claims.sub, sizeof(c->who_id));
    c->roles = claims.roles;
    return auth_authorized(c);
}

static int auth_route(ds_api_call_t *c)
{
    char allowed[64];
    int rc = ds_api_route_match(c->req.method.ptr, c->req.method.len, c->req.path.ptr,
                                c->req.path.len, &c->match, allowed, sizeof(allowed));
    if (rc == -EPERM) {
        ds_http_header_t allow = {"Allow", 5, allowed, (uint32_t)strlen(allowed)};
        return ds_api_problem_ex(c, 405, "method-not-allowed",
                                 "this resource does not take this method", &allow, 1, NULL);
    }
    if (rc < 0) {
        return ds_api_not_found(c);
    }
    c->route = &ds_api_routes[c->match.route];
    return 0;
}

int ds_api_session_start(ds_api_call_t *c, const ds_msg_t *reply)
{
    (void)reply;
    (void)snprintf(c->ip, sizeof(c->ip), "%.*s", (int)c->req.peer.len, c->req.peer.ptr);
    int rc = auth_route(c);
    if (rc < 0 || c->answered) {
        return rc;
    }
    if (!(c->route->flags & DS_API_BEARER)) {
        c->who = DS_API_ANONYMOUS;
        return ds_api_session_dispatch(c);
    }
    const char *tok = NULL;
    size_t len = 0;
    if (auth_bearer(c, &tok, &len) != 0) {
        return auth_unauthorized(c, "this resource needs an access token or API key");
    }
    switch (ds_token_classify(tok, len)) {
    case DS_TOKEN_ACCESS:
        return auth_access_token(c, tok, len);
    case DS_TOKEN_API_KEY:
        return auth_api_key(c, tok, len);
    default:
        return auth_unauthorized(c, "the credential is neither an access token nor an API key");
    }
}
