/* checkpointer: signs each tenant's audit chain head into a checkpoint outside PostgreSQL while
 * `dossier serve` runs, and once more at shutdown (docs/audit.md).
 *
 * The actor. Every interval it walks, tenant by tenant (a few at once), the entries appended
 * since its last checkpoint: it asks the pg pool for DS_AUDIT_BATCH_SQL batches in tenant
 * transactions and checks them with the C walk (actors/audit/chain.h), resumed at the last
 * signed checkpoint, then at the head each round reached (re-read as an anchor, so an entry
 * replaced or cut since shows). Only a head reached by an intact walk is signed, and only when
 * it moved: so
 * a chain cut, edited or rewritten by the table's owner is never laundered into a new
 * checkpoint. A tenant whose chain or checkpoint fails is logged ("audit chain broken", with
 * the problem's kind and seq) and is not checkpointed again until the node restarts; its last
 * good checkpoint stays as evidence. The signed bytes are written through the blob store's
 * async layer on `loop` (the history object, then the latest), so the actor never blocks.
 *
 * Tenants are those of the node's start-up (actors/tenants.h), like its runtime groups: a
 * tenant created later gets its first checkpoint after the next restart.
 *
 * The shutdown checkpoint, ds_audit_checkpoint_final(), does the same for every tenant with
 * blocking libpq and blob calls, after the runtime drained.
 *
 * Message types (local only): DS_MT_AUDIT_TICK, DS_MT_AUDIT_PUT_DONE. */
#pragma once

#include <stdint.h>

#include <libpq-fe.h>

#include "actors/audit/chain.h"
#include "actors/audit/checkpoint.h"
#include "actors/tenants.h"
#include "runtime/id.h"
#include "runtime/loop.h"
#include "runtime/rt.h"
#include "transports/blob/blob.h"

/* Declared here until the message catalog takes the actors' message types. */
enum {
    DS_MT_AUDIT_TICK = 310,     /* empty: time for a round */
    DS_MT_AUDIT_PUT_DONE = 311, /* a blob put's result (transports/blob/blob.h) */
};

enum {
    DS_AUDIT_INTERVAL_S_DEFAULT = 60,
};

typedef struct ds_audit_checkpointer_cfg {
    ds_rt_t *rt;
    ds_loop_t *loop;             /* runs the blob writes; must outlive the actor */
    ds_actor_id_t pool;          /* the pg pool (transports/pg/pool.h) */
    ds_blob_store_t *blobs;      /* must outlive loop (free it after ds_loop_free()) */
    const ds_tenants_t *tenants; /* the ids are copied */
    const char *keys_dir;        /* holds the signing key (made on first need) */
    uint32_t interval_s;         /* between rounds; 0: DS_AUDIT_INTERVAL_S_DEFAULT */
} ds_audit_checkpointer_cfg_t;

/* Opens (or generates) the signing key, reads each tenant's latest checkpoint (blocking: call it
 * at start-up, on the main thread, with the runtime and loop running) and spawns the actor in
 * the system group. Its first round runs a second after the start. 0 and its id in *out (may
 * be NULL); the signer's errors (actors/audit/checkpoint.h) or ds_spawn()'s, logged. */
int ds_audit_checkpointer_start(const ds_audit_checkpointer_cfg_t *cfg, ds_actor_id_t *out);

/* Checkpoints one tenant, blocking: loads its latest checkpoint, walks the chain from it (from
 * seq 1 when there is none) to the head on conn, and signs and stores the head when the walk
 * is intact and the head moved. 0 and the walk in *out (out->problem: what stopped it;
 * DS_AUDIT_FORGED for a latest checkpoint that is forged or damaged; nothing is signed
 * after a problem); -EIO with *why (free() it) when PostgreSQL failed; blob errors. */
int ds_audit_checkpoint_sync(PGconn *conn, ds_blob_store_t *bs, const ds_audit_signer_t *s,
                             const char *tenant, ds_audit_walk_t *out, char **why);

/* The shutdown checkpoint: ds_audit_checkpoint_sync() for every tenant, on one connection
 * opened with conninfo (the application role's is enough). Call it after the runtime drained,
 * before the blob store is freed. 0, or the first error (each is logged with its tenant; the
 * other tenants are still checkpointed). */
int ds_audit_checkpoint_final(const char *conninfo, ds_blob_store_t *bs,
                              const ds_tenants_t *tenants, const char *keys_dir);
