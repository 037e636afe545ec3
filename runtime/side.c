/* side: a helper thread running one job at a time. See runtime/side.h.
 * The state moves IDLE -> JOB (owner) -> IDLE (helper, after fn) and IDLE -> STOP (owner);
 * every change happens under the mutex and is announced on the condition variable. */
#include "runtime/side.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "runtime/mem.h"

enum side_state {
    SIDE_IDLE,
    SIDE_JOB,
    SIDE_STOP,
};

struct ds_side {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum side_state state;
    void (*fn)(void *arg);
    void *arg;
};

static void *side_main(void *p)
{
    ds_side_t *s = p;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->state == SIDE_IDLE) {
            pthread_cond_wait(&s->cv, &s->mu);
        }
        if (s->state == SIDE_STOP) {
            break;
        }
        void (*fn)(void *) = s->fn;
        void *arg = s->arg;
        pthread_mutex_unlock(&s->mu);
        fn(arg);
        pthread_mutex_lock(&s->mu);
        s->state = SIDE_IDLE;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int ds_side_new(ds_side_t **out)
{
    ds_side_t *s = ds_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->state = SIDE_IDLE;
    int rc = pthread_create(&s->thread, NULL, side_main, s);
    if (rc != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -rc;
    }
    *out = s;
    return 0;
}

void ds_side_run(ds_side_t *s, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&s->mu);
    assert(s->state == SIDE_IDLE); /* one job at a time: the caller waits first */
    s->fn = fn;
    s->arg = arg;
    s->state = SIDE_JOB;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void ds_side_wait(ds_side_t *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->state == SIDE_JOB) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
}

void ds_side_free(ds_side_t **sp)
{
    ds_side_t *s = *sp;
    if (s == NULL) {
        return;
    }
    ds_side_wait(s);
    pthread_mutex_lock(&s->mu);
    s->state = SIDE_STOP;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    *sp = NULL;
}
