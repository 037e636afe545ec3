/* cluster: links between dossier nodes over nng (DESIGN.md §3 and §6). Actors on different
 * nodes address each other by the same ds_actor_id_t: the runtime hands a send to an id of
 * another node to this transport (its ds_router_t), which encodes it as a runtime/wire.h frame
 * and writes it to that node's link. Sends, asks, replies, links and monitors all work across.
 *
 * Topology. A node listens on one URL ("ipc:///path" or "tcp://host:port") with an nng pull
 * socket that receives from every peer, and dials each peer it knows with a push socket of its
 * own, so a pair of nodes shares two one-way connections. The first frame on every connection
 * is a HELLO naming the sender's node: it tells the listener which peer an incoming pipe
 * belongs to. A peer is *up* when our connection to it is established and its HELLO arrived
 * on its connection to us; only then do sends to it succeed. Both sides must list each other.
 *
 * Control frames are 16 bytes and start with the magic "DC" where a wire frame has "DS":
 *   0 "DC" | 2 version (1) | 3 kind (1 HELLO, 2 HEARTBEAT) | 4 node (u16 LE) | 6 zero (u16)
 *   | 8 incarnation (u64 LE): a random number drawn at each ds_cluster_start(), for logs.
 *
 * Liveness. While up, each side sends a HEARTBEAT every heartbeat_ms. A peer that sent nothing
 * for timeout_ms, or one of whose two connections closes, goes *down*: the frames still queued
 * to it are dropped (pending asks then time out as usual), ds_rt_node_down() fires the local
 * links and monitors on its actors with DS_ENODEDOWN, exactly once per up-to-down transition,
 * and our connection is closed and dialled anew, nng retrying with backoff (reconnect_min_ms
 * doubling up to reconnect_max_ms). When both connections are back and HELLOs exchanged, the
 * peer is up again and new sends succeed. A HELLO from a node that is up on another connection
 * (the peer restarted before we saw its old connection close) takes it down first. Closing our
 * connection on the way down guarantees that no frame queued before the down reaches the peer
 * after it is up again.
 *
 * Back-pressure. Each peer has a bounded queue of encoded frames. A send to a peer whose queue
 * holds queue_limit frames fails at once with DS_EFULL, like a send to a full mailbox, and the
 * sender keeps its message. As with mailboxes, system signals and replies are not refused for
 * a full queue, up to a hard ceiling of 2 x queue_limit + 64 frames.
 *
 * Input. Bytes from a link are never trusted (ds__cluster_input() in cluster_int.h is the whole
 * path, fuzzed by tests/fuzz/fuzz_link.c). Garbage, truncated, unknown-type and oversized
 * frames, data before HELLO, a HELLO naming an unknown node, frames addressed to another node
 * or claiming a sender on a node other than the connection's are counted in frames_bad, logged
 * and dropped. An incoming connection is closed when it sends max_bad_frames bad frames in a
 * row, a bad frame before its HELLO (a peer whose HELLO came before we knew its node redials
 * and says HELLO again), or no HELLO within timeout_ms. nng itself refuses, by closing the
 * connection, a frame longer than 2 x max_frame before allocating it; frames between max_frame and
 * that reach the decoder and count as oversized. A decoded message the local runtime refuses (no
 * such actor, full mailbox) counts as undeliverable and is answered as ds_rt_deliver_remote() says
 * (an ask gets an error reply with the code).
 *
 * Threads. route() runs on whichever thread sends (workers, timers); it encodes outside any
 * lock and never blocks: frames go out through nng_aio sends chained from their completions.
 * nng's threads run those completions, the receive loop and pipe events; they take only the
 * cluster's own locks and call only thread-safe runtime entry points. The cluster's own thread
 * sends heartbeats, checks timeouts, calls ds_rt_node_down() and closes and re-opens sockets
 * (nng_close() must not run on nng's threads). Every function here is safe from any thread,
 * except that ds_cluster_free() must not race with sends (see there).
 *
 * Memory: the cluster copies its configuration, URLs included. Free it with ds_cluster_free(),
 * before the runtime. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/rt.h"

typedef struct ds_cluster ds_cluster_t;

enum {
    DS_CLUSTER_URL_MAX = 512, /* bytes of a URL, NUL included */
};

/* A peer node and the URL it listens on. */
typedef struct ds_cluster_peer {
    uint16_t node; /* 1..65535, not this node */
    const char *url;
} ds_cluster_peer_t;

