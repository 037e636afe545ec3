/* bench_actors: the actor-runtime workloads of ../shared/anchors/actors ("Comparing your
 * runtime"), written against our runtime, plus a fairness run of our own.
 *
 *   bench_actors pingpong [N]           bench_actors threadring [R H]
 *   bench_actors fanout [W R]           bench_actors spawn [N]
 *   bench_actors tenants [T M S]        bench_actors noisy MODE [Q R F]
 *   bench_actors fairness [SECS]
 *
 * Each prints one `RESULT <bench> key=value ...` line on stdout (the harness's format). The
 * driver is the main thread: it starts the workload with ds_send_from() and waits on a
 * semaphore that the finishing actor posts. Mailboxes are bounded; where a workload would
 * overrun a limit the policy is stated where it applies (tenants: a refused send is retried on
 * the sender's next turn; noisy: a flooder's refused noise is dropped and counted). Workers:
 * DS_BENCH_WORKERS, default one per core. DS_BENCH_VERBOSE=1 makes `noisy` print every
 * group's metrics on stderr. */
#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/catalog.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/mem.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "tests/bench/bench_msgs.h"

static sem_t done_sem;

static double now_s(void)
{
    return (double)ds_clock_now() / 1e9;
}

static double rss_mb(void)
{
    char buf[128] = {0};
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    (void)fclose(f);
    buf[n] = '\0';
    char *p = strchr(buf, ' '); /* size, then resident pages */
    long rss = p != NULL ? strtol(p + 1, NULL, 10) : 0;
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* Any thread may fail: report and leave at once, without running atexit handlers. */
static void die(const char *what, int rc)
{
    (void)fprintf(stderr, "bench_actors: %s: %s\n", what, ds_strerror(rc));
    _exit(1);
}

static void check(const char *what, int rc)
{
    if (rc < 0) {
        die(what, rc);
    }
}

static void wait_done(void)
{
    while (sem_wait(&done_sem) != 0) {
    }
}

static uint64_t arg_u64(int argc, char **argv, int i, uint64_t dflt)
{
    if (i >= argc) {
        return dflt;
    }
    char *end = NULL;
    unsigned long long v = strtoull(argv[i], &end, 10);
    if (end == argv[i] || *end != '\0') {
        (void)fprintf(stderr, "bench_actors: bad number '%s'\n", argv[i]);
        _exit(2);
    }
    return v;
}

static ds_rt_t *rt_start(void)
{
    ds_rt_cfg_t cfg = {0};
    const char *w = getenv("DS_BENCH_WORKERS"); // NOLINT(concurrency-mt-unsafe): before threads
    if (w != NULL) {
        cfg.workers = (unsigned)strtoul(w, NULL, 10);
    }
    ds_rt_t *rt;
    check("runtime", ds_rt_new(&cfg, &rt));
    check("start", ds_rt_start(rt));
    return rt;
}

static uint32_t tenant(ds_rt_t *rt, uint32_t weight, uint32_t mailbox, uint64_t bytes)
{
    uint32_t g;
    ds_group_cfg_t gc = {.weight = weight, .mailbox_limit = mailbox, .bytes_cap = bytes};
    check("group", ds_group_new(rt, &gc, &g));
    return g;
}

static void send_u64(ds_ctx_t *ctx, ds_actor_id_t to, int (*mk)(uint64_t, ds_msg_t **), uint64_t v)
{
    ds_msg_t *m;
    check("encode", mk(v, &m));
    int rc = ds_send(ctx, to, &m);
    if (rc < 0) {
        ds_msg_free(&m);
        die("send", rc);
    }
}

static int mk_ping(uint64_t k, ds_msg_t **m)
{
    return ds_bench_ping_new(&(ds_bench_ping_t){.k = k}, m);
}

static int mk_pong(uint64_t k, ds_msg_t **m)
{
    return ds_bench_pong_new(&(ds_bench_pong_t){.k = k}, m);
}

static int mk_token(uint64_t h, ds_msg_t **m)
{
    return ds_bench_token_new(&(ds_bench_token_t){.h = h}, m);
}

static int mk_work(uint64_t x, ds_msg_t **m)
{
    return ds_bench_work_new(&(ds_bench_work_t){.x = x}, m);
}

static int mk_reply(uint64_t x, ds_msg_t **m)
{
    return ds_bench_reply_new(&(ds_bench_reply_t){.x = x}, m);
}

static int mk_msg(uint64_t x, ds_msg_t **m)
{
    return ds_bench_msg_new(&(ds_bench_msg_t){.x = x}, m);
}

static int mk_noise(uint64_t i, ds_msg_t **m)
{
    return ds_bench_noise_new(&(ds_bench_noise_t){.i = i}, m);
}

static int mk_spin(uint64_t ns, ds_msg_t **m)
{
    return ds_bench_spin_new(&(ds_bench_spin_t){.ns = ns}, m);
}

static int mk_batch(ds_msg_t **m)
{
    return ds_bench_batch_new(NULL, m);
}

static int mk_flood(ds_msg_t **m)
{
    return ds_bench_flood_new(NULL, m);
}

static void send_from(ds_rt_t *rt, ds_actor_id_t to, ds_msg_t *m)
{
    int rc = ds_send_from(rt, to, &m);
    if (rc < 0) {
        ds_msg_free(&m);
        die("send_from", rc);
    }
}

static void send_empty_self(ds_ctx_t *ctx, int (*mk)(ds_msg_t **))
{
    ds_msg_t *m;
    check("encode", mk(&m));
    int rc = ds_send(ctx, ds_self(ctx), &m);
    if (rc < 0) {
        ds_msg_free(&m);
        die("self send", rc);
    }
}

/* ---- pingpong ---- */

typedef struct pinger {
    ds_actor_id_t peer;
    uint64_t n;
} pinger_t;

static int pinger_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    pinger_t *p = ds_ctx_state(ctx);
    const ds_msg_t *m = *msgp;
    if (m->type == DS_MT_BENCH_START) {
        ds_bench_start_t s;
        check("decode", ds_bench_start_decode(m, &s));
        p->n = s.n;
        send_u64(ctx, p->peer, mk_ping, 1);
        return 0;
    }
    ds_bench_pong_t pong;
    check("decode", ds_bench_pong_decode(m, &pong));
    if (pong.k == p->n) {
        sem_post(&done_sem);
    } else {
        send_u64(ctx, p->peer, mk_ping, pong.k + 1);
    }
    return 0;
}

