/* test_registry: names and virtual actors (runtime/registry.h). Virtual actors count their
 * activations, messages and passivations in process-wide counters, reset by each test. Waits
 * are bounded only to catch a hang. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/catalog.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/msg.h"
#include "runtime/registry.h"
#include "runtime/rt.h"
#include "tests/unit/rt_helpers.h"

/* ---- a virtual actor ---- */

enum {
    SEEN_MAX = 64
};

typedef struct seen {
    uint32_t group;     /* from the ds_vkey_t */
    uint32_t ctx_group; /* the group it runs in */
    char key[32];
} seen_t;

static struct vstats {
    atomic_uint inits, msgs, terms;
    atomic_int last_reason;
    atomic_int fail_init; /* init returns this */
    pthread_mutex_t mu;
    seen_t seen[SEEN_MAX]; /* one per activation */
    size_t nseen;
} vs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void vstats_reset(void)
{
    atomic_store(&vs.inits, 0);
    atomic_store(&vs.msgs, 0);
    atomic_store(&vs.terms, 0);
    atomic_store(&vs.last_reason, 0);
    atomic_store(&vs.fail_init, 0);
    pthread_mutex_lock(&vs.mu);
    vs.nseen = 0;
    pthread_mutex_unlock(&vs.mu);
}

static int vact_init(ds_ctx_t *ctx, void *arg)
{
    const ds_vkey_t *vk = arg;
    int fail = atomic_load(&vs.fail_init);
    if (fail != 0) {
        return fail;
    }
    atomic_fetch_add(&vs.inits, 1);
    pthread_mutex_lock(&vs.mu);
    if (vs.nseen < SEEN_MAX) {
        seen_t *s = &vs.seen[vs.nseen++];
        s->group = vk->group;
        s->ctx_group = ds_ctx_group(ctx);
        size_t n = vk->len < sizeof(s->key) - 1 ? vk->len : sizeof(s->key) - 1;
        memcpy(s->key, vk->key, n);
        s->key[n] = '\0';
    }
    pthread_mutex_unlock(&vs.mu);
    return 0;
}

static int vact_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    (void)ctx;
    if ((*msgp)->type == T_CRASH) {
        return -EIO;
    }
    atomic_fetch_add(&vs.msgs, 1);
    return 0;
}

static void vact_terminate(ds_ctx_t *ctx, int reason)
{
    (void)ctx;
    atomic_store(&vs.last_reason, reason);
    atomic_fetch_add(&vs.terms, 1);
}

static const ds_behaviour_t vact_beh = {
    .name = "test.vact", .init = vact_init, .receive = vact_receive, .terminate = vact_terminate};

static uint32_t kind_up(ds_rt_t *rt, int64_t idle_ns)
{
    uint32_t k = UINT32_MAX;
    ds_kind_cfg_t kc = {.name = "test.vact", .behaviour = &vact_beh, .idle_ns = idle_ns};
    assert_int_equal(ds_kind_register(rt, &kc, &k), 0);
    return k;
}

static int send_key(ds_rt_t *rt, uint32_t kind, uint32_t group, const char *key, uint32_t type)
{
    ds_msg_t *m = mk(type, 0);
    int rc = ds_send_key(rt, kind, group, key, strlen(key), &m);
    ds_msg_free(&m);
    return rc;
}

static ds_actor_id_t lookup(ds_rt_t *rt, uint32_t kind, uint32_t group, const char *key)
{
    ds_actor_id_t id = DS_ID_NIL;
    assert_int_equal(ds_key_lookup(rt, kind, group, key, strlen(key), &id), 0);
    return id;
}

static void test_activates_once(void **state)
{
    (void)state;
    vstats_reset();
    ds_rt_t *rt = rt_up(2);
    uint32_t k = kind_up(rt, 0);
    ds_actor_id_t id;
    assert_int_equal(ds_key_lookup(rt, k, 0, "k1", 2, &id), -ENOENT);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(send_key(rt, k, 0, "k1", T_PING), 0);
    }
    WAIT_FOR(atomic_load(&vs.msgs) == 3);
    assert_int_equal(atomic_load(&vs.inits), 1);
    assert_int_equal(ds_registry_active(rt), 1);
    id = lookup(rt, k, 0, "k1");
    assert_int_equal(send_out(rt, id, T_PING, 0), 0); /* by id, too */
    WAIT_FOR(atomic_load(&vs.msgs) == 4);

    /* Errors. */
    ds_msg_t *m = mk(T_PING, 0);
    assert_int_equal(ds_send_key(rt, k + 1, 0, "k1", 2, &m), -EINVAL);
    static char big[DS_KEY_MAX + 1];
    assert_int_equal(ds_send_key(rt, k, 0, big, sizeof(big), &m), -EINVAL);
    assert_non_null(m);
    ds_msg_free(&m);
    uint32_t k2;
    assert_int_equal(ds_kind_register(rt, &(ds_kind_cfg_t){.name = "x"}, &k2), -EINVAL);
    assert_int_equal(
        ds_kind_register(rt, &(ds_kind_cfg_t){.behaviour = &vact_beh, .idle_ns = -1}, &k2),
        -EINVAL);
    ds_rt_free(&rt);
    assert_int_equal(atomic_load(&vs.terms), 1);
}

