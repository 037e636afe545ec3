/* mpsc: an intrusive, unbounded, lock-free multi-producer single-consumer queue (Vyukov's
 * variant with a sentinel node, as in Pony's messageq.c). Mailboxes (nodes are messages) and
 * worker inboxes (nodes are actors) use it; bounds are enforced by the callers' counters.
 *
 * Idea: producers swing `tail` to their node with one atomic exchange, then link the previous
 * node to it. The consumer walks from `head`. Between a producer's exchange and its link the
 * queue looks empty from the head: pop returns NULL although a push is under way; callers that
 * must not lose a wake-up keep a separate counter (the mailbox's depth) and re-check it.
 *
 * Threads: any thread pushes; one thread at a time pops (the owner of the queue).
 * Memory: the queue owns nothing; a node belongs to the queue from push until pop. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "runtime/msg.h"

typedef struct ds_mpsc {
    _Atomic(struct ds_qnode *) tail; /* producers' side */
    struct ds_qnode *head;           /* the consumer's side */
    struct ds_qnode sentinel;
} ds_mpsc_t;

static inline void ds_mpsc_init(ds_mpsc_t *q)
{
    atomic_init(&q->sentinel.next, NULL);
    atomic_init(&q->tail, &q->sentinel);
    q->head = &q->sentinel;
}

static inline void ds_mpsc_push(ds_mpsc_t *q, struct ds_qnode *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* acq_rel: the release publishes n's contents to the consumer that follows prev->next;
     * the acquire orders us after the producer whose node we link behind. */
    struct ds_qnode *prev = atomic_exchange_explicit(&q->tail, n, memory_order_acq_rel);
    /* Release pairs with the acquire load of next in ds_mpsc_pop(). */
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/* The next node, or NULL when the queue is empty or a push is half done. */
static inline struct ds_qnode *ds_mpsc_pop(ds_mpsc_t *q)
{
    struct ds_qnode *head = q->head;
    /* Acquire pairs with the release store of next in ds_mpsc_push(). */
    struct ds_qnode *next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (head == &q->sentinel) {
        if (next == NULL) {
            return NULL;
        }
        q->head = next;
        head = next;
        next = atomic_load_explicit(&head->next, memory_order_acquire);
    }
    if (next != NULL) {
        q->head = next;
        return head;
    }
    /* head is the last linked node: re-queue the sentinel behind it so head can be handed out. */
    if (head != atomic_load_explicit(&q->tail, memory_order_acquire)) {
        return NULL; /* a producer swung tail but has not linked yet */
    }
    ds_mpsc_push(q, &q->sentinel);
    next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (next != NULL) {
        q->head = next;
        return head;
    }
    return NULL;
}

/* True when nothing is queued and no push is under way (consumer only). */
static inline bool ds_mpsc_empty(ds_mpsc_t *q)
{
    return q->head == &q->sentinel &&
           atomic_load_explicit(&q->sentinel.next, memory_order_acquire) == NULL &&
           atomic_load_explicit(&q->tail, memory_order_acquire) == &q->sentinel;
}