static int ponger_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    ds_bench_ping_t ping;
    check("decode", ds_bench_ping_decode(*msgp, &ping));
    send_u64(ctx, (*msgp)->from, mk_pong, ping.k);
    return 0;
}

static int state_init(ds_ctx_t *ctx, void *arg)
{
    ds_ctx_set_state(ctx, arg);
    return 0;
}

static const ds_behaviour_t pinger_b = {
    .name = "pinger", .init = state_init, .receive = pinger_receive};
static const ds_behaviour_t ponger_b = {.name = "ponger", .receive = ponger_receive};

static void bench_pingpong(int argc, char **argv)
{
    uint64_t n = arg_u64(argc, argv, 2, 1000000);
    ds_rt_t *rt = rt_start();
    pinger_t p = {0};
    ds_actor_id_t pinger;
    check("spawn", ds_spawn(rt, &ponger_b, NULL, NULL, &p.peer));
    check("spawn", ds_spawn(rt, &pinger_b, &p, NULL, &pinger));
    ds_msg_t *m;
    check("encode", ds_bench_start_new(&(ds_bench_start_t){.n = n}, &m));
    double t0 = now_s();
    send_from(rt, pinger, m);
    wait_done();
    double secs = now_s() - t0;
    printf("RESULT pingpong roundtrips=%llu secs=%.6f msgs_per_s=%.0f ns_per_msg=%.1f\n",
           (unsigned long long)n, secs, (double)(2 * n) / secs, secs * 1e9 / (double)(2 * n));
    ds_rt_free(&rt);
}

/* ---- threadring ---- */

static atomic_uint ring_ready;
static unsigned ring_size;

