/* test_cluster: node-to-node links (transports/nng/cluster.h) between two runtimes of this
 * process, over ipc and tcp on loopback: asks by id across nodes, ordering under
 * back-pressure, a full link queue refusing with DS_EFULL, bad frames from a raw nng socket,
 * heartbeat timeout, node down on both sides and reconnection. Waits are bounded only to catch
 * a hang (CT_HANG), never to time anything. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/log.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "runtime/wire.h"
#include "tests/unit/cluster_fixture.h"
#include "transports/nng/cluster.h"
#include "transports/nng/cluster_int.h"

enum {
    MAX_FRAME = DS_WIRE_HEADER + (64 << 10), /* small, so that oversized frames are cheap */
};

typedef struct node {
    ds_rt_t *rt;
    ds_cluster_t *c;
    ct_probe_t probe;
    ds_actor_id_t echo, client;
    char url[DS_CLUSTER_URL_MAX];
    char path[128]; /* the ipc socket file, to remove */
} node_t;

typedef struct pair {
    node_t n[3]; /* n[1] and n[2]: nodes 1 and 2 */
} pair_t;

static ds_cluster_cfg_t base_cfg(void)
{
    return (ds_cluster_cfg_t){
        .max_frame = MAX_FRAME,
        .queue_limit = 64,
        .heartbeat_ms = 100,
        .timeout_ms = 5000, /* generous: sanitizers slow everything */
        .reconnect_min_ms = 20,
        .reconnect_max_ms = 200,
    };
}

static void make_url(node_t *n, bool tcp, const char *tag, uint16_t id)
{
    if (tcp) {
        (void)snprintf(n->url, sizeof(n->url), "tcp://127.0.0.1:0");
        n->path[0] = '\0';
    } else {
        (void)snprintf(n->path, sizeof(n->path), "/tmp/ds-ct-%d-%s-%u.sock", (int)getpid(), tag,
                       id);
        (void)snprintf(n->url, sizeof(n->url), "ipc://%s", n->path);
        (void)unlink(n->path);
    }
}

static void node_open(node_t *n, uint16_t id, const ds_cluster_cfg_t *cfg,
                      const ds_cluster_peer_t *peer)
{
    ct_probe_init(&n->probe);
    ds_rt_cfg_t rc = {.node = id, .workers = 2};
    assert_int_equal(ds_rt_new(&rc, &n->rt), 0);
    ds_cluster_cfg_t cc = *cfg;
    cc.listen_url = n->url;
    cc.peers = peer;
    cc.npeers = peer != NULL ? 1 : 0;
    assert_int_equal(ds_cluster_new(n->rt, &cc, &n->c), 0);
    assert_int_equal(ds_rt_start(n->rt), 0);
    assert_int_equal(ds_cluster_start(n->c), 0);
    assert_int_equal(ds_cluster_listen_url(n->c, n->url, sizeof(n->url)), 0);
    assert_int_equal(ds_spawn(n->rt, &ct_echo, &n->probe, NULL, &n->echo), 0);
    assert_int_equal(ds_spawn(n->rt, &ct_client, &n->probe, NULL, &n->client), 0);
}

static void node_close(node_t *n)
{
    if (n->rt == NULL) {
        return;
    }
    (void)ds_rt_drain(n->rt, 10 * CT_SEC);
    ds_cluster_free(&n->c);
    ds_rt_free(&n->rt);
    ct_probe_fini(&n->probe);
    if (n->path[0] != '\0') {
        (void)unlink(n->path);
    }
}

/* Two nodes that list each other, up both ways. Over ipc the URLs are known in advance and
 * the peers configured at start; over tcp (port 0) they are added once both listen, so the
 * first HELLOs may reach a node that does not know the other yet (it closes the connection and
 * the dialler says HELLO again). */
