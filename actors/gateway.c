/* gateway: health and readiness over HTTP. See actors/gateway.h. */
#include "actors/gateway.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/api/directory.h"
#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/mem.h"
#include "transports/http/http_msgs.h"
#include "transports/http/server.h"
#include "transports/pg/pool.h"

enum {
    GATEWAY_PENDING_MAX = 256, /* readiness checks in flight; more get 503 at once */
    GATEWAY_READY_TIMEOUT_MS = 2000,
};

typedef struct gateway_pending {
    uint64_t corr; /* the pool ask */
    ds_msg_t *req; /* the HTTP request, kept until answered */
} gateway_pending_t;

typedef struct gateway {
    ds_gateway_cfg_t cfg;
    gateway_pending_t pending[GATEWAY_PENDING_MAX];
    size_t npending;
    ds_api_dir_t *dir; /* NULL without the API */
} gateway_t;

static const ds_http_header_t gateway_json[] = {
    {"Content-Type", 12, "application/json", 16},
    {"Cache-Control", 13, "no-store", 8},
};
static const ds_http_header_t gateway_problem[] = {
    {"Content-Type", 12, "application/problem+json", 24},
    {"Cache-Control", 13, "no-store", 8},
};

static int gateway_init(ds_ctx_t *ctx, void *arg)
{
    if (arg == NULL) {
        return -EINVAL;
    }
    gateway_t *g = ds_xcalloc(1, sizeof(*g));
    g->cfg = *(const ds_gateway_cfg_t *)arg;
    if (g->cfg.ready_timeout_ms == 0) {
        g->cfg.ready_timeout_ms = GATEWAY_READY_TIMEOUT_MS;
    }
    if (g->cfg.api != NULL) {
        g->dir = ds_api_dir_new(g->cfg.api, g->cfg.tenants);
    }
    ds_ctx_set_state(ctx, g);
    return 0;
}

/* An RFC 9457 problem document; slug names the type, detail is a fixed string of ours. */
static int gateway_problem_reply(ds_ctx_t *ctx, const ds_http_request_t *req, uint32_t status,
                                 const char *slug, const char *title, const char *detail)
{
    char body[768];
    int n = snprintf(body, sizeof(body),
                     "{\"type\":\"https://dossier.dev/problems/%s\",\"title\":\"%s\","
                     "\"status\":%u,\"detail\":\"%s\",\"request_id\":\"%.*s\"}",
                     slug, title, status, detail, (int)req->request_id.len, req->request_id.ptr);
    if (n < 0 || (size_t)n >= sizeof(body)) {
        return -EMSGSIZE;
    }
    return ds_http_respond(ctx, req, status, gateway_problem, 2, body, (size_t)n);
}

static bool gateway_is(const ds_str_t *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->len == n && memcmp(s->ptr, lit, n) == 0;
}

/* GET /readyz: ask the pool; the request is answered when the reply (or timeout) comes. */
static int gateway_ready_ask(ds_ctx_t *ctx, gateway_t *g, ds_msg_t **msgp,
                             const ds_http_request_t *req)
{
    if (g->npending == GATEWAY_PENDING_MAX) {
        return gateway_problem_reply(ctx, req, 503, "not-ready", "Not ready",
                                     "too many readiness checks in flight");
    }
    ds_pg_req_t *pr = ds_pg_req_new();
    ds_msg_t *ask = NULL;
    int rc = ds_pg_req_add(pr, "SELECT dossier.schema_version()", 0, NULL);
    if (rc == 0) {
        ds_pg_opts_t opts = {.timeout_ms = g->cfg.ready_timeout_ms};
        rc = ds_pg_req_system(pr, &opts, &ask);
    }
    ds_pg_req_free(&pr);
    uint64_t corr = 0;
    if (rc == 0) {
        rc = ds_ask(ctx, g->cfg.pool, &ask, (int64_t)g->cfg.ready_timeout_ms * 1000000, &corr);
    }
    ds_msg_free(&ask);
    if (rc < 0) {
        return gateway_problem_reply(ctx, req, 503, "not-ready", "Not ready",
                                     "the database pool is unavailable");
    }
    g->pending[g->npending++] = (gateway_pending_t){.corr = corr, .req = *msgp};
    *msgp = NULL; /* kept until the pool answers */
    return 0;
}