static int ring_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    ds_actor_id_t *next = ds_ctx_state(ctx);
    const ds_msg_t *m = *msgp;
    if (m->type == DS_MT_BENCH_NEXT) {
        ds_bench_next_t nx;
        check("decode", ds_bench_next_decode(m, &nx));
        *next = nx.who;
        if (atomic_fetch_add(&ring_ready, 1) + 1 == ring_size) {
            sem_post(&done_sem);
        }
        return 0;
    }
    ds_bench_token_t t;
    check("decode", ds_bench_token_decode(m, &t));
    if (t.h == 0) {
        sem_post(&done_sem);
    } else {
        send_u64(ctx, *next, mk_token, t.h - 1);
    }
    return 0;
}

static const ds_behaviour_t ring_b = {.name = "ring", .init = state_init, .receive = ring_receive};

static void bench_threadring(int argc, char **argv)
{
    unsigned r = (unsigned)arg_u64(argc, argv, 2, 503);
    uint64_t h = arg_u64(argc, argv, 3, 10000000);
    ds_rt_t *rt = rt_start();
    ds_actor_id_t *ids = ds_xcalloc(r, sizeof(*ids));
    ds_actor_id_t *next = ds_xcalloc(r, sizeof(*next));
    ring_size = r;
    for (unsigned i = 0; i < r; i++) {
        check("spawn", ds_spawn(rt, &ring_b, &next[i], NULL, &ids[i]));
    }
    for (unsigned i = 0; i < r; i++) {
        ds_msg_t *m;
        check("encode", ds_bench_next_new(&(ds_bench_next_t){.who = ids[(i + 1) % r]}, &m));
        send_from(rt, ids[i], m);
    }
    wait_done();
    ds_msg_t *m;
    check("encode", mk_token(h, &m));
    double t0 = now_s();
    send_from(rt, ids[0], m);
    wait_done();
    double secs = now_s() - t0;
    printf("RESULT threadring ring=%u hops=%llu secs=%.6f msgs_per_s=%.0f ns_per_msg=%.1f\n", r,
           (unsigned long long)h, secs, (double)h / secs, secs * 1e9 / (double)h);
    ds_rt_free(&rt);
    free(ids);
    free(next);
}

/* ---- fanout ---- */

typedef struct coord {
    ds_actor_id_t *workers;
    uint64_t w, rounds, round, got, sum;
} coord_t;

static void fan_round(ds_ctx_t *ctx, coord_t *c)
{
    for (uint64_t i = 0; i < c->w; i++) {
        send_u64(ctx, c->workers[i], mk_work, 1);
    }
}

static int coord_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    coord_t *c = ds_ctx_state(ctx);
    const ds_msg_t *m = *msgp;
    if (m->type == DS_MT_BENCH_GO) {
        fan_round(ctx, c);
        return 0;
    }
    ds_bench_reply_t r;
    check("decode", ds_bench_reply_decode(m, &r));
    c->sum += r.x;
    if (++c->got < c->w) {
        return 0;
    }
    c->got = 0;
    if (++c->round < c->rounds) {
        fan_round(ctx, c);
    } else {
        sem_post(&done_sem);
    }
    return 0;
}

static int worker_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    ds_bench_work_t w;
    check("decode", ds_bench_work_decode(*msgp, &w));
    send_u64(ctx, (*msgp)->from, mk_reply, w.x + 1);
    return 0;
}

static const ds_behaviour_t coord_b = {
    .name = "coordinator", .init = state_init, .receive = coord_receive};
static const ds_behaviour_t worker_b = {.name = "worker", .receive = worker_receive};

