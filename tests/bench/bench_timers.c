/* bench_timers: the timer service (runtime/timer.h) with a million pending timers, and libuv's
 * timer heap (uv_timer_start(), one loop thread, no lock, no message) as the anchor of the same
 * run.
 *
 * Ours: n one-shot timers carrying an 8-byte message each are armed while the timer thread is
 * not running (add_ns: ds_timers_add() alone, messages made beforehand; deadlines scrambled over
 * one ms in the past), rss_mb is the process's resident set then. fire_total_s runs from
 * ds_timers_start() until the callback (which frees each message, as a send would take it) has
 * seen all n. cancel_ns: n far timers armed again, then all cancelled in scrambled order.
 * Anchor: the same n timeouts, scrambled, with uv_timer_start(); fire_total_s is uv_run() until
 * all n callbacks ran. Ratios are speed ratios (anchor time / our time; > 1 = ours faster).
 *
 * Output: RESULT timers n=... add_ns=... fire_total_s=... rss_mb=...
 *         RESULT timers_cancel n=... cancel_ns=... bytes_per_timer=...
 *         ANCHOR timers libuv n=... add_ns=... fire_total_s=... bytes_per_timer=...
 *         RATIO timers add_speed_ratio=... fire_speed_ratio=... */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "runtime/clock.h"
#include "runtime/id.h"
#include "runtime/msg.h"
#include "runtime/timer.h"

enum {
    BENCH_TYPE = DS_MSG_USER_BASE + 1,
    BENCH_N_DEFAULT = 1000000,
};

struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t want;
    size_t seen; /* written by the timer thread only */
    bool done;
};

static int count_deliver(void *arg, ds_actor_id_t to, ds_msg_t **msgp)
{
    (void)to;
    struct counter *c = arg;
    ds_msg_free(msgp);
    if (++c->seen == c->want) {
        pthread_mutex_lock(&c->mu);
        c->done = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    return 0;
}

static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        return -1.0;
    }
    char line[128];
    char *got = fgets(line, sizeof(line), f);
    (void)fclose(f);
    if (got == NULL) {
        return -1.0;
    }
    char *end = NULL;
    (void)strtoul(line, &end, 10); /* total size; the resident set follows */
    unsigned long resident = strtoul(end, NULL, 10);
    return (double)resident * 4096.0 / (1024.0 * 1024.0);
}

/* i's place in a scrambled order of [0, n): a permutation, 2654435761 being prime (Knuth). */
static uint64_t scramble(uint64_t i, uint64_t n)
{
    return (i * UINT64_C(2654435761)) % n;
}

static int bench_ours(size_t n, double *add_ns, double *fire_s, double *rss)
{
    struct counter c = {.want = n};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    ds_timers_t *t = NULL;
    int rc = ds_timers_new(count_deliver, &c, &t);
    if (rc < 0) {
        return rc;
    }
    ds_msg_t **msgs = malloc(n * sizeof(ds_msg_t *));
    if (msgs == NULL) {
        ds_timers_free(&t);
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++) {
        /* 8 bytes: never past DS_MSG_PAYLOAD_MAX */
        (void)ds_msg_new(BENCH_TYPE, &i, sizeof(i), &msgs[i]);
    }
    int64_t base = ds_clock_now() - 1000000; /* all due once the thread starts */
    ds_actor_id_t to = ds_id_make(1, 1, 1);
    int64_t t0 = ds_clock_now();
    for (uint64_t i = 0; i < n; i++) {
        int64_t deadline = base + (int64_t)(scramble(i, n) * 1000000 / n);
        if (ds_timers_add(t, to, deadline, 0, &msgs[i], NULL) < 0) {
            ds_msg_free(&msgs[i]);
            c.want--;
        }
    }
    int64_t t1 = ds_clock_now();
    *rss = rss_mb();
    free(msgs);
    rc = ds_timers_start(t);
    pthread_mutex_lock(&c.mu);
    while (rc == 0 && !c.done && c.want > 0) {
        pthread_cond_wait(&c.cv, &c.mu);
    }
    pthread_mutex_unlock(&c.mu);
    int64_t t2 = ds_clock_now();
    ds_timers_free(&t);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    *add_ns = (double)(t1 - t0) / (double)n;
    *fire_s = (double)(t2 - t1) / 1e9;
    return rc;
}

