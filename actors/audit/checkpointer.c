/* checkpointer: the checkpoint actor and the shutdown checkpoint. See
 * actors/audit/checkpointer.h. */
#include "actors/audit/checkpointer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/audit/verify.h"
#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/mem.h"
#include "runtime/msg.h"
#include "transports/pg/pool.h"

enum {
    CPR_PARALLEL = 4, /* tenants walked at once */
    CPR_BATCH = 256,  /* rows per ask (halved while a reply is too large) */
    CPR_ASK_TIMEOUT_MS = 30000,
    CPR_FIRST_ROUND_MS = 1000,
    CPR_WRITE_ROUNDS_MAX = 5, /* rounds a blob write may stay unanswered before it is retried */
};

typedef struct cpr_tenant {
    char id[DS_AUDIT_UUID_LEN + 1];
    ds_audit_walk_t walk; /* resumed at the last checkpoint; advanced by every round */
    uint64_t signed_seq;  /* the latest checkpoint's seq (0: none) */
    uint32_t batch;
    bool failed;           /* a problem was logged: no more checkpoints until a restart */
    bool busy;             /* an ask is in flight */
    uint64_t corr;         /* that ask's */
    ds_buf_t *pending;     /* signed bytes being written */
    uint64_t pending_seq;  /* their seq */
    unsigned write_rounds; /* rounds since the write began (0: none running) */
} cpr_tenant_t;

typedef struct cpr {
    ds_loop_t *loop;
    ds_actor_id_t pool;
    ds_blob_store_t *blobs;
    ds_audit_signer_t *signer;
    int64_t interval_ns;
    cpr_tenant_t *t;
    size_t n;
    size_t next;     /* the round's cursor over t */
    size_t inflight; /* tenants with an ask in flight */
    uint64_t timers[2];
} cpr_t;

static bool cpr_forged(int rc)
{
    return rc == -EKEYREJECTED || rc == DS_EDECODE || rc == -EBADMSG;
}

static void cpr_log_problem(const char *tenant, const ds_audit_problem_t *p)
{
    char text[160];
    ds_audit_problem_str(p, text, sizeof(text));
    ds_log_error("audit chain broken", DS_LOG_STR("tenant", tenant),
                 DS_LOG_STR("kind", ds_audit_kind_name(p->kind)), DS_LOG_U64("seq", p->seq),
                 DS_LOG_STR("detail", text), DS_LOG_END);
}

static void cpr_free(cpr_t *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        ds_buf_unref(&c->t[i].pending);
    }
    ds_audit_signer_free(&c->signer);
    free(c->t);
    free(c);
}

/* ---- the walk, one ask at a time per tenant ---- */

static int cpr_ask(ds_ctx_t *ctx, cpr_t *c, cpr_tenant_t *t)
{
    char seq[24];
    char id[DS_AUDIT_UUID_LEN + 1];
    char limit[16];
    ds_audit_walk_next(&t->walk, seq, id);
    (void)snprintf(limit, sizeof(limit), "%u", t->batch);
    const char *p[] = {t->id, seq, id, limit};
    ds_pg_req_t *req = ds_pg_req_new();
    ds_msg_t *m = NULL;
    int rc = ds_pg_req_add(req, DS_AUDIT_BATCH_SQL, 4, p);
    if (rc == 0) {
        ds_pg_opts_t opts = {.timeout_ms = CPR_ASK_TIMEOUT_MS, .max_bytes = 0};
        rc = ds_pg_req_tx(req, t->id, &opts, &m);
    }
    ds_pg_req_free(&req);
    if (rc == 0) {
        rc = ds_ask(ctx, c->pool, &m, (int64_t)(CPR_ASK_TIMEOUT_MS + 5000) * 1000000, &t->corr);
    }
    ds_msg_free(&m);
    if (rc < 0) {
        ds_log_warn("could not ask for the audit chain", DS_LOG_STR("tenant", t->id),
                    DS_LOG_STR("error", ds_errname(rc)), DS_LOG_END);
        return rc;
    }
    t->busy = true;
    c->inflight++;
    return 0;
}

/* A round starts at the head the last one reached, re-read as an anchor: an entry replaced or
 * cut since then shows as REWRITTEN or TRUNCATED instead of passing unseen. */
