/* timer: the runtime's timer service. One-shot and periodic timers that deliver a message to an
 * actor at a deadline on the ds_clock_now() (CLOCK_MONOTONIC, ns) time base. The runtime builds
 * ds_timer_after(), ds_timer_every(), ds_timer_cancel() and ask timeouts on it.
 *
 * Model. Pending timers sit in a 4-ary min-heap ordered by (deadline, order of arming); each
 * entry lives in a slab slot and remembers its heap position, so cancel removes it in
 * O(log n) and frees its message at once. One timer thread sleeps until the earliest deadline,
 * collects every due timer under the lock and then calls the delivery callback without it.
 * A pending timer costs 48 bytes plus its message; the slab and heap keep their high-water
 * capacity until ds_timers_free().
 *
 * Invariants. A timer id packs the slot index (low 32 bits) and the slot's generation (high 32
 * bits, never 0), so an id is never 0 and a stale id never reaches a reused slot (a slot whose
 * generation would wrap is retired). Timers with equal deadlines fire in the order they were
 * armed. A periodic timer's next deadline is the previous deadline plus the period, so it does
 * not drift; if the timer thread fell behind by more than a period, the missed firings are
 * skipped (one firing, then the next deadline in the future), never delivered in a burst.
 *
 * Cancel is exact. A one-shot timer is committed to firing when the timer thread collects it:
 * from then on ds_timers_cancel() returns -ENOENT, and before then it returns 0 and the timer
 * never fires. For a periodic timer, ds_timers_cancel() returning 0 means no callback for it
 * runs after the return: a cancel that races with one of its deliveries waits until that
 * delivery's callback returned (unless called from the callback itself).
 *
 * Threads. ds_timers_add(), ds_timers_cancel() and ds_timers_pending() are safe from any thread,
 * including the delivery callback. ds_timers_new(), ds_timers_start() and ds_timers_free() are
 * called by the owner, once each, never from the callback. The callback runs on the timer thread
 * only, one firing at a time; it must not block on anything a thread calling
 * ds_timers_cancel() may hold.
 *
 * Ownership. A timer owns its message from a successful ds_timers_add() until it is delivered
 * (one-shot), cancelled or freed with the service. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "runtime/id.h"
#include "runtime/msg.h"

typedef struct ds_timers ds_timers_t;

/* Delivers one firing to `to`; called on the timer thread without the service's lock. Returns
 * the send's result: 0 when it took *msgp (and set it to NULL). On an error *msgp is still the
 * service's and is freed by it. DS_ENOACTOR (the receiver is gone) cancels a periodic timer;
 * any other error (DS_EFULL...) drops that one firing and a periodic timer keeps going. */
typedef int (*ds_timer_deliver_cb_t)(void *arg, ds_actor_id_t to, ds_msg_t **msgp);

/* A timer service (thread not yet started) that delivers through cb(arg, ...). 0 and *out, or
 * -EINVAL if cb or out is NULL, or -errno if a lock could not be set up. Free with
 * ds_timers_free(). */
int ds_timers_new(ds_timer_deliver_cb_t cb, void *arg, ds_timers_t **out);

/* Starts the timer thread. Timers added before it fire once it runs. 0, -EINVAL if it already
 * started, or -errno from pthread_create(). */
int ds_timers_start(ds_timers_t *t);

/* Stops and joins the timer thread (finishing the batch it was delivering), then frees every
 * pending timer and its message. Accepts NULL; sets *tp to NULL. Not from the callback. */
void ds_timers_free(ds_timers_t **tp);

/* Arms a timer that fires at `deadline` (ds_clock_now() time; a past deadline fires at once)
 * and then every period_ns if period_ns > 0. Each firing of a periodic timer delivers a
 * ds_msg_clone() of the stored message; a one-shot timer delivers the message itself.
 * 0: the timer took *msgp (set to NULL) and its id is in *tid (never 0; tid may be NULL).
 * -EINVAL for a negative period or a NULL message; -ENOMEM if the id space (2^32 slots) is
 * exhausted. On an error *msgp is still the caller's. Any thread. */
int ds_timers_add(ds_timers_t *t, ds_actor_id_t to, int64_t deadline, int64_t period_ns,
                  ds_msg_t **msgp, uint64_t *tid);

/* Cancels timer tid and frees its message. 0 if it will not fire again; -ENOENT if it already
 * fired (one-shot), a delivery found its receiver gone (periodic), or tid is unknown or stale.
 * May wait for an in-flight delivery of the same periodic timer (see above). Any thread. */
int ds_timers_cancel(ds_timers_t *t, uint64_t tid);

/* Timers armed and not yet collected for firing (a periodic timer counts until cancelled). */
size_t ds_timers_pending(ds_timers_t *t);
