/* id: actor ids. An id names an actor by value, never by pointer, so a dead or remote peer is an
 * error rather than a use-after-free (nng wraps its socket ids the same way).
 *
 * Layout of the 64 bits: node (16) | generation (20) | local index (28).
 * Index 0 is never used, so the all-zero id is "no actor" (DS_ID_NIL). A slot's generation grows
 * each time the slot is reused and a slot whose generation would wrap is retired, so a stale id
 * never reaches a newer actor. Ids are plain values: copy them freely between threads. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct ds_actor_id {
    uint64_t v;
} ds_actor_id_t;

enum {
    DS_ID_INDEX_BITS = 28,
    DS_ID_GEN_BITS = 20,
    DS_ID_NODE_BITS = 16,
};

#define DS_ID_NIL       ((ds_actor_id_t){0})
#define DS_ID_INDEX_MAX ((UINT32_C(1) << DS_ID_INDEX_BITS) - 1)
#define DS_ID_GEN_MAX   ((UINT32_C(1) << DS_ID_GEN_BITS) - 1)

static inline ds_actor_id_t ds_id_make(uint16_t node, uint32_t gen, uint32_t index)
{
    ds_actor_id_t id = {((uint64_t)node << (DS_ID_INDEX_BITS + DS_ID_GEN_BITS)) |
                        ((uint64_t)(gen & DS_ID_GEN_MAX) << DS_ID_INDEX_BITS) |
                        (uint64_t)(index & DS_ID_INDEX_MAX)};
    return id;
}

static inline uint16_t ds_id_node(ds_actor_id_t id)
{
    return (uint16_t)(id.v >> (DS_ID_INDEX_BITS + DS_ID_GEN_BITS));
}

static inline uint32_t ds_id_gen(ds_actor_id_t id)
{
    return (uint32_t)(id.v >> DS_ID_INDEX_BITS) & DS_ID_GEN_MAX;
}

static inline uint32_t ds_id_index(ds_actor_id_t id)
{
    return (uint32_t)id.v & DS_ID_INDEX_MAX;
}

static inline bool ds_id_eq(ds_actor_id_t a, ds_actor_id_t b)
{
    return a.v == b.v;
}

static inline bool ds_id_is_nil(ds_actor_id_t id)
{
    return id.v == 0;
}