static void pair_open(pair_t *pr, bool tcp, const char *tag, const ds_cluster_cfg_t *cfg)
{
    memset(pr, 0, sizeof(*pr));
    for (uint16_t i = 1; i <= 2; i++) {
        make_url(&pr->n[i], tcp, tag, i);
    }
    for (uint16_t i = 1; i <= 2; i++) {
        uint16_t other = (uint16_t)(3 - i);
        ds_cluster_peer_t peer = {.node = other, .url = pr->n[other].url};
        node_open(&pr->n[i], i, cfg, tcp ? NULL : &peer);
    }
    if (tcp) {
        assert_int_equal(ds_cluster_add_peer(pr->n[1].c, 2, pr->n[2].url), 0);
        assert_int_equal(ds_cluster_add_peer(pr->n[2].c, 1, pr->n[1].url), 0);
    }
    assert_true(ct_wait_peer(pr->n[1].c, 2, true, CT_HANG));
    assert_true(ct_wait_peer(pr->n[2].c, 1, true, CT_HANG));
}

static void pair_close(pair_t *pr)
{
    /* Both runtimes drained while the nodes still talk, then both clusters' threads halted:
     * no node closes a connection while the other's are being closed (ds_cluster_halt()). */
    (void)ds_rt_drain(pr->n[1].rt, 10 * CT_SEC);
    (void)ds_rt_drain(pr->n[2].rt, 10 * CT_SEC);
    ds_cluster_halt(pr->n[1].c);
    ds_cluster_halt(pr->n[2].c);
    node_close(&pr->n[1]);
    node_close(&pr->n[2]);
}

static void ask_once(pair_t *pr, uint64_t seq)
{
    node_t *a = &pr->n[1], *b = &pr->n[2];
    uint64_t before = ct_get(&a->probe, &a->probe.replies);
    assert_int_equal(ct_cmd_ask(a->rt, a->client, b->echo, seq), 0);
    assert_true(ct_wait(&a->probe, &a->probe.replies, before + 1, CT_HANG));
    assert_int_equal(ct_get(&a->probe, &a->probe.bad_replies), 0);
    assert_int_equal(ct_get(&a->probe, &a->probe.errors), 0);
    assert_int_equal(ct_get(&a->probe, &a->probe.timeouts), 0);
}

static void test_ask_ipc(void **state)
{
    (void)state;
    pair_t pr;
    ds_cluster_cfg_t cfg = base_cfg();
    pair_open(&pr, false, "ask", &cfg);
    ask_once(&pr, 7);
    ask_once(&pr, 8);
    /* and the other way round */
    uint64_t before = ct_get(&pr.n[2].probe, &pr.n[2].probe.replies);
    assert_int_equal(ct_cmd_ask(pr.n[2].rt, pr.n[2].client, pr.n[1].echo, 9), 0);
    assert_true(ct_wait(&pr.n[2].probe, &pr.n[2].probe.replies, before + 1, CT_HANG));
    ds_cluster_stats_t s;
    ds_cluster_stats(pr.n[1].c, &s);
    assert_true(s.frames_sent >= 2 && s.frames_received >= 2);
    assert_int_equal(s.frames_bad, 0);
    assert_int_equal(s.peers, 1);
    assert_int_equal(s.peers_up, 1);
    assert_int_equal(s.node_up, 1);
    pair_close(&pr);
}

static void test_ask_tcp(void **state)
{
    (void)state;
    pair_t pr;
    ds_cluster_cfg_t cfg = base_cfg();
    pair_open(&pr, true, "tcp", &cfg);
    assert_true(strncmp(pr.n[2].url, "tcp://127.0.0.1:", 16) == 0);
    assert_true(strcmp(pr.n[2].url, "tcp://127.0.0.1:0") != 0);
    ask_once(&pr, 1);
    pair_close(&pr);
}

/* 10,000 messages node 1 -> node 2 arrive in order, through a queue of 64 that pushes back:
 * the client keeps each refused message and resends it later. */
static void test_ordering(void **state)
{
    (void)state;
    const uint64_t total = 10000;
    pair_t pr;
    ds_cluster_cfg_t cfg = base_cfg();
    pair_open(&pr, false, "order", &cfg);
    node_t *a = &pr.n[1], *b = &pr.n[2];
    assert_int_equal(ct_cmd_stream(a->rt, a->client, b->echo, total), 0);
    assert_true(ct_wait(&b->probe, &b->probe.seq_recv, total, CT_HANG));
    assert_int_equal(ct_get(&b->probe, &b->probe.misorder), 0);
    assert_int_equal(ct_get(&a->probe, &a->probe.stream_lost), 0);
    assert_int_equal(ct_get(&a->probe, &a->probe.stream_sent), total);
    ds_cluster_stats_t s;
    ds_cluster_stats(a->c, &s);
    assert_int_equal(s.queue_full, ct_get(&a->probe, &a->probe.stream_full));
    pair_close(&pr);
}

