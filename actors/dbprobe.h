/* dbprobe: a short-lived actor that proves a starting node's asynchronous database path end to
 * end: sent DS_MT_PG_GO, it asks the pool (transports/pg/pool.h) a system request for
 * dossier.schema_version() as the application role, logs "database ready" with the version and
 * the round trip (or "database not ready" with the reason), and stops. */
#pragma once

#include "runtime/rt.h"

/* arg: a ds_actor_id_t * naming the pool (copied). */
extern const ds_behaviour_t ds_dbprobe_behaviour;
