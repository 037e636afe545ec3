/* supervisor: an actor that starts children and restarts them when they fail (Erlang/OTP).
 *
 * A supervisor traps exits and links to each child. When a child stops, its restart type
 * decides: permanent children are always restarted, transient ones only after a failure (a
 * reason other than DS_EXIT_NORMAL or DS_EXIT_SHUTDOWN), temporary ones never. The strategy
 * decides what is restarted: one-for-one restarts the child alone; one-for-all stops the other
 * children (DS_EXIT_SHUTDOWN) and restarts them all, in spec order. More than max_restarts
 * restarts within period_ns means something is badly wrong: the supervisor gives up and stops
 * with DS_ELIMIT, which its own links and supervisor see. While the runtime drains, nothing is
 * restarted. A child with a name is re-registered under it (runtime/registry.h) at every
 * start, so ds_whereis() always finds the current incarnation.
 *
 * Threads: ds_supervisor_start() is safe from any thread and from actors. The spec is copied;
 * each child's arg is passed to its init() at every (re)start and must outlive the supervisor. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "runtime/rt.h"

typedef enum ds_restart {
    DS_RESTART_PERMANENT = 0,
    DS_RESTART_TRANSIENT = 1,
    DS_RESTART_TEMPORARY = 2,
} ds_restart_t;

typedef enum ds_strategy {
    DS_ONE_FOR_ONE = 0,
    DS_ONE_FOR_ALL = 1,
} ds_strategy_t;

typedef struct ds_child_spec {
    const char *name; /* registered name, or NULL */
    const ds_behaviour_t *behaviour;
    void *arg;
    ds_restart_t restart;
    uint32_t group; /* 0: the supervisor's group */
} ds_child_spec_t;

typedef struct ds_sup_spec {
    ds_strategy_t strategy;
    uint32_t max_restarts; /* [3] */
    int64_t period_ns;     /* [5 s] */
    const ds_child_spec_t *children;
    size_t nchildren;
} ds_sup_spec_t;

/* Starts a supervisor and its children (in spec order). opts as ds_spawn() (trap_exit is
 * forced on). 0 and its id; -EINVAL for a bad spec; a child's init error fails the start. */
int ds_supervisor_start(ds_rt_t *rt, const ds_sup_spec_t *spec, const ds_spawn_opts_t *opts,
                        ds_actor_id_t *out);
