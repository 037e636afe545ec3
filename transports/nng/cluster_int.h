/* cluster_int: the cluster's frame handling without sockets, for its tests and its fuzz target
 * (tests/fuzz/fuzz_link.c). Nothing outside transports/nng/ and tests/ includes this file.
 * Threads: as cluster.h. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "transports/nng/cluster.h"

enum {
    DS__CTL_SIZE = 16, /* bytes of a control frame (cluster.h tells the layout) */
    DS__CTL_VERSION = 1,
    DS__CTL_HELLO = 1,
    DS__CTL_HEARTBEAT = 2,
};

/* Writes a control frame of kind for node into out[0..DS__CTL_SIZE). */
void ds__cluster_ctl_encode(uint8_t out[DS__CTL_SIZE], uint8_t kind, uint16_t node,
                            uint64_t incarnation);

/* Handles the bytes p[0..n) as one frame received on the incoming pipe with id `pipe` (a pipe
 * not seen before is taken as newly connected): a HELLO names the pipe's node, a heartbeat
 * refreshes it, a wire frame is decoded and delivered with ds_rt_deliver_remote(). 0 when the
 * frame was accepted (a decoded message the runtime refused included: it counts as
 * undeliverable); a rejected frame is counted, logged and dropped, and its code returned:
 * DS_EDECODE, DS_EUNKNOWN, -EMSGSIZE (oversized), -EPROTO (data before HELLO, a HELLO for an
 * unknown node or a second node, a frame for another node or from the wrong one). -ENOSPC
 * when the pipe table is full (the pipe would have been refused). Never crashes, whatever the
 * bytes. */
int ds__cluster_input(ds_cluster_t *c, uint32_t pipe, const uint8_t *p, size_t n);