static void cpr_reanchor(cpr_tenant_t *t)
{
    if (!t->walk.started) {
        return; /* still at the checkpoint loaded at start-up, or at seq 1 */
    }
    uint64_t seq = t->walk.last_seq;
    uint8_t hash[DS_AUDIT_HASH_LEN];
    memcpy(hash, t->walk.last_hash, DS_AUDIT_HASH_LEN);
    ds_audit_walk_init(&t->walk, t->id);
    ds_audit_walk_set_checkpoint(&t->walk, seq, hash);
    ds_audit_walk_resume(&t->walk);
}

/* Starts asks for the round's next tenants, up to CPR_PARALLEL in flight. */
static void cpr_pump(ds_ctx_t *ctx, cpr_t *c)
{
    while (c->inflight < CPR_PARALLEL && c->next < c->n) {
        cpr_tenant_t *t = &c->t[c->next++];
        if (t->write_rounds > 0 && ++t->write_rounds > CPR_WRITE_ROUNDS_MAX) {
            ds_log_warn("audit checkpoint write unanswered; writing again",
                        DS_LOG_STR("tenant", t->id), DS_LOG_END);
            ds_buf_unref(&t->pending);
            t->write_rounds = 0;
        }
        if (!t->failed && t->write_rounds == 0) {
            cpr_reanchor(t);
            (void)cpr_ask(ctx, c, t); /* a failed ask is logged; the next round tries again */
        }
    }
}

/* Queues the put of t's pending bytes: stage 0 the history object, stage 1 the latest. */
static int cpr_put(ds_ctx_t *ctx, cpr_t *c, size_t i, unsigned stage)
{
    cpr_tenant_t *t = &c->t[i];
    char name[DS_AUDIT_CP_NAME_MAX];
    ds_audit_checkpoint_name(t->pending_seq, name);
    ds_blob_req_t req = {
        .store = c->blobs,
        .tenant = t->id,
        .name = stage == 0 ? name : DS_AUDIT_CP_LATEST,
        .to = ds_self(ctx),
        .reply_type = DS_MT_AUDIT_PUT_DONE,
        .tag = (uint64_t)i * 2 + stage,
    };
    ds_blob_source_t src = {.kind = DS_BLOB_SRC_BUF, .buf = ds_buf_ref(t->pending), .fd = -1};
    int rc = ds_blob_put_async(c->loop, &req, &src);
    ds_buf_unref(&src.buf); /* NULL when the put took it */
    if (rc < 0) {
        ds_log_warn("could not write the audit checkpoint", DS_LOG_STR("tenant", t->id),
                    DS_LOG_STR("error", ds_errname(rc)), DS_LOG_END);
        ds_buf_unref(&t->pending);
        t->write_rounds = 0;
        return rc;
    }
    t->write_rounds = 1;
    return 0;
}

/* The walk reached t's head: signs it when it moved since the last checkpoint. */
static void cpr_sign(ds_ctx_t *ctx, cpr_t *c, size_t i)
{
    cpr_tenant_t *t = &c->t[i];
    if (!t->walk.started || t->walk.last_seq <= t->signed_seq) {
        return;
    }
    ds_audit_checkpoint_t cp = {.seq = t->walk.last_seq};
    memcpy(cp.tenant_id, t->id, sizeof(cp.tenant_id));
    memcpy(cp.hash, t->walk.last_hash, DS_AUDIT_HASH_LEN);
    ds_audit_now(cp.signed_at);
    char *bytes = NULL;
    size_t len = 0;
    int rc = ds_audit_checkpoint_sign(c->signer, &cp, &bytes, &len);
    if (rc == 0) {
        rc = ds_buf_new(bytes, len, &t->pending);
    }
    free(bytes);
    if (rc < 0) {
        ds_log_warn("could not sign the audit checkpoint", DS_LOG_STR("tenant", t->id),
                    DS_LOG_STR("error", ds_errname(rc)), DS_LOG_END);
        return;
    }
    t->pending_seq = cp.seq;
    (void)cpr_put(ctx, c, i, 0);
}

