/* directory: tenants, their sessions and their request budgets, for the gateway. See
 * actors/api/directory.h. */
#include "actors/api/directory.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actors/api/api_msgs.h"
#include "actors/api/session_int.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/mem.h"

enum {
    DIR_BUCKETS = 4096, /* hash buckets by id and by slug (chained) */
    DIR_SLUG_MAX = 63,
    DIR_LOOKUPS_MAX = 256,
};

typedef struct dir_tenant {
    char id[DS_API_UUID_LEN + 1];
    char slug[DIR_SLUG_MAX + 1];
    char status[16];
    ds_plan_t plan;
    bool known; /* the control plane answered at least once */
    int64_t checked_ns;
    bool refreshing;
    bool limits_sent; /* the session has the plan's current limits */
    uint32_t group;   /* 0: none yet */
    ds_actor_id_t session;
    double tokens; /* rate bucket */
    int64_t bucket_ns;
    ds_msg_t *waiting[DS_API_DIR_WAIT_MAX];
    size_t nwaiting;
    struct dir_tenant *next_id;
    struct dir_tenant *next_slug;
    struct dir_tenant *alias; /* the entry of the same tenant found first by its other key */
} dir_tenant_t;

/* Unauthenticated requests (login, refresh) are paid per client address, not from the
 * tenant's budget, so a stranger cannot spend a tenant's rate, in a fixed table of buckets by
 * address hash (a collision shares a
 * bucket: stricter, never looser). The rate is auth.anon_rate_per_ip per second, bursts of
 * DIR_ANON_BURST_FACTOR times that. */
enum {
    DIR_ANON_SLOTS = 4096,
    DIR_ANON_BURST_FACTOR = 4,
};

typedef struct dir_anon {
    char ip[DS_API_IP_MAX];
    double tokens;
    int64_t at_ns;
} dir_anon_t;

typedef struct dir_lookup {
    uint64_t corr;
    dir_tenant_t *t;
} dir_lookup_t;

struct ds_api_dir {
    const ds_api_env_t *env;
    dir_tenant_t *by_id[DIR_BUCKETS];
    dir_tenant_t *by_slug[DIR_BUCKETS];
    dir_tenant_t **all;
    size_t nall;
    size_t capall;
    dir_lookup_t lookups[DIR_LOOKUPS_MAX];
    size_t nlookups;
    dir_anon_t *anon; /* DIR_ANON_SLOTS buckets of unauthenticated requests */
};

static size_t dir_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    }
    return (size_t)(h % DIR_BUCKETS);
}

static dir_tenant_t *dir_find_id(const ds_api_dir_t *d, const char *id)
{
    for (dir_tenant_t *t = d->by_id[dir_hash(id)]; t != NULL; t = t->next_id) {
        if (strcmp(t->id, id) == 0) {
            return t;
        }
    }
    return NULL;
}

static dir_tenant_t *dir_find_slug(const ds_api_dir_t *d, const char *slug)
{
    for (dir_tenant_t *t = d->by_slug[dir_hash(slug)]; t != NULL; t = t->next_slug) {
        if (strcmp(t->slug, slug) == 0) {
            return t;
        }
    }
    return NULL;
}

static dir_tenant_t *dir_add(ds_api_dir_t *d)
{
    if (d->nall == d->capall) {
        d->capall = d->capall == 0 ? 64 : d->capall * 2;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, on purpose */
        d->all = ds_xrealloc(d->all, d->capall * sizeof(dir_tenant_t *));
    }
    dir_tenant_t *t = ds_xcalloc(1, sizeof(*t));
    t->plan = *ds_config_plan(d->env->cfg, DS_PLAN_STANDARD);
    d->all[d->nall++] = t;
    return t;
}

static void dir_index_id(ds_api_dir_t *d, dir_tenant_t *t)
{
    size_t h = dir_hash(t->id);
    t->next_id = d->by_id[h];
    d->by_id[h] = t;
}

static void dir_index_slug(ds_api_dir_t *d, dir_tenant_t *t)
{
    size_t h = dir_hash(t->slug);
    t->next_slug = d->by_slug[h];
    d->by_slug[h] = t;
}

