/* cluster_fixture: what the cluster tests share (tests/unit/test_cluster.c, the two-process
 * tests/unit/test_cluster_proc.c): a message catalog, an echo actor, a client actor driven by
 * commands from the test thread, and a probe where both record what they saw for the test
 * thread to wait on. Waits are bounded only to catch a hang, never to time anything.
 * Threads: probe functions are safe from any thread; register the catalog before any runtime
 * starts. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/catalog.h"
#include "runtime/id.h"
#include "runtime/rt.h"
#include "transports/nng/cluster.h"

#define DS_CATALOG_FILE    "tests/unit/cluster_fixture.msgs.h"
#define DS_CATALOG_PREFIX  ct_
#define DS_CATALOG_UPREFIX CT_
#include "runtime/catalog_decl.inc"

#define CT_SEC  INT64_C(1000000000)
#define CT_HANG (60 * CT_SEC) /* a wait this long means a hang, not a slow machine */

extern const ds_catalog_t ct_catalog;

/* Registers ct_catalog once per process (later calls do nothing). 0 or an error. */
int ct_msgs_register(void);

/* What the actors saw. Counters only grow; read them with ct_get() or wait with ct_wait(). */
typedef struct ct_probe {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    /* client */
    uint64_t replies;     /* PONG replies whose corr was the ask's and seq the one asked */
    uint64_t bad_replies; /* replies with a wrong corr or seq */
    uint64_t errors;      /* error replies */
    int64_t last_error;
    uint64_t timeouts;
    uint64_t asks_refused; /* ds_ask() failed at once */
    int64_t last_refusal;
    uint64_t monitors; /* ds_monitor() calls done */
    uint64_t downs;
    int64_t last_down_reason;
    uint64_t stream_sent; /* SEQ messages taken by ds_send() */
    uint64_t stream_full; /* DS_EFULL refusals met (the message was kept and retried) */
    uint64_t stream_lost; /* a refusal that left the message NULL, or another error */
    /* echo */
    uint64_t pings;
    uint64_t seq_recv; /* SEQ messages in order */
    uint64_t misorder; /* SEQ messages out of order */
} ct_probe_t;

void ct_probe_init(ct_probe_t *p);
void ct_probe_fini(ct_probe_t *p);
/* Reads a counter of p under its lock. */
uint64_t ct_get(ct_probe_t *p, const uint64_t *field);
/* Waits until *field >= want, at most timeout_ns. True if it got there. */
bool ct_wait(ct_probe_t *p, const uint64_t *field, uint64_t want, int64_t timeout_ns);

/* The echo actor: answers PING asks with PONG(seq), counts SEQ order. arg: a ct_probe_t * or
 * NULL. */
extern const ds_behaviour_t ct_echo;
/* The client actor: runs CMD_ messages. arg: a ct_probe_t *. */
extern const ds_behaviour_t ct_client;

/* Commands to a client, sent with ds_send_from(). 0 or the send's error. */
int ct_cmd_ask(ds_rt_t *rt, ds_actor_id_t client, ds_actor_id_t target, uint64_t seq);
int ct_cmd_monitor(ds_rt_t *rt, ds_actor_id_t client, ds_actor_id_t target);
int ct_cmd_stream(ds_rt_t *rt, ds_actor_id_t client, ds_actor_id_t target, uint64_t n);

/* Waits until the peer is up (or down, with up false), at most timeout_ns. */
bool ct_wait_peer(ds_cluster_t *c, uint16_t node, bool up, int64_t timeout_ns);

/* Sleeps ms milliseconds (in the test thread only). */
void ct_sleep_ms(int ms);