/* ---- concurrent first sends ---- */

enum {
    HOT_THREADS = 8,
    HOT_SENDS = 500, /* each, to the shared key */
    OWN_SENDS = 100, /* each, to its own key */
};

typedef struct hot {
    ds_rt_t *rt;
    uint32_t kind;
    int no;
    atomic_int *start;
    atomic_uint *errors;
} hot_t;

static void *hot_main(void *arg)
{
    hot_t *h = arg;
    char own[16];
    (void)snprintf(own, sizeof(own), "own.%d", h->no);
    while (!atomic_load(h->start)) {
        sched_yield();
    }
    for (int i = 0; i < HOT_SENDS; i++) {
        if (send_key(h->rt, h->kind, 0, "hot", T_PING) != 0) {
            atomic_fetch_add(h->errors, 1);
        }
        if (i < OWN_SENDS && send_key(h->rt, h->kind, 0, own, T_PING) != 0) {
            atomic_fetch_add(h->errors, 1);
        }
    }
    return NULL;
}

static void test_concurrent_first_sends(void **state)
{
    (void)state;
    vstats_reset();
    ds_rt_t *rt = rt_up(4);
    uint32_t k = kind_up(rt, 0);
    atomic_int start = 0;
    atomic_uint errors = 0;
    pthread_t th[HOT_THREADS];
    hot_t h[HOT_THREADS];
    for (int i = 0; i < HOT_THREADS; i++) {
        h[i] = (hot_t){.rt = rt, .kind = k, .no = i, .start = &start, .errors = &errors};
        assert_int_equal(pthread_create(&th[i], NULL, hot_main, &h[i]), 0);
    }
    atomic_store(&start, 1);
    for (int i = 0; i < HOT_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    assert_int_equal(atomic_load(&errors), 0);
    WAIT_FOR(atomic_load(&vs.msgs) == HOT_THREADS * (HOT_SENDS + OWN_SENDS));
    assert_int_equal(atomic_load(&vs.inits), 1 + HOT_THREADS);
    assert_int_equal(ds_registry_active(rt), 1 + HOT_THREADS);
    ds_rt_free(&rt);
}

/* ---- identity: kind, group and key ---- */

static void test_groups_and_keys(void **state)
{
    (void)state;
    vstats_reset();
    ds_rt_t *rt = rt_up(2);
    uint32_t k = kind_up(rt, 0);
    uint32_t k2 = kind_up(rt, 0);
    uint32_t g1 = group_up(rt, 64, 1u << 20), g2 = group_up(rt, 64, 1u << 20);
    assert_int_equal(send_key(rt, k, g1, "a", T_PING), 0);
    assert_int_equal(send_key(rt, k, g2, "a", T_PING), 0);
    assert_int_equal(send_key(rt, k, g1, "b", T_PING), 0);
    assert_int_equal(send_key(rt, k2, g1, "a", T_PING), 0);
    assert_int_equal(send_key(rt, k, g1, "a", T_PING), 0);
    WAIT_FOR(atomic_load(&vs.msgs) == 5);
    assert_int_equal(atomic_load(&vs.inits), 4);
    ds_actor_id_t ids[4] = {lookup(rt, k, g1, "a"), lookup(rt, k, g2, "a"), lookup(rt, k, g1, "b"),
                            lookup(rt, k2, g1, "a")};
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < i; j++) {
            assert_false(ds_id_eq(ids[i], ids[j]));
        }
    }
    /* Each was activated in its group and told its key. */
    pthread_mutex_lock(&vs.mu);
    assert_int_equal(vs.nseen, 4);
    const seen_t want[4] = {{g1, g1, "a"}, {g2, g2, "a"}, {g1, g1, "b"}, {g1, g1, "a"}};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vs.seen[i].group, want[i].group);
        assert_int_equal(vs.seen[i].ctx_group, want[i].ctx_group);
        assert_string_equal(vs.seen[i].key, want[i].key);
    }
    pthread_mutex_unlock(&vs.mu);
    assert_int_equal(metrics(rt, g1).actors, 3);
    assert_int_equal(metrics(rt, g2).actors, 1);
    ds_rt_free(&rt);
}