/* ---- a fake peer made of raw nng sockets ---- */

typedef struct fake {
    nng_socket in;  /* pull, listening where node 2 should; never read */
    nng_socket out; /* push, dialled to node 1 */
} fake_t;

static void fake_open(fake_t *f, const char *listen_url, const char *dial_url, uint16_t node)
{
    assert_int_equal(nng_pull0_open(&f->in), 0);
    assert_int_equal(nng_listen(f->in, listen_url, NULL, 0), 0);
    assert_int_equal(nng_push0_open(&f->out), 0);
    assert_int_equal(nng_dial(f->out, dial_url, NULL, 0), 0);
    uint8_t hello[DS__CTL_SIZE];
    ds__cluster_ctl_encode(hello, DS__CTL_HELLO, node, 1);
    assert_int_equal(nng_send(f->out, hello, sizeof(hello), 0), 0);
}

static void fake_close(fake_t *f)
{
    (void)nng_close(f->out);
    (void)nng_close(f->in);
}

/* A node whose only peer is fake node 2. */
static void lone_open(node_t *n, const char *tag, const ds_cluster_cfg_t *cfg, fake_t *f,
                      node_t *fake_addr)
{
    memset(n, 0, sizeof(*n));
    memset(fake_addr, 0, sizeof(*fake_addr));
    make_url(n, false, tag, 1);
    make_url(fake_addr, false, tag, 2);
    ds_cluster_peer_t peer = {.node = 2, .url = fake_addr->url};
    node_open(n, 1, cfg, &peer);
    fake_open(f, fake_addr->url, n->url, 2);
    assert_true(ct_wait_peer(n->c, 2, true, CT_HANG));
}

/* A peer that stops reading: the link queue fills and sends fail with DS_EFULL at once, the
 * sender keeping its message. */
static void test_backpressure(void **state)
{
    (void)state;
    node_t n, fa;
    fake_t f;
    ds_cluster_cfg_t cfg = base_cfg();
    cfg.queue_limit = 2;
    cfg.max_frame = DS_WIRE_HEADER + (1 << 20);
    cfg.timeout_ms = 60000; /* the fake sends no heartbeats */
    lone_open(&n, "bp", &cfg, &f, &fa);

    static uint8_t pad[256 << 10];
    ds_actor_id_t far = ds_id_make(2, 0, 1);
    bool refused = false;
    for (int i = 0; i < 4000 && !refused; i++) {
        ds_msg_t *m;
        assert_int_equal(
            ds_ct_ping_new(&(ds_ct_ping_t){.seq = (uint64_t)i, .pad = {pad, sizeof(pad)}}, &m), 0);
        int rc = ds_send_from(n.rt, far, &m);
        if (rc == DS_EFULL) {
            assert_non_null(m); /* still the sender's */
            assert_int_equal(m->type, DS_MT_CT_PING);
            refused = true;
        } else {
            assert_int_equal(rc, 0);
            assert_null(m);
        }
        ds_msg_free(&m);
    }
    assert_true(refused);
    ds_cluster_stats_t s;
    ds_cluster_stats(n.c, &s);
    assert_true(s.queue_full >= 1);
    assert_int_equal(s.node_down, 0);
    node_close(&n);
    fake_close(&f);
    (void)unlink(fa.path);
}

/* A peer that says HELLO and then nothing is down after the timeout. */
static void test_heartbeat_timeout(void **state)
{
    (void)state;
    node_t n, fa;
    fake_t f;
    ds_cluster_cfg_t cfg = base_cfg();
    cfg.heartbeat_ms = 50;
    cfg.timeout_ms = 300;
    lone_open(&n, "hb", &cfg, &f, &fa);
    /* Node 1's client monitors an actor of fake node 2 (the MONITOR signal is just queued). */
    assert_int_equal(ct_cmd_monitor(n.rt, n.client, ds_id_make(2, 0, 1)), 0);
    assert_true(ct_wait(&n.probe, &n.probe.monitors, 1, CT_HANG));
    assert_true(ct_wait(&n.probe, &n.probe.downs, 1, CT_HANG));
    assert_int_equal(n.probe.last_down_reason, DS_ENODEDOWN);
    ds_cluster_stats_t s;
    ds_cluster_stats(n.c, &s);
    assert_true(s.node_down >= 1);
    node_close(&n);
    fake_close(&f);
    (void)unlink(fa.path);
}