/* Feeds one reply's rows to t's walk. True when the walk should go on with another batch. */
static bool cpr_feed(cpr_tenant_t *t, const ds_pg_reply_t *r)
{
    const ds_pg_rows_t *rows = r->nstmts == 1 ? &r->stmts[0] : NULL;
    if (rows == NULL || (rows->nrows > 0 && rows->ncols != DS_AUDIT_NCOLS)) {
        ds_log_warn("unexpected audit chain reply", DS_LOG_STR("tenant", t->id), DS_LOG_END);
        return false;
    }
    for (uint32_t k = 0; k < rows->nrows; k++) {
        int rc = ds_audit_walk_row(&t->walk, &rows->vals[(size_t)k * DS_AUDIT_NCOLS]);
        if (rc < 0) {
            ds_log_warn("could not hash an audit entry", DS_LOG_STR("tenant", t->id),
                        DS_LOG_STR("error", ds_errname(rc)), DS_LOG_END);
            return false;
        }
        if (rc > 0) {
            break;
        }
    }
    if (t->walk.problem.kind == DS_AUDIT_INTACT && rows->nrows < t->batch) {
        (void)ds_audit_walk_finish(&t->walk); /* at the head: a cut shows now */
    }
    if (t->walk.problem.kind != DS_AUDIT_INTACT) {
        cpr_log_problem(t->id, &t->walk.problem);
        t->failed = true;
        return false;
    }
    return rows->nrows == t->batch;
}

/* A reply from the pool (or the ask's timeout or error). */
static void cpr_reply(ds_ctx_t *ctx, cpr_t *c, const ds_msg_t *m)
{
    size_t i = 0;
    while (i < c->n && !(c->t[i].busy && c->t[i].corr == m->corr)) {
        i++;
    }
    if (i == c->n) {
        return; /* not ours */
    }
    cpr_tenant_t *t = &c->t[i];
    t->busy = false;
    c->inflight--;
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(m, &r);
    int code = rc < 0 ? rc : r.code;
    bool more = false;
    if (code == -EMSGSIZE && t->batch > 1) {
        t->batch /= 2; /* large details: fewer rows per reply */
        more = true;
    } else if (code < 0) {
        ds_log_warn("could not read the audit chain", DS_LOG_STR("tenant", t->id),
                    DS_LOG_STR("error", ds_errname(code)), DS_LOG_END);
    } else if (cpr_feed(t, &r)) {
        more = true;
    } else if (!t->failed) {
        cpr_sign(ctx, c, i);
    }
    if (rc == 0) {
        ds_pg_reply_fini(&r);
    }
    if (more) {
        (void)cpr_ask(ctx, c, t);
    }
    cpr_pump(ctx, c);
}

/* A blob put's result. */
static void cpr_put_done(ds_ctx_t *ctx, cpr_t *c, const ds_msg_t *m)
{
    ds_blob_result_t res;
    if (ds_blob_result_decode(m, &res) < 0 || res.tag / 2 >= c->n) {
        return;
    }
    size_t i = (size_t)(res.tag / 2);
    cpr_tenant_t *t = &c->t[i];
    if (t->pending == NULL) {
        return; /* given up on already */
    }
    if (res.status < 0) {
        ds_log_warn("could not write the audit checkpoint", DS_LOG_STR("tenant", t->id),
                    DS_LOG_STR("error", ds_errname(res.status)), DS_LOG_END);
        ds_buf_unref(&t->pending);
        t->write_rounds = 0;
        return;
    }
    if (res.tag % 2 == 0) {
        (void)cpr_put(ctx, c, i, 1);
        return;
    }
    t->signed_seq = t->pending_seq;
    ds_buf_unref(&t->pending);
    t->write_rounds = 0;
    ds_log_info("audit checkpoint signed", DS_LOG_STR("tenant", t->id),
                DS_LOG_U64("seq", t->signed_seq), DS_LOG_END);
}

/* ---- the actor ---- */

static int cpr_init(ds_ctx_t *ctx, void *arg)
{
    cpr_t *c = arg;
    ds_rt_t *rt = ds_ctx_rt(ctx);
    ds_msg_t *first = NULL;
    ds_msg_t *tick = NULL;
    int rc = ds_msg_new(DS_MT_AUDIT_TICK, NULL, 0, &first);
    if (rc == 0) {
        rc = ds_msg_new(DS_MT_AUDIT_TICK, NULL, 0, &tick);
    }
    if (rc == 0) {
        rc = ds_timer_after(rt, ds_self(ctx), (int64_t)CPR_FIRST_ROUND_MS * 1000000, &first,
                            &c->timers[0]);
    }
    if (rc == 0) {
        rc = ds_timer_every(rt, ds_self(ctx), c->interval_ns, &tick, &c->timers[1]);
        if (rc < 0) {
            (void)ds_timer_cancel(rt, c->timers[0]);
        }
    }
    ds_msg_free(&first);
    ds_msg_free(&tick);
    if (rc == 0) {
        ds_ctx_set_state(ctx, c);
    }
    return rc;
}

