/* test_ask: asks and replies (runtime/rt.h): an ask gets exactly one of the reply, an error reply
 * or a timeout, with the ask's corr; late replies are dropped; a receiver that crashes answers
 * the asks it still held with DS_ECRASHED. Waits are bounded only to catch a hang. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/catalog.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "tests/unit/rt_helpers.h"

/* An asker: on T_GO(to, timeout_ms) it asks `to` a T_ASK carrying the count of its asks so far,
 * and keeps each corr in aux[k] (k < 4) and the result of ds_ask() in aux[3] when it fails. */
static int asker_handle(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    const ds_msg_t *m = *msgp;
    if (m->type != T_GO) {
        return 0;
    }
    uintptr_t k = (uintptr_t)t->user;
    ds_msg_t *q = mk(T_ASK, 10 * (k + 1));
    uint64_t corr = 0;
    int rc = ds_ask(ctx, (ds_actor_id_t){u64_at(m, 0)}, &q, (int64_t)u64_at(m, 1) * MS, &corr);
    if (rc != 0) {
        ds_msg_free(&q);
        atomic_store(&t->aux[3], (uint64_t)(int64_t)rc);
        return 0;
    }
    if (k < 3) {
        atomic_store(&t->aux[k], corr);
    }
    t->user = (void *)(k + 1);
    return 0;
}

static void go_ask(ds_rt_t *rt, ds_actor_id_t asker, ds_actor_id_t to, uint64_t timeout_ms)
{
    ds_msg_t *m = mk2(T_GO, to.v, timeout_ms, true);
    assert_int_equal(ds_send_from(rt, asker, &m), 0);
}

/* Replies to T_ASK with T_ANSWER(value + 1). */
static int echo_handle(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    (void)t;
    if ((*msgp)->type == T_ASK) {
        ds_msg_t *r = mk(T_ANSWER, u64_at(*msgp, 0) + 1);
        if (ds_reply(ctx, *msgp, &r) != 0) {
            ds_msg_free(&r);
        }
    }
    return 0;
}

static void test_reply_once(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *echo = tactor_new();
    echo->handle = echo_handle;
    tactor_t *a = tactor_new();
    a->handle = asker_handle;
    ds_actor_id_t eid = spawn_t(rt, echo, NULL);
    ds_actor_id_t aid = spawn_t(rt, a, NULL);

    /* Three asks in flight at once, each with a short timeout. */
    for (int i = 0; i < 3; i++) {
        go_ask(rt, aid, eid, 50);
    }
    WAIT_FOR(tactor_count(a, T_ANSWER) == 3);
    uint64_t corr[3];
    for (int i = 0; i < 3; i++) {
        corr[i] = atomic_load(&a->aux[i]);
        assert_int_not_equal(corr[i], 0);
        for (int j = 0; j < i; j++) {
            assert_int_not_equal(corr[i], corr[j]);
        }
    }
    /* Each reply names its ask, and answers that ask's value. */
    for (size_t i = 0; i < 3; i++) {
        rec_ev_t e;
        assert_true(tactor_get(a, T_ANSWER, i, &e));
        int k = -1;
        for (int j = 0; j < 3; j++) {
            if (e.corr == corr[j]) {
                k = j;
            }
        }
        assert_true(k >= 0);
        assert_int_equal(e.a, 10 * (uint64_t)(k + 1) + 1);
        assert_int_equal(e.flags & (DS_MSG_F_REPLY | DS_MSG_F_ERROR), DS_MSG_F_REPLY);
        assert_true(ds_id_eq(e.from, eid));
    }
    /* The requests carried the ask's flag and corr. */
    for (size_t i = 0; i < 3; i++) {
        rec_ev_t e;
        assert_true(tactor_get(echo, T_ASK, i, &e));
        assert_true((e.flags & DS_MSG_F_ASK) != 0);
        assert_true(ds_id_eq(e.from, aid));
    }
    /* Well past the timeouts: none fired, nothing else came. */
    usleep(200000);
    assert_int_equal(send_out(rt, aid, T_PROBE, 0), 0);
    WAIT_FOR(tactor_count(a, T_PROBE) == 1);
    assert_int_equal(tactor_count(a, DS_MT_TIMEOUT), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tactor_count_corr(a, corr[i]), 1);
    }
    assert_int_equal(tactor_count(a, 0), 3 + 3 + 1); /* 3 T_GO, 3 answers, the probe */
    ds_rt_free(&rt);
    tactor_free(&echo);
    tactor_free(&a);
}