/* ---- bad frames ---- */

static size_t frame(uint8_t *buf, size_t cap, ds_msg_t *m, ds_actor_id_t from, ds_actor_id_t to)
{
    m->from = from;
    m->to = to;
    size_t len = 0;
    assert_int_equal(ds_wire_encode(m, ds_clock_now(), buf, cap, &len), 0);
    ds_msg_free(&m);
    return len;
}

static bool wait_stat(ds_cluster_t *c, size_t off, uint64_t want)
{
    int64_t end = ds_clock_now() + CT_HANG;
    for (;;) {
        ds_cluster_stats_t s;
        ds_cluster_stats(c, &s);
        uint64_t v;
        memcpy(&v, (const uint8_t *)&s + off, sizeof(v));
        if (v >= want) {
            return true;
        }
        if (ds_clock_now() >= end) {
            return false;
        }
        ct_sleep_ms(5);
    }
}

#define STAT(f) offsetof(ds_cluster_stats_t, f)

/* A raw push socket dialled to url that never redials once its connection is closed. */
static nng_socket raw_open(const char *url)
{
    nng_socket raw;
    assert_int_equal(nng_push0_open(&raw), 0);
    assert_int_equal(nng_socket_set_ms(raw, NNG_OPT_RECONNMINT, 600000), 0);
    assert_int_equal(nng_socket_set_ms(raw, NNG_OPT_RECONNMAXT, 600000), 0);
    assert_int_equal(nng_socket_set_ms(raw, NNG_OPT_SENDTIMEO, 5000), 0);
    assert_int_equal(nng_dial(raw, url, NULL, 0), 0);
    return raw;
}