static void bench_fanout(int argc, char **argv)
{
    uint64_t w = arg_u64(argc, argv, 2, 100000);
    uint64_t rounds = arg_u64(argc, argv, 3, 10);
    ds_rt_t *rt = rt_start();
    /* The coordinator receives W replies a round: its tenant's mailbox limit is W, so every
     * reply fits and none is refused (policy: size the limit for the fan-in). */
    uint32_t g = tenant(rt, 1, (uint32_t)w + 16, 1ull << 32);
    coord_t c = {.w = w, .rounds = rounds};
    c.workers = ds_xcalloc(w, sizeof(ds_actor_id_t));
    ds_spawn_opts_t o = {.group = g};
    double s0 = now_s();
    for (uint64_t i = 0; i < w; i++) {
        check("spawn", ds_spawn(rt, &worker_b, NULL, &o, &c.workers[i]));
    }
    double spawn_secs = now_s() - s0;
    ds_actor_id_t coord;
    check("spawn", ds_spawn(rt, &coord_b, &c, &o, &coord));
    ds_msg_t *m;
    check("encode", ds_bench_go_new(NULL, &m));
    double t0 = now_s();
    send_from(rt, coord, m);
    wait_done();
    double secs = now_s() - t0;
    printf("RESULT fanout workers=%llu rounds=%llu secs=%.6f ms_per_round=%.2f ns_per_msg=%.1f "
           "check=%llu spawn_secs=%.3f\n",
           (unsigned long long)w, (unsigned long long)rounds, secs, secs * 1e3 / (double)rounds,
           secs * 1e9 / (double)(2 * w * rounds), (unsigned long long)c.sum, spawn_secs);
    ds_rt_free(&rt);
    free(c.workers);
}

/* ---- spawn ---- */

typedef struct spawner {
    ds_actor_id_t *ids;
    uint64_t n;
} spawner_t;

static int idle_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    ds_bench_ping_t p;
    if (ds_bench_ping_decode(*msgp, &p) == 0) {
        send_u64(ctx, (*msgp)->from, mk_pong, p.k);
    }
    return 0;
}

static const ds_behaviour_t idle_b = {.name = "idle", .receive = idle_receive};

static int spawner_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    spawner_t *s = ds_ctx_state(ctx);
    if ((*msgp)->type == DS_MT_BENCH_PONG) {
        sem_post(&done_sem);
        return 0;
    }
    for (uint64_t i = 0; i < s->n; i++) {
        check("spawn", ds_spawn(ds_ctx_rt(ctx), &idle_b, NULL, NULL, &s->ids[i]));
    }
    send_u64(ctx, s->ids[s->n - 1], mk_ping, 1);
    return 0;
}

static const ds_behaviour_t spawner_b = {
    .name = "spawner", .init = state_init, .receive = spawner_receive};

static void bench_spawn(int argc, char **argv)
{
    uint64_t n = arg_u64(argc, argv, 2, 1000000);
    ds_rt_t *rt = rt_start();
    spawner_t s = {.n = n};
    s.ids = ds_xcalloc(n, sizeof(ds_actor_id_t));
    memset(s.ids, 0, n * sizeof(ds_actor_id_t)); /* pre-sized and touched, as the anchors do */
    ds_actor_id_t sp;
    check("spawn", ds_spawn(rt, &spawner_b, &s, NULL, &sp));
    ds_msg_t *m;
    check("encode", ds_bench_go_new(NULL, &m));
    double r0 = rss_mb();
    double t0 = now_s();
    send_from(rt, sp, m);
    wait_done();
    double secs = now_s() - t0;
    double grow = rss_mb() - r0;
    printf("RESULT spawn actors=%llu secs=%.6f ns_per_spawn=%.1f bytes_per_actor=%.1f\n",
           (unsigned long long)n, secs, secs * 1e9 / (double)n, grow * 1024.0 * 1024.0 / (double)n);
    ds_rt_free(&rt);
    free(s.ids);
}

/* ---- tenants ---- */

static atomic_uint tenants_left;
static _Atomic uint64_t tenants_deferred;

typedef struct sender {
    ds_actor_id_t *recv;
    uint32_t t;
    uint64_t batches, batch; /* batches to do, the current one */
    uint32_t pos;            /* next receiver in the current batch */
} sender_t;

typedef struct receiver {
    uint64_t got, want, sum;
} receiver_t;

static int sender_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    sender_t *s = ds_ctx_state(ctx);
    (void)msgp;
    /* One batch (or the rest of one that a full mailbox cut short) per turn, then yield by
     * sending ourselves BATCH. A refused send is retried from the same receiver next turn. */
    while (s->pos < s->t) {
        ds_msg_t *m;
        check("encode", mk_msg(1, &m));
        int rc = ds_send(ctx, s->recv[s->pos], &m);
        if (rc == DS_EFULL || rc == DS_ECAP) {
            ds_msg_free(&m);
            atomic_fetch_add_explicit(&tenants_deferred, 1, memory_order_relaxed);
            break;
        }
        check("send", rc);
        s->pos++;
    }
    if (s->pos == s->t) {
        s->pos = 0;
        s->batch++;
    }
    if (s->batch < s->batches) {
        send_empty_self(ctx, mk_batch);
    }
    return 0;
}

