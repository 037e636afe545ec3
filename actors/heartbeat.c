/* heartbeat: see actors/heartbeat.h. */
#include "actors/heartbeat.h"

#include <errno.h>
#include <stdlib.h>

#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/mem.h"
#include "runtime/msg.h"

typedef struct heartbeat {
    uint64_t timer; /* the periodic timer delivering DS_MT_HEARTBEAT_TICK */
    uint64_t ticks;
} heartbeat_t;

static int heartbeat_init(ds_ctx_t *ctx, void *arg)
{
    const ds_heartbeat_cfg_t *cfg = arg;
    if (cfg == NULL || cfg->period_ns <= 0) {
        return -EINVAL;
    }
    ds_msg_t *tick = NULL;
    int rc = ds_msg_new(DS_MT_HEARTBEAT_TICK, NULL, 0, &tick);
    if (rc < 0) {
        return rc;
    }
    heartbeat_t *hb = ds_xcalloc(1, sizeof(*hb));
    rc = ds_timer_every(ds_ctx_rt(ctx), ds_self(ctx), cfg->period_ns, &tick, &hb->timer);
    if (rc < 0) {
        ds_msg_free(&tick); /* not taken, still ours */
        free(hb);
        return rc;
    }
    ds_ctx_set_state(ctx, hb);
    return 0;
}

static int heartbeat_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    heartbeat_t *hb = ds_ctx_state(ctx);
    const ds_msg_t *msg = *msgp;
    if (msg->type != DS_MT_HEARTBEAT_TICK) {
        ds_log_debug("heartbeat ignored a message", DS_LOG_U64("type", msg->type), DS_LOG_END);
        return 0;
    }
    hb->ticks++;
    ds_rt_t *rt = ds_ctx_rt(ctx);
    ds_log_info("heartbeat", DS_LOG_U64("node", ds_rt_node(rt)),
                DS_LOG_U64("actors", ds_rt_actor_count(rt)), DS_LOG_U64("tick", hb->ticks),
                DS_LOG_END);
    return 0;
}

static void heartbeat_terminate(ds_ctx_t *ctx, int reason)
{
    heartbeat_t *hb = ds_ctx_state(ctx);
    if (hb == NULL) {
        return;
    }
    /* -ENOENT only means the timer already saw the actor gone: nothing left to cancel. */
    (void)ds_timer_cancel(ds_ctx_rt(ctx), hb->timer);
    if (reason < 0) {
        ds_log_warn("heartbeat stopped", DS_LOG_STR("reason", ds_errname(reason)), DS_LOG_END);
    }
    ds_ctx_set_state(ctx, NULL);
    free(hb);
}

const ds_behaviour_t ds_heartbeat_behaviour = {
    .name = "heartbeat",
    .init = heartbeat_init,
    .receive = heartbeat_receive,
    .terminate = heartbeat_terminate,
};