static int cpr_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    cpr_t *c = ds_ctx_state(ctx);
    const ds_msg_t *m = *msgp;
    if (m->type == DS_MT_AUDIT_TICK) {
        if (c->next >= c->n && c->inflight == 0) {
            c->next = 0; /* a new round; a round still running is left to finish */
            cpr_pump(ctx, c);
        }
    } else if (m->type == DS_MT_AUDIT_PUT_DONE) {
        cpr_put_done(ctx, c, m);
    } else if ((m->flags & DS_MSG_F_REPLY) != 0 || m->type == DS_MT_TIMEOUT) {
        cpr_reply(ctx, c, m);
    }
    return 0;
}

static void cpr_terminate(ds_ctx_t *ctx, int reason)
{
    cpr_t *c = ds_ctx_state(ctx);
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < 2; i++) {
        (void)ds_timer_cancel(ds_ctx_rt(ctx), c->timers[i]); /* -ENOENT: already gone */
    }
    if (reason < 0) {
        ds_log_warn("audit checkpointer stopped", DS_LOG_STR("reason", ds_errname(reason)),
                    DS_LOG_END);
    }
    ds_ctx_set_state(ctx, NULL);
    cpr_free(c);
}

static const ds_behaviour_t cpr_behaviour = {
    .name = "audit_checkpointer",
    .init = cpr_init,
    .receive = cpr_receive,
    .terminate = cpr_terminate,
};

/* Sets up t from its latest checkpoint (blocking). */
static void cpr_tenant_load(cpr_t *c, cpr_tenant_t *t, const char *id)
{
    (void)snprintf(t->id, sizeof(t->id), "%s", id);
    t->batch = CPR_BATCH;
    ds_audit_walk_init(&t->walk, id);
    ds_audit_checkpoint_t cp;
    int rc = ds_audit_checkpoint_load(c->blobs, c->signer, id, &cp);
    if (rc == 0) {
        ds_audit_walk_set_checkpoint(&t->walk, cp.seq, cp.hash);
        ds_audit_walk_resume(&t->walk);
        t->signed_seq = cp.seq;
    } else if (cpr_forged(rc)) {
        t->walk.problem = (ds_audit_problem_t){.kind = DS_AUDIT_FORGED};
        cpr_log_problem(id, &t->walk.problem);
        t->failed = true; /* kept as evidence: never replaced */
    } else if (rc != -ENOENT) {
        ds_log_error("could not read the audit checkpoint; not checkpointing the tenant",
                     DS_LOG_STR("tenant", id), DS_LOG_STR("error", ds_errname(rc)), DS_LOG_END);
        t->failed = true;
    }
}

int ds_audit_checkpointer_start(const ds_audit_checkpointer_cfg_t *cfg, ds_actor_id_t *out)
{
    cpr_t *c = ds_xcalloc(1, sizeof(*c));
    c->loop = cfg->loop;
    c->pool = cfg->pool;
    c->blobs = cfg->blobs;
    uint32_t s = cfg->interval_s != 0 ? cfg->interval_s : DS_AUDIT_INTERVAL_S_DEFAULT;
    c->interval_ns = (int64_t)s * 1000000000;
    int rc = ds_audit_signer_open(cfg->keys_dir, true, &c->signer);
    if (rc < 0) {
        ds_log_error("could not open the audit signing key", DS_LOG_STR("dir", cfg->keys_dir),
                     DS_LOG_STR("error", ds_strerror(rc)), DS_LOG_END);
        cpr_free(c);
        return rc;
    }
    c->n = cfg->tenants->count;
    c->t = ds_xcalloc(c->n > 0 ? c->n : 1, sizeof(*c->t));
    for (size_t i = 0; i < c->n; i++) {
        cpr_tenant_load(c, &c->t[i], cfg->tenants->items[i].id);
    }
    c->next = c->n; /* no round running */
    ds_actor_id_t id;
    rc = ds_spawn(cfg->rt, &cpr_behaviour, c, NULL, &id);
    if (rc < 0) {
        ds_log_error("could not spawn actor", DS_LOG_STR("actor", cpr_behaviour.name),
                     DS_LOG_STR("error", ds_strerror(rc)), DS_LOG_END);
        cpr_free(c);
        return rc;
    }
    ds_log_info("audit checkpointer started", DS_LOG_U64("tenants", c->n),
                DS_LOG_U64("interval_s", s),
                DS_LOG_STR("key_id", ds_audit_signer_key_id(c->signer)), DS_LOG_END);
    if (out != NULL) {
        *out = id;
    }
    return 0;
}

