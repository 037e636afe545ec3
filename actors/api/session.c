/* session: the per-tenant actor that runs the HTTP API's routes. See actors/api/api.h. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "actors/api/api.h"
#include "actors/api/api_msgs.h"
#include "actors/api/session_int.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/mem.h"

typedef int (*session_handler_t)(ds_api_call_t *c);

static const session_handler_t session_handlers[DS_API_ROUTE_COUNT] = {
#define DS_ROUTE(m, p, name, f, k, b) [DS_API_ROUTE_##name] = api_h_##name,
#include "actors/api/routes.def"
#undef DS_ROUTE
};

static void session_work_drop(ds_api_call_t *c, bool orphan);

static int session_init(ds_ctx_t *ctx, void *arg)
{
    const ds_api_session_cfg_t *cfg = arg;
    if (cfg == NULL || cfg->env == NULL) {
        return -EINVAL;
    }
    session_t *s = ds_xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    ds_ctx_set_state(ctx, s);
    return 0;
}

bool ds_api_session_account_take(ds_api_call_t *c, const char *account)
{
    session_t *s = c->owner;
    for (size_t i = 0; i < s->naccounts; i++) {
        if (strcmp(s->accounts[i], account) == 0) {
            return false;
        }
    }
    s->accounts[s->naccounts++] = account; /* at most one per call: naccounts <= ncalls */
    c->account_slot = account;
    return true;
}

static void session_account_release(session_t *s, ds_api_call_t *c)
{
    for (size_t i = 0; c->account_slot != NULL && i < s->naccounts; i++) {
        if (s->accounts[i] == c->account_slot) {
            s->accounts[i] = s->accounts[--s->naccounts];
            break;
        }
    }
    c->account_slot = NULL;
}

