/* chain: the canonical encoding and the walk. See actors/audit/chain.h. */
#include "actors/audit/chain.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* The encoding's fields, by column (after the literal version field). */
static const int chain_fields[] = {
    DS_AUDIT_COL_TENANT,      DS_AUDIT_COL_SEQ,        DS_AUDIT_COL_ID,
    DS_AUDIT_COL_CREATED_US,  DS_AUDIT_COL_ACTOR_TYPE, DS_AUDIT_COL_ACTOR_ID,
    DS_AUDIT_COL_ACTOR_LABEL, DS_AUDIT_COL_ACTION,     DS_AUDIT_COL_OBJECT_TYPE,
    DS_AUDIT_COL_OBJECT_ID,   DS_AUDIT_COL_IP,         DS_AUDIT_COL_REQUEST_ID,
    DS_AUDIT_COL_OUTCOME,     DS_AUDIT_COL_DETAILS,
};

static const char chain_version[] = "dossier.audit.v1";
static const char chain_nil_uuid[] = "00000000-0000-0000-0000-000000000000";

void ds_audit_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int chain_nibble(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int ds_audit_unhex(const char *s, size_t len, uint8_t *out, size_t n)
{
    if (s == NULL || len != 2 * n) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = chain_nibble(s[2 * i]);
        int lo = chain_nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -EINVAL;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* One field: its 4-byte big-endian length and bytes, or ff ff ff ff for NULL. */
static int chain_field(EVP_MD_CTX *md, const char *p, uint32_t len, bool null)
{
    uint8_t head[4] = {0xff, 0xff, 0xff, 0xff};
    if (!null) {
        head[0] = (uint8_t)(len >> 24);
        head[1] = (uint8_t)(len >> 16);
        head[2] = (uint8_t)(len >> 8);
        head[3] = (uint8_t)len;
    }
    if (EVP_DigestUpdate(md, head, sizeof(head)) != 1 ||
        (!null && len > 0 && EVP_DigestUpdate(md, p, len) != 1)) {
        return -EIO;
    }
    return 0;
}

int ds_audit_entry_hash(const ds_pg_value_t *row, const uint8_t prev[DS_AUDIT_HASH_LEN],
                        uint8_t out[DS_AUDIT_HASH_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL) {
        return -ENOMEM;
    }
    int rc = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
                     EVP_DigestUpdate(md, prev, DS_AUDIT_HASH_LEN) == 1
                 ? 0
                 : -EIO;
    if (rc == 0) {
        rc = chain_field(md, chain_version, (uint32_t)(sizeof(chain_version) - 1), false);
    }
    for (size_t i = 0; rc == 0 && i < sizeof(chain_fields) / sizeof(chain_fields[0]); i++) {
        const ds_pg_value_t *v = &row[chain_fields[i]];
        rc = chain_field(md, v->ptr, v->len, v->null || v->ptr == NULL);
    }
    unsigned int n = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(md, out, &n) != 1 || n != DS_AUDIT_HASH_LEN)) {
        rc = -EIO;
    }
    EVP_MD_CTX_free(md);
    return rc;
}

void ds_audit_walk_init(ds_audit_walk_t *w, const char *tenant)
{
    *w = (ds_audit_walk_t){.link_known = true};
    (void)snprintf(w->tenant, sizeof(w->tenant), "%s", tenant);
    memcpy(w->last_id, chain_nil_uuid, sizeof(chain_nil_uuid));
}

void ds_audit_walk_set_checkpoint(ds_audit_walk_t *w, uint64_t seq,
                                  const uint8_t hash[DS_AUDIT_HASH_LEN])
{
    w->cp_seq = seq;
    memcpy(w->cp_hash, hash, DS_AUDIT_HASH_LEN);
}

void ds_audit_walk_resume(ds_audit_walk_t *w)
{
    if (w->cp_seq == 0 || w->started) {
        return;
    }
    w->last_seq = w->cp_seq - 1;
    w->link_known = false;
}

/* A decimal seq (1 .. 2^63 - 1) of a row into *out: 0 or -EINVAL. */
static int chain_seq(const ds_pg_value_t *v, uint64_t *out)
{
    if (v->null || v->ptr == NULL || v->len == 0 || v->len > 19) {
        return -EINVAL;
    }
    uint64_t s = 0;
    for (uint32_t i = 0; i < v->len; i++) {
        if (v->ptr[i] < '0' || v->ptr[i] > '9') {
            return -EINVAL;
        }
        s = s * 10 + (uint64_t)(v->ptr[i] - '0');
    }
    if (s == 0 || s > (uint64_t)INT64_MAX) {
        return -EINVAL;
    }
    *out = s;
    return 0;
}

static bool chain_is(const ds_pg_value_t *v, const char *s)
{
    size_t n = strlen(s);
    return !v->null && v->ptr != NULL && v->len == n && memcmp(v->ptr, s, n) == 0;
}

static int chain_fail(ds_audit_walk_t *w, ds_audit_kind_t kind, uint64_t seq, uint64_t seq2)
{
    w->problem = (ds_audit_problem_t){.kind = kind, .seq = seq, .seq2 = seq2};
    return 1;
}

