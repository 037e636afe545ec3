/* supervisor: restart strategies over links and trapped exits. See runtime/supervisor.h. */
#include "runtime/supervisor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/catalog.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/mem.h"
#include "runtime/registry.h"

typedef struct sup {
    ds_sup_spec_t spec;
    ds_child_spec_t *children;
    ds_actor_id_t *ids; /* current incarnation, nil when not running */
    int64_t *restarts;  /* ring of the times of the last max_restarts restarts */
    uint32_t nrestarts, ring_pos;
} sup_t;

static void sup_free(sup_t *s)
{
    if (s == NULL) {
        return;
    }
    free(s->children);
    free(s->ids);
    free(s->restarts);
    free(s);
}

static int start_child(ds_ctx_t *ctx, sup_t *s, size_t i)
{
    const ds_child_spec_t *c = &s->children[i];
    ds_spawn_opts_t o = {.group = c->group, .link = ds_self(ctx), .parent = ds_self(ctx)};
    int rc = ds_spawn(ds_ctx_rt(ctx), c->behaviour, c->arg, &o, &s->ids[i]);
    if (rc < 0) {
        s->ids[i] = DS_ID_NIL;
        return rc;
    }
    if (c->name != NULL) {
        (void)ds_register_name(ds_ctx_rt(ctx), c->name, s->ids[i]);
    }
    return 0;
}

static int sup_init(ds_ctx_t *ctx, void *arg)
{
    const ds_sup_spec_t *spec = arg;
    sup_t *s = ds_xcalloc(1, sizeof(*s));
    s->spec = *spec;
    if (s->spec.max_restarts == 0) {
        s->spec.max_restarts = 3;
    }
    if (s->spec.period_ns <= 0) {
        s->spec.period_ns = 5000000000LL;
    }
    s->children = ds_xcalloc(spec->nchildren ? spec->nchildren : 1, sizeof(ds_child_spec_t));
    memcpy(s->children, spec->children, spec->nchildren * sizeof(ds_child_spec_t));
    s->spec.children = s->children;
    s->ids = ds_xcalloc(spec->nchildren ? spec->nchildren : 1, sizeof(ds_actor_id_t));
    s->restarts = ds_xcalloc(s->spec.max_restarts, sizeof(int64_t));
    ds_ctx_set_state(ctx, s);
    ds_ctx_trap_exit(ctx, true);
    for (size_t i = 0; i < spec->nchildren; i++) {
        int rc = start_child(ctx, s, i);
        if (rc < 0) {
            /* Stop the children started so far. Our links cannot: we die before handling
             * their LINK messages, so our death signals none of them. */
            for (size_t j = 0; j < i; j++) {
                (void)ds_exit(ctx, s->ids[j], DS_EXIT_SHUTDOWN);
            }
            sup_free(s);
            ds_ctx_set_state(ctx, NULL);
            return rc;
        }
    }
    return 0;
}

/* True if one more restart stays within the intensity limit (and records it). */
static bool allow_restart(sup_t *s)
{
    int64_t now = ds_clock_now();
    uint32_t max = s->spec.max_restarts;
    if (s->nrestarts >= max) {
        int64_t oldest = s->restarts[s->ring_pos]; /* the max-th most recent restart */
        if (now - oldest < s->spec.period_ns) {
            return false;
        }
    } else {
        s->nrestarts++;
    }
    s->restarts[s->ring_pos] = now;
    s->ring_pos = (s->ring_pos + 1) % max;
    return true;
}

static bool wants_restart(const ds_child_spec_t *c, int64_t reason)
{
    switch (c->restart) {
    case DS_RESTART_PERMANENT:
        return true;
    case DS_RESTART_TRANSIENT:
        return reason != DS_EXIT_NORMAL && reason != DS_EXIT_SHUTDOWN;
    default:
        return false;
    }
}

static int restart(ds_ctx_t *ctx, sup_t *s, size_t i)
{
    if (!allow_restart(s)) {
        return DS_ELIMIT;
    }
    if (s->spec.strategy == DS_ONE_FOR_ONE) {
        return start_child(ctx, s, i);
    }
    for (size_t j = 0; j < s->spec.nchildren; j++) {
        if (j != i && !ds_id_is_nil(s->ids[j])) {
            (void)ds_unlink(ctx, s->ids[j]);
            (void)ds_exit(ctx, s->ids[j], DS_EXIT_SHUTDOWN);
            s->ids[j] = DS_ID_NIL;
        }
    }
    /* Everything starts again in spec order, but for temporary children, which never do. */
    for (size_t j = 0; j < s->spec.nchildren; j++) {
        if (j != i && s->children[j].restart == DS_RESTART_TEMPORARY) {
            continue;
        }
        int rc = start_child(ctx, s, j);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int sup_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    sup_t *s = ds_ctx_state(ctx);
    const ds_msg_t *m = *msgp;
    ds_exit_t x;
    if (m->type != DS_MT_EXIT || ds_exit_decode(m, &x) < 0) {
        return 0; /* a supervisor takes no other messages */
    }
    for (size_t i = 0; i < s->spec.nchildren; i++) {
        if (!ds_id_eq(s->ids[i], x.who)) {
            continue;
        }
        s->ids[i] = DS_ID_NIL;
        if (!wants_restart(&s->children[i], x.reason) || ds_rt_draining(ds_ctx_rt(ctx))) {
            return 0;
        }
        return restart(ctx, s, i); /* DS_ELIMIT stops the supervisor */
    }
    /* Not a child: a linked parent. Stop with it unless it ended normally. */
    if (x.reason != DS_EXIT_NORMAL) {
        ds_ctx_stop(ctx, (int)x.reason);
    }
    return 0;
}

static void sup_terminate(ds_ctx_t *ctx, int reason)
{
    sup_t *s = ds_ctx_state(ctx);
    (void)reason;
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->spec.nchildren; i++) {
        if (!ds_id_is_nil(s->ids[i])) {
            (void)ds_exit(ctx, s->ids[i], DS_EXIT_SHUTDOWN);
        }
    }
    sup_free(s);
    ds_ctx_set_state(ctx, NULL);
}

static const ds_behaviour_t sup_behaviour = {
    .name = "supervisor", .init = sup_init, .receive = sup_receive, .terminate = sup_terminate};

int ds_supervisor_start(ds_rt_t *rt, const ds_sup_spec_t *spec, const ds_spawn_opts_t *opts,
                        ds_actor_id_t *out)
{
    if (spec == NULL || (spec->nchildren > 0 && spec->children == NULL) ||
        spec->strategy > DS_ONE_FOR_ALL || spec->max_restarts > 1000000) {
        return -EINVAL;
    }
    for (size_t i = 0; i < spec->nchildren; i++) {
        const ds_child_spec_t *c = &spec->children[i];
        if (c->behaviour == NULL || c->behaviour->receive == NULL ||
            c->restart > DS_RESTART_TEMPORARY) {
            return -EINVAL;
        }
    }
    ds_spawn_opts_t o = opts != NULL ? *opts : (ds_spawn_opts_t){0};
    o.trap_exit = true;
    return ds_spawn(rt, &sup_behaviour, (void *)spec, &o, out);
}