static void test_bad_frames(void **state)
{
    (void)state;
    pair_t pr;
    ds_cluster_cfg_t cfg = base_cfg();
    cfg.max_bad_frames = 10;
    pair_open(&pr, false, "bad", &cfg);
    node_t *b = &pr.n[2];
    /* Node 3 is known to node 2 (so a HELLO from it is legal) but never listens. */
    char url3[128];
    (void)snprintf(url3, sizeof(url3), "ipc:///tmp/ds-ct-%d-bad-3.sock", (int)getpid());
    assert_int_equal(ds_cluster_add_peer(b->c, 3, url3), 0);

    static uint8_t buf[MAX_FRAME + 4096];
    ds_actor_id_t from3 = ds_id_make(3, 0, 5);
    ds_msg_t *m;
    ds_cluster_stats_t s0, s;
    ds_cluster_stats(b->c, &s0);

    /* 1. a good frame before HELLO: counted, and the connection closed at once */
    nng_socket raw = raw_open(b->url);
    assert_int_equal(ds_ct_seq_new(&(ds_ct_seq_t){.seq = 0}, &m), 0);
    size_t n = frame(buf, sizeof(buf), m, from3, b->echo);
    assert_int_equal(nng_send(raw, buf, n, 0), 0);
    assert_true(wait_stat(b->c, STAT(pipes_closed), s0.pipes_closed + 1));
    (void)nng_close(raw);

    /* Then a connection that says HELLO as node 3 and misbehaves. */
    raw = raw_open(b->url);
    uint8_t hello[DS__CTL_SIZE];
    ds__cluster_ctl_encode(hello, DS__CTL_HELLO, 3, 42);
    assert_int_equal(nng_send(raw, hello, sizeof(hello), 0), 0);
    /* 2. garbage */
    memset(buf, 0xA5, 100);
    assert_int_equal(nng_send(raw, buf, 100, 0), 0);
    /* 3. truncated */
    assert_int_equal(ds_ct_ping_new(&(ds_ct_ping_t){.seq = 1}, &m), 0);
    n = frame(buf, sizeof(buf), m, from3, b->echo);
    assert_int_equal(nng_send(raw, buf, n - 3, 0), 0);
    /* 4. oversized: a payload past max_frame */
    static uint8_t pad[(64 << 10) + 100];
    assert_int_equal(ds_ct_ping_new(&(ds_ct_ping_t){.seq = 2, .pad = {pad, sizeof(pad)}}, &m), 0);
    n = frame(buf, sizeof(buf), m, from3, b->echo);
    assert_true(n > MAX_FRAME);
    assert_int_equal(nng_send(raw, buf, n, 0), 0);
    /* 5. a type no catalog declares */
    assert_int_equal(ds_msg_new(59999, "\x90", 1, &m), 0);
    n = frame(buf, sizeof(buf), m, from3, b->echo);
    assert_int_equal(nng_send(raw, buf, n, 0), 0);
    /* 6. a sender on a node other than the connection's */
    assert_int_equal(ds_ct_ping_new(&(ds_ct_ping_t){.seq = 3}, &m), 0);
    n = frame(buf, sizeof(buf), m, ds_id_make(1, 0, 9), b->echo);
    assert_int_equal(nng_send(raw, buf, n, 0), 0);
    /* 7. a good one: delivered */
    assert_int_equal(ds_ct_ping_new(&(ds_ct_ping_t){.seq = 4}, &m), 0);
    n = frame(buf, sizeof(buf), m, from3, b->echo);
    assert_int_equal(nng_send(raw, buf, n, 0), 0);

    assert_true(ct_wait(&b->probe, &b->probe.pings, 1, CT_HANG));
    ds_cluster_stats(b->c, &s);
    assert_int_equal(s.frames_bad - s0.frames_bad, 6);
    assert_int_equal(s.frames_oversized - s0.frames_oversized, 1);
    assert_int_equal(s.pipes_closed - s0.pipes_closed, 1);
    assert_int_equal(ct_get(&b->probe, &b->probe.seq_recv), 0);
    /* The real link did not notice. */
    ask_once(&pr, 11);
    assert_true(ds_cluster_peer_up(b->c, 1));

    /* A stream of garbage gets the connection closed. */
    memset(buf, 0x5A, 64);
    for (int i = 0; i < 10; i++) { /* max_bad_frames */
        assert_int_equal(nng_send(raw, buf, 64, 0), 0);
    }
    assert_true(wait_stat(b->c, STAT(pipes_closed), s0.pipes_closed + 2));
    ds_cluster_stats(b->c, &s);
    assert_true(s.frames_bad - s0.frames_bad >= 6 + 10);
    ask_once(&pr, 12);
    assert_int_equal(s.node_down, 0);
    (void)nng_close(raw);
    pair_close(&pr);
}

/* ---- node down and back ---- */

static void test_node_down_and_back(void **state)
{
    (void)state;
    pair_t pr;
    ds_cluster_cfg_t cfg = base_cfg();
    pair_open(&pr, false, "down", &cfg);
    node_t *a = &pr.n[1], *b = &pr.n[2];
    ask_once(&pr, 1);
    /* Each side's client monitors an actor on the other side. */
    assert_int_equal(ct_cmd_monitor(a->rt, a->client, b->echo), 0);
    assert_int_equal(ct_cmd_monitor(b->rt, b->client, a->echo), 0);
    assert_true(ct_wait(&a->probe, &a->probe.monitors, 1, CT_HANG));
    assert_true(ct_wait(&b->probe, &b->probe.monitors, 1, CT_HANG));
    ask_once(&pr, 2); /* the MONITOR went out before this ask's reply came back */

    ds_cluster_stop(b->c);
    assert_true(ct_wait(&a->probe, &a->probe.downs, 1, CT_HANG));
    assert_true(ct_wait(&b->probe, &b->probe.downs, 1, CT_HANG));
    assert_int_equal(a->probe.last_down_reason, DS_ENODEDOWN);
    assert_int_equal(b->probe.last_down_reason, DS_ENODEDOWN);
    assert_true(ct_wait_peer(a->c, 2, false, CT_HANG));
    ds_cluster_stats_t s;
    ds_cluster_stats(a->c, &s);
    assert_int_equal(s.node_down, 1);
    assert_int_equal(s.peers_up, 0);

    /* While down, an ask fails at once. */
    assert_int_equal(ct_cmd_ask(a->rt, a->client, b->echo, 3), 0);
    assert_true(ct_wait(&a->probe, &a->probe.asks_refused, 1, CT_HANG));
    assert_int_equal(a->probe.last_refusal, DS_ENODEDOWN);

    /* Back: node 1 was redialling all along. */
    assert_int_equal(ds_cluster_start(b->c), 0);
    assert_true(ct_wait_peer(a->c, 2, true, CT_HANG));
    assert_true(ct_wait_peer(b->c, 1, true, CT_HANG));
    ask_once(&pr, 4);
    ds_cluster_stats(a->c, &s);
    assert_int_equal(s.node_up, 2);
    assert_int_equal(s.node_down, 1);
    /* No second DOWN for the same monitors. */
    assert_int_equal(ct_get(&a->probe, &a->probe.downs), 1);
    pair_close(&pr);
}