/* ---- blocking: one tenant, and the shutdown checkpoint ---- */

int ds_audit_checkpoint_sync(PGconn *conn, ds_blob_store_t *bs, const ds_audit_signer_t *s,
                             const char *tenant, ds_audit_walk_t *out, char **why)
{
    ds_audit_checkpoint_t cp;
    int rc = ds_audit_checkpoint_load(bs, s, tenant, &cp);
    bool have = rc == 0;
    if (cpr_forged(rc)) {
        ds_audit_walk_init(out, tenant);
        out->problem = (ds_audit_problem_t){.kind = DS_AUDIT_FORGED};
        return 0;
    }
    if (rc < 0 && rc != -ENOENT) {
        return rc;
    }
    ds_audit_verify_opts_t o = {.checkpoint = have ? &cp : NULL, .resume = have};
    ds_audit_walk_t w;
    rc = ds_audit_verify_conn(conn, tenant, &o, &w, why);
    if (rc < 0) {
        return rc;
    }
    if (w.problem.kind == DS_AUDIT_INTACT && w.started && w.last_seq > (have ? cp.seq : 0)) {
        ds_audit_checkpoint_t next = {.seq = w.last_seq};
        memcpy(next.tenant_id, w.tenant, sizeof(next.tenant_id));
        memcpy(next.hash, w.last_hash, DS_AUDIT_HASH_LEN);
        ds_audit_now(next.signed_at);
        char *bytes = NULL;
        size_t len = 0;
        rc = ds_audit_checkpoint_sign(s, &next, &bytes, &len);
        if (rc == 0) {
            rc = ds_audit_checkpoint_store(bs, tenant, next.seq, bytes, len);
        }
        free(bytes);
    }
    if (rc == 0) {
        *out = w;
    }
    return rc;
}

/* The final checkpoint of one tenant, logged. */
static int cpr_final_one(PGconn *conn, ds_blob_store_t *bs, const ds_audit_signer_t *s,
                         const char *tenant)
{
    ds_audit_walk_t w = {0};
    char *why = NULL;
    int rc = ds_audit_checkpoint_sync(conn, bs, s, tenant, &w, &why);
    if (rc < 0) {
        ds_log_error("could not write the final audit checkpoint", DS_LOG_STR("tenant", tenant),
                     DS_LOG_STR("error", ds_strerror(rc)),
                     DS_LOG_STR("reason", why != NULL ? why : ""), DS_LOG_END);
    } else if (w.problem.kind != DS_AUDIT_INTACT) {
        cpr_log_problem(tenant, &w.problem);
    } else {
        ds_log_info("final audit checkpoint", DS_LOG_STR("tenant", tenant),
                    DS_LOG_U64("seq", w.started ? w.last_seq : 0), DS_LOG_END);
    }
    free(why);
    return rc;
}

int ds_audit_checkpoint_final(const char *conninfo, ds_blob_store_t *bs,
                              const ds_tenants_t *tenants, const char *keys_dir)
{
    ds_audit_signer_t *s = NULL;
    int rc = ds_audit_signer_open(keys_dir, true, &s);
    if (rc < 0) {
        ds_log_error("could not open the audit signing key", DS_LOG_STR("dir", keys_dir),
                     DS_LOG_STR("error", ds_strerror(rc)), DS_LOG_END);
        return rc;
    }
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        ds_log_error("could not connect for the final audit checkpoint",
                     DS_LOG_STR("reason", PQerrorMessage(conn)), DS_LOG_END);
        rc = -EIO;
    }
    bool connected = rc == 0;
    for (size_t i = 0; connected && i < tenants->count; i++) {
        int one = cpr_final_one(conn, bs, s, tenants->items[i].id);
        if (one < 0 && rc == 0) {
            rc = one;
        }
    }
    PQfinish(conn);
    ds_audit_signer_free(&s);
    return rc;
}
