/* test_drain: the runtime's life cycle (runtime/rt.h): ds_rt_drain() delivers what is queued,
 * then stops actors children first and refuses sends from outside; an idle runtime parks its
 * workers. Waits are bounded only to catch a hang. */
#include <dirent.h>
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
#include "runtime/rt.h"
#include "tests/unit/rt_helpers.h"

/* ---- queued messages are delivered ---- */

typedef struct counter {
    atomic_ulong handled;
    atomic_int terminated;
    atomic_int reason;
} counter_t;

static int counter_init(ds_ctx_t *ctx, void *arg)
{
    ds_ctx_set_state(ctx, arg);
    return 0;
}

static int counter_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    counter_t *c = ds_ctx_state(ctx);
    (void)msgp;
    atomic_fetch_add(&c->handled, 1);
    return 0;
}

static void counter_terminate(ds_ctx_t *ctx, int reason)
{
    counter_t *c = ds_ctx_state(ctx);
    atomic_store(&c->reason, reason);
    atomic_store(&c->terminated, 1);
}

static const ds_behaviour_t counter_beh = {.name = "test.counter",
                                           .init = counter_init,
                                           .receive = counter_receive,
                                           .terminate = counter_terminate};

enum {
    QUEUED = 20000
};

static void test_drain_delivers_queued(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    uint32_t g = group_up(rt, QUEUED, 1ull << 30);
    counter_t c[2] = {0};
    ds_actor_id_t id[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ds_spawn(rt, &counter_beh, &c[i], &(ds_spawn_opts_t){.group = g}, &id[i]),
                         0);
    }
    for (unsigned i = 0; i < QUEUED; i++) {
        assert_int_equal(send_out(rt, id[i % 2], T_PING, i), 0);
    }
    assert_false(ds_rt_draining(rt));
    assert_int_equal(ds_rt_drain(rt, HANG_NS), 0);
    assert_true(ds_rt_draining(rt));
    assert_int_equal(atomic_load(&c[0].handled) + atomic_load(&c[1].handled), QUEUED);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(atomic_load(&c[i].terminated), 1);
        assert_int_equal(atomic_load(&c[i].reason), DS_EXIT_SHUTDOWN);
    }
    assert_int_equal(ds_rt_actor_count(rt), 0);
    /* Nothing new from outside now. */
    assert_int_equal(send_out(rt, id[0], T_PING, 0), DS_ESHUTDOWN);
    ds_actor_id_t late;
    assert_int_equal(ds_spawn(rt, &counter_beh, &c[0], NULL, &late), DS_ESHUTDOWN);
    ds_rt_free(&rt);
}

/* ---- children before parents ---- */

enum {
    FANOUT = 3,
    DEPTH = 3, /* 1 + 3 + 9 + 27 = 40 actors */
    NODES = 40,
};

typedef struct tree {
    atomic_uint next_no;  /* node numbers, handed out in spawn order */
    atomic_uint next_seq; /* terminate order */
    int parent[NODES];    /* written by the spawning init, before the child exists */
    unsigned depth[NODES];
    atomic_uint order[NODES]; /* 1 + position in terminate order; 0: not terminated */
    atomic_int reason[NODES];
    atomic_uint bad; /* spawn failures */
    atomic_ulong leaf_id;
} tree_t;

typedef struct tnode {
    tree_t *tree;
    unsigned no;
} tnode_t;

static tnode_t tnodes[NODES];

static const ds_behaviour_t tree_beh;

static int tree_init(ds_ctx_t *ctx, void *arg)
{
    tnode_t *n = arg;
    tree_t *t = n->tree;
    ds_ctx_set_state(ctx, n);
    if (t->depth[n->no] == DEPTH) {
        atomic_store(&t->leaf_id, ds_self(ctx).v); /* the last leaf spawned */
        return 0;
    }
    for (int i = 0; i < FANOUT; i++) {
        unsigned no = atomic_fetch_add(&t->next_no, 1);
        t->parent[no] = (int)n->no;
        t->depth[no] = t->depth[n->no] + 1;
        tnodes[no] = (tnode_t){.tree = t, .no = no};
        ds_actor_id_t child;
        /* Children are linked to their parent as well: the drain must not cascade. */
        ds_spawn_opts_t o = {.link = ds_self(ctx)};
        if (ds_spawn(ds_ctx_rt(ctx), &tree_beh, &tnodes[no], &o, &child) != 0) {
            atomic_fetch_add(&t->bad, 1);
        }
    }
    return 0;
}

