/* side: a helper thread for code that may block and wants two things done at once, such as
 * hashing a buffer while it encrypts and writes the same buffer (transports/blob).
 *
 * One job at a time: ds_side_run() hands fn(arg) to the thread and returns at once;
 * ds_side_wait() returns once fn has returned. Everything fn wrote is visible to the caller
 * after ds_side_wait() (the hand-offs go through a mutex), and everything the caller wrote
 * before ds_side_run() is visible to fn.
 *
 * Threads: one owner thread calls every function; fn runs on the helper thread. This is not a
 * pool and not for actors (an actor never blocks; they use the work pool, runtime/loop.h). */
#pragma once

typedef struct ds_side ds_side_t;

/* Starts the helper thread: 0 and *out, or -errno from pthread_create. Free with
 * ds_side_free(). */
int ds_side_new(ds_side_t **out);

/* Runs fn(arg) on the helper thread. No other job may be pending (call ds_side_wait() first). */
void ds_side_run(ds_side_t *s, void (*fn)(void *arg), void *arg);

/* Waits until the job handed over by ds_side_run() has returned; at once when there is none. */
void ds_side_wait(ds_side_t *s);

/* Waits for a pending job, stops and joins the thread, frees. Accepts NULL; nulls *sp. */
void ds_side_free(ds_side_t **sp);
