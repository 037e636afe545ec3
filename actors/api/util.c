/* util: replies, problems, audit statements and request readers for the route handlers. See
 * actors/api/api.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "actors/api/session_int.h"
#include "runtime/err.h"
#include "runtime/log.h"

enum {
    UTIL_HEADERS_MAX = 8,
};

static const struct {
    const char *slug;
    const char *title;
} util_titles[] = {
    {"bad-request", "Bad request"},
    {"validation-failed", "Validation failed"},
    {"unauthorized", "Unauthorized"},
    {"tenant-suspended", "Tenant suspended"},
    {"forbidden", "Forbidden"},
    {"not-found", "Not found"},
    {"method-not-allowed", "Method not allowed"},
    {"conflict", "Conflict"},
    {"plan-limit-reached", "Plan limit reached"},
    {"idempotency-key-reused", "Idempotency key reused"},
    {"idempotency-in-progress", "Idempotent request in progress"},
    {"precondition-failed", "Precondition failed"},
    {"content-too-large", "Content too large"},
    {"unsupported-media-type", "Unsupported media type"},
    {"login-throttled", "Too many failed logins"},
    {"rate-limited", "Too many requests"},
    {"service-unavailable", "Service unavailable"},
    {"internal-error", "Internal error"},
};

static const char *util_title(const char *slug)
{
    for (size_t i = 0; i < sizeof(util_titles) / sizeof(util_titles[0]); i++) {
        if (strcmp(util_titles[i].slug, slug) == 0) {
            return util_titles[i].title;
        }
    }
    return "Error";
}

int ds_api_reply(ds_api_call_t *c, uint32_t status, const ds_http_header_t *headers, size_t n,
                 const char *body, size_t len)
{
    ds_http_header_t all[UTIL_HEADERS_MAX + 3];
    size_t k = 0;
    if (len > 0) {
        all[k++] = (ds_http_header_t){"Content-Type", 12, "application/json", 16};
    }
    all[k++] = (ds_http_header_t){"Cache-Control", 13, "no-store", 8};
    for (size_t i = 0; i < n && i < UTIL_HEADERS_MAX; i++) {
        all[k++] = headers[i];
    }
    if (c->session != NULL) { /* for the access log; the gateway does not send it */
        all[k++] = (ds_http_header_t){"X-Dossier-Tenant", 16, c->session->tenant, DS_API_UUID_LEN};
    }
    c->answered = true;
    if (status != 201) {
        ds_api_session_idem_release(c);
    }
    int rc = ds_http_respond(c->ctx, &c->req, status, all, k, body, len);
    return rc == DS_ENOACTOR ? 0 : rc; /* the client went away: nothing to answer */
}

static int util_problem_send(ds_api_call_t *c, uint32_t status, const char *slug,
                             const char *detail, const ds_http_header_t *headers, size_t n,
                             json_t *errors)
{
    char type[96];
    (void)snprintf(type, sizeof(type), "https://dossier.dev/problems/%s", slug);
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", util_title(slug),
                          "status", (json_int_t)status, "detail", detail != NULL ? detail : "",
                          "request_id", c->request_id);
    if (o == NULL) {
        json_decref(errors);
        return -ENOMEM;
    }
    if (errors != NULL) {
        (void)json_object_set_new(o, "errors", errors);
    }
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (body == NULL) {
        return -ENOMEM;
    }
    ds_http_header_t all[UTIL_HEADERS_MAX + 3];
    size_t k = 0;
    all[k++] = (ds_http_header_t){"Content-Type", 12, "application/problem+json", 24};
    for (size_t i = 0; i < n && i < UTIL_HEADERS_MAX; i++) {
        all[k++] = headers[i];
    }
    all[k++] = (ds_http_header_t){"Cache-Control", 13, "no-store", 8};
    if (c->session != NULL) {
        all[k++] = (ds_http_header_t){"X-Dossier-Tenant", 16, c->session->tenant, DS_API_UUID_LEN};
    }
    c->answered = true;
    ds_api_session_idem_release(c);
    int rc = ds_http_respond(c->ctx, &c->req, status, all, k, body, strlen(body));
    free(body);
    return rc == DS_ENOACTOR ? 0 : rc;
}