static int tree_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    if ((*msgp)->type == T_STOP) {
        ds_ctx_stop(ctx, DS_EXIT_NORMAL);
    }
    return 0;
}

static void tree_terminate(ds_ctx_t *ctx, int reason)
{
    tnode_t *n = ds_ctx_state(ctx);
    tree_t *t = n->tree;
    atomic_store(&t->reason[n->no], reason);
    atomic_store(&t->order[n->no], atomic_fetch_add(&t->next_seq, 1) + 1);
}

static const ds_behaviour_t tree_beh = {
    .name = "test.tree", .init = tree_init, .receive = tree_receive, .terminate = tree_terminate};

static void test_drain_children_first(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tree_t *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    atomic_store(&t->next_no, 1);
    t->parent[0] = -1;
    tnodes[0] = (tnode_t){.tree = t, .no = 0};
    ds_actor_id_t root;
    assert_int_equal(ds_spawn(rt, &tree_beh, &tnodes[0], NULL, &root), 0);
    assert_int_equal(atomic_load(&t->next_no), NODES);
    assert_int_equal(atomic_load(&t->bad), 0);
    assert_int_equal(ds_rt_actor_count(rt), NODES);

    /* A leaf that stopped before the drain: its parent has one child fewer to wait for. */
    ds_actor_id_t leaf = {atomic_load(&t->leaf_id)};
    assert_int_equal(send_out(rt, leaf, T_STOP, 0), 0);
    WAIT_FOR(ds_rt_actor_count(rt) == NODES - 1);

    assert_int_equal(ds_rt_drain(rt, HANG_NS), 0);
    assert_int_equal(ds_rt_actor_count(rt), 0);
    for (unsigned i = 0; i < NODES; i++) {
        assert_int_not_equal(atomic_load(&t->order[i]), 0);
        if (atomic_load(&t->reason[i]) != DS_EXIT_NORMAL) { /* all but the early leaf */
            assert_int_equal(atomic_load(&t->reason[i]), DS_EXIT_SHUTDOWN);
        }
        if (t->parent[i] >= 0) {
            /* A parent terminates after each of its children. */
            assert_true(atomic_load(&t->order[t->parent[i]]) > atomic_load(&t->order[i]));
        }
    }
    ds_rt_free(&rt);
    free(t);
}

/* A parent whose child failed to start (init error) must still be stopped by the drain. */
static int init_fails(ds_ctx_t *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return -EIO;
}

static int nothing(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    (void)ctx;
    (void)msgp;
    return 0;
}

static const ds_behaviour_t bad_beh = {.name = "test.bad", .init = init_fails, .receive = nothing};

static int spawn_bad_child(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    if ((*msgp)->type == T_GO) {
        ds_actor_id_t id;
        atomic_store(&t->aux[0],
                     (uint64_t)(int64_t)ds_spawn(ds_ctx_rt(ctx), &bad_beh, NULL, NULL, &id));
        atomic_store(&t->aux[1], 1);
    }
    return 0;
}

static void test_drain_after_failed_child(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *p = tactor_new();
    p->handle = spawn_bad_child;
    ds_actor_id_t pid = spawn_t(rt, p, NULL);
    assert_int_equal(send_out(rt, pid, T_GO, 0), 0);
    WAIT_FOR(atomic_load(&p->aux[1]) == 1);
    assert_int_equal((int)(int64_t)atomic_load(&p->aux[0]), -EIO);
    assert_int_equal(ds_rt_actor_count(rt), 1);
    /* Bounded: a parent still counting its failed child would never be stopped. */
    assert_int_equal(ds_rt_drain(rt, 2 * SEC), 0);
    assert_int_equal(atomic_load(&p->terminated), 1);
    assert_int_equal(atomic_load(&p->reason), DS_EXIT_SHUTDOWN);
    ds_rt_free(&rt);
    tactor_free(&p);
}

/* ---- sends from outside during the drain ---- */

typedef struct outside {
    ds_rt_t *rt;
    ds_actor_id_t to;
    atomic_bool done;
    atomic_ulong ok;
    atomic_ulong refused_while_draining;
    atomic_ulong wrong;  /* accepted although the drain had begun, or an unexpected error */
    atomic_int wrong_rc; /* the last of those */
} outside_t;