ds_api_dir_t *ds_api_dir_new(const ds_api_env_t *env, const ds_tenants_t *preload)
{
    ds_api_dir_t *d = ds_xcalloc(1, sizeof(*d));
    d->env = env;
    int64_t now = ds_clock_now();
    for (size_t i = 0; preload != NULL && i < preload->count; i++) {
        const ds_tenant_entry_t *e = &preload->items[i];
        dir_tenant_t *t = dir_add(d);
        (void)snprintf(t->id, sizeof(t->id), "%s", e->id);
        (void)snprintf(t->slug, sizeof(t->slug), "%s", e->slug);
        (void)snprintf(t->status, sizeof(t->status), "%s", e->status);
        t->plan = e->plan;
        t->group = e->group;
        t->known = true;
        t->checked_ns = now;
        dir_index_id(d, t);
        dir_index_slug(d, t);
    }
    return d;
}

void ds_api_dir_free(ds_api_dir_t **dp)
{
    ds_api_dir_t *d = *dp;
    if (d == NULL) {
        return;
    }
    for (size_t i = 0; i < d->nall; i++) {
        for (size_t k = 0; k < d->all[i]->nwaiting; k++) {
            ds_msg_free(&d->all[i]->waiting[k]);
        }
        free(d->all[i]);
    }
    free(d->all);
    free(d->anon);
    free(d);
    *dp = NULL;
}

static int dir_problem(ds_ctx_t *ctx, const ds_http_request_t *req, uint32_t status,
                       const char *slug, const char *detail)
{
    int rc = ds_api_session_problem_raw(ctx, req, status, slug, detail, NULL, 0);
    return rc == DS_ENOACTOR ? 0 : rc;
}

/* --- rate limit ---------------------------------------------------------------------------- */

/* Takes a token from t's bucket: true, or false and the seconds until one is back. The bucket
 * holds 10 seconds of the plan's rate (at least 10 requests) and refills continuously. */
static bool dir_take(dir_tenant_t *t, int64_t now, uint64_t *retry_s)
{
    uint64_t rpm = t->plan.api_requests_per_minute;
    if (rpm == DS_PLAN_UNLIMITED) {
        return true;
    }
    double rate = (double)rpm / 60.0; /* per second */
    double cap = fmax(10.0, rate * 10.0);
    if (t->bucket_ns == 0) {
        t->tokens = cap;
    } else {
        t->tokens = fmin(cap, t->tokens + rate * (double)(now - t->bucket_ns) / 1e9);
    }
    t->bucket_ns = now;
    if (t->tokens >= 1.0) {
        t->tokens -= 1.0;
        return true;
    }
    *retry_s = (uint64_t)ceil((1.0 - t->tokens) / rate);
    return false;
}

static int dir_rate_limited(ds_ctx_t *ctx, const ds_http_request_t *req, const dir_tenant_t *t,
                            uint64_t retry_s)
{
    char retry[24];
    char limit[24];
    (void)snprintf(retry, sizeof(retry), "%llu", (unsigned long long)(retry_s > 0 ? retry_s : 1));
    (void)snprintf(limit, sizeof(limit), "%llu",
                   (unsigned long long)t->plan.api_requests_per_minute);
    ds_http_header_t h[] = {
        {"Retry-After", 11, retry, (uint32_t)strlen(retry)},
        {"RateLimit-Limit", 15, limit, (uint32_t)strlen(limit)},
        {"RateLimit-Remaining", 19, "0", 1},
        {"RateLimit-Reset", 15, retry, (uint32_t)strlen(retry)},
    };
    int rc = ds_api_session_problem_raw(ctx, req, 429, "rate-limited",
                                        "the tenant's request rate limit is exhausted", h, 4);
    return rc == DS_ENOACTOR ? 0 : rc;
}

static bool dir_anon_take(dir_anon_t *slots, double rate, const ds_http_request_t *req, int64_t now,
                          uint64_t *retry_s)
{
    double burst = rate * DIR_ANON_BURST_FACTOR;
    char ip[DS_API_IP_MAX];
    (void)snprintf(ip, sizeof(ip), "%.*s", (int)req->peer.len, req->peer.ptr);
    dir_anon_t *b = &slots[dir_hash(ip) % DIR_ANON_SLOTS];
    if (strcmp(b->ip, ip) != 0 || b->at_ns == 0) {
        (void)snprintf(b->ip, sizeof(b->ip), "%s", ip);
        b->tokens = burst;
    } else {
        b->tokens = fmin(burst, b->tokens + rate * (double)(now - b->at_ns) / 1e9);
    }
    b->at_ns = now;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return true;
    }
    *retry_s = (uint64_t)ceil((1.0 - b->tokens) / rate);
    return false;
}

