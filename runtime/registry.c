/* registry: names and virtual actors. See runtime/registry.h.
 *
 * One table for both, split into stripes by key hash, each stripe a mutex and an open hash
 * chain. A send by key holds its stripe's mutex from the lookup (and activation) through the
 * push into the mailbox, and passivation takes the same mutex to check that the mailbox is
 * empty and remove the entry: so a message sent by key always lands in a live incarnation, and
 * activation happens once however many threads race to it. The push itself is lock-free and
 * takes tens of nanoseconds, so holding the stripe across it costs little.
 *
 * A sweeper actor in the system group ticks at a quarter of the shortest idle time and sends
 * PASSIVATE to entries idle past their kind's idle_ns. */
#include "runtime/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/catalog.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/mem.h"
#include "runtime/rt_int.h"

enum {
    STRIPES = 64,
    KIND_NAMES = UINT32_MAX, /* the pseudo-kind of named actors */
};

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    uint32_t kind, group;
    ds_actor_id_t id;
    int64_t last; /* ds_clock_now() of the last send by key */
    bool passivating;
    uint32_t len;
    uint8_t key[];
} entry_t;

typedef struct stripe {
    pthread_mutex_t lock;
    entry_t **buckets;
    uint32_t nbuckets, n;
} stripe_t;

typedef struct registry {
    stripe_t stripes[STRIPES];
    ds_kind_cfg_t kinds[DS_KINDS_MAX];
    atomic_uint nkinds;
    pthread_mutex_t kind_lock;
    ds_actor_id_t sweeper;
    int64_t sweep_ns;
    uint64_t sweep_tid;
    atomic_size_t active;
} registry_t;

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

/* The entry this thread is activating, its stripe held (ds_send_key). An actor whose init
 * fails dies inside ds_spawn(), and ds__registry_forget() must not take that stripe again:
 * the activation removes the entry itself. */
static _Thread_local entry_t *tl_activating;