/* The pool's answer (or the ask's timeout) for a kept readiness request. */
static int gateway_ready_done(ds_ctx_t *ctx, gateway_t *g, const ds_msg_t *reply)
{
    size_t i = 0;
    while (i < g->npending && g->pending[i].corr != reply->corr) {
        i++;
    }
    if (i == g->npending) {
        return 0; /* not ours: a late reply after a restart */
    }
    ds_msg_t *kept = g->pending[i].req;
    g->pending[i] = g->pending[--g->npending];
    ds_http_request_t req;
    int rc = ds_http_request_decode(kept, &req);
    ds_pg_reply_t pr;
    int prc = rc == 0 ? ds_pg_reply_decode(reply, &pr) : rc;
    int64_t version = -1;
    if (prc == 0 && pr.code == 0 && pr.nstmts == 1) {
        const ds_pg_value_t *v = ds_pg_rows_at(&pr.stmts[0], 0, 0);
        if (v != NULL && !v->null && v->len < 20) {
            char buf[24];
            memcpy(buf, v->ptr, v->len);
            buf[v->len] = '\0';
            version = strtoll(buf, NULL, 10);
        }
    }
    if (rc == 0 && version == g->cfg.schema_version) {
        char body[96];
        int n = snprintf(body, sizeof(body), "{\"status\":\"ready\",\"schema_version\":%lld}",
                         (long long)version);
        rc = ds_http_respond(ctx, &req, 200, gateway_json, 2, body, (size_t)n);
    } else if (rc == 0) {
        rc = gateway_problem_reply(ctx, &req, 503, "not-ready", "Not ready",
                                   version < 0 ? "the database does not answer"
                                               : "the database schema is not current");
    }
    if (prc == 0) {
        ds_pg_reply_fini(&pr);
    }
    ds_msg_free(&kept);
    return rc == DS_ENOACTOR ? 0 : rc; /* the client went away meanwhile: nothing to do */
}

static int gateway_route(ds_ctx_t *ctx, gateway_t *g, ds_msg_t **msgp, const ds_http_request_t *req)
{
    bool health = gateway_is(&req->path, "/healthz");
    bool ready = gateway_is(&req->path, "/readyz");
    if (g->dir != NULL && req->path.len >= 4 && memcmp(req->path.ptr, "/v1/", 4) == 0) {
        return ds_api_dir_route(g->dir, ctx, msgp, req);
    }
    if (!health && !ready) {
        return gateway_problem_reply(ctx, req, 404, "not-found", "Not found", "no such resource");
    }
    if (!gateway_is(&req->method, "GET") && !gateway_is(&req->method, "HEAD")) {
        return gateway_problem_reply(ctx, req, 405, "method-not-allowed", "Method not allowed",
                                     "this resource takes GET");
    }
    if (health) {
        static const char ok[] = "{\"status\":\"ok\"}";
        return ds_http_respond(ctx, req, 200, gateway_json, 2, ok, sizeof(ok) - 1);
    }
    return gateway_ready_ask(ctx, g, msgp, req);
}

static int gateway_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    gateway_t *g = ds_ctx_state(ctx);
    if ((*msgp)->type != DS_MT_HTTP_REQUEST) {
        if (g->dir != NULL && ds_api_dir_reply(g->dir, ctx, *msgp)) {
            return 0;
        }
        return gateway_ready_done(ctx, g, *msgp);
    }
    ds_http_request_t req;
    if (ds_http_request_decode(*msgp, &req) < 0) {
        ds_log_warn("gateway dropped a malformed request message", DS_LOG_END);
        return 0;
    }
    int rc = gateway_route(ctx, g, msgp, &req);
    if (rc < 0 && rc != DS_ENOACTOR) {
        ds_log_warn("gateway could not answer", DS_LOG_STR("error", ds_errname(rc)), DS_LOG_END);
    }
    return 0;
}

static void gateway_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    gateway_t *g = ds_ctx_state(ctx);
    for (size_t i = 0; g != NULL && i < g->npending; i++) {
        ds_msg_free(&g->pending[i].req);
    }
    if (g != NULL) {
        ds_api_dir_free(&g->dir);
    }
    free(g);
    ds_ctx_set_state(ctx, NULL);
}

const ds_behaviour_t ds_gateway_behaviour = {
    .name = "gateway",
    .init = gateway_init,
    .receive = gateway_receive,
    .terminate = gateway_terminate,
};
