/* admit: a count of holders shared between threads, capped in total and per key. The HTTP
 * gateway's loops share one (transports/http/server.h) so that max_connections and
 * max_connections_ip hold for the process, however the kernel spreads connections over the
 * loops' SO_REUSEPORT listeners.
 *
 * Invariant: held() <= total, and the holders of any one key <= per_key. A key is a string of
 * at most DS_ADMIT_KEY_MAX bytes (a longer one is cut: keys equal in their first
 * DS_ADMIT_KEY_MAX bytes count as one).
 *
 * Threads: every function is safe from any thread. One mutex guards the table; it is held for
 * a hash probe and never across a call out.
 *
 * Lifetime: reference-counted; ds_admit_new() returns one reference, ds_admit_ref() adds one,
 * ds_admit_unref() drops one and frees the table with the last. */
#pragma once

#include <stdint.h>

enum {
    DS_ADMIT_KEY_MAX = 63, /* bytes of a key that count */
};

typedef struct ds_admit ds_admit_t;

/* 0 and a new table in *out (one reference), or -EINVAL if total or per_key is 0. */
int ds_admit_new(uint32_t total, uint32_t per_key, ds_admit_t **out);
/* Another reference to a (not NULL); returns a. */
ds_admit_t *ds_admit_ref(ds_admit_t *a);
/* Drops the reference in *ap (NULL accepted) and sets it to NULL; the last frees the table. */
void ds_admit_unref(ds_admit_t **ap);

/* One more holder of key: 0, or DS_EFULL when the total or key's count is at its cap (nothing
 * changed). Each 0 is paired with exactly one ds_admit_release() of the same key. */
int ds_admit_take(ds_admit_t *a, const char *key);
/* One holder of key less (a key not held: nothing happens). */
void ds_admit_release(ds_admit_t *a, const char *key);
/* Holders now, in total (a snapshot: other threads may change it at once). */
uint32_t ds_admit_held(ds_admit_t *a);