int ds_api_problem_ex(ds_api_call_t *c, uint32_t status, const char *slug, const char *detail,
                      const ds_http_header_t *headers, size_t n, json_t *errors)
{
    return util_problem_send(c, status, slug, detail, headers, n, errors);
}

int ds_api_problem(ds_api_call_t *c, uint32_t status, const char *slug, const char *detail)
{
    return util_problem_send(c, status, slug, detail, NULL, 0, NULL);
}

int ds_api_not_found(ds_api_call_t *c)
{
    return ds_api_problem(c, 404, "not-found", "no such resource");
}

int ds_api_session_problem_raw(ds_ctx_t *ctx, const ds_http_request_t *req, uint32_t status,
                               const char *slug, const char *detail,
                               const ds_http_header_t *headers, size_t n)
{
    ds_api_call_t c = {.ctx = ctx, .req = *req};
    (void)snprintf(c.request_id, sizeof(c.request_id), "%.*s", (int)req->request_id.len,
                   req->request_id.ptr);
    return util_problem_send(&c, status, slug, detail, headers, n, NULL);
}

/* How a failed pool reply is told to the client. */
typedef struct util_pg_map {
    uint32_t status;
    const char *slug;
    const char *detail;
    bool retry; /* Retry-After: 1 */
} util_pg_map_t;

static util_pg_map_t util_pg_map(const ds_pg_reply_t *r)
{
    if (r->code == -EIO) {
        static const struct {
            const char *state;
            util_pg_map_t map;
        } states[] = {
            {"23505", {409, "conflict", "an object with this name or email exists already", 0}},
            {"23503", {404, "not-found", "a referenced object does not exist", 0}},
            {"23514", {400, "validation-failed", "a value is out of its allowed range", 0}},
            {"23502", {400, "validation-failed", "a required value is missing", 0}},
            {"22001", {400, "validation-failed", "a value is too long", 0}},
            {"22P02", {400, "validation-failed", "a value is malformed", 0}},
            {"22007", {400, "validation-failed", "a date or time is malformed", 0}},
            {"22008", {400, "validation-failed", "a date or time is out of range", 0}},
            {"DS001", {409, "plan-limit-reached", "the tenant's plan allows no more users", 0}},
            {"DS002", {401, "unauthorized", "the caller's account is no longer active", 0}},
            {"DS003", {403, "forbidden", "the caller no longer has the admin role", 0}},
            {"P0002", {404, "not-found", "no such resource", 0}},
            {"22003", {400, "validation-failed", "a number is out of range", 0}},
        };
        for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
            if (strcmp(r->sqlstate, states[i].state) == 0) {
                return states[i].map;
            }
        }
    }
    if (r->code == -ETIMEDOUT || r->code == -ECONNREFUSED || r->code == -ECONNRESET ||
        r->code == DS_EFULL || r->code == DS_ETIMEDOUT || r->code == -EAGAIN ||
        r->code == DS_ECAP) {
        return (util_pg_map_t){503, "service-unavailable", "the database is busy or unreachable",
                               1};
    }
    return (util_pg_map_t){500, "internal-error", "the server failed to handle the request", 0};
}

static void util_pg_log(const ds_api_call_t *c, const ds_pg_reply_t *r, uint32_t status)
{
    if (status < 500) {
        return;
    }
    char msg[160];
    (void)snprintf(msg, sizeof(msg), "%.*s", (int)r->message.len,
                   r->message.ptr != NULL ? r->message.ptr : "");
    ds_log_warn("api request failed in the database",
                DS_LOG_STR("route", c->route != NULL ? c->route->name : "-"),
                DS_LOG_STR("error", ds_errname(r->code)), DS_LOG_STR("sqlstate", r->sqlstate),
                DS_LOG_STR("message", msg), DS_LOG_STR("request_id", c->request_id), DS_LOG_END);
}

static const ds_http_header_t util_retry[] = {{"Retry-After", 11, "1", 1}};

int ds_api_pg_problem(ds_api_call_t *c, const ds_pg_reply_t *r)
{
    util_pg_map_t m = util_pg_map(r);
    util_pg_log(c, r, m.status);
    return util_problem_send(c, m.status, m.slug, m.detail, m.retry ? util_retry : NULL,
                             m.retry ? 1 : 0, NULL);
}

/* --- audit ------------------------------------------------------------------------------- */