/* Configuration. Zeroed fields take the defaults in brackets. */
typedef struct ds_cluster_cfg {
    const char *listen_url;         /* required; tcp port 0 picks a free port */
    const ds_cluster_peer_t *peers; /* npeers of them, more with ds_cluster_add_peer() */
    size_t npeers;
    uint32_t max_frame;        /* largest frame sent or accepted, header included
                                  [DS_WIRE_HEADER + 16 MiB, the runtime's default payload] */
    uint32_t queue_limit;      /* frames queued per peer before DS_EFULL [1024] */
    uint32_t heartbeat_ms;     /* [250] */
    uint32_t timeout_ms;       /* silence after which an up peer is down [4 x heartbeat_ms];
                                  must be more than heartbeat_ms */
    uint32_t reconnect_min_ms; /* first redial delay [100] */
    uint32_t reconnect_max_ms; /* longest redial delay [2000]; >= reconnect_min_ms */
    uint32_t max_bad_frames;   /* bad frames in a row before an incoming pipe is closed [16] */
} ds_cluster_cfg_t;

/* Counters since ds_cluster_new(), and the peers now. */
typedef struct ds_cluster_stats {
    uint64_t frames_sent;     /* frames (control ones included) nng accepted */
    uint64_t frames_received; /* frames read from the listener, bad ones included */
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t frames_bad;       /* rejected: garbage, truncated, unknown type, protocol errors */
    uint64_t frames_oversized; /* of frames_bad: longer than max_frame */
    uint64_t queue_full;       /* sends refused with DS_EFULL */
    uint64_t undeliverable;    /* good frames the local runtime refused (no actor, full...) */
    uint64_t node_up;          /* down-to-up transitions */
    uint64_t node_down;        /* up-to-down transitions (ds_rt_node_down() calls) */
    uint64_t pipes_closed;     /* incoming connections closed for bad frames, no HELLO or
                                  too many connections */
    uint32_t peers;            /* peers known */
    uint32_t peers_up;         /* peers up */
} ds_cluster_stats_t;

/* Creates a cluster for rt (whose node id is this node's) and installs it as rt's router; no
 * socket is opened before ds_cluster_start(). Install it before any actor sends to another
 * node (ds_rt_set_router() is a plain store). 0 and *out; -EINVAL for a missing or too long
 * URL, a peer node that is 0 or this node, timeout_ms <= heartbeat_ms, reconnect_max_ms <
 * reconnect_min_ms, or max_frame <= DS_WIRE_HEADER; -EEXIST for a node listed twice. */
int ds_cluster_new(ds_rt_t *rt, const ds_cluster_cfg_t *cfg, ds_cluster_t **out);

/* Listens, starts the cluster's thread and dials every peer (in the background: a peer that is
 * not there yet is redialled until it is). 0; -EALREADY when started; -EADDRINUSE; -EINVAL for
 * a URL nng cannot parse; -ENOTSUP for a scheme it does not support; another -errno. */
int ds_cluster_start(ds_cluster_t *c);

/* Closes every connection: peers that were up go down (ds_rt_node_down() runs for each before
 * this returns) and sends to other nodes fail with DS_ENODEDOWN until ds_cluster_start()
 * again. Does nothing when not started. Do not call it from a callback of nng. */
void ds_cluster_stop(ds_cluster_t *c);

/* Stops the cluster's thread only: no redial, heartbeat or connection closed by it from now
 * on, frames still received, sends to other nodes queued; ds_cluster_stop() (or _free()) then
 * closes everything. For several clusters in one process (tests): halting them all before
 * stopping any keeps one's thread from closing its connections while another's are being
 * closed -- nng 1.5.2 (Debian 12) can deadlock in two concurrent nng_close() calls (nng issue
 * #1543). Does nothing when not started or already halted. Not concurrently with _stop(). */
void ds_cluster_halt(ds_cluster_t *c);

/* Stops the cluster, removes it as the runtime's router and frees it. Accepts NULL; sets *cp to
 * NULL. The router is a plain field of the runtime: call this only when no thread can be
 * sending to another node (after ds_rt_drain(), or before ds_rt_start()), and before
 * ds_rt_free(). */
void ds_cluster_free(ds_cluster_t **cp);

/* Adds a peer (dialled at once if the cluster is started). 0; -EINVAL as in ds_cluster_new();
 * -EEXIST if the node is known already. */
int ds_cluster_add_peer(ds_cluster_t *c, uint16_t node, const char *url);

/* True while the peer is up (sends to it are accepted). */
bool ds_cluster_peer_up(ds_cluster_t *c, uint16_t node);

/* The URL this node listens on, with the port nng bound for a tcp port 0, copied into
 * buf[0..cap) NUL-terminated. 0; -ENOTCONN when not started; -ENOSPC when cap is too small. */
int ds_cluster_listen_url(ds_cluster_t *c, char *buf, size_t cap);

/* Reads the counters into *out. */
void ds_cluster_stats(ds_cluster_t *c, ds_cluster_stats_t *out);