/* Whether the request is one of the unauthenticated routes (login, refresh). */
static bool dir_anonymous(const ds_http_request_t *req)
{
    ds_api_match_t m = {0};
    if (ds_api_route_match(req->method.ptr, req->method.len, req->path.ptr, req->path.len, &m, NULL,
                           0) != 0) {
        return false;
    }
    return (ds_api_routes[m.route].flags & (DS_API_LOGIN | DS_API_REFRESH)) != 0;
}

/* --- sessions ------------------------------------------------------------------------------ */

static int dir_session(ds_api_dir_t *d, ds_ctx_t *ctx, dir_tenant_t *t)
{
    if (t->group == 0) {
        ds_group_cfg_t g = ds_tenant_group_cfg(&t->plan);
        int rc = ds_group_new(ds_ctx_rt(ctx), &g, &t->group);
        if (rc < 0) {
            return rc;
        }
    }
    ds_api_session_cfg_t cfg = {.env = d->env, .max_users = t->plan.max_users};
    (void)snprintf(cfg.tenant, sizeof(cfg.tenant), "%s", t->id);
    (void)snprintf(cfg.slug, sizeof(cfg.slug), "%s", t->slug);
    ds_spawn_opts_t opts = {.group = t->group};
    t->limits_sent = true;
    return ds_spawn(ds_ctx_rt(ctx), &ds_api_session_behaviour, &cfg, &opts, &t->session);
}

/* Sends the request to t's session (spawning it once, and again if it died); charge: take
 * it from the tenant's request budget (not for logins and refreshes, which the caller has
 * charged to the client's address). */
static int dir_forward(ds_api_dir_t *d, ds_ctx_t *ctx, dir_tenant_t *t, ds_msg_t **msgp,
                       const ds_http_request_t *req, bool charge)
{
    if (strcmp(t->status, "active") != 0) {
        return dir_problem(ctx, req, 403, "tenant-suspended",
                           "this tenant is suspended: contact your operator");
    }
    uint64_t retry_s = 0;
    if (charge && !dir_take(t, ds_clock_now(), &retry_s)) {
        return dir_rate_limited(ctx, req, t, retry_s);
    }
    if (!t->limits_sent && !ds_id_is_nil(t->session)) {
        ds_msg_t *lm = NULL;
        if (ds_api_limits_new(&(ds_api_limits_t){.max_users = t->plan.max_users}, &lm) == 0 &&
            ds_send(ctx, t->session, &lm) == 0) {
            t->limits_sent = true;
        }
        ds_msg_free(&lm);
    }
    int rc = DS_ENOACTOR;
    for (int attempt = 0; attempt < 2 && rc == DS_ENOACTOR; attempt++) {
        if (ds_id_is_nil(t->session) || attempt > 0) {
            rc = dir_session(d, ctx, t);
            if (rc < 0) {
                break;
            }
        }
        rc = ds_send(ctx, t->session, msgp);
    }
    if (rc == 0) {
        return 0;
    }
    static const ds_http_header_t retry[] = {{"Retry-After", 11, "1", 1}};
    rc =
        ds_api_session_problem_raw(ctx, req, 503, "service-unavailable",
                                   "this tenant has too much work queued: retry shortly", retry, 1);
    return rc == DS_ENOACTOR ? 0 : rc;
}

/* --- lookups ------------------------------------------------------------------------------- */