static const char *util_actor_type(ds_api_principal_t who)
{
    switch (who) {
    case DS_API_USER:
        return "user";
    case DS_API_SERVICE_ACCOUNT:
        return "service_account";
    default:
        return "anonymous";
    }
}

void ds_api_audit_params(const ds_api_call_t *c, const char *outcome, const char *details,
                         const char *params[10])
{
    params[0] = util_actor_type(c->who);
    params[1] = c->who == DS_API_ANONYMOUS ? NULL : c->who_id;
    params[2] = NULL;
    params[3] = c->action;
    params[4] = c->object_id[0] != '\0' ? c->object_type : NULL;
    params[5] = c->object_id[0] != '\0' ? c->object_id : NULL;
    params[6] = c->ip[0] != '\0' ? c->ip : NULL;
    params[7] = c->request_id[0] != '\0' ? c->request_id : NULL;
    params[8] = outcome;
    params[9] = details != NULL ? details : "{}";
}

int ds_api_audit_stmt(ds_pg_req_t *r, const ds_api_call_t *c, const char *outcome,
                      const char *details)
{
    const char *p[10];
    ds_api_audit_params(c, outcome, details, p);
    return ds_pg_req_add(r,
                         "SELECT dossier.audit_append($1, $2::uuid, $3, $4, $5, $6::uuid,"
                         " $7::inet, $8, $9, $10::jsonb)",
                         10, p);
}

/* The failure entry is written: answer the problem kept in the call. */
static int util_fail_done(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    if (ds_pg_reply_decode(reply, &r) == 0) {
        if (r.code != 0) {
            util_pg_log(c, &r, 500);
        }
        ds_pg_reply_fini(&r);
    }
    return util_problem_send(c, c->fail_status, c->fail_slug, c->fail_detail, c->fail_headers,
                             c->fail_nheaders, NULL);
}

static int util_fail_audit(ds_api_call_t *c, const char *outcome, const char *reason)
{
    if (c->action == NULL) {
        (void)snprintf(c->action_buf, sizeof(c->action_buf), "api.%s", c->route->name);
        c->action = c->action_buf;
    }
    json_t *d = json_pack("{s:s, s:i}", "reason", reason, "status", (json_int_t)c->fail_status);
    char *details = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = ds_api_audit_stmt(r, c, outcome, details);
    free(details);
    if (rc == 0 && c->idem) {
        const char *p[] = {c->who_id, c->idem_key};
        rc = ds_pg_req_add(r,
                           "DELETE FROM dossier.idempotency_keys WHERE principal_id = $1::uuid"
                           " AND key = $2 AND state = 'in_progress'",
                           2, p);
    }
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    rc = ds_api_tx(c, &r, util_fail_done);
    return rc;
}

int ds_api_fail(ds_api_call_t *c, const char *outcome, const char *reason, uint32_t status,
                const char *slug, const char *detail)
{
    c->fail_status = status;
    c->fail_slug = slug;
    (void)snprintf(c->fail_detail, sizeof(c->fail_detail), "%s",
                   detail != NULL ? detail : "no such resource");
    if (c->route == NULL || !(c->route->flags & DS_API_MUTATES)) {
        return util_problem_send(c, status, slug, c->fail_detail, c->fail_headers, c->fail_nheaders,
                                 NULL);
    }
    int rc = util_fail_audit(c, outcome, reason);
    if (rc < 0) {
        /* The entry could not even be queued: answer anyway, and say so in the log. */
        ds_log_warn("api could not audit a failed request", DS_LOG_STR("error", ds_errname(rc)),
                    DS_LOG_STR("request_id", c->request_id), DS_LOG_END);
        return util_problem_send(c, status, slug, c->fail_detail, c->fail_headers, c->fail_nheaders,
                                 NULL);
    }
    return 0;
}

int ds_api_fail_pg(ds_api_call_t *c, const ds_pg_reply_t *r)
{
    util_pg_map_t m = util_pg_map(r);
    util_pg_log(c, r, m.status);
    if (m.retry) {
        c->fail_headers[0] = util_retry[0];
        c->fail_nheaders = 1;
    }
    const char *outcome = m.status >= 500 ? "error" : "failure";
    return ds_api_fail(c, outcome, m.slug, m.status, m.slug, m.detail);
}

