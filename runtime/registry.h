/* registry: named actors and virtual actors.
 *
 * Names: ds_register_name() binds a name to an actor id (a later call rebinds it, which is how
 * a supervisor keeps a child's name pointing at its newest incarnation); ds_whereis() resolves
 * it, and a name whose actor is gone resolves to nothing.
 *
 * Virtual actors (Orleans grains): a kind registers a behaviour; ds_send_key() addresses the
 * actor of (kind, group, key). The first send activates it: the runtime spawns it in `group`
 * and runs init with a ds_vkey_t describing its identity. Concurrent first sends, from any
 * threads, activate it exactly once. An actor that got no message by key for the kind's
 * idle_ns is passivated: it gets a DS_MT_PASSIVATE system message and, if its mailbox is empty
 * then, it stops with DS_EXIT_NORMAL (terminate() is where it saves its state); the next send
 * by key activates a new incarnation. Messages sent by key are never lost to a passivation:
 * passivation and sends by key exclude each other per key.
 *
 * Threads: every call is safe from any thread and from actors. Kinds are registered before
 * they are used; the registry owns copies of names and keys. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "runtime/id.h"
#include "runtime/msg.h"
#include "runtime/rt.h"

enum {
    DS_KEY_MAX = 256,   /* longest key, bytes */
    DS_NAME_MAX = 128,  /* longest name, bytes */
    DS_KINDS_MAX = 256, /* kinds per runtime */
};

typedef struct ds_kind_cfg {
    const char *name;
    const ds_behaviour_t *behaviour;
    int64_t idle_ns; /* passivate after this long without a message by key; 0: never */
} ds_kind_cfg_t;

/* What a virtual actor's init() gets as arg: valid during init() only (copy what you keep). */
typedef struct ds_vkey {
    uint32_t kind;
    uint32_t group;
    const uint8_t *key;
    size_t len;
} ds_vkey_t;

/* 0 and the kind's number in *kind; -EINVAL for a bad config; -ENOSPC past DS_KINDS_MAX. */
int ds_kind_register(ds_rt_t *rt, const ds_kind_cfg_t *cfg, uint32_t *kind);

/* Sends to the virtual actor (kind, group, key), activating it if needed. Errors as ds_send(),
 * plus -EINVAL (unknown kind, key longer than DS_KEY_MAX) and the spawn's errors. */
int ds_send_key(ds_rt_t *rt, uint32_t kind, uint32_t group, const void *key, size_t len,
                ds_msg_t **msgp);
/* The current incarnation's id, without activating: 0, or -ENOENT. */
int ds_key_lookup(ds_rt_t *rt, uint32_t kind, uint32_t group, const void *key, size_t len,
                  ds_actor_id_t *out);
/* Number of active virtual actors. */
size_t ds_registry_active(ds_rt_t *rt);

/* Binds name to id (rebinding if bound). 0, or -EINVAL for an empty or over-long name. */
int ds_register_name(ds_rt_t *rt, const char *name, ds_actor_id_t id);
/* 0 and the id bound to name, or -ENOENT when unbound or its actor is gone. */
int ds_whereis(ds_rt_t *rt, const char *name, ds_actor_id_t *out);
/* Removes a name's binding. 0, or -ENOENT. */
int ds_unregister_name(ds_rt_t *rt, const char *name);
