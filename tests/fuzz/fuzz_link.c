/* fuzz_link: the cluster's input path (transports/nng/cluster_int.h), bytes in, then decode
 * and deliver or reject, without sockets. An input is a sequence of records, each one frame as
 * received on one incoming connection:
 *   1 byte  connection (pipe id 1 + byte % 4)
 *   2 bytes length n (little-endian), then n bytes (fewer if the input ends)
 * Node 1 (this one) knows peers 2 and 3; its runtime is never started and has no actor, so
 * every decoded message is refused (DS_ENOACTOR) and answered as ds_rt_deliver_remote() says
 * (error replies, DOWN and EXIT signals), through the router, which drops them (no peer is up).
 * No message may stay queued: a mailbox lives in memory the leak checker does not scan. A
 * fresh cluster per input keeps inputs independent. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "runtime/log.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "runtime/wire.h"
#include "transports/nng/cluster.h"
#include "transports/nng/cluster_int.h"

static ds_rt_t *rt;

static void init_once(void)
{
    if (rt != NULL) {
        return;
    }
    ds_log_set_level(DS_LOG_OFF);
    ds_rt_cfg_t cfg = {.node = 1, .workers = 1, .max_actors = 1024};
    if (ds_rt_new(&cfg, &rt) != 0) {
        abort();
    }
}

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    static const ds_cluster_peer_t peers[] = {
        {.node = 2, .url = "ipc:///tmp/ds-fuzz-link-2.sock"},
        {.node = 3, .url = "ipc:///tmp/ds-fuzz-link-3.sock"},
    };
    ds_cluster_cfg_t cfg = {
        .listen_url = "ipc:///tmp/ds-fuzz-link-1.sock", /* never started: no socket */
        .peers = peers,
        .npeers = 2,
        .max_frame = DS_WIRE_HEADER + 4096,
        .max_bad_frames = 4,
    };
    ds_cluster_t *c;
    if (ds_cluster_new(rt, &cfg, &c) != 0) {
        abort();
    }
    size_t i = 0;
    while (i + 3 <= size) {
        uint32_t pipe = 1u + data[i] % 4u;
        size_t n = (size_t)data[i + 1] | ((size_t)data[i + 2] << 8);
        i += 3;
        if (n > size - i) {
            n = size - i;
        }
        (void)ds__cluster_input(c, pipe, data + i, n);
        i += n;
    }
    ds_cluster_free(&c);
    return 0;
}