int ds_api_idem_complete_stmt(ds_pg_req_t *r, const ds_api_call_t *c, const char *render_sql,
                              const char *location_sql, const char *param)
{
    if (!c->idem) {
        return 0;
    }
    char sql[1536];
    int n = snprintf(sql, sizeof(sql),
                     "UPDATE dossier.idempotency_keys SET state = 'completed',"
                     " response_status = 201, completed_at = now(),"
                     " response_headers = jsonb_build_object('Location', (%s)),"
                     " response_body = convert_to((%s)::text, 'UTF8')"
                     " WHERE principal_id = $2::uuid AND key = $3",
                     location_sql, render_sql);
    if (n < 0 || (size_t)n >= sizeof(sql)) {
        return -EMSGSIZE;
    }
    const char *p[] = {param, c->who_id, c->idem_key};
    return ds_pg_req_add(r, sql, 3, p);
}

/* --- reading ----------------------------------------------------------------------------- */

const ds_pg_value_t *ds_api_value(const ds_pg_reply_t *r, uint32_t stmt)
{
    if (r->code != 0 || stmt >= r->nstmts || r->stmts[stmt].nrows == 0 ||
        r->stmts[stmt].ncols == 0) {
        return NULL;
    }
    const ds_pg_value_t *v = ds_pg_rows_at(&r->stmts[stmt], 0, 0);
    return v != NULL && !v->null ? v : NULL;
}

static int util_hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Percent-decodes in[0..len) into out (cap bytes, NUL-terminated); '+' is a space. */
static int util_unescape(const char *in, size_t len, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        if (ch == '%') {
            if (i + 2 >= len) {
                return -EINVAL;
            }
            int hi = util_hexval(in[i + 1]);
            int lo = util_hexval(in[i + 2]);
            if (hi < 0 || lo < 0) {
                return -EINVAL;
            }
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (ch == '\0' || k + 1 >= cap) {
            return -EINVAL;
        }
        out[k++] = ch;
    }
    out[k] = '\0';
    return 0;
}

int ds_api_query(const ds_api_call_t *c, const char *name, char *out, size_t cap)
{
    const char *q = c->req.query.ptr;
    size_t len = c->req.query.len;
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && q[end] != '&') {
            end++;
        }
        const char *eq = memchr(q + i, '=', end - i);
        size_t klen = eq != NULL ? (size_t)(eq - (q + i)) : end - i;
        if (klen == nlen && memcmp(q + i, name, nlen) == 0) {
            const char *v = eq != NULL ? eq + 1 : q + end;
            return util_unescape(v, (size_t)(q + end - v), out, cap) == 0 ? 1 : -EINVAL;
        }
        i = end + 1;
    }
    return 0;
}

int ds_api_list_params(ds_api_call_t *c, char *limit, size_t limit_cap, char *cursor)
{
    char buf[16];
    int rc = ds_api_query(c, "limit", buf, sizeof(buf));
    long n = DS_API_LIST_DEFAULT;
    if (rc == 1) {
        char *end = NULL;
        n = strtol(buf, &end, 10);
        if (end == buf || *end != '\0' || n < 1 || n > DS_API_LIST_MAX) {
            (void)ds_api_problem(c, 400, "bad-request", "limit must be an integer from 1 to 200");
            return -EINVAL;
        }
    } else if (rc < 0) {
        (void)ds_api_problem(c, 400, "bad-request", "limit is malformed");
        return -EINVAL;
    }
    (void)snprintf(limit, limit_cap, "%ld", n);
    cursor[0] = '\0';
    rc = ds_api_query(c, "cursor", cursor, DS_API_UUID_LEN + 1);
    if (rc < 0 || (rc == 1 && !ds_token_uuid_valid(cursor, strlen(cursor)))) {
        (void)ds_api_problem(c, 400, "bad-request", "cursor is not one this server gave");
        return -EINVAL;
    }
    return 0;
}

int ds_api_if_match(ds_api_call_t *c, char *version, size_t cap)
{
    ds_http_header_t h;
    if (ds_http_header_get(c->req.headers, "if-match", &h) != 0) {
        return 0;
    }
    /* "N" (a strong ETag of ours): digits between quotes. */
    bool ok = h.value_len >= 3 && h.value_len < cap + 2 && h.value_len <= 11 &&
              /* 9 digits */ h.value[0] == '"' && h.value[h.value_len - 1] == '"';
    for (uint32_t i = 1; ok && i + 1 < h.value_len; i++) {
        ok = h.value[i] >= '0' && h.value[i] <= '9';
    }
    if (!ok) {
        (void)ds_api_problem(c, 412, "precondition-failed",
                             "If-Match must be an ETag this server gave");
        return -EINVAL;
    }
    memcpy(version, h.value + 1, h.value_len - 2);
    version[h.value_len - 2] = '\0';
    return 1;
}