/* ---- failures ---- */

typedef struct keyed_send {
    ds_rt_t *rt;
    uint32_t kind;
    int rc;
    atomic_bool done;
} keyed_send_t;

static void *keyed_send_main(void *arg)
{
    keyed_send_t *s = arg;
    s->rc = send_key(s->rt, s->kind, 0, "failing", T_PING);
    atomic_store(&s->done, true);
    return NULL;
}

static void test_activation_failure(void **state)
{
    (void)state;
    vstats_reset();
    ds_rt_t *rt = rt_up(2);
    uint32_t k = kind_up(rt, 0);
    atomic_store(&vs.fail_init, -EACCES);
    /* On a thread of its own: a deadlock must fail the test, not hang it. */
    keyed_send_t s = {.rt = rt, .kind = k};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, keyed_send_main, &s), 0);
    int64_t deadline = ds_clock_now() + 5 * SEC;
    while (!atomic_load(&s.done)) {
        if (ds_clock_now() > deadline) {
            fail_msg("ds_send_key() hangs when the activation fails");
        }
        usleep(1000);
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(s.rc, -EACCES);
    assert_int_equal(ds_registry_active(rt), 0);
    ds_actor_id_t id;
    assert_int_equal(ds_key_lookup(rt, k, 0, "failing", 7, &id), -ENOENT);
    assert_int_equal(ds_rt_actor_count(rt), 0);

    /* The next send activates it. */
    atomic_store(&vs.fail_init, 0);
    assert_int_equal(send_key(rt, k, 0, "failing", T_PING), 0);
    WAIT_FOR(atomic_load(&vs.msgs) == 1);
    assert_int_equal(atomic_load(&vs.inits), 1);

    /* A crashed incarnation is forgotten; the next send activates a new one. */
    ds_actor_id_t old = lookup(rt, k, 0, "failing");
    assert_int_equal(send_key(rt, k, 0, "failing", T_CRASH), 0);
    WAIT_FOR(atomic_load(&vs.terms) == 1);
    assert_int_equal(atomic_load(&vs.last_reason), -EIO);
    WAIT_FOR(ds_key_lookup(rt, k, 0, "failing", 7, &id) == -ENOENT);
    assert_int_equal(send_key(rt, k, 0, "failing", T_PING), 0);
    WAIT_FOR(atomic_load(&vs.msgs) == 2);
    assert_int_equal(atomic_load(&vs.inits), 2);
    assert_false(ds_id_eq(lookup(rt, k, 0, "failing"), old));
    ds_rt_free(&rt);
}

/* ---- passivation ---- */

static void test_passivation(void **state)
{
    (void)state;
    vstats_reset();
    ds_rt_t *rt = rt_up(2);
    uint32_t k = kind_up(rt, 20 * MS);
    assert_int_equal(send_key(rt, k, 0, "p", T_PING), 0);
    WAIT_FOR(atomic_load(&vs.msgs) == 1);
    ds_actor_id_t old = lookup(rt, k, 0, "p");
    /* Idle past idle_ns: terminated, forgotten. */
    WAIT_FOR(atomic_load(&vs.terms) == 1);
    assert_int_equal(atomic_load(&vs.last_reason), DS_EXIT_NORMAL);
    ds_actor_id_t id;
    assert_int_equal(ds_key_lookup(rt, k, 0, "p", 1, &id), -ENOENT);
    WAIT_FOR(ds_registry_active(rt) == 0);
    assert_int_equal(send_out(rt, old, T_PING, 0), DS_ENOACTOR);
    /* The next send activates a new incarnation. */
    assert_int_equal(send_key(rt, k, 0, "p", T_PING), 0);
    WAIT_FOR(atomic_load(&vs.msgs) == 2);
    assert_int_equal(atomic_load(&vs.inits), 2);
    assert_false(ds_id_eq(lookup(rt, k, 0, "p"), old));
    ds_rt_free(&rt);
}

enum {
    PAS_THREADS = 4,
    PAS_ROUNDS = 24,
    PAS_BURST = 20,
};

typedef struct pas {
    ds_rt_t *rt;
    uint32_t kind;
    unsigned seed;
    pthread_barrier_t *mid;
    atomic_uint *sent;
    atomic_uint *errors;
} pas_t;