static void session_call_free(session_t *s, size_t i)
{
    ds_api_call_t *c = s->calls[i];
    s->calls[i] = s->calls[--s->ncalls];
    session_account_release(s, c);
    session_work_drop(c, c->working);
    ds_json_body_free(&c->body);
    if (c->data_free != NULL) {
        c->data_free(c->data);
    }
    ds_msg_free(&c->msg);
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

/* Whether a failure of ours is the system being busy (503, retry) rather than a bug (500). */
static bool session_transient(int rc)
{
    return rc == DS_EFULL || rc == DS_ECAP || rc == DS_ENOACTOR || rc == DS_ESHUTDOWN ||
           rc == DS_ETIMEDOUT || rc == -ECANCELED || rc == -EAGAIN || rc == -ENOMEM;
}

/* After a step: an answered call with nothing in flight is done. A step that failed without
 * answering is answered here: 503 when the system is busy, else 500 (logged). */
static void session_settle(session_t *s, ds_api_call_t *c, int rc)
{
    if (rc < 0 && !c->answered) {
        if (session_transient(rc)) {
            static const ds_http_header_t retry[] = {{"Retry-After", 11, "1", 1}};
            (void)ds_api_problem_ex(c, 503, "service-unavailable", "the server is busy: retry",
                                    retry, 1, NULL);
        } else {
            ds_log_error("api handler failed",
                         DS_LOG_STR("route", c->route != NULL ? c->route->name : "-"),
                         DS_LOG_STR("error", ds_errname(rc)),
                         DS_LOG_STR("request_id", c->request_id), DS_LOG_END);
            (void)ds_api_problem(c, 500, "internal-error",
                                 "the server failed to handle the request");
        }
    }
    if (!c->answered || c->next != NULL || c->working) {
        return;
    }
    for (size_t i = 0; i < s->ncalls; i++) {
        if (s->calls[i] == c) {
            session_call_free(s, i);
            return;
        }
    }
}

static int session_run(session_t *s, ds_ctx_t *ctx, ds_api_call_t *c, ds_api_step_t step,
                       const ds_msg_t *reply)
{
    c->ctx = ctx;
    int rc = step(c, reply);
    session_settle(s, c, rc); /* may answer: the context is still valid */
    return 0;
}

/* Every SESSION_TICK_S while requests are in flight: a request whose work item never reported
 * back (its WORK_DONE refused by a full mailbox) is answered 503 and let go after
 * SESSION_STUCK_S, so no slot leaks. */
static void session_sweep(session_t *s, ds_ctx_t *ctx)
{
    int64_t now = ds_clock_now();
    size_t i = 0;
    while (i < s->ncalls) {
        ds_api_call_t *c = s->calls[i];
        if (!c->working || now - c->started_ns < (int64_t)SESSION_STUCK_S * 1000000000) {
            i++;
            continue;
        }
        c->ctx = ctx;
        if (!c->answered) {
            static const ds_http_header_t retry[] = {{"Retry-After", 11, "1", 1}};
            (void)ds_api_problem_ex(c, 503, "service-unavailable", "the server is busy: retry",
                                    retry, 1, NULL);
        }
        session_call_free(s, i); /* its work item keeps the data until it finishes */
    }
}

static void session_tick_start(session_t *s, ds_ctx_t *ctx)
{
    ds_msg_t *tick = NULL;
    if (s->ticking || ds_api_tick_new(NULL, &tick) < 0) {
        return;
    }
    if (ds_timer_every(ds_ctx_rt(ctx), ds_self(ctx), (int64_t)SESSION_TICK_S * 1000000000, &tick,
                       NULL) == 0) {
        s->ticking = true;
    }
    ds_msg_free(&tick);
}

/* The authenticated call goes to its handler (or first through the Idempotency-Key claim). */
int ds_api_session_dispatch(ds_api_call_t *c)
{
    if (c->idem) {
        return ds_api_session_idem_claim(c);
    }
    return session_handlers[c->match.route](c);
}

int ds_api_session_dispatch_handler(ds_api_call_t *c)
{
    return session_handlers[c->match.route](c);
}

int ds_api_session_replay(ds_api_call_t *c, const ds_pg_value_t *status,
                          const ds_pg_value_t *headers, const ds_pg_value_t *body)
{
    char num[8];
    (void)snprintf(num, sizeof(num), "%.*s", (int)status->len, status->ptr);
    long code = strtol(num, NULL, 10);
    char location[512] = "";
    if (!headers->null) {
        json_t *h = json_loadb(headers->ptr, headers->len, 0, NULL);
        const char *loc = json_string_value(json_object_get(h, "Location"));
        (void)snprintf(location, sizeof(location), "%s", loc != NULL ? loc : "");
        json_decref(h);
    }
    ds_http_header_t hs[2] = {{"Idempotent-Replayed", 19, "true", 4}};
    size_t n = 1;
    if (location[0] != '\0') {
        hs[n++] = (ds_http_header_t){"Location", 8, location, (uint32_t)strlen(location)};
    }
    return ds_api_reply(c, (uint32_t)(code >= 200 && code < 600 ? code : 200), hs, n,
                        body->null ? NULL : body->ptr, body->null ? 0 : body->len);
}

static int session_request(session_t *s, ds_ctx_t *ctx, ds_msg_t **msgp)
{
    if (s->ncalls == SESSION_CALLS_MAX) {
        ds_http_request_t req;
        if (ds_http_request_decode(*msgp, &req) == 0) {
            static const ds_http_header_t ra[] = {{"Retry-After", 11, "1", 1}};
            (void)ds_api_session_problem_raw(ctx, &req, 503, "service-unavailable",
                                             "too many requests in flight for this tenant", ra, 1);
        }
        return 0;
    }
    ds_api_call_t *c = ds_xcalloc(1, sizeof(*c));
    c->session = &s->cfg;
    c->owner = s;
    c->started_ns = ds_clock_now();
    c->id = ++s->next_id;
    c->msg = *msgp;
    *msgp = NULL;
    if (ds_http_request_decode(c->msg, &c->req) < 0) {
        ds_log_warn("api session dropped a malformed request message", DS_LOG_END);
        ds_msg_free(&c->msg);
        free(c);
        return 0;
    }
    (void)snprintf(c->request_id, sizeof(c->request_id), "%.*s", (int)c->req.request_id.len,
                   c->req.request_id.ptr);
    s->calls[s->ncalls++] = c;
    session_tick_start(s, ctx);
    return session_run(s, ctx, c, ds_api_session_start, NULL);
}

static ds_api_call_t *session_find_corr(session_t *s, uint64_t corr)
{
    for (size_t i = 0; i < s->ncalls; i++) {
        if (s->calls[i]->next != NULL && !s->calls[i]->working && s->calls[i]->corr == corr) {
            return s->calls[i];
        }
    }
    return NULL;
}

static ds_api_call_t *session_find_work(session_t *s, uint64_t id)
{
    for (size_t i = 0; i < s->ncalls; i++) {
        if (s->calls[i]->working && s->calls[i]->id == id) {
            return s->calls[i];
        }
    }
    return NULL;
}

static int session_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    session_t *s = ds_ctx_state(ctx);
    const ds_msg_t *m = *msgp;
    if (m->type == DS_MT_HTTP_REQUEST) {
        return session_request(s, ctx, msgp);
    }
    ds_api_call_t *c = NULL;
    if (m->type == DS_MT_API_TICK) {
        session_sweep(s, ctx);
        return 0;
    }
    if (m->type == DS_MT_API_LIMITS) {
        ds_api_limits_t lim;
        if (ds_api_limits_decode(m, &lim) == 0) {
            s->cfg.max_users = lim.max_users;
        }
        return 0;
    }
    if (m->type == DS_MT_API_WORK_DONE) {
        ds_api_work_done_t wd;
        if (ds_api_work_done_decode(m, &wd) == 0) {
            c = session_find_work(s, wd.call);
        }
        if (c != NULL) {
            c->working = false;
            session_work_drop(c, false);
        }
    } else if (m->corr != 0) {
        c = session_find_corr(s, m->corr);
    }
    if (c == NULL) {
        return 0; /* a late reply of a call already answered */
    }
    ds_api_step_t step = c->next;
    c->next = NULL;
    return session_run(s, ctx, c, step, m);
}