static registry_t *reg_of(ds_rt_t *rt)
{
    /* The registry is created on first use; rt->registry is written once under init_lock. */
    registry_t *r = __atomic_load_n((registry_t **)&rt->registry, __ATOMIC_ACQUIRE);
    if (r != NULL) {
        return r;
    }
    pthread_mutex_lock(&init_lock);
    r = rt->registry;
    if (r == NULL) {
        r = ds_xcalloc(1, sizeof(*r));
        for (int i = 0; i < STRIPES; i++) {
            pthread_mutex_init(&r->stripes[i].lock, NULL);
        }
        pthread_mutex_init(&r->kind_lock, NULL);
        /* Release pairs with the acquire load above. */
        __atomic_store_n((registry_t **)&rt->registry, r, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&init_lock);
    return r;
}

void ds__registry_free(ds_rt_t *rt)
{
    registry_t *r = rt->registry;
    if (r == NULL) {
        return;
    }
    for (int i = 0; i < STRIPES; i++) {
        stripe_t *s = &r->stripes[i];
        for (uint32_t b = 0; b < s->nbuckets; b++) {
            entry_t *e = s->buckets[b];
            while (e != NULL) {
                entry_t *next = e->next;
                free(e);
                e = next;
            }
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    for (uint32_t k = 0; k < atomic_load(&r->nkinds); k++) {
        free((char *)r->kinds[k].name);
    }
    pthread_mutex_destroy(&r->kind_lock);
    free(r);
    rt->registry = NULL;
}

static uint64_t hash_key(uint32_t kind, uint32_t group, const uint8_t *key, size_t len)
{
    /* FNV-1a over kind, group and key; good enough spread for striping and chaining. */
    uint64_t h = 1469598103934665603ull;
    uint64_t head = ((uint64_t)kind << 32) | group;
    for (int i = 0; i < 8; i++) {
        h = (h ^ ((head >> (8 * i)) & 0xff)) * 1099511628211ull;
    }
    for (size_t i = 0; i < len; i++) {
        h = (h ^ key[i]) * 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static stripe_t *stripe_for(registry_t *r, uint64_t h)
{
    return &r->stripes[h % STRIPES];
}

static entry_t **find(stripe_t *s, uint64_t h, uint32_t kind, uint32_t group, const uint8_t *key,
                      size_t len)
{
    if (s->nbuckets == 0) {
        return NULL;
    }
    entry_t **pp = &s->buckets[(h / STRIPES) % s->nbuckets];
    for (; *pp != NULL; pp = &(*pp)->next) {
        entry_t *e = *pp;
        if (e->hash == h && e->kind == kind && e->group == group && e->len == len &&
            memcmp(e->key, key, len) == 0) {
            return pp;
        }
    }
    return NULL;
}

static void rehash(stripe_t *s)
{
    uint32_t nb = s->nbuckets ? s->nbuckets * 2 : 16;
    entry_t **nbk = ds_xcalloc(nb, sizeof(entry_t *));
    for (uint32_t b = 0; b < s->nbuckets; b++) {
        entry_t *e = s->buckets[b];
        while (e != NULL) {
            entry_t *next = e->next;
            entry_t **head = &nbk[(e->hash / STRIPES) % nb];
            e->next = *head;
            *head = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = nbk;
    s->nbuckets = nb;
}

static entry_t *insert(stripe_t *s, uint64_t h, uint32_t kind, uint32_t group, const uint8_t *key,
                       size_t len)
{
    if (s->n + 1 > s->nbuckets) {
        rehash(s);
    }
    entry_t *e = ds_xcalloc(1, sizeof(*e) + len);
    e->hash = h;
    e->kind = kind;
    e->group = group;
    e->len = (uint32_t)len;
    memcpy(e->key, key, len);
    entry_t **head = &s->buckets[(h / STRIPES) % s->nbuckets];
    e->next = *head;
    *head = e;
    s->n++;
    return e;
}

static void unlink_entry(stripe_t *s, entry_t **pp)
{
    entry_t *e = *pp;
    *pp = e->next;
    s->n--;
    free(e);
}

static bool id_alive(ds_rt_t *rt, ds_actor_id_t id)
{
    if (ds_id_node(id) != rt->cfg.node) {
        return true; /* remote: the link tells */
    }
    ds__actor_t *a = ds__slot(rt, ds_id_index(id));
    if (a == NULL) {
        return false;
    }
    uint64_t st = atomic_load_explicit(&a->st, memory_order_acquire);
    return (st & DS__ST_ALIVE) != 0 && DS__ST_GEN(st) == ds_id_gen(id);
}

/* ---- names ---- */

int ds_register_name(ds_rt_t *rt, const char *name, ds_actor_id_t id)
{
    size_t len = name != NULL ? strlen(name) : 0;
    if (len == 0 || len > DS_NAME_MAX || ds_id_is_nil(id)) {
        return -EINVAL;
    }
    registry_t *r = reg_of(rt);
    uint64_t h = hash_key(KIND_NAMES, 0, (const uint8_t *)name, len);
    stripe_t *s = stripe_for(r, h);
    pthread_mutex_lock(&s->lock);
    entry_t **pp = find(s, h, KIND_NAMES, 0, (const uint8_t *)name, len);
    entry_t *e = pp != NULL ? *pp : insert(s, h, KIND_NAMES, 0, (const uint8_t *)name, len);
    e->id = id;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int ds_whereis(ds_rt_t *rt, const char *name, ds_actor_id_t *out)
{
    size_t len = name != NULL ? strlen(name) : 0;
    if (len == 0 || len > DS_NAME_MAX) {
        return -ENOENT;
    }
    registry_t *r = reg_of(rt);
    uint64_t h = hash_key(KIND_NAMES, 0, (const uint8_t *)name, len);
    stripe_t *s = stripe_for(r, h);
    pthread_mutex_lock(&s->lock);
    entry_t **pp = find(s, h, KIND_NAMES, 0, (const uint8_t *)name, len);
    ds_actor_id_t id = pp != NULL ? (*pp)->id : DS_ID_NIL;
    pthread_mutex_unlock(&s->lock);
    if (ds_id_is_nil(id) || !id_alive(rt, id)) {
        return -ENOENT;
    }
    *out = id;
    return 0;
}

int ds_unregister_name(ds_rt_t *rt, const char *name)
{
    size_t len = name != NULL ? strlen(name) : 0;
    registry_t *r = reg_of(rt);
    uint64_t h = hash_key(KIND_NAMES, 0, (const uint8_t *)name, len);
    stripe_t *s = stripe_for(r, h);
    pthread_mutex_lock(&s->lock);
    entry_t **pp = find(s, h, KIND_NAMES, 0, (const uint8_t *)name, len);
    if (pp != NULL) {
        unlink_entry(s, pp);
    }
    pthread_mutex_unlock(&s->lock);
    return pp != NULL ? 0 : -ENOENT;
}

/* ---- virtual actors ---- */

static int sweeper_receive(ds_ctx_t *ctx, ds_msg_t **msgp);
static const ds_behaviour_t sweeper_behaviour = {.name = "registry.sweeper",
                                                 .receive = sweeper_receive};

/* Makes sure a sweeper ticks at least every idle_ns / 4 (1 ms at the least): the first kind
 * with an idle time starts it, a kind with a shorter one re-arms its timer. */
static int start_sweeper(ds_rt_t *rt, registry_t *r, int64_t idle_ns)
{
    int64_t period = idle_ns / 4 > 1000000 ? idle_ns / 4 : 1000000;
    if (!ds_id_is_nil(r->sweeper) && r->sweep_ns <= period) {
        return 0;
    }
    if (ds_id_is_nil(r->sweeper)) {
        ds_spawn_opts_t o = {.group = DS_GROUP_SYSTEM, .parent = DS_ID_NIL};
        int rc = ds_spawn(rt, &sweeper_behaviour, NULL, &o, &r->sweeper);
        if (rc < 0) {
            return rc;
        }
    } else {
        (void)ds_timer_cancel(rt, r->sweep_tid);
    }
    ds_msg_t *m;
    int rc = ds_tick_new(&(ds_tick_t){.seq = 0}, &m);
    if (rc == 0) {
        rc = ds_timer_every(rt, r->sweeper, period, &m, &r->sweep_tid);
        ds_msg_free(&m);
    }
    if (rc == 0) {
        r->sweep_ns = period;
    }
    return rc;
}

int ds_kind_register(ds_rt_t *rt, const ds_kind_cfg_t *cfg, uint32_t *kind)
{
    if (cfg == NULL || cfg->behaviour == NULL || cfg->behaviour->receive == NULL ||
        cfg->idle_ns < 0) {
        return -EINVAL;
    }
    registry_t *r = reg_of(rt);
    pthread_mutex_lock(&r->kind_lock);
    uint32_t k = atomic_load(&r->nkinds);
    if (k >= DS_KINDS_MAX) {
        pthread_mutex_unlock(&r->kind_lock);
        return -ENOSPC;
    }
    r->kinds[k] = *cfg;
    r->kinds[k].name = ds_xstrdup(cfg->name != NULL ? cfg->name : "kind");
    int rc = cfg->idle_ns > 0 ? start_sweeper(rt, r, cfg->idle_ns) : 0;
    if (rc == 0) {
        /* Release pairs with the acquire load in ds_send_key(). */
        atomic_store_explicit(&r->nkinds, k + 1, memory_order_release);
    }
    pthread_mutex_unlock(&r->kind_lock);
    if (rc < 0) {
        return rc;
    }
    *kind = k;
    return 0;
}

static int activate(ds_rt_t *rt, registry_t *r, entry_t *e)
{
    const ds_kind_cfg_t *k = &r->kinds[e->kind];
    ds_vkey_t vk = {.kind = e->kind, .group = e->group, .key = e->key, .len = e->len};
    ds_spawn_opts_t o = {.group = e->group, .parent = DS_ID_NIL};
    ds_actor_id_t id;
    /* Spawned as if from outside any actor: a virtual actor has no parent. Passivation needs
     * the stripe we hold, so e->id is set before the actor can look at it. */
    ds_ctx_t *saved = ds__set_current(NULL);
    entry_t *outer = tl_activating; /* an init may activate another key */
    tl_activating = e;
    int rc = ds__spawn_ex(rt, k->behaviour, &vk, &o, NULL, e, &id);
    tl_activating = outer;
    ds__set_current(saved);
    if (rc < 0) {
        return rc;
    }
    e->id = id;
    e->passivating = false;
    atomic_fetch_add_explicit(&r->active, 1, memory_order_relaxed);
    return 0;
}

int ds_send_key(ds_rt_t *rt, uint32_t kind, uint32_t group, const void *key, size_t len,
                ds_msg_t **msgp)
{
    registry_t *r = reg_of(rt);
    /* Acquire pairs with the release store in ds_kind_register(). */
    if (kind >= atomic_load_explicit(&r->nkinds, memory_order_acquire) || len > DS_KEY_MAX ||
        (len > 0 && key == NULL)) {
        return -EINVAL;
    }
    uint64_t h = hash_key(kind, group, key, len);
    stripe_t *s = stripe_for(r, h);
    pthread_mutex_lock(&s->lock);
    entry_t **pp = find(s, h, kind, group, key, len);
    entry_t *e = pp != NULL ? *pp : NULL;
    int rc = 0;
    if (e == NULL) {
        e = insert(s, h, kind, group, key, len);
        rc = activate(rt, r, e);
        if (rc < 0) {
            unlink_entry(s, find(s, h, kind, group, key, len));
            pthread_mutex_unlock(&s->lock);
            return rc;
        }
    }
    e->last = ds_clock_now();
    ds_ctx_t *cur = ds__current();
    if (cur != NULL) {
        rc = ds_send(cur, e->id, msgp);
    } else {
        rc = ds_send_from(rt, e->id, msgp);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int ds_key_lookup(ds_rt_t *rt, uint32_t kind, uint32_t group, const void *key, size_t len,
                  ds_actor_id_t *out)
{
    registry_t *r = reg_of(rt);
    if (len > DS_KEY_MAX) {
        return -EINVAL;
    }
    uint64_t h = hash_key(kind, group, key, len);
    stripe_t *s = stripe_for(r, h);
    pthread_mutex_lock(&s->lock);
    entry_t **pp = find(s, h, kind, group, key, len);
    ds_actor_id_t id = pp != NULL ? (*pp)->id : DS_ID_NIL;
    pthread_mutex_unlock(&s->lock);
    if (ds_id_is_nil(id)) {
        return -ENOENT;
    }
    *out = id;
    return 0;
}

size_t ds_registry_active(ds_rt_t *rt)
{
    return atomic_load_explicit(&reg_of(rt)->active, memory_order_relaxed);
}

/* Removes the entry of a virtual actor if it still names `self`; caller holds the stripe. */
static bool forget_locked(stripe_t *s, entry_t *e, ds_actor_id_t self)
{
    entry_t **pp = find(s, e->hash, e->kind, e->group, e->key, e->len);
    if (pp == NULL || *pp != e || !ds_id_eq(e->id, self)) {
        return false;
    }
    unlink_entry(s, pp);
    return true;
}

/* PASSIVATE, in the actor's turn: stop if nothing is queued. Always consumes the message. */
bool ds__registry_passivate(ds_ctx_t *ctx)
{
    ds__actor_t *a = ctx->a;
    registry_t *r = ctx->rt->registry;
    void **slot = a->ext != NULL ? ds__ext_reg(a) : NULL;
    entry_t *e = slot != NULL ? *slot : NULL;
    if (r == NULL || e == NULL) {
        return true;
    }
    stripe_t *s = stripe_for(r, e->hash);
    pthread_mutex_lock(&s->lock);
    bool idle = ds_mpsc_empty(&a->mb);
    if (idle && forget_locked(s, e, ctx->self)) {
        *slot = NULL;
        atomic_fetch_sub_explicit(&r->active, 1, memory_order_relaxed);
        ds_ctx_stop(ctx, DS_EXIT_NORMAL);
    } else if (!idle) {
        e->passivating = false; /* busy again: the sweeper will try later */
    }
    pthread_mutex_unlock(&s->lock);
    return true;
}

/* A virtual actor died (for any reason): drop its entry if it still names it. */
void ds__registry_forget(ds_rt_t *rt, ds__actor_t *a, ds_actor_id_t self)
{
    registry_t *r = rt->registry;
    if (r == NULL || a->ext == NULL) {
        return;
    }
    void **slot = ds__ext_reg(a);
    entry_t *e = *slot;
    if (e == NULL || e == tl_activating) {
        *slot = NULL; /* a failed activation: ds_send_key() holds the stripe and cleans up */
        return;
    }
    stripe_t *s = stripe_for(r, e->hash);
    pthread_mutex_lock(&s->lock);
    if (forget_locked(s, e, self)) {
        atomic_fetch_sub_explicit(&r->active, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->lock);
    *slot = NULL;
}

static void sweep_stripe(ds_ctx_t *ctx, registry_t *r, stripe_t *s, int64_t now)
{
    pthread_mutex_lock(&s->lock);
    for (uint32_t b = 0; b < s->nbuckets; b++) {
        for (entry_t *e = s->buckets[b]; e != NULL; e = e->next) {
            if (e->kind == KIND_NAMES || e->passivating) {
                continue;
            }
            int64_t idle = r->kinds[e->kind].idle_ns;
            if (idle <= 0 || now - e->last < idle) {
                continue;
            }
            ds_msg_t *m;
            if (ds_passivate_new(NULL, &m) < 0) {
                continue;
            }
            m->flags |= DS_MSG_F_SYSTEM;
            e->passivating = ds_send(ctx, e->id, &m) == 0;
            ds_msg_free(&m);
        }
    }
    pthread_mutex_unlock(&s->lock);
}

static int sweeper_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    (void)msgp;
    registry_t *r = ctx->rt->registry;
    int64_t now = ds_clock_now();
    for (int i = 0; i < STRIPES; i++) {
        sweep_stripe(ctx, r, &r->stripes[i], now);
    }
    return 0;
}