static void *pas_main(void *arg)
{
    pas_t *p = arg;
    const char *keys[2] = {"pk.0", "pk.1"};
    for (int r = 0; r < PAS_ROUNDS; r++) {
        if (r == PAS_ROUNDS / 2) {
            /* Everyone quiet for a while: both keys passivate at least once. */
            pthread_barrier_wait(p->mid);
            usleep(80000);
        }
        for (int i = 0; i < PAS_BURST; i++) {
            int rc = send_key(p->rt, p->kind, 0, keys[(unsigned)(r + i) % 2], T_PING);
            if (rc == 0) {
                atomic_fetch_add(p->sent, 1);
            } else {
                atomic_fetch_add(p->errors, 1);
            }
        }
        /* Gaps around idle_ns, so that passivations race with the next burst. */
        usleep((unsigned)(rand_r(&p->seed) % 16000));
    }
    return NULL;
}

static void test_passivation_loses_nothing(void **state)
{
    (void)state;
    vstats_reset();
    ds_rt_t *rt = rt_up(2);
    uint32_t k = kind_up(rt, 8 * MS);
    atomic_uint sent = 0, errors = 0;
    pthread_barrier_t mid;
    assert_int_equal(pthread_barrier_init(&mid, NULL, PAS_THREADS), 0);
    pthread_t th[PAS_THREADS];
    pas_t p[PAS_THREADS];
    for (int i = 0; i < PAS_THREADS; i++) {
        p[i] = (pas_t){.rt = rt,
                       .kind = k,
                       .seed = (unsigned)i * 7919u + 1,
                       .mid = &mid,
                       .sent = &sent,
                       .errors = &errors};
        assert_int_equal(pthread_create(&th[i], NULL, pas_main, &p[i]), 0);
    }
    for (int i = 0; i < PAS_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    pthread_barrier_destroy(&mid);
    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(atomic_load(&sent), PAS_THREADS * PAS_ROUNDS * PAS_BURST);
    WAIT_FOR(atomic_load(&vs.msgs) == atomic_load(&sent));
    /* Passivated and activated again at least once per key. */
    assert_true(atomic_load(&vs.inits) >= 4);
    assert_true(atomic_load(&vs.terms) >= 2);
    /* Everything passivates in the end; each incarnation terminated once. */
    WAIT_FOR(ds_registry_active(rt) == 0 && atomic_load(&vs.terms) == atomic_load(&vs.inits));
    ds_rt_free(&rt);
}

/* ---- names ---- */

static void test_names(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *a = tactor_basic_new(), *b = tactor_basic_new();
    ds_actor_id_t aid = spawn_t(rt, a, NULL), bid = spawn_t(rt, b, NULL);
    ds_actor_id_t id = DS_ID_NIL;
    assert_int_equal(ds_whereis(rt, "svc", &id), -ENOENT);
    assert_int_equal(ds_register_name(rt, "svc", aid), 0);
    assert_int_equal(ds_whereis(rt, "svc", &id), 0);
    assert_true(ds_id_eq(id, aid));
    assert_int_equal(ds_register_name(rt, "svc", bid), 0); /* rebinds */
    assert_int_equal(ds_whereis(rt, "svc", &id), 0);
    assert_true(ds_id_eq(id, bid));
    assert_int_equal(ds_register_name(rt, "other", aid), 0);

    /* A name whose actor is gone resolves to nothing. */
    assert_int_equal(send_out(rt, bid, T_STOP, 0), 0);
    WAIT_FOR(atomic_load(&b->terminated) == 1);
    WAIT_FOR(ds_whereis(rt, "svc", &id) == -ENOENT);
    assert_int_equal(ds_whereis(rt, "other", &id), 0);
    assert_true(ds_id_eq(id, aid));

    assert_int_equal(ds_unregister_name(rt, "other"), 0);
    assert_int_equal(ds_unregister_name(rt, "other"), -ENOENT);
    assert_int_equal(ds_whereis(rt, "other", &id), -ENOENT);

    char longname[DS_NAME_MAX + 2];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(ds_register_name(rt, longname, aid), -EINVAL);
    assert_int_equal(ds_register_name(rt, "", aid), -EINVAL);
    assert_int_equal(ds_register_name(rt, NULL, aid), -EINVAL);
    assert_int_equal(ds_register_name(rt, "nil", DS_ID_NIL), -EINVAL);
    ds_rt_free(&rt);
    tactor_free(&a);
    tactor_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_activates_once),  cmocka_unit_test(test_concurrent_first_sends),
        cmocka_unit_test(test_groups_and_keys), cmocka_unit_test(test_activation_failure),
        cmocka_unit_test(test_passivation),     cmocka_unit_test(test_passivation_loses_nothing),
        cmocka_unit_test(test_names),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