static void session_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    session_t *s = ds_ctx_state(ctx);
    while (s != NULL && s->ncalls > 0) {
        session_call_free(s, s->ncalls - 1);
    }
    free(s);
    ds_ctx_set_state(ctx, NULL);
}

const ds_behaviour_t ds_api_session_behaviour = {
    .name = "api-session",
    .init = session_init,
    .receive = session_receive,
    .terminate = session_terminate,
};

/* --- rounds ------------------------------------------------------------------------------ */

/* A change, or an admin's read, by a known caller ends with dossier.api_guard: the caller must
 * still be active (and an admin, if its token says so), else the transaction fails with
 * DS002/DS003 and everything in it is rolled back. Last rather than first, so the handler's
 * statements keep their indexes. A failure's own audit entry is written without it. */
static int session_guard(const ds_api_call_t *c, ds_pg_req_t *r)
{
    bool guarded = c->route != NULL && (c->route->flags & (DS_API_MUTATES | DS_API_ADMIN)) &&
                   c->who != DS_API_ANONYMOUS && c->fail_status == 0;
    if (!guarded) {
        return 0;
    }
    const char *p[] = {c->who == DS_API_USER ? "user" : "service_account", c->who_id,
                       (c->roles & DS_ROLE_ADMIN) ? "true" : "false"};
    return ds_pg_req_add(r, "SELECT dossier.api_guard($1, $2::uuid, $3::boolean)", 3, p);
}

int ds_api_tx(ds_api_call_t *c, ds_pg_req_t **reqp, ds_api_step_t next)
{
    ds_msg_t *ask = NULL;
    ds_pg_opts_t opts = {0};
    int rc = session_guard(c, *reqp);
    if (rc < 0) {
        ds_pg_req_free(reqp);
        return rc;
    }
    rc = ds_pg_req_tx(*reqp, c->session->tenant, &opts, &ask);
    ds_pg_req_free(reqp);
    if (rc < 0) {
        return rc;
    }
    uint64_t corr = 0;
    rc = ds_ask(c->ctx, c->session->env->pool, &ask, SESSION_ASK_TIMEOUT_NS, &corr);
    ds_msg_free(&ask);
    if (rc < 0) {
        return rc;
    }
    c->corr = corr;
    c->next = next;
    return 0;
}

/* A work item is shared by the session and the work pool until both let go: a call freed
 * while its work runs (the session stopping) hands its data to the item, and whichever side
 * lets go last frees it. */
typedef struct session_work {
    void (*work)(void *arg);
    void *arg;
    uint64_t call;
    _Atomic int refs;
    void (*orphan_free)(void *data); /* set when the call let go first */
    void *orphan;
} session_work_t;

static void session_work_release(session_work_t *w)
{
    if (atomic_fetch_sub(&w->refs, 1) == 1) {
        if (w->orphan_free != NULL) {
            w->orphan_free(w->orphan);
        }
        free(w);
    }
}

static void session_work_run(void *arg)
{
    session_work_t *w = arg;
    w->work(w->arg);
}

static ds_msg_t *session_work_done(void *arg, int status)
{
    session_work_t *w = arg;
    ds_msg_t *m = NULL;
    (void)ds_api_work_done_new(&(ds_api_work_done_t){.call = w->call, .status = status}, &m);
    session_work_release(w);
    return m;
}

int ds_api_work(ds_api_call_t *c, void (*work)(void *arg), void *arg, ds_api_step_t next)
{
    session_work_t *w = ds_xcalloc(1, sizeof(*w));
    w->work = work;
    w->arg = arg;
    w->call = c->id;
    atomic_init(&w->refs, 2);
    int rc = ds_loop_work(c->session->env->work_loop, ds_self(c->ctx), session_work_run,
                          session_work_done, w);
    if (rc < 0) {
        free(w);
        return rc;
    }
    c->work_item = w;
    c->working = true;
    c->next = next;
    return 0;
}

/* The call lets go of its work item: the item is done (its reply came), or the call is being
 * freed while the work still runs (its data then goes with the item). */
static void session_work_drop(ds_api_call_t *c, bool orphan)
{
    session_work_t *w = c->work_item;
    if (w == NULL) {
        return;
    }
    c->work_item = NULL;
    if (orphan) {
        w->orphan_free = c->data_free;
        w->orphan = c->data;
        c->data = NULL;
        c->data_free = NULL;
    }
    session_work_release(w);
}