static bool util_json_type(const ds_api_call_t *c)
{
    ds_http_header_t h;
    if (ds_http_header_get(c->req.headers, "content-type", &h) != 0) {
        return false;
    }
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;
    return h.value_len >= n && strncasecmp(h.value, want, n) == 0 &&
           (h.value_len == n || h.value[n] == ';' || h.value[n] == ' ');
}

int ds_api_body(ds_api_call_t *c, const ds_json_field_t *fields, size_t n)
{
    if (c->req.body.len > 0 && !util_json_type(c)) {
        (void)ds_api_problem(c, 415, "unsupported-media-type", "the body must be application/json");
        return -EINVAL;
    }
    ds_json_error_t err;
    ds_json_limits_t lim = {.max_bytes = DS_API_BODY_MAX, .max_depth = DS_JSON_DEFAULT_MAX_DEPTH};
    const char *body = c->req.body.len > 0 ? (const char *)c->req.body.ptr : "{}";
    size_t len = c->req.body.len > 0 ? c->req.body.len : 2;
    int rc = ds_json_decode(body, len, &lim, fields, n, &c->body, &err);
    if (rc == -EMSGSIZE) {
        (void)ds_api_problem(c, 413, "content-too-large", "the JSON body is too large");
        return -EINVAL;
    }
    if (rc < 0) {
        json_t *errors = json_array();
        char detail[160] = "the body is not valid JSON";
        for (size_t i = 0; i < err.count && i < DS_JSON_MAX_ERRORS; i++) {
            (void)json_array_append_new(errors,
                                        json_pack("{s:s, s:s}", "field", err.problems[i].field,
                                                  "reason", err.problems[i].reason));
            if (i == 0) {
                ds_json_problem_text(&err.problems[0], detail, sizeof(detail));
            }
        }
        (void)ds_api_problem_ex(c, 400, "validation-failed", detail, NULL, 0, errors);
        return -EINVAL;
    }
    return 0;
}

int ds_api_uuid_v7(char out[DS_API_UUID_LEN + 1])
{
    uint8_t b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        return -EIO;
    }
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    for (int i = 0; i < 6; i++) {
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    }
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0f));
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    (void)snprintf(out, DS_API_UUID_LEN + 1,
                   "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                   b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                   b[14], b[15]);
    return 0;
}

unsigned ds_api_roles_parse(const char *s, size_t len)
{
    unsigned roles = 0;
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"viewer", DS_ROLE_VIEWER}, {"editor", DS_ROLE_EDITOR}, {"admin", DS_ROLE_ADMIN}};
    size_t i = 0;
    while (i < len) {
        while (i < len && (s[i] == '{' || s[i] == '}' || s[i] == ',' || s[i] == '"')) {
            i++;
        }
        size_t j = i;
        while (j < len && s[j] != ',' && s[j] != '}' && s[j] != '"') {
            j++;
        }
        for (size_t k = 0; k < 3; k++) {
            if (j - i == strlen(names[k].name) && memcmp(s + i, names[k].name, j - i) == 0) {
                roles |= names[k].bit;
            }
        }
        i = j;
    }
    return roles;
}

void ds_api_roles_format(unsigned roles, char *out, size_t cap)
{
    (void)snprintf(out, cap, "{%s%s%s%s%s}", (roles & DS_ROLE_VIEWER) ? "viewer" : "",
                   (roles & DS_ROLE_VIEWER) && (roles & (DS_ROLE_EDITOR | DS_ROLE_ADMIN)) ? ","
                                                                                          : "",
                   (roles & DS_ROLE_EDITOR) ? "editor" : "",
                   (roles & DS_ROLE_EDITOR) && (roles & DS_ROLE_ADMIN) ? "," : "",
                   (roles & DS_ROLE_ADMIN) ? "admin" : "");
}

/* --- lists and objects -------------------------------------------------------------------- */