static void *outside_main(void *arg)
{
    outside_t *o = arg;
    while (!atomic_load(&o->done)) {
        bool draining = ds_rt_draining(o->rt);
        int rc = send_out(o->rt, o->to, T_PING, 0);
        bool right;
        if (draining) {
            right = rc == DS_ESHUTDOWN;
            atomic_fetch_add(&o->refused_while_draining, right);
        } else {
            /* The call may overlap the drain's start, and then the receiver's stop. */
            right = rc == 0 || rc == DS_EFULL || rc == DS_ESHUTDOWN || rc == DS_ENOACTOR;
            atomic_fetch_add(&o->ok, rc == 0);
        }
        if (!right) {
            atomic_store(&o->wrong_rc, rc);
            atomic_fetch_add(&o->wrong, 1);
        }
    }
    return NULL;
}

static void test_drain_refuses_outside_sends(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    counter_t c = {0};
    ds_actor_id_t id;
    assert_int_equal(ds_spawn(rt, &counter_beh, &c, NULL, &id), 0);
    outside_t o = {.rt = rt, .to = id};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, outside_main, &o), 0);
    WAIT_FOR(atomic_load(&o.ok) >= 1000);
    assert_int_equal(ds_rt_drain(rt, HANG_NS), 0);
    WAIT_FOR(atomic_load(&o.refused_while_draining) >= 100);
    atomic_store(&o.done, true);
    assert_int_equal(pthread_join(th, NULL), 0);
    if (atomic_load(&o.wrong) != 0) {
        fail_msg("%lu sends got a wrong answer, the last %d", atomic_load(&o.wrong),
                 atomic_load(&o.wrong_rc));
    }
    assert_int_equal(atomic_load(&c.terminated), 1);
    assert_true(atomic_load(&c.handled) >= 1000);
    ds_rt_free(&rt);
}

/* ---- an idle runtime parks its workers ---- */

/* utime + stime (fields 14 and 15 of /proc/<pid>/task/<tid>/stat) from one stat line, or -1.
 * The command name (field 2) is in parentheses and may hold spaces: fields are counted from
 * the last ')', which ends it. */
static long stat_ticks(const char *line)
{
    const char *p = strrchr(line, ')');
    if (p == NULL) {
        return -1;
    }
    long total = 0;
    for (int field = 3; field <= 15; field++) {
        while (*p != '\0' && *p != ' ') {
            p++;
        }
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            return -1;
        }
        if (field >= 14) {
            char *end;
            unsigned long v = strtoul(p, &end, 10);
            if (end == p) {
                return -1;
            }
            total += (long)v;
        }
    }
    return total;
}

/* CPU time (in clock ticks) of every thread of this process, or -1 if /proc cannot tell. */
static long process_ticks(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL) {
        return -1;
    }
    long total = 0;
    const struct dirent *de;
    // NOLINTNEXTLINE(concurrency-mt-unsafe): only this thread reads d
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        char path[300], buf[1024];
        (void)snprintf(path, sizeof(path), "/proc/self/task/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue; /* the thread ended */
        }
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        (void)fclose(f);
        buf[n] = '\0';
        long t = stat_ticks(buf);
        if (t < 0) {
            (void)closedir(d);
            return -1;
        }
        total += t;
    }
    (void)closedir(d);
    return total;
}

static void test_idle_runtime_parks(void **state)
{
    (void)state;
    if (process_ticks() < 0) {
        print_message("skipped: /proc/self/task/*/stat is not readable here\n");
        skip();
    }
    long hz = sysconf(_SC_CLK_TCK);
    assert_true(hz > 0);
    ds_rt_t *rt = rt_up(4);
    /* Some work first, so the workers have run and gone idle since. */
    counter_t c = {0};
    ds_actor_id_t id;
    assert_int_equal(ds_spawn(rt, &counter_beh, &c, NULL, &id), 0);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(send_out(rt, id, T_PING, 0), 0);
    }
    WAIT_FOR(atomic_load(&c.handled) == 100);
    usleep(100000);
    long before = process_ticks();
    usleep(300000);
    long used = process_ticks() - before;
    /* A busy-spinning worker would use a whole core (0.3 s); parked ones use about nothing. The
     * bound is half a core over the window: a spin bug, not a performance figure. */
    long bound = hz * 3 / 20;
    if (used >= bound) {
        fail_msg("idle runtime used %ld ticks in 300 ms (bound %ld): a worker spins", used, bound);
    }
    ds_rt_free(&rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drain_delivers_queued),
        cmocka_unit_test(test_drain_children_first),
        cmocka_unit_test(test_drain_after_failed_child),
        cmocka_unit_test(test_drain_refuses_outside_sends),
        cmocka_unit_test(test_idle_runtime_parks),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