static void test_config_errors(void **state)
{
    (void)state;
    ds_rt_t *rt;
    assert_int_equal(ds_rt_new(&(ds_rt_cfg_t){.node = 1, .workers = 1}, &rt), 0);
    ds_cluster_t *c = NULL;
    ds_cluster_cfg_t cfg = base_cfg();
    assert_int_equal(ds_cluster_new(rt, &cfg, &c), -EINVAL); /* no listen URL */
    cfg.listen_url = "ipc:///tmp/ds-ct-cfg.sock";
    cfg.timeout_ms = 50;
    assert_int_equal(ds_cluster_new(rt, &cfg, &c), -EINVAL); /* timeout <= heartbeat */
    cfg = base_cfg();
    cfg.listen_url = "ipc:///tmp/ds-ct-cfg.sock";
    ds_cluster_peer_t self = {.node = 1, .url = "ipc:///tmp/x.sock"};
    cfg.peers = &self;
    cfg.npeers = 1;
    assert_int_equal(ds_cluster_new(rt, &cfg, &c), -EINVAL); /* ourselves as a peer */
    ds_cluster_peer_t twice[2] = {{2, "ipc:///tmp/a.sock"}, {2, "ipc:///tmp/b.sock"}};
    cfg.peers = twice;
    cfg.npeers = 2;
    assert_int_equal(ds_cluster_new(rt, &cfg, &c), -EEXIST);
    cfg.npeers = 1;
    assert_int_equal(ds_cluster_new(rt, &cfg, &c), 0);
    assert_int_equal(ds_cluster_add_peer(c, 2, "ipc:///tmp/c.sock"), -EEXIST);
    assert_int_equal(ds_cluster_add_peer(c, 0, "ipc:///tmp/c.sock"), -EINVAL);
    assert_int_equal(ds_cluster_add_peer(c, 3, "not a url"), -EINVAL);
    char url[64];
    assert_int_equal(ds_cluster_listen_url(c, url, sizeof(url)), -ENOTCONN);
    assert_false(ds_cluster_peer_up(c, 2));
    /* Not started: sends to node 2 or to an unknown node fail at once. */
    ds_msg_t *m;
    assert_int_equal(ds_ct_seq_new(&(ds_ct_seq_t){.seq = 1}, &m), 0);
    assert_int_equal(ds_send_from(rt, ds_id_make(2, 0, 1), &m), DS_ENODEDOWN);
    assert_int_equal(ds_send_from(rt, ds_id_make(9, 0, 1), &m), DS_ENODEDOWN);
    ds_msg_free(&m);
    ds_cluster_free(&c);
    assert_null(c);
    ds_cluster_free(&c);
    ds_rt_free(&rt);
}

int main(void)
{
    if (getenv("DOSSIER_LOG_LEVEL") == NULL) {
        ds_log_set_level(DS_LOG_ERROR); /* the links' info and warnings are expected here */
    }
    if (ct_msgs_register() != 0) {
        return 1;
    }
    if (getenv("CT_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("CT_FILTER"));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors), cmocka_unit_test(test_ask_ipc),
        cmocka_unit_test(test_ask_tcp),       cmocka_unit_test(test_ordering),
        cmocka_unit_test(test_backpressure),  cmocka_unit_test(test_heartbeat_timeout),
        cmocka_unit_test(test_bad_frames),    cmocka_unit_test(test_node_down_and_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