int ds_api_list_sql(char *out, size_t cap, const char *render, const char *table, const char *where)
{
    int n =
        snprintf(out, cap,
                 "SELECT json_build_object('items', COALESCE(json_agg(%s(s.r) ORDER BY (s.r).id),"
                 " '[]'::json), 'next_cursor', CASE WHEN count(*) = $2::integer THEN"
                 " (array_agg((s.r).id ORDER BY (s.r).id DESC))[1]::text END)"
                 " FROM (SELECT r FROM %s r WHERE ($1::uuid IS NULL OR r.id > $1::uuid)%s%s"
                 " ORDER BY r.id LIMIT $2::integer) s",
                 render, table, where != NULL ? " AND " : "", where != NULL ? where : "");
    return n < 0 || (size_t)n >= cap ? -EMSGSIZE : 0;
}

int ds_api_list(ds_api_call_t *c, const char *sql, const char *const *extra, size_t nextra)
{
    char limit[16];
    char cursor[DS_API_UUID_LEN + 1];
    if (ds_api_list_params(c, limit, sizeof(limit), cursor) < 0 || nextra > 6) {
        return nextra > 6 ? -EINVAL : 0;
    }
    const char *p[8] = {cursor[0] != '\0' ? cursor : NULL, limit};
    for (size_t i = 0; i < nextra; i++) {
        p[2 + i] = extra[i];
    }
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = ds_pg_req_add(r, sql, (uint32_t)(2 + nextra), p);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, ds_api_step_value);
}

int ds_api_object_reply(ds_api_call_t *c, const ds_pg_reply_t *r, uint32_t stmt, uint32_t status,
                        const char *location_prefix)
{
    if (r->code != 0) {
        return (c->route->flags & DS_API_MUTATES) ? ds_api_fail_pg(c, r) : ds_api_pg_problem(c, r);
    }
    if (stmt >= r->nstmts || r->stmts[stmt].nrows == 0) {
        return (c->route->flags & DS_API_MUTATES)
                   ? ds_api_fail(c, "failure", "not_found", 404, "not-found", NULL)
                   : ds_api_not_found(c);
    }
    const ds_pg_rows_t *rows = &r->stmts[stmt];
    const ds_pg_value_t *body = ds_pg_rows_at(rows, 0, 0);
    const ds_pg_value_t *version = rows->ncols > 1 ? ds_pg_rows_at(rows, 0, 1) : NULL;
    char etag[24] = "";
    char location[128] = "";
    ds_http_header_t h[2];
    size_t n = 0;
    if (version != NULL && !version->null && version->len < 16) {
        (void)snprintf(etag, sizeof(etag), "\"%.*s\"", (int)version->len, version->ptr);
        h[n++] = (ds_http_header_t){"ETag", 4, etag, (uint32_t)strlen(etag)};
    }
    if (location_prefix != NULL) {
        (void)snprintf(location, sizeof(location), "%s%s", location_prefix, c->object_id);
        h[n++] = (ds_http_header_t){"Location", 8, location, (uint32_t)strlen(location)};
    }
    if (body == NULL || body->null) {
        return -EPROTO;
    }
    return ds_api_reply(c, status, h, n, body->ptr, body->len);
}

/* --- common steps ------------------------------------------------------------------------ */

int ds_api_step_204(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    if (r.code != 0) {
        rc = ds_api_fail_pg(c, &r);
    } else if (r.nstmts == 0 || r.stmts[0].nrows == 0) {
        rc = ds_api_fail(c, "failure", "not_found", 404, "not-found", NULL);
    } else {
        rc = ds_api_reply(c, 204, NULL, 0, NULL, 0);
    }
    ds_pg_reply_fini(&r);
    return rc;
}

int ds_api_step_object(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    rc = ds_api_object_reply(c, &r, 0, 200, NULL);
    ds_pg_reply_fini(&r);
    return rc;
}

int ds_api_step_value(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    const ds_pg_value_t *v = ds_api_value(&r, 0);
    if (r.code != 0) {
        rc = ds_api_pg_problem(c, &r);
    } else if (v == NULL) {
        rc = ds_api_not_found(c); /* the object (or a list's parent) is not there for the caller */
    } else {
        rc = ds_api_reply(c, 200, NULL, 0, v->ptr, v->len);
    }
    ds_pg_reply_fini(&r);
    return rc;
}