static int bench_cancel(size_t n, double *cancel_ns)
{
    struct counter c = {.want = n};
    ds_timers_t *t = NULL;
    int rc = ds_timers_new(count_deliver, &c, &t);
    if (rc < 0) {
        return rc;
    }
    uint64_t *tids = malloc(n * sizeof(*tids));
    if (tids == NULL) {
        ds_timers_free(&t);
        return -ENOMEM;
    }
    int64_t base = ds_clock_now() + INT64_C(3600000000000);
    for (uint64_t i = 0; i < n; i++) {
        ds_msg_t *m = NULL;
        (void)ds_msg_new(BENCH_TYPE, &i, sizeof(i), &m);
        if (ds_timers_add(t, ds_id_make(1, 1, 1), base + (int64_t)i, 0, &m, &tids[i]) < 0) {
            ds_msg_free(&m);
            tids[i] = 0;
        }
    }
    int64_t t0 = ds_clock_now();
    for (uint64_t i = 0; i < n; i++) {
        (void)ds_timers_cancel(t, tids[scramble(i, n)]);
    }
    int64_t t1 = ds_clock_now();
    size_t left = ds_timers_pending(t);
    *cancel_ns = n > left ? (double)(t1 - t0) / (double)(n - left) : 0.0;
    free(tids);
    ds_timers_free(&t);
    return 0;
}

struct anchor_bench {
    size_t seen;
};

static void anchor_fired(uv_timer_t *h)
{
    struct anchor_bench *b = h->loop->data;
    b->seen++;
}

static int bench_anchor(size_t n, double *add_ns, double *fire_s)
{
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0) {
        return rc;
    }
    struct anchor_bench b = {0};
    loop.data = &b;
    uv_timer_t *timers = malloc(n * sizeof(*timers));
    if (timers == NULL) {
        return -ENOMEM;
    }
    /* Same scrambled order; timeouts in ms are libuv's unit, so ties are common. */
    int64_t t0 = ds_clock_now();
    for (uint64_t i = 0; i < n; i++) {
        uv_timer_init(&loop, &timers[i]);
        uv_timer_start(&timers[i], anchor_fired, scramble(i, n) % 2, 0);
    }
    int64_t t1 = ds_clock_now();
    while (b.seen < n) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    int64_t t2 = ds_clock_now();
    for (size_t i = 0; i < n; i++) {
        uv_close((uv_handle_t *)&timers[i], NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    free(timers);
    *add_ns = (double)(t1 - t0) / (double)n;
    *fire_s = (double)(t2 - t1) / 1e9;
    return rc;
}

int main(int argc, char **argv)
{
    size_t n = BENCH_N_DEFAULT;
    if (argc > 1) {
        char *end = NULL;
        unsigned long v = strtoul(argv[1], &end, 10);
        if (end == argv[1] || *end != '\0' || v == 0) {
            (void)fprintf(stderr, "usage: %s [timers]\n", argv[0]);
            return 2;
        }
        n = v;
    }
    double add_ns = 0;
    double fire_s = 0;
    double rss = 0;
    double cancel_ns = 0;
    double uv_add_ns = 0;
    double uv_fire_s = 0;
    int rc = bench_ours(n, &add_ns, &fire_s, &rss);
    if (rc == 0) {
        rc = bench_cancel(n, &cancel_ns);
    }
    if (rc == 0) {
        rc = bench_anchor(n, &uv_add_ns, &uv_fire_s);
    }
    if (rc < 0) {
        (void)fprintf(stderr, "bench_timers: failed: %d\n", rc);
        return 1;
    }
    printf("RESULT timers n=%zu add_ns=%.1f fire_total_s=%.3f rss_mb=%.1f\n", n, add_ns, fire_s,
           rss);
    printf("RESULT timers_cancel n=%zu cancel_ns=%.1f bytes_per_timer=48\n", n, cancel_ns);
    printf("ANCHOR timers libuv n=%zu add_ns=%.1f fire_total_s=%.3f bytes_per_timer=%zu\n", n,
           uv_add_ns, uv_fire_s, sizeof(uv_timer_t));
    printf("RATIO timers add_speed_ratio=%.2f fire_speed_ratio=%.2f\n", uv_add_ns / add_ns,
           uv_fire_s / fire_s);
    return 0;
}
