/* verify: checks a tenant's audit chain over a blocking libpq connection, batch by batch
 * (actors/audit/chain.h tells the checks; docs/audit.md the model).
 *
 * The walk runs in one READ ONLY, REPEATABLE READ transaction that sets app.tenant_id (row-level
 * security is forced on the owner too) and reads DS_AUDIT_BATCH_SQL batches: one snapshot, so
 * entries appended meanwhile neither appear half way nor look like a cut tail, and memory is
 * one batch. Any role that may read dossier.audit_log works; `dossier audit verify` uses the
 * owner, which could have edited the table: nothing here trusts the table or the SQL functions
 * (the hashes are recomputed in C from the columns' text forms).
 *
 * Read the checkpoint BEFORE calling (ds_audit_checkpoint_load()): it then names an entry
 * committed before the snapshot, so a checkpoint signed during the walk cannot pass for a cut.
 *
 * Blocking: commands, node start-up and shutdown, tests; never an actor. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "actors/audit/chain.h"
#include "actors/audit/checkpoint.h"

typedef struct ds_audit_verify_opts {
    const ds_audit_checkpoint_t *checkpoint; /* checked against the chain; NULL: none */
    bool resume;    /* start at the checkpoint's entry instead of seq 1 (ds_audit_walk_resume) */
    uint32_t batch; /* rows per query; 0: DS_AUDIT_BATCH_DEFAULT */
} ds_audit_verify_opts_t;

/* Walks tenant's chain to its head (opts may be NULL). 0 and the finished walk in *out: its
 * problem (DS_AUDIT_INTACT when none), entries checked and the head (last_seq, last_hash);
 * -EINVAL for a tenant that is not a canonical uuid; -EIO when a statement failed (*why:
 * PostgreSQL's message, free() it); -ENOMEM/-EIO from OpenSSL. */
int ds_audit_verify_conn(PGconn *conn, const char *tenant, const ds_audit_verify_opts_t *opts,
                         ds_audit_walk_t *out, char **why);