static void test_timeout_once(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *silent = tactor_new();
    tactor_t *a = tactor_new();
    a->handle = asker_handle;
    ds_actor_id_t sid = spawn_t(rt, silent, NULL);
    ds_actor_id_t aid = spawn_t(rt, a, NULL);
    go_ask(rt, aid, sid, 10);
    WAIT_FOR(tactor_count(a, DS_MT_TIMEOUT) == 1);
    uint64_t corr = atomic_load(&a->aux[0]);
    rec_ev_t e;
    assert_true(tactor_get(a, DS_MT_TIMEOUT, 0, &e));
    assert_int_equal(e.corr, corr);
    assert_true((e.flags & DS_MSG_F_SYSTEM) != 0);
    assert_true(ds_id_eq(e.from, sid));
    assert_int_equal(tactor_count(silent, T_ASK), 1);
    usleep(100000);
    assert_int_equal(send_out(rt, aid, T_PROBE, 0), 0);
    WAIT_FOR(tactor_count(a, T_PROBE) == 1);
    assert_int_equal(tactor_count(a, DS_MT_TIMEOUT), 1);
    assert_int_equal(tactor_count_corr(a, corr), 1);

    /* An ask to nobody fails at once: no reply and no timeout will come. */
    tactor_t *d = tactor_basic_new();
    ds_actor_id_t did = spawn_t(rt, d, NULL);
    assert_int_equal(send_out(rt, did, T_STOP, 0), 0);
    WAIT_FOR(atomic_load(&d->terminated) == 1);
    WAIT_FOR(send_out(rt, did, T_PING, 0) == DS_ENOACTOR);
    go_ask(rt, aid, did, 1);
    WAIT_FOR(atomic_load(&a->aux[3]) != 0);
    assert_int_equal((int)(int64_t)atomic_load(&a->aux[3]), DS_ENOACTOR);
    usleep(50000);
    assert_int_equal(send_out(rt, aid, T_PROBE, 1), 0);
    WAIT_FOR(tactor_count(a, T_PROBE) == 2);
    assert_int_equal(tactor_count(a, DS_MT_TIMEOUT), 1);
    ds_rt_free(&rt);
    tactor_free(&silent);
    tactor_free(&a);
    tactor_free(&d);
}

/* Holds the T_ASK it gets; on T_GO answers it, then sends T_PROBE to the asker (so that the
 * asker has handled the late reply when it handles the probe). */
static int late_handle(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    if ((*msgp)->type == T_ASK) {
        t->user = *msgp;
        *msgp = NULL;
    } else if ((*msgp)->type == T_GO && t->user != NULL) {
        ds_msg_t *req = t->user;
        t->user = NULL;
        ds_msg_t *r = mk(T_ANSWER, 1);
        int rc = ds_reply(ctx, req, &r);
        ds_msg_free(&r);
        atomic_store(&t->aux[0], (uint64_t)(int64_t)rc);
        atomic_store(&t->aux[1], (uint64_t)(int64_t)send_in(ctx, req->from, T_PROBE, 0));
        atomic_store(&t->aux[2], 1);
        ds_msg_free(&req);
    }
    return 0;
}

static void test_late_reply_dropped(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *late = tactor_new();
    late->handle = late_handle;
    tactor_t *a = tactor_new();
    a->handle = asker_handle;
    ds_actor_id_t lid = spawn_t(rt, late, NULL);
    ds_actor_id_t aid = spawn_t(rt, a, NULL);
    go_ask(rt, aid, lid, 10);
    WAIT_FOR(tactor_count(a, DS_MT_TIMEOUT) == 1);
    assert_int_equal(send_out(rt, lid, T_GO, 0), 0);
    WAIT_FOR(atomic_load(&late->aux[2]) == 1);
    assert_int_equal((int)(int64_t)atomic_load(&late->aux[0]), 0); /* delivered, then dropped */
    assert_int_equal((int)(int64_t)atomic_load(&late->aux[1]), 0);
    WAIT_FOR(tactor_count(a, T_PROBE) == 1);
    assert_int_equal(tactor_count(a, T_ANSWER), 0);
    assert_int_equal(tactor_count_corr(a, atomic_load(&a->aux[0])), 1);
    ds_rt_free(&rt);
    tactor_free(&late);
    tactor_free(&a);
}