static int dir_lookup_start(ds_api_dir_t *d, ds_ctx_t *ctx, dir_tenant_t *t)
{
    if (t->refreshing) {
        return 0;
    }
    if (d->nlookups == DIR_LOOKUPS_MAX) {
        return DS_EFULL;
    }
    bool by_id = t->id[0] != '\0';
    const char *p[] = {by_id ? t->id : t->slug};
    ds_pg_req_t *r = ds_pg_req_new();
    int rc =
        ds_pg_req_add(r,
                      by_id ? "SELECT id, slug, plan, status FROM dossier.tenant_by_id($1::uuid)"
                            : "SELECT id, slug, plan, status FROM dossier.tenant_by_slug($1)",
                      1, p);
    if (rc == 0) {
        rc = ds_pg_req_add(r,
                           by_id ? "SELECT key, value FROM dossier.tenant_overrides_by_id($1::uuid)"
                                 : "SELECT o.key, o.value FROM dossier.tenant_by_slug($1) t,"
                                   " dossier.tenant_overrides_by_id(t.id) o",
                           1, p);
    }
    ds_msg_t *ask = NULL;
    if (rc == 0) {
        ds_pg_opts_t opts = {.timeout_ms = DS_API_DIR_LOOKUP_TIMEOUT_MS};
        rc = ds_pg_req_system(r, &opts, &ask);
    }
    ds_pg_req_free(&r);
    uint64_t corr = 0;
    if (rc == 0) {
        rc =
            ds_ask(ctx, d->env->pool, &ask, (int64_t)DS_API_DIR_LOOKUP_TIMEOUT_MS * 1000000, &corr);
    }
    ds_msg_free(&ask);
    if (rc < 0) {
        return rc;
    }
    d->lookups[d->nlookups++] = (dir_lookup_t){.corr = corr, .t = t};
    t->refreshing = true;
    return 0;
}

/* A plan change reaches what the node enforces outside the session: the tenant's runtime group
 * (weight, mailbox limit, bytes in flight) and its pool limits (connections, statement
 * timeout). Best effort: a refused update is tried again at the next change. */
static void dir_plan_changed(const ds_api_dir_t *d, ds_ctx_t *ctx, const dir_tenant_t *t,
                             const ds_plan_t *old)
{
    const ds_plan_t *p = &t->plan;
    if (t->group != 0 &&
        (p->scheduler_weight != old->scheduler_weight || p->mailbox_limit != old->mailbox_limit ||
         p->bytes_in_flight != old->bytes_in_flight)) {
        ds_group_cfg_t g = ds_tenant_group_cfg(p);
        (void)ds_group_update(ds_ctx_rt(ctx), t->group, &g);
    }
    if (p->pool_connections != old->pool_connections ||
        p->statement_timeout_ms != old->statement_timeout_ms ||
        p->scheduler_weight != old->scheduler_weight) {
        ds_pg_tenant_t lim = {
            .tenant = {.ptr = t->id, .len = (uint32_t)strlen(t->id)},
            .weight = (uint32_t)p->scheduler_weight,
            .max_conns = (uint32_t)p->pool_connections,
            .timeout_ms = (uint32_t)p->statement_timeout_ms,
        };
        ds_msg_t *m = NULL;
        if (ds_pg_tenant_new(&lim, &m) == 0) {
            (void)ds_send(ctx, d->env->pool, &m);
        }
        ds_msg_free(&m);
    }
}