static int receiver_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    receiver_t *r = ds_ctx_state(ctx);
    ds_bench_msg_t m;
    check("decode", ds_bench_msg_decode(*msgp, &m));
    r->sum += m.x;
    if (++r->got == r->want && atomic_fetch_sub(&tenants_left, 1) == 1) {
        sem_post(&done_sem);
    }
    return 0;
}

static const ds_behaviour_t sender_b = {
    .name = "sender", .init = state_init, .receive = sender_receive};
static const ds_behaviour_t receiver_b = {
    .name = "receiver", .init = state_init, .receive = receiver_receive};

static void bench_tenants(int argc, char **argv)
{
    uint32_t t = (uint32_t)arg_u64(argc, argv, 2, 1000);
    uint64_t msgs = arg_u64(argc, argv, 3, 10000);
    uint32_t ns = (uint32_t)arg_u64(argc, argv, 4, 4);
    ds_rt_t *rt = rt_start();
    ds_actor_id_t *recv = ds_xcalloc(t, sizeof(*recv));
    receiver_t *rs = ds_xcalloc(t, sizeof(*rs));
    for (uint32_t i = 0; i < t; i++) {
        /* One tenant per receiver, standard plan limits: 1,024 queued messages an actor. */
        ds_spawn_opts_t o = {.group = tenant(rt, 1, 1024, 64u << 20)};
        rs[i].want = msgs;
        check("spawn", ds_spawn(rt, &receiver_b, &rs[i], &o, &recv[i]));
    }
    sender_t *ss = ds_xcalloc(ns, sizeof(*ss));
    ds_actor_id_t *sid = ds_xcalloc(ns, sizeof(*sid));
    for (uint32_t i = 0; i < ns; i++) {
        ss[i] = (sender_t){.recv = recv, .t = t, .batches = msgs / ns};
        check("spawn", ds_spawn(rt, &sender_b, &ss[i], NULL, &sid[i]));
    }
    atomic_store(&tenants_left, t);
    double r0 = rss_mb();
    double t0 = now_s();
    for (uint32_t i = 0; i < ns; i++) {
        ds_msg_t *m;
        check("encode", ds_bench_batch_new(NULL, &m));
        send_from(rt, sid[i], m);
    }
    wait_done();
    double secs = now_s() - t0;
    double total = (double)t * (double)msgs;
    printf("RESULT tenants receivers=%u senders=%u msgs=%.0f secs=%.6f msgs_per_s=%.0f "
           "ns_per_msg=%.1f rss_growth_mb=%.1f deferred=%llu\n",
           t, ns, total, secs, total / secs, secs * 1e9 / total, rss_mb() - r0,
           (unsigned long long)atomic_load(&tenants_deferred));
    ds_rt_free(&rt);
    free(recv);
    free(rs);
    free(ss);
    free(sid);
}

/* ---- noisy neighbour ---- */

static atomic_bool flood_stop;
static _Atomic uint64_t sink_count;
static atomic_uint quiet_left;

typedef struct qpair {
    ds_actor_id_t echo;
    uint64_t rounds;
} qpair_t;

static int quiet_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    qpair_t *q = ds_ctx_state(ctx);
    const ds_msg_t *m = *msgp;
    if (m->type == DS_MT_BENCH_START) {
        send_u64(ctx, q->echo, mk_ping, 1);
        return 0;
    }
    ds_bench_pong_t p;
    check("decode", ds_bench_pong_decode(m, &p));
    if (p.k == q->rounds) {
        if (atomic_fetch_sub(&quiet_left, 1) == 1) {
            sem_post(&done_sem);
        }
    } else {
        send_u64(ctx, q->echo, mk_ping, p.k + 1);
    }
    return 0;
}