/* ---- a receiver that crashes with asks queued ---- */

enum {
    QUEUED_ASKS = 5
};

/* A one-shot asker: its setup asks the actor in aux[0] a T_ASK (T_CRASH when aux[1] is set)
 * with the timeout in aux[2] (ms), and keeps the corr in aux[3]. */
static int oneshot_setup(ds_ctx_t *ctx, tactor_t *t)
{
    ds_msg_t *q = mk(atomic_load(&t->aux[1]) != 0 ? T_CRASH : T_ASK, (uint64_t)(int64_t)-EIO);
    uint64_t corr = 0;
    int rc = ds_ask(ctx, (ds_actor_id_t){atomic_load(&t->aux[0])}, &q,
                    (int64_t)atomic_load(&t->aux[2]) * MS, &corr);
    if (rc != 0) {
        ds_msg_free(&q);
        return rc;
    }
    atomic_store(&t->aux[3], corr);
    return 0;
}

typedef struct crash_setup {
    tactor_t *inflight;            /* asks the T_CRASH that the target fails on */
    tactor_t *queued[QUEUED_ASKS]; /* ask behind it */
} crash_setup_t;

/* The target's setup, before it can run: the askers' asks queue up in its mailbox. */
static int target_setup(ds_ctx_t *ctx, tactor_t *t)
{
    crash_setup_t *cs = t->user;
    ds_actor_id_t self = ds_self(ctx);
    ds_actor_id_t id;
    atomic_store(&cs->inflight->aux[0], self.v);
    atomic_store(&cs->inflight->aux[1], 1);
    atomic_store(&cs->inflight->aux[2], 300);
    int rc = ds_spawn(ds_ctx_rt(ctx), &tactor_beh, cs->inflight, NULL, &id);
    for (int i = 0; i < QUEUED_ASKS && rc == 0; i++) {
        atomic_store(&cs->queued[i]->aux[0], self.v);
        atomic_store(&cs->queued[i]->aux[2], 60000); /* a timeout would hang the test */
        rc = ds_spawn(ds_ctx_rt(ctx), &tactor_beh, cs->queued[i], NULL, &id);
    }
    return rc;
}

static void test_crash_answers_queued_asks(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    crash_setup_t cs;
    cs.inflight = tactor_new();
    cs.inflight->setup = oneshot_setup;
    for (int i = 0; i < QUEUED_ASKS; i++) {
        cs.queued[i] = tactor_new();
        cs.queued[i]->setup = oneshot_setup;
    }
    tactor_t *target = tactor_basic_new(); /* fails on T_CRASH with its u64 */
    target->setup = target_setup;
    target->user = &cs;
    ds_actor_id_t tid = spawn_t(rt, target, NULL);

    WAIT_FOR(atomic_load(&target->terminated) == 1);
    assert_int_equal(atomic_load(&target->reason), -EIO);
    assert_int_equal(tactor_count(target, T_CRASH), 1);
    assert_int_equal(tactor_count(target, T_ASK), 0);
    for (int i = 0; i < QUEUED_ASKS; i++) {
        tactor_t *q = cs.queued[i];
        WAIT_FOR(tactor_count(q, 0) == 1);
        rec_ev_t e;
        assert_true(tactor_get(q, 0, 0, &e));
        assert_int_equal(e.corr, atomic_load(&q->aux[3]));
        assert_int_equal(e.flags & (DS_MSG_F_REPLY | DS_MSG_F_ERROR),
                         DS_MSG_F_REPLY | DS_MSG_F_ERROR);
        assert_int_equal(e.err, DS_ECRASHED);
        assert_true(ds_id_eq(e.from, tid));
    }
    /* The ask it crashed on gets exactly one answer too (an error reply or its timeout). */
    WAIT_FOR(tactor_count(cs.inflight, 0) == 1);
    rec_ev_t e;
    assert_true(tactor_get(cs.inflight, 0, 0, &e));
    assert_int_equal(e.corr, atomic_load(&cs.inflight->aux[3]));
    assert_true(e.type == DS_MT_TIMEOUT || e.err == DS_ECRASHED);
    usleep(400000); /* past its timeout: no second answer */
    for (int i = 0; i < QUEUED_ASKS; i++) {
        assert_int_equal(send_out(rt, tactor_id(cs.queued[i]), T_PROBE, 0), 0);
        WAIT_FOR(tactor_count(cs.queued[i], T_PROBE) == 1);
        assert_int_equal(tactor_count(cs.queued[i], 0), 2);
    }
    assert_int_equal(send_out(rt, tactor_id(cs.inflight), T_PROBE, 0), 0);
    WAIT_FOR(tactor_count(cs.inflight, T_PROBE) == 1);
    assert_int_equal(tactor_count(cs.inflight, 0), 2);

    ds_rt_free(&rt);
    tactor_free(&target);
    tactor_free(&cs.inflight);
    for (int i = 0; i < QUEUED_ASKS; i++) {
        tactor_free(&cs.queued[i]);
    }
}

