/* heartbeat: a system actor that logs a line every period, showing the node is alive and how
 * many actors it holds: {"msg":"heartbeat","node":1,"actors":3,"tick":7}.
 * Spawn it with ds_spawn(rt, &ds_heartbeat_behaviour, &cfg, ...), cfg a ds_heartbeat_cfg_t
 * that need only live through the call. Its periodic timer is cancelled when it stops. */
#pragma once

#include <stdint.h>

#include "runtime/rt.h"

/* Declared here until the message catalog (schema/) takes the actors' message types. */
enum {
    DS_MT_HEARTBEAT_TICK = 300, /* empty payload: one period has passed */
};

typedef struct ds_heartbeat_cfg {
    int64_t period_ns; /* > 0 */
} ds_heartbeat_cfg_t;

extern const ds_behaviour_t ds_heartbeat_behaviour;
