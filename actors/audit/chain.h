/* chain: the audit chain's canonical encoding (version 1) and the walk that checks a tenant's
 * chain entry by entry, in C, trusting neither dossier.audit_append() nor the table
 * (issue 5 §4; docs/audit.md).
 *
 * Encoding. Entry seq n stores hash = SHA-256(prev_hash || encoding), where prev_hash is entry
 * n-1's hash (32 zero bytes for n = 1) and encoding is fifteen fields, each a 4-byte big-endian
 * byte length and the field's UTF-8 text, or ff ff ff ff for NULL: the literal
 * "dossier.audit.v1", tenant_id, seq, id, created_at in microseconds since the epoch, actor_type,
 * actor_id, actor_label, action, object_type, object_id, ip, request_id, outcome, details
 * (schema/migrations/0006_audit_chain.sql). Each field is the column's text form, selected with
 * the SQL expressions of DS_AUDIT_COLUMNS: a row of that select list is what the walk reads.
 *
 * The walk. Rows are fed in (seq, id) order, as DS_AUDIT_BATCH_SQL returns them in batches
 * (keyset pagination: memory is one batch, whatever the chain's length). For each row it
 * checks, in this order: the row is well formed (seq a number, hashes 64 hex digits, tenant the
 * walked one); seq follows the previous one (a gap is a missing entry, the same seq twice a
 * duplicate); prev_hash is the previous entry's hash (else the link is broken); the stored hash
 * is SHA-256(prev_hash || encoding) recomputed here (else the entry was edited); and at the
 * checkpoint's seq, that the hash is the signed one (else the chain was rewritten). At the end
 * of the chain, a head below the checkpoint's seq means the tail was cut. The first problem
 * stops the walk: later rows are ignored.
 *
 * A walk starts at seq 1, or resumes at a checkpoint (seq, hash): the entry at that seq must be
 * the first row and carry that hash; its own link is not checked (the previous entry is not
 * read), which is sound because the checkpoint's signature vouches for its hash.
 *
 * Pure functions on the caller's memory: safe on any thread for distinct walks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transports/pg/pool.h"

enum {
    DS_AUDIT_HASH_LEN = 32,
    DS_AUDIT_HEX_LEN = 2 * DS_AUDIT_HASH_LEN,
    DS_AUDIT_UUID_LEN = 36,
    DS_AUDIT_BATCH_DEFAULT = 1000, /* rows per batch */
};

/* The columns of a walked row, in the order of DS_AUDIT_COLUMNS. */
enum ds_audit_col {
    DS_AUDIT_COL_SEQ = 0,
    DS_AUDIT_COL_PREV_HASH, /* hex */
    DS_AUDIT_COL_HASH,      /* hex */
    DS_AUDIT_COL_TENANT,
    DS_AUDIT_COL_ID,
    DS_AUDIT_COL_CREATED_US,
    DS_AUDIT_COL_ACTOR_TYPE,
    DS_AUDIT_COL_ACTOR_ID,
    DS_AUDIT_COL_ACTOR_LABEL,
    DS_AUDIT_COL_ACTION,
    DS_AUDIT_COL_OBJECT_TYPE,
    DS_AUDIT_COL_OBJECT_ID,
    DS_AUDIT_COL_IP,
    DS_AUDIT_COL_REQUEST_ID,
    DS_AUDIT_COL_OUTCOME,
    DS_AUDIT_COL_DETAILS,
    DS_AUDIT_NCOLS,
};

/* The select list, exactly the expressions the encoding names. */
#define DS_AUDIT_COLUMNS                                                                       \
    "seq::text, encode(prev_hash, 'hex'), encode(hash, 'hex'), tenant_id::text, id::text, "    \
    "((extract(epoch FROM created_at) * 1000000)::bigint)::text, actor_type, actor_id::text, " \
    "actor_label, action, object_type, object_id::text, ip::text, request_id, outcome, "       \
    "details::text"

/* One batch: $1 tenant uuid, $2 and $3 the keyset (ds_audit_walk_next()), $4 the batch size.
 * The tenant is named besides row-level security, so an owner session that forgot
 * app.tenant_id reads nothing rather than another chain. ORDER BY names the table's columns:
 * bare, seq and id would be the select list's text casts, sorted as text ("10" < "2"). */
#define DS_AUDIT_BATCH_SQL                                                                      \
    "SELECT " DS_AUDIT_COLUMNS " FROM dossier.audit_log a WHERE a.tenant_id = $1::uuid"         \
    " AND a.seq >= $2::bigint AND (a.seq > $2::bigint OR a.id > $3::uuid) ORDER BY a.seq, a.id" \
    " LIMIT $4::int"