/* ---- error replies and replies from outside ---- */

/* Answers T_ASK with ds_reply_error(-EACCES); T_CRASH asks are handed to the test (user). */
static int refuse_handle(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    if ((*msgp)->type == T_ASK) {
        atomic_store(&t->aux[0], (uint64_t)(int64_t)ds_reply_error(ctx, *msgp, -EACCES));
        /* Not an ask: refused. */
        ds_msg_t *plain = mk(T_PING, 0);
        atomic_store(&t->aux[1], (uint64_t)(int64_t)ds_reply(ctx, plain, &plain));
        ds_msg_free(&plain);
    } else if ((*msgp)->type == T_CRASH) {
        atomic_store(&t->aux[2], (uint64_t)(uintptr_t)*msgp);
        *msgp = NULL;
    }
    return 0;
}

static void test_reply_error_and_from_outside(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *r = tactor_new();
    r->handle = refuse_handle;
    ds_actor_id_t rid = spawn_t(rt, r, NULL);
    tactor_t *a = tactor_new();
    a->handle = asker_handle;
    ds_actor_id_t aid = spawn_t(rt, a, NULL);
    go_ask(rt, aid, rid, 60000);
    WAIT_FOR(tactor_count(a, DS_MT_ERROR) == 1);
    rec_ev_t e;
    assert_true(tactor_get(a, DS_MT_ERROR, 0, &e));
    assert_int_equal(e.err, -EACCES);
    assert_int_equal(e.corr, atomic_load(&a->aux[0]));
    assert_int_equal(e.flags & (DS_MSG_F_REPLY | DS_MSG_F_ERROR), DS_MSG_F_REPLY | DS_MSG_F_ERROR);
    assert_int_equal((int)(int64_t)atomic_load(&r->aux[0]), 0);
    assert_int_equal((int)(int64_t)atomic_load(&r->aux[1]), -EINVAL);

    /* A transport's thread kept the request and answers it with ds_reply_from(). */
    tactor_t *b = tactor_new();
    b->setup = oneshot_setup;
    atomic_store(&b->aux[0], rid.v);
    atomic_store(&b->aux[1], 1); /* asks a T_CRASH, which r hands over */
    atomic_store(&b->aux[2], 60000);
    spawn_t(rt, b, NULL);
    WAIT_FOR(atomic_load(&r->aux[2]) != 0);
    ds_msg_t *req = (ds_msg_t *)(uintptr_t)atomic_load(&r->aux[2]);
    ds_msg_t *ans = mk(T_ANSWER, 77);
    assert_int_equal(ds_reply_from(rt, req, &ans), 0);
    assert_null(ans);
    ds_msg_free(&req);
    WAIT_FOR(tactor_count(b, T_ANSWER) == 1);
    assert_true(tactor_get(b, T_ANSWER, 0, &e));
    assert_int_equal(e.a, 77);
    assert_int_equal(e.corr, atomic_load(&b->aux[3]));
    assert_int_equal(e.flags & (DS_MSG_F_REPLY | DS_MSG_F_ERROR), DS_MSG_F_REPLY);
    ds_rt_free(&rt);
    tactor_free(&r);
    tactor_free(&a);
    tactor_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_once),
        cmocka_unit_test(test_timeout_once),
        cmocka_unit_test(test_late_reply_dropped),
        cmocka_unit_test(test_crash_answers_queued_asks),
        cmocka_unit_test(test_reply_error_and_from_outside),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
