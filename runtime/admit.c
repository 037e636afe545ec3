/* admit: a capped count of holders per key. See runtime/admit.h.
 *
 * A chained hash table of the keys held now (FNV-1a over the key), under one mutex. An entry
 * lives while its count is above zero: a key is allocated when first taken and freed when its
 * last holder releases it, so the table holds at most `total` entries. Buckets: a power of two
 * near total / 4, between 16 and 4096; chains stay short for the numbers of peers a node sees. */
#include "runtime/admit.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/err.h"
#include "runtime/mem.h"

enum {
    ADMIT_BUCKETS_MIN = 16,
    ADMIT_BUCKETS_MAX = 4096,
};

typedef struct admit_entry {
    struct admit_entry *next;
    uint32_t count;
    char key[DS_ADMIT_KEY_MAX + 1];
} admit_entry_t;

struct ds_admit {
    pthread_mutex_t mu;
    uint32_t refs;
    uint32_t total, per_key;
    uint32_t held;
    uint32_t mask; /* buckets - 1 */
    admit_entry_t **buckets;
};

int ds_admit_new(uint32_t total, uint32_t per_key, ds_admit_t **out)
{
    if (total == 0 || per_key == 0 || out == NULL) {
        return -EINVAL;
    }
    uint32_t n = ADMIT_BUCKETS_MIN;
    while (n < ADMIT_BUCKETS_MAX && n < total / 4) {
        n *= 2;
    }
    ds_admit_t *a = ds_xcalloc(1, sizeof(*a));
    pthread_mutex_init(&a->mu, NULL);
    a->refs = 1;
    a->total = total;
    a->per_key = per_key;
    a->mask = n - 1;
    a->buckets = ds_xcalloc(n, sizeof(admit_entry_t *));
    *out = a;
    return 0;
}

ds_admit_t *ds_admit_ref(ds_admit_t *a)
{
    pthread_mutex_lock(&a->mu);
    a->refs++;
    pthread_mutex_unlock(&a->mu);
    return a;
}

void ds_admit_unref(ds_admit_t **ap)
{
    ds_admit_t *a = ap == NULL ? NULL : *ap;
    if (a == NULL) {
        return;
    }
    *ap = NULL;
    pthread_mutex_lock(&a->mu);
    uint32_t left = --a->refs;
    pthread_mutex_unlock(&a->mu);
    if (left > 0) {
        return;
    }
    for (uint32_t i = 0; i <= a->mask; i++) {
        while (a->buckets[i] != NULL) {
            admit_entry_t *e = a->buckets[i];
            a->buckets[i] = e->next;
            free(e);
        }
    }
    free(a->buckets);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* The key as it counts (cut to DS_ADMIT_KEY_MAX bytes) in out, and its hash. */
static uint32_t admit_key(const char *key, char out[DS_ADMIT_KEY_MAX + 1])
{
    size_t n = strnlen(key, DS_ADMIT_KEY_MAX);
    memcpy(out, key, n);
    out[n] = '\0';
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)out[i]) * 16777619u;
    }
    return h;
}

/* The link that points at key's entry (or the chain's NULL end). Caller holds the mutex. */
static admit_entry_t **admit_find(ds_admit_t *a, uint32_t h, const char *key)
{
    admit_entry_t **pp = &a->buckets[h & a->mask];
    while (*pp != NULL && strcmp((*pp)->key, key) != 0) {
        pp = &(*pp)->next;
    }
    return pp;
}

int ds_admit_take(ds_admit_t *a, const char *key)
{
    char k[DS_ADMIT_KEY_MAX + 1];
    uint32_t h = admit_key(key, k);
    admit_entry_t *fresh = NULL;
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    admit_entry_t **pp = admit_find(a, h, k);
    if (a->held >= a->total || (*pp != NULL && (*pp)->count >= a->per_key)) {
        rc = DS_EFULL;
    } else if (*pp != NULL) {
        (*pp)->count++;
        a->held++;
    } else {
        /* ds_xcalloc under the mutex: it aborts rather than fail, and takes no other lock of
         * ours. */
        fresh = ds_xcalloc(1, sizeof(*fresh));
        memcpy(fresh->key, k, sizeof(k));
        fresh->count = 1;
        *pp = fresh;
        a->held++;
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void ds_admit_release(ds_admit_t *a, const char *key)
{
    char k[DS_ADMIT_KEY_MAX + 1];
    uint32_t h = admit_key(key, k);
    admit_entry_t *gone = NULL;
    pthread_mutex_lock(&a->mu);
    admit_entry_t **pp = admit_find(a, h, k);
    if (*pp != NULL) {
        a->held--;
        if (--(*pp)->count == 0) {
            gone = *pp;
            *pp = gone->next;
        }
    }
    pthread_mutex_unlock(&a->mu);
    free(gone);
}

uint32_t ds_admit_held(ds_admit_t *a)
{
    pthread_mutex_lock(&a->mu);
    uint32_t n = a->held;
    pthread_mutex_unlock(&a->mu);
    return n;
}