/* What is wrong with a chain; DS_AUDIT_INTACT when nothing is. */
typedef enum ds_audit_kind {
    DS_AUDIT_INTACT = 0,
    DS_AUDIT_MISSING,     /* seq jumps from seq to seq2: entries in between are gone */
    DS_AUDIT_DUPLICATE,   /* two entries with seq */
    DS_AUDIT_BROKEN_LINK, /* entry seq's prev_hash is not entry seq - 1's hash */
    DS_AUDIT_EDITED,      /* entry seq's hash is not the hash of its content */
    DS_AUDIT_REWRITTEN,   /* entry seq (the checkpoint's) does not match the signed hash */
    DS_AUDIT_TRUNCATED,   /* the chain ends at seq, before the checkpoint's seq2 (a resumed
                             walk that found no entry says seq2 - 1: it read none before) */
    DS_AUDIT_FORGED,      /* the checkpoint's signature or format is not ours */
    DS_AUDIT_MALFORMED,   /* entry seq (or the one expected there) has a value that cannot be
                             read: a bad seq or hash, another tenant */
} ds_audit_kind_t;

typedef struct ds_audit_problem {
    ds_audit_kind_t kind;
    uint64_t seq;
    uint64_t seq2; /* MISSING: the seq found; TRUNCATED: the checkpoint's seq */
} ds_audit_problem_t;

typedef struct ds_audit_walk {
    char tenant[DS_AUDIT_UUID_LEN + 1];
    uint64_t cp_seq; /* 0: no checkpoint */
    uint8_t cp_hash[DS_AUDIT_HASH_LEN];
    uint64_t last_seq; /* the last entry accepted (start - 1 before any) */
    uint8_t last_hash[DS_AUDIT_HASH_LEN];
    char last_id[DS_AUDIT_UUID_LEN + 1];
    bool started;    /* a row was accepted */
    bool link_known; /* last_hash is known (false only before a resumed walk's first row) */
    uint64_t checked;
    ds_audit_problem_t problem;
} ds_audit_walk_t;

/* Hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void ds_audit_hex(const uint8_t *b, size_t n, char *out);
/* Exactly 2n lower- or upper-case hex digits of s[0..len) into out: 0, or -EINVAL. */
int ds_audit_unhex(const char *s, size_t len, uint8_t *out, size_t n);

/* out = SHA-256(prev || encoding of row), row being DS_AUDIT_NCOLS values of DS_AUDIT_COLUMNS
 * (the hash columns are not read). 0, or -ENOMEM/-EIO if OpenSSL failed. */
int ds_audit_entry_hash(const ds_pg_value_t *row, const uint8_t prev[DS_AUDIT_HASH_LEN],
                        uint8_t out[DS_AUDIT_HASH_LEN]);

/* A walk of tenant (canonical uuid text) from seq 1. */
void ds_audit_walk_init(ds_audit_walk_t *w, const char *tenant);
/* Sets the checkpoint the walk checks (seq >= 1). Call before the first row. */
void ds_audit_walk_set_checkpoint(ds_audit_walk_t *w, uint64_t seq,
                                  const uint8_t hash[DS_AUDIT_HASH_LEN]);
/* Makes the walk start at the checkpoint's entry (see above) instead of seq 1. Call after
 * ds_audit_walk_set_checkpoint(), before the first row; a no-op without a checkpoint. */
void ds_audit_walk_resume(ds_audit_walk_t *w);
/* Feeds one row (DS_AUDIT_NCOLS values). 0: accepted; 1: a problem, now in w->problem (also
 * returned for every row after one). -ENOMEM/-EIO if OpenSSL failed (the row is not judged). */
int ds_audit_walk_row(ds_audit_walk_t *w, const ds_pg_value_t *row);
/* The chain has no more rows: sets DS_AUDIT_TRUNCATED when it stopped before the checkpoint.
 * Idempotent; a walk may go on after it (a chain that grew). True when the walk has a problem. */
bool ds_audit_walk_finish(ds_audit_walk_t *w);
/* The keyset of the next batch: $2 (a decimal seq) and $3 (a uuid) of DS_AUDIT_BATCH_SQL. */
void ds_audit_walk_next(const ds_audit_walk_t *w, char seq[24], char id[DS_AUDIT_UUID_LEN + 1]);

/* "missing", "duplicate", "broken_link", "edited", "rewritten", "truncated", "forged",
 * "malformed", or "intact". Static. */
const char *ds_audit_kind_name(ds_audit_kind_t kind);
/* A sentence for an operator ("missing entry: seq jumps from 4 to 6") into buf (cut to n). */
void ds_audit_problem_str(const ds_audit_problem_t *p, char *buf, size_t n);