/* Applies a lookup's answer to t: 1 found, 0 no such tenant, <0 failed. */
static int dir_apply(ds_api_dir_t *d, ds_ctx_t *ctx, dir_tenant_t *t, const ds_pg_reply_t *r)
{
    if (r->code != 0 || r->nstmts != 2) {
        return r->code != 0 ? r->code : -EPROTO;
    }
    const ds_pg_rows_t *row = &r->stmts[0];
    if (row->nrows != 1 || row->ncols != 4) {
        return 0;
    }
    const ds_pg_value_t *id = ds_pg_rows_at(row, 0, 0);
    const ds_pg_value_t *slug = ds_pg_rows_at(row, 0, 1);
    const ds_pg_value_t *plan = ds_pg_rows_at(row, 0, 2);
    const ds_pg_value_t *status = ds_pg_rows_at(row, 0, 3);
    bool new_id = t->id[0] == '\0';
    bool new_slug = t->slug[0] == '\0';
    (void)snprintf(t->id, sizeof(t->id), "%.*s", (int)id->len, id->ptr);
    (void)snprintf(t->slug, sizeof(t->slug), "%.*s", (int)slug->len, slug->ptr);
    (void)snprintf(t->status, sizeof(t->status), "%.*s", (int)status->len, status->ptr);
    char kind[32];
    (void)snprintf(kind, sizeof(kind), "%.*s", (int)plan->len, plan->ptr);
    ds_plan_kind_t k = DS_PLAN_STANDARD;
    (void)ds_plan_parse_kind(kind, &k);
    ds_plan_t old = t->plan;
    t->plan = *ds_config_plan(d->env->cfg, k);
    const ds_pg_rows_t *ov = &r->stmts[1];
    for (uint32_t i = 0; i < ov->nrows; i++) {
        char key[64];
        char value[32];
        const ds_pg_value_t *kv = ds_pg_rows_at(ov, i, 0);
        const ds_pg_value_t *vv = ds_pg_rows_at(ov, i, 1);
        (void)snprintf(key, sizeof(key), "%.*s", (int)kv->len, kv->ptr);
        (void)snprintf(value, sizeof(value), "%.*s", vv->null ? 9 : (int)vv->len,
                       vv->null ? "unlimited" : vv->ptr);
        ds_config_error_t err;
        (void)ds_plan_override(&t->plan, key, value, &err);
    }
    if (t->plan.max_users != old.max_users) {
        t->limits_sent = false;
    }
    if (!t->known) {
        memset(&old, 0, sizeof(old)); /* first sight: register everything */
    }
    dir_plan_changed(d, ctx, t, &old);
    dir_tenant_t *other = new_id ? dir_find_id(d, t->id) : NULL;
    if (other != NULL && other != t) {
        /* Known by id already (from a token): requests found by slug go there, so the tenant
         * has one session, one group and one budget. */
        t->alias = other;
        other->plan = t->plan;
        memcpy(other->status, t->status, sizeof(other->status));
        other->known = true;
        other->checked_ns = ds_clock_now();
    } else if (new_id) {
        dir_index_id(d, t);
    }
    if (new_slug && dir_find_slug(d, t->slug) == NULL) {
        dir_index_slug(d, t);
    }
    t->known = true;
    return 1;
}

/* The waiting requests of t, after its lookup: forwarded, or answered. */
static void dir_release(ds_api_dir_t *d, ds_ctx_t *ctx, dir_tenant_t *t, int found)
{
    size_t n = t->nwaiting;
    t->nwaiting = 0;
    for (size_t i = 0; i < n; i++) {
        ds_msg_t *m = t->waiting[i];
        t->waiting[i] = NULL;
        ds_http_request_t req;
        if (ds_http_request_decode(m, &req) < 0) {
            ds_msg_free(&m);
            continue;
        }
        int rc = 0;
        if (found > 0) {
            rc = dir_forward(d, ctx, t->alias != NULL ? t->alias : t, &m, &req,
                             !dir_anonymous(&req));
        } else if (found == 0) {
            rc = dir_problem(ctx, &req, 404, "not-found", "no such tenant");
        } else {
            static const ds_http_header_t retry[] = {{"Retry-After", 11, "1", 1}};
            rc = ds_api_session_problem_raw(ctx, &req, 503, "service-unavailable",
                                            "the tenant directory is unavailable", retry, 1);
        }
        (void)rc;
        ds_msg_free(&m);
    }
}

/* Forgets t (a tenant that does not exist): unlinked from both chains and freed. */
static void dir_remove(ds_api_dir_t *d, dir_tenant_t *t)
{
    dir_tenant_t **pp = t->id[0] != '\0' ? &d->by_id[dir_hash(t->id)] : NULL;
    while (pp != NULL && *pp != NULL && *pp != t) {
        pp = &(*pp)->next_id;
    }
    if (pp != NULL && *pp == t) {
        *pp = t->next_id;
    }
    pp = t->slug[0] != '\0' ? &d->by_slug[dir_hash(t->slug)] : NULL;
    while (pp != NULL && *pp != NULL && *pp != t) {
        pp = &(*pp)->next_slug;
    }
    if (pp != NULL && *pp == t) {
        *pp = t->next_slug;
    }
    for (size_t i = 0; i < d->nall; i++) {
        if (d->all[i] == t) {
            d->all[i] = d->all[--d->nall];
            break;
        }
    }
    free(t);
}