static int flooder_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    const ds_actor_id_t *sink = ds_ctx_state(ctx);
    (void)msgp;
    if (atomic_load_explicit(&flood_stop, memory_order_relaxed)) {
        return 0;
    }
    for (uint64_t i = 0; i < 1000; i++) {
        ds_msg_t *m;
        check("encode", mk_noise(i, &m));
        if (ds_send(ctx, *sink, &m) < 0) {
            ds_msg_free(&m); /* refused: dropped, and counted by the runtime */
        }
    }
    send_empty_self(ctx, mk_flood);
    return 0;
}

static int sink_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    (void)ctx;
    (void)msgp;
    atomic_store_explicit(&sink_count, atomic_load_explicit(&sink_count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    return 0;
}

static const ds_behaviour_t quiet_b = {
    .name = "quiet", .init = state_init, .receive = quiet_receive};
static const ds_behaviour_t flooder_b = {
    .name = "flooder", .init = state_init, .receive = flooder_receive};
static const ds_behaviour_t sink_b = {.name = "sink", .receive = sink_receive};

static void bench_noisy(int argc, char **argv)
{
    uint64_t mode = arg_u64(argc, argv, 2, 1);
    uint32_t q = (uint32_t)arg_u64(argc, argv, 3, 100);
    uint64_t rounds = arg_u64(argc, argv, 4, 10000);
    uint32_t f = (uint32_t)arg_u64(argc, argv, 5, 4);
    ds_rt_t *rt = rt_start();
    /* Every tenant has the same weight and the same (standard plan) limits. */
    uint32_t noisy = tenant(rt, 1, 1024, 64u << 20);
    ds_spawn_opts_t no = {.group = noisy};
    ds_actor_id_t sink;
    check("spawn", ds_spawn(rt, &sink_b, NULL, &no, &sink));
    ds_actor_id_t *fl = ds_xcalloc(f, sizeof(*fl));
    for (uint32_t i = 0; i < f; i++) {
        check("spawn", ds_spawn(rt, &flooder_b, &sink, &no, &fl[i]));
    }
    qpair_t *qs = ds_xcalloc(q, sizeof(*qs));
    ds_actor_id_t *pingers = ds_xcalloc(q, sizeof(*pingers));
    for (uint32_t i = 0; i < q; i++) {
        ds_spawn_opts_t qo = {.group = tenant(rt, 1, 1024, 64u << 20)};
        check("spawn", ds_spawn(rt, &ponger_b, NULL, &qo, &qs[i].echo));
        qs[i].rounds = rounds;
        check("spawn", ds_spawn(rt, &quiet_b, &qs[i], &qo, &pingers[i]));
    }
    atomic_store(&quiet_left, q);
    double r0 = rss_mb();
    if (mode == 1) {
        for (uint32_t i = 0; i < f; i++) {
            ds_msg_t *m;
            check("encode", ds_bench_flood_new(NULL, &m));
            send_from(rt, fl[i], m);
        }
    }
    double t0 = now_s();
    for (uint32_t i = 0; i < q; i++) {
        ds_msg_t *m;
        check("encode", ds_bench_start_new(&(ds_bench_start_t){.n = rounds}, &m));
        send_from(rt, pingers[i], m);
    }
    wait_done();
    double secs = now_s() - t0;
    double grow = rss_mb() - r0;
    atomic_store(&flood_stop, true);
    if (getenv("DS_BENCH_VERBOSE") != NULL) { // NOLINT(concurrency-mt-unsafe): read-only env
        for (uint32_t gi = 0; gi <= noisy + q; gi++) {
            ds_group_metrics_t v;
            if (ds_group_metrics(rt, gi, &v) == 0) {
                (void)fprintf(stderr,
                              "group %u delivered=%llu turns=%llu cpu_ms=%.2f refused=%llu\n", gi,
                              (unsigned long long)v.delivered, (unsigned long long)v.turns,
                              (double)v.cpu_ns / 1e6, (unsigned long long)v.refused);
            }
        }
    }
    ds_group_metrics_t gm;
    check("metrics", ds_group_metrics(rt, noisy, &gm));
    printf("RESULT noisy mode=%llu quiet_pairs=%u rounds=%llu quiet_secs=%.6f "
           "quiet_ns_per_msg=%.1f noisy_msgs_done=%llu sink_backlog_mb=%.1f refused=%llu\n",
           (unsigned long long)mode, q, (unsigned long long)rounds, secs,
           secs * 1e9 / (2.0 * q * (double)rounds), (unsigned long long)atomic_load(&sink_count),
           grow, (unsigned long long)gm.refused);
    ds_rt_free(&rt);
    free(fl);
    free(qs);
    free(pingers);
}

/* ---- fairness: three saturated groups, weights 1, 3, 10 ---- */

static atomic_bool spin_stop;

static int spin_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    ds_bench_spin_t s;
    check("decode", ds_bench_spin_decode(*msgp, &s));
    int64_t end = ds_clock_now() + (int64_t)s.ns;
    while (ds_clock_now() < end) {
    }
    if (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) {
        send_u64(ctx, ds_self(ctx), mk_spin, s.ns);
    }
    return 0;
}