/* The row's seq and hashes, checked for shape: 0, or 1 with a MALFORMED problem. */
static int chain_read(ds_audit_walk_t *w, const ds_pg_value_t *row, uint64_t *seq,
                      uint8_t prev[DS_AUDIT_HASH_LEN], uint8_t hash[DS_AUDIT_HASH_LEN])
{
    const ds_pg_value_t *p = &row[DS_AUDIT_COL_PREV_HASH];
    const ds_pg_value_t *h = &row[DS_AUDIT_COL_HASH];
    const ds_pg_value_t *id = &row[DS_AUDIT_COL_ID];
    if (chain_seq(&row[DS_AUDIT_COL_SEQ], seq) < 0) {
        return chain_fail(w, DS_AUDIT_MALFORMED, w->last_seq + 1, 0);
    }
    if (p->null || h->null || ds_audit_unhex(p->ptr, p->len, prev, DS_AUDIT_HASH_LEN) < 0 ||
        ds_audit_unhex(h->ptr, h->len, hash, DS_AUDIT_HASH_LEN) < 0 ||
        !chain_is(&row[DS_AUDIT_COL_TENANT], w->tenant) || id->null || id->ptr == NULL ||
        id->len != DS_AUDIT_UUID_LEN || *seq < w->last_seq) {
        return chain_fail(w, DS_AUDIT_MALFORMED, *seq, 0);
    }
    return 0;
}

int ds_audit_walk_row(ds_audit_walk_t *w, const ds_pg_value_t *row)
{
    if (w->problem.kind != DS_AUDIT_INTACT) {
        return 1;
    }
    uint64_t seq = 0;
    uint8_t prev[DS_AUDIT_HASH_LEN];
    uint8_t hash[DS_AUDIT_HASH_LEN];
    uint8_t want[DS_AUDIT_HASH_LEN];
    if (chain_read(w, row, &seq, prev, hash) != 0) {
        return 1;
    }
    if (w->started && seq == w->last_seq) {
        return chain_fail(w, DS_AUDIT_DUPLICATE, seq, 0);
    }
    if (seq != w->last_seq + 1) {
        return chain_fail(w, DS_AUDIT_MISSING, w->last_seq, seq);
    }
    if (w->link_known && CRYPTO_memcmp(prev, w->last_hash, DS_AUDIT_HASH_LEN) != 0) {
        return chain_fail(w, DS_AUDIT_BROKEN_LINK, seq, 0);
    }
    int rc = ds_audit_entry_hash(row, prev, want);
    if (rc < 0) {
        return rc;
    }
    if (CRYPTO_memcmp(want, hash, DS_AUDIT_HASH_LEN) != 0) {
        return chain_fail(w, DS_AUDIT_EDITED, seq, 0);
    }
    if (seq == w->cp_seq && CRYPTO_memcmp(hash, w->cp_hash, DS_AUDIT_HASH_LEN) != 0) {
        return chain_fail(w, DS_AUDIT_REWRITTEN, seq, 0);
    }
    w->last_seq = seq;
    memcpy(w->last_hash, hash, DS_AUDIT_HASH_LEN);
    memcpy(w->last_id, row[DS_AUDIT_COL_ID].ptr, DS_AUDIT_UUID_LEN);
    w->last_id[DS_AUDIT_UUID_LEN] = '\0';
    w->started = true;
    w->link_known = true;
    w->checked++;
    return 0;
}

bool ds_audit_walk_finish(ds_audit_walk_t *w)
{
    if (w->problem.kind == DS_AUDIT_INTACT && w->cp_seq > 0 &&
        (!w->started || w->last_seq < w->cp_seq)) {
        (void)chain_fail(w, DS_AUDIT_TRUNCATED, w->last_seq, w->cp_seq);
    }
    return w->problem.kind != DS_AUDIT_INTACT;
}

void ds_audit_walk_next(const ds_audit_walk_t *w, char seq[24], char id[DS_AUDIT_UUID_LEN + 1])
{
    uint64_t from = w->started ? w->last_seq : (w->link_known ? 0 : w->cp_seq);
    (void)snprintf(seq, 24, "%llu", (unsigned long long)from);
    memcpy(id, w->started ? w->last_id : chain_nil_uuid, DS_AUDIT_UUID_LEN + 1);
}

const char *ds_audit_kind_name(ds_audit_kind_t kind)
{
    static const char *const names[] = {
        "intact",    "missing",   "duplicate", "broken_link", "edited",
        "rewritten", "truncated", "forged",    "malformed",
    };
    if ((size_t)kind >= sizeof(names) / sizeof(names[0])) {
        return "unknown";
    }
    return names[kind];
}

void ds_audit_problem_str(const ds_audit_problem_t *p, char *buf, size_t n)
{
    unsigned long long a = p->seq;
    unsigned long long b = p->seq2;
    switch (p->kind) {
    case DS_AUDIT_INTACT:
        (void)snprintf(buf, n, "intact");
        break;
    case DS_AUDIT_MISSING:
        (void)snprintf(buf, n, "missing entry: seq jumps from %llu to %llu", a, b);
        break;
    case DS_AUDIT_DUPLICATE:
        (void)snprintf(buf, n, "duplicate entry: seq %llu appears twice", a);
        break;
    case DS_AUDIT_BROKEN_LINK:
        (void)snprintf(buf, n, "broken link at seq %llu: its prev_hash is not entry %llu's hash", a,
                       a - 1);
        break;
    case DS_AUDIT_EDITED:
        (void)snprintf(buf, n, "hash mismatch at seq %llu: the entry was edited", a);
        break;
    case DS_AUDIT_REWRITTEN:
        (void)snprintf(buf, n, "rewritten: entry %llu does not match the signed checkpoint", a);
        break;
    case DS_AUDIT_TRUNCATED:
        (void)snprintf(buf, n,
                       "truncated: entries after seq %llu are missing (the checkpoint is at %llu)",
                       a, b);
        break;
    case DS_AUDIT_FORGED:
        (void)snprintf(buf, n, "forged checkpoint: its signature or format is not valid");
        break;
    default:
        (void)snprintf(buf, n, "malformed entry at seq %llu", a);
        break;
    }
}