bool ds_api_dir_reply(ds_api_dir_t *d, ds_ctx_t *ctx, const ds_msg_t *reply)
{
    size_t i = 0;
    while (i < d->nlookups && d->lookups[i].corr != reply->corr) {
        i++;
    }
    if (i == d->nlookups) {
        return false;
    }
    dir_tenant_t *t = d->lookups[i].t;
    d->lookups[i] = d->lookups[--d->nlookups];
    t->refreshing = false;
    ds_pg_reply_t r;
    int found = ds_pg_reply_decode(reply, &r);
    if (found == 0) {
        found = dir_apply(d, ctx, t, &r);
        ds_pg_reply_fini(&r);
    }
    if (found >= 0 || !t->known) {
        t->checked_ns = ds_clock_now();
    }
    if (found == 0 && t->known) {
        (void)snprintf(t->status, sizeof(t->status), "deleted");
    }
    if (found < 0) {
        ds_log_warn("tenant lookup failed", DS_LOG_STR("tenant", t->id[0] ? t->id : t->slug),
                    DS_LOG_STR("error", ds_errname(found)), DS_LOG_END);
    }
    dir_release(d, ctx, t, t->known ? 1 : found); /* known: its status decides */
    if (!t->known && !t->refreshing) {
        dir_remove(d, t); /* no such tenant (or the lookup failed): nothing to keep */
    }
    return true;
}

/* --- routing ------------------------------------------------------------------------------- */

/* The tenant's slug from Host: its first label, [a-z0-9-]{1,63}, followed by a dot. */
static int dir_host_slug(const ds_http_request_t *req, char slug[DIR_SLUG_MAX + 1])
{
    ds_http_header_t h;
    if (ds_http_header_get(req->headers, "host", &h) != 0) {
        return -ENOENT;
    }
    size_t i = 0;
    while (i < h.value_len && i < DIR_SLUG_MAX && h.value[i] != '.') {
        char ch = h.value[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              (ch >= 'A' && ch <= 'Z'))) {
            return -EINVAL;
        }
        slug[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
        i++;
    }
    if (i == 0 || i >= h.value_len || h.value[i] != '.') {
        return -EINVAL;
    }
    slug[i] = '\0';
    return 0;
}

/* The tenant named by the request's credential: 0 and its id, or -EBADMSG. */
static int dir_credential_tenant(const ds_api_dir_t *d, const ds_http_request_t *req,
                                 unsigned flags, char id[DS_API_UUID_LEN + 1])
{
    if (flags & DS_API_REFRESH) {
        static const ds_json_field_t f[] = {
            {.name = "refresh_token",
             .type = DS_JSON_STRING,
             .required = true,
             .secret = true,
             .min_len = 1,
             .max_len = 256},
        };
        ds_json_body_t *b = NULL;
        const char *tok = NULL;
        size_t len = 0;
        int rc = ds_json_decode((const char *)req->body.ptr, req->body.len, NULL, f, 1, &b, NULL);
        if (rc == 0 && ds_json_get_string(b, "refresh_token", &tok, &len)) {
            rc = ds_token_opaque_parse(DS_TOKEN_PREFIX_REFRESH, tok, len, id);
        }
        ds_json_body_free(&b);
        return rc == 0 ? 0 : -EBADMSG;
    }
    ds_http_header_t h;
    if (ds_http_header_get(req->headers, "authorization", &h) != 0 || h.value_len < 8 ||
        strncasecmp(h.value, "Bearer ", 7) != 0) {
        return -EBADMSG;
    }
    const char *tok = h.value + 7;
    size_t len = h.value_len - 7;
    ds_token_kind_t kind = ds_token_classify(tok, len);
    if (kind == DS_TOKEN_API_KEY) {
        return ds_token_opaque_parse(DS_TOKEN_PREFIX_API_KEY, tok, len, id) == 0 ? 0 : -EBADMSG;
    }
    ds_token_claims_t claims;
    if (kind != DS_TOKEN_ACCESS ||
        ds_token_verify(d->env->ring, tok, len, (int64_t)time(NULL), &claims) != 0) {
        return -EBADMSG;
    }
    memcpy(id, claims.tid, DS_API_UUID_LEN + 1);
    return 0;
}