static const ds_behaviour_t spin_b = {.name = "spin", .receive = spin_receive};

static void bench_fairness(int argc, char **argv)
{
    uint64_t secs = arg_u64(argc, argv, 2, 10);
    ds_rt_t *rt = rt_start();
    const uint32_t weights[3] = {1, 3, 10};
    enum {
        PER_GROUP = 4
    };
    uint32_t g[3];
    ds_actor_id_t ids[3][PER_GROUP];
    for (int i = 0; i < 3; i++) {
        g[i] = tenant(rt, weights[i], 1024, 64u << 20);
    }
    /* Interleaved spawns: each worker gets actors of every group. */
    for (int k = 0; k < PER_GROUP; k++) {
        for (int i = 0; i < 3; i++) {
            ds_spawn_opts_t o = {.group = g[i]};
            check("spawn", ds_spawn(rt, &spin_b, NULL, &o, &ids[i][k]));
        }
    }
    for (int k = 0; k < PER_GROUP; k++) {
        for (int i = 0; i < 3; i++) {
            ds_msg_t *m;
            check("encode", mk_spin(50000, &m));
            send_from(rt, ids[i][k], m);
        }
    }
    usleep(200000); /* warm up, then measure a window */
    uint64_t c0[3], c1[3];
    for (int i = 0; i < 3; i++) {
        ds_group_metrics_t gm;
        check("metrics", ds_group_metrics(rt, g[i], &gm));
        c0[i] = gm.cpu_ns;
    }
    struct timespec ts = {.tv_sec = (time_t)secs};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    double total = 0, share[3];
    for (int i = 0; i < 3; i++) {
        ds_group_metrics_t gm;
        check("metrics", ds_group_metrics(rt, g[i], &gm));
        c1[i] = gm.cpu_ns - c0[i];
        total += (double)c1[i];
    }
    atomic_store(&spin_stop, true);
    for (int i = 0; i < 3; i++) {
        share[i] = (double)c1[i] / total;
    }
    printf("RESULT fairness secs=%llu share_w1=%.4f share_w3=%.4f share_w10=%.4f\n",
           (unsigned long long)secs, share[0], share[1], share[2]);
    ds_rt_free(&rt);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        (void)fprintf(stderr, "usage: bench_actors pingpong|threadring|fanout|spawn|tenants|noisy|"
                              "fairness [ints...]\n");
        return 2;
    }
    check("catalog", ds_bench_msgs_register());
    sem_init(&done_sem, 0, 0);
    const char *b = argv[1];
    if (strcmp(b, "pingpong") == 0) {
        bench_pingpong(argc, argv);
    } else if (strcmp(b, "threadring") == 0) {
        bench_threadring(argc, argv);
    } else if (strcmp(b, "fanout") == 0) {
        bench_fanout(argc, argv);
    } else if (strcmp(b, "spawn") == 0) {
        bench_spawn(argc, argv);
    } else if (strcmp(b, "tenants") == 0) {
        bench_tenants(argc, argv);
    } else if (strcmp(b, "noisy") == 0) {
        bench_noisy(argc, argv);
    } else if (strcmp(b, "fairness") == 0) {
        bench_fairness(argc, argv);
    } else {
        (void)fprintf(stderr, "bench_actors: unknown bench '%s'\n", b);
        return 2;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
