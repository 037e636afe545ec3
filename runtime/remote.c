/* remote: delivery of messages that arrived from another node (see ds_rt_deliver_remote() in
 * runtime/rt.h). A transport decodes a frame into a message whose header is the remote
 * sender's; ds_send_from() would overwrite `from` and `group`, so this path goes straight to
 * ds__deliver() and keeps them. A refusal cannot be returned to a sender on another node, so
 * it is answered the way a local sender would have learnt it: asks get an error reply, signals
 * that expect an answer from a dead actor get it (ds__answer_dead()). */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "runtime/catalog.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "runtime/rt_int.h"

static void answer_refusal(ds_rt_t *rt, ds_msg_t *m, int code)
{
    if ((m->flags & DS_MSG_F_ASK) != 0 && !ds_id_is_nil(m->from)) {
        ds_msg_t *r;
        if (ds_error_new(&(ds_error_t){.code = code}, &r) == 0) {
            r->flags |= DS_MSG_F_ERROR;
            (void)ds_reply_from(rt, m, &r);
            ds_msg_free(&r); /* NULL when it was taken */
        }
        return;
    }
    if (code == DS_ENOACTOR && (m->flags & DS_MSG_F_SYSTEM) != 0 && !ds_id_is_nil(m->from)) {
        ds_msg_t *req = m; /* ds__answer_dead() reads the message, never frees it */
        ds__answer_dead(rt, m->to, &req);
    }
}

int ds_rt_deliver_remote(ds_rt_t *rt, ds_msg_t **msgp)
{
    ds_msg_t *m = *msgp;
    int rc;
    bool privileged = (m->flags & (DS_MSG_F_SYSTEM | DS_MSG_F_REPLY)) != 0;
    if (ds_id_node(m->to) != rt->cfg.node) {
        rc = DS_ENOACTOR; /* never forwarded: the router would send it on again */
    } else if (m->len > rt->cfg.max_payload) {
        rc = -EMSGSIZE;
    } else if (!privileged && atomic_load_explicit(&rt->draining, memory_order_relaxed)) {
        rc = DS_ESHUTDOWN;
    } else {
        rc = ds__deliver(rt, NULL, m->to, msgp);
    }
    if (rc < 0 && (m->flags & DS_MSG_F_REPLY) == 0) {
        answer_refusal(rt, m, rc);
    }
    return rc;
}