static dir_tenant_t *dir_entry(ds_api_dir_t *d, const char *id, const char *slug)
{
    dir_tenant_t *t = id != NULL ? dir_find_id(d, id) : dir_find_slug(d, slug);
    if (t == NULL) {
        t = dir_add(d);
        if (id != NULL) {
            (void)snprintf(t->id, sizeof(t->id), "%s", id);
            dir_index_id(d, t);
        } else {
            (void)snprintf(t->slug, sizeof(t->slug), "%s", slug);
            dir_index_slug(d, t);
        }
    }
    return t;
}

int ds_api_dir_route(ds_api_dir_t *d, ds_ctx_t *ctx, ds_msg_t **msgp, const ds_http_request_t *req)
{
    ds_api_match_t m = {0};
    int mrc = ds_api_route_match(req->method.ptr, req->method.len, req->path.ptr, req->path.len, &m,
                                 NULL, 0);
    if (mrc == -ENOENT) {
        return dir_problem(ctx, req, 404, "not-found", "no such resource");
    }
    /* A path known under another method: the session answers 405 once the caller is known. */
    unsigned flags = mrc == 0 ? ds_api_routes[m.route].flags : DS_API_BEARER;
    bool charge = (flags & (DS_API_LOGIN | DS_API_REFRESH)) == 0;
    if (flags & (DS_API_LOGIN | DS_API_REFRESH)) {
        uint64_t retry_s = 0;
        if (d->anon == NULL) {
            d->anon = ds_xcalloc(DIR_ANON_SLOTS, sizeof(*d->anon));
        }
        if (!dir_anon_take(d->anon, (double)d->env->cfg->auth.anon_rate_per_ip, req, ds_clock_now(),
                           &retry_s)) {
            char retry[24];
            (void)snprintf(retry, sizeof(retry), "%llu",
                           (unsigned long long)(retry_s ? retry_s : 1));
            ds_http_header_t h = {"Retry-After", 11, retry, (uint32_t)strlen(retry)};
            int rc = ds_api_session_problem_raw(ctx, req, 429, "rate-limited",
                                                "too many unauthenticated requests from this"
                                                " address",
                                                &h, 1);
            return rc == DS_ENOACTOR ? 0 : rc;
        }
    }
    char id[DS_API_UUID_LEN + 1] = "";
    char slug[DIR_SLUG_MAX + 1] = "";
    dir_tenant_t *t = NULL;
    if (flags & DS_API_LOGIN) {
        if (dir_host_slug(req, slug) != 0) {
            return dir_problem(ctx, req, 400, "bad-request",
                               "log in at your tenant's host name, such as acme.localhost");
        }
        t = dir_entry(d, NULL, slug);
    } else if (dir_credential_tenant(d, req, flags, id) == 0) {
        t = dir_entry(d, id, NULL);
    } else {
        static const ds_http_header_t ch[] = {
            {"WWW-Authenticate", 16, "Bearer error=\"invalid_token\"", 28}};
        int rc = ds_api_session_problem_raw(ctx, req, 401, "unauthorized",
                                            "a valid access token, API key or refresh token is"
                                            " needed",
                                            ch, 1);
        return rc == DS_ENOACTOR ? 0 : rc;
    }
    while (t->alias != NULL) {
        t = t->alias;
    }
    int64_t now = ds_clock_now();
    bool stale = now - t->checked_ns > (int64_t)DS_API_DIR_TTL_MS * 1000000;
    if (t->known && !stale) {
        return dir_forward(d, ctx, t, msgp, req, charge);
    }
    int rc = dir_lookup_start(d, ctx, t);
    if (t->known && rc < 0) {
        return dir_forward(d, ctx, t, msgp, req,
                           charge); /* cannot check now: serve what is known */
    }
    if (rc < 0 || t->nwaiting == DS_API_DIR_WAIT_MAX) {
        static const ds_http_header_t retry[] = {{"Retry-After", 11, "1", 1}};
        rc = ds_api_session_problem_raw(ctx, req, 503, "service-unavailable",
                                        "the tenant directory is busy: retry shortly", retry, 1);
        return rc == DS_ENOACTOR ? 0 : rc;
    }
    t->waiting[t->nwaiting++] = *msgp;
    *msgp = NULL;
    return 0;
}
