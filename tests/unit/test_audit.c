/* The audit chain's encoding against a vector computed independently (Python's hashlib over the
 * encoding of schema/migrations/0006_audit_chain.sql), the walk over synthetic chains (every
 * kind of problem, batches, resuming), and the checkpoint format: signing, verification,
 * forgeries, the one accepted spelling, and the signing key file. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "actors/audit/chain.h"
#include "actors/audit/checkpoint.h"
#include "runtime/err.h"

static const char tenant[] = "0190a3c4-0000-7000-8000-000000000001";

/* The first two entries of the known vector: hex SHA-256 by hashlib. */
static const char vector1[] = "bebdb7b86267e2a22d45bec54c9350baf09655a7e9dff0290e859bb62f181f57";
static const char vector2[] = "3ff959cd86e9b370cb11329312272e080e02258e01c88851131d42171882801e";

enum {
    CHAIN_MAX = 8,
};

/* A synthetic entry: its column texts (NULL for SQL NULL). */
typedef struct entry {
    char seq[24];
    char prev[DS_AUDIT_HEX_LEN + 1];
    char hash[DS_AUDIT_HEX_LEN + 1];
    char id[DS_AUDIT_UUID_LEN + 1];
    const char *text[DS_AUDIT_NCOLS];
} entry_t;

static void entry_row(const entry_t *e, ds_pg_value_t *row)
{
    for (int c = 0; c < DS_AUDIT_NCOLS; c++) {
        const char *t = e->text[c];
        row[c] = (ds_pg_value_t){
            .ptr = t, .len = t != NULL ? (uint32_t)strlen(t) : 0, .null = t == NULL};
    }
}

/* Entry seq of the vector (the second differs as the Python script's did). */
static void entry_fill(entry_t *e, uint64_t seq)
{
    memset(e, 0, sizeof(*e));
    (void)snprintf(e->seq, sizeof(e->seq), "%llu", (unsigned long long)seq);
    (void)snprintf(e->id, sizeof(e->id), "0190a3c4-0001-7000-8000-%012llx",
                   (unsigned long long)(seq == 1 ? 2 : seq * 2));
    const char **t = e->text;
    t[DS_AUDIT_COL_SEQ] = e->seq;
    t[DS_AUDIT_COL_PREV_HASH] = e->prev;
    t[DS_AUDIT_COL_HASH] = e->hash;
    t[DS_AUDIT_COL_TENANT] = tenant;
    t[DS_AUDIT_COL_ID] = e->id;
    t[DS_AUDIT_COL_CREATED_US] = "1718000000123456";
    t[DS_AUDIT_COL_ACTOR_TYPE] = seq == 1 ? "user" : "system";
    t[DS_AUDIT_COL_ACTOR_ID] = seq == 1 ? "0190a3c4-0002-7000-8000-000000000003" : NULL;
    t[DS_AUDIT_COL_ACTOR_LABEL] = seq == 1 ? "Zo\xc3\xab <zoe@example.com>" : NULL;
    t[DS_AUDIT_COL_ACTION] = "user.create";
    t[DS_AUDIT_COL_OBJECT_TYPE] = "user";
    t[DS_AUDIT_COL_OBJECT_ID] = NULL;
    t[DS_AUDIT_COL_IP] = "10.0.0.1/32";
    t[DS_AUDIT_COL_REQUEST_ID] = NULL;
    t[DS_AUDIT_COL_OUTCOME] = "success";
    t[DS_AUDIT_COL_DETAILS] = "{\"a\": 1, \"b\": \"\xc3\xa9\"}";
}

/* Copies n entries, pointing the copies' own columns at their own buffers. */
static void chain_copy(entry_t *dst, const entry_t *src, size_t n)
{
    memcpy(dst, src, n * sizeof(*src));
    for (size_t i = 0; i < n; i++) {
        dst[i].text[DS_AUDIT_COL_SEQ] = dst[i].seq;
        dst[i].text[DS_AUDIT_COL_PREV_HASH] = dst[i].prev;
        dst[i].text[DS_AUDIT_COL_HASH] = dst[i].hash;
        dst[i].text[DS_AUDIT_COL_ID] = dst[i].id;
    }
}

/* Recomputes prev and hash of chain[from..n) from chain[from - 1] (as a consistent rewrite). */
static void chain_rehash(entry_t *chain, size_t from, size_t n)
{
    uint8_t prev[DS_AUDIT_HASH_LEN] = {0};
    if (from > 0) {
        assert_int_equal(ds_audit_unhex(chain[from - 1].hash, DS_AUDIT_HEX_LEN, prev, 32), 0);
    }
    for (size_t i = from; i < n; i++) {
        ds_audit_hex(prev, DS_AUDIT_HASH_LEN, chain[i].prev);
        ds_pg_value_t row[DS_AUDIT_NCOLS];
        entry_row(&chain[i], row);
        assert_int_equal(ds_audit_entry_hash(row, prev, prev), 0);
        ds_audit_hex(prev, DS_AUDIT_HASH_LEN, chain[i].hash);
    }
}

static void chain_make(entry_t *chain, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        entry_fill(&chain[i], i + 1);
    }
    chain_rehash(chain, 0, n);
}

/* Walks chain[0..n) except index skip (SIZE_MAX: none), batch rows at a time as the verifier
 * would (the keyset is not needed for synthetic rows), with an optional checkpoint. */
static ds_audit_walk_t walk(const entry_t *chain, size_t n, size_t skip, uint64_t cp_seq,
                            bool resume)
{
    ds_audit_walk_t w;
    ds_audit_walk_init(&w, tenant);
    if (cp_seq > 0) {
        uint8_t h[DS_AUDIT_HASH_LEN];
        assert_int_equal(ds_audit_unhex(chain[cp_seq - 1].hash, DS_AUDIT_HEX_LEN, h, 32), 0);
        ds_audit_walk_set_checkpoint(&w, cp_seq, h);
        if (resume) {
            ds_audit_walk_resume(&w);
        }
    }
    size_t first = resume && cp_seq > 0 ? cp_seq - 1 : 0;
    for (size_t i = first; i < n; i++) {
        if (i == skip) {
            continue;
        }
        ds_pg_value_t row[DS_AUDIT_NCOLS];
        entry_row(&chain[i], row);
        assert_true(ds_audit_walk_row(&w, row) >= 0);
    }
    (void)ds_audit_walk_finish(&w);
    return w;
}

static void test_known_vector(void **state)
{
    (void)state;
    entry_t chain[2];
    chain_make(chain, 2);
    assert_string_equal(chain[0].hash, vector1);
    assert_string_equal(chain[1].prev, vector1);
    assert_string_equal(chain[1].hash, vector2);
    /* Every field counts: one byte of details changes the hash. */
    entry_t e;
    chain_copy(&e, chain, 1);
    e.text[DS_AUDIT_COL_DETAILS] = "{\"a\": 2, \"b\": \"\xc3\xa9\"}";
    chain_rehash(&e, 0, 1);
    assert_string_not_equal(e.hash, vector1);
    /* NULL and "" are different fields. */
    chain_copy(&e, chain, 1);
    e.text[DS_AUDIT_COL_OBJECT_ID] = "";
    chain_rehash(&e, 0, 1);
    assert_string_not_equal(e.hash, vector1);
}

static void test_walk_intact_and_resumed(void **state)
{
    (void)state;
    entry_t chain[6];
    chain_make(chain, 6);
    ds_audit_walk_t w = walk(chain, 6, SIZE_MAX, 0, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_INTACT);
    assert_int_equal(w.checked, 6);
    assert_int_equal(w.last_seq, 6);
    char hex[DS_AUDIT_HEX_LEN + 1];
    ds_audit_hex(w.last_hash, DS_AUDIT_HASH_LEN, hex);
    assert_string_equal(hex, chain[5].hash);
    char seq[24];
    char id[DS_AUDIT_UUID_LEN + 1];
    ds_audit_walk_next(&w, seq, id);
    assert_string_equal(seq, "6");
    assert_string_equal(id, chain[5].id);

    w = walk(chain, 6, SIZE_MAX, 4, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_INTACT);
    /* Resumed at the checkpoint: its entry first, then the rest. */
    w = walk(chain, 6, SIZE_MAX, 4, true);
    assert_int_equal(w.problem.kind, DS_AUDIT_INTACT);
    assert_int_equal(w.checked, 3);
    ds_audit_walk_t fresh;
    ds_audit_walk_init(&fresh, tenant);
    uint8_t h[DS_AUDIT_HASH_LEN] = {0};
    ds_audit_walk_set_checkpoint(&fresh, 4, h);
    ds_audit_walk_resume(&fresh);
    ds_audit_walk_next(&fresh, seq, id);
    assert_string_equal(seq, "4");
    assert_string_equal(id, "00000000-0000-0000-0000-000000000000");
}

static void test_walk_problems(void **state)
{
    (void)state;
    entry_t chain[6];
    chain_make(chain, 6);

    /* An edited entry (hash not recomputed). */
    entry_t edited[6];
    chain_copy(edited, chain, 6);
    edited[2].text[DS_AUDIT_COL_DETAILS] = "{\"a\": 1, \"b\": \"x\"}";
    ds_audit_walk_t w = walk(edited, 6, SIZE_MAX, 0, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_EDITED);
    assert_int_equal(w.problem.seq, 3);
    assert_int_equal(w.checked, 2);

    /* Edited and its own hash recomputed: the next entry's link breaks. */
    chain_rehash(edited, 2, 3);
    w = walk(edited, 6, SIZE_MAX, 0, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_BROKEN_LINK);
    assert_int_equal(w.problem.seq, 4);

    /* Edited and the whole rest rehashed: consistent, caught only by the checkpoint. */
    chain_rehash(edited, 2, 6);
    w = walk(edited, 6, SIZE_MAX, 0, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_INTACT);
    uint8_t signed_hash[DS_AUDIT_HASH_LEN];
    assert_int_equal(ds_audit_unhex(chain[4].hash, DS_AUDIT_HEX_LEN, signed_hash, 32), 0);
    ds_audit_walk_init(&w, tenant);
    ds_audit_walk_set_checkpoint(&w, 5, signed_hash);
    for (size_t i = 0; i < 6; i++) {
        ds_pg_value_t row[DS_AUDIT_NCOLS];
        entry_row(&edited[i], row);
        (void)ds_audit_walk_row(&w, row);
    }
    assert_int_equal(w.problem.kind, DS_AUDIT_REWRITTEN);
    assert_int_equal(w.problem.seq, 5);

    /* A missing middle entry, a cut tail, a duplicate, a first entry that is not seq 1. */
    w = walk(chain, 6, 2, 0, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_MISSING);
    assert_int_equal(w.problem.seq, 2);
    assert_int_equal(w.problem.seq2, 4);
    w = walk(chain, 4, SIZE_MAX, 6, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_TRUNCATED);
    assert_int_equal(w.problem.seq, 4);
    assert_int_equal(w.problem.seq2, 6);
    w = walk(chain, 4, SIZE_MAX, 0, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_INTACT); /* without a checkpoint: unseen */
    w = walk(chain, 6, 0, 0, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_MISSING);
    assert_int_equal(w.problem.seq, 0);
    assert_int_equal(w.problem.seq2, 2);
    /* Resumed at a checkpoint whose entry is gone: the tail was cut there. */
    w = walk(chain, 3, SIZE_MAX, 4, true);
    assert_int_equal(w.problem.kind, DS_AUDIT_TRUNCATED);
    assert_int_equal(w.problem.seq, 3);

    entry_t dup[7];
    chain_copy(dup, chain, 6);
    chain_copy(&dup[6], &chain[5], 1);
    w = walk(dup, 7, SIZE_MAX, 0, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_DUPLICATE);
    assert_int_equal(w.problem.seq, 6);

    /* Unreadable values and another tenant's entry. */
    entry_t bad[6];
    chain_copy(bad, chain, 6);
    bad[1].text[DS_AUDIT_COL_HASH] = "zz";
    w = walk(bad, 6, SIZE_MAX, 0, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_MALFORMED);
    assert_int_equal(w.problem.seq, 2);
    chain_copy(bad, chain, 6);
    bad[3].text[DS_AUDIT_COL_TENANT] = "0190a3c4-0000-7000-8000-000000000009";
    w = walk(bad, 6, SIZE_MAX, 0, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_MALFORMED);
    chain_copy(bad, chain, 6);
    bad[0].text[DS_AUDIT_COL_SEQ] = "-1";
    w = walk(bad, 6, SIZE_MAX, 0, false);
    assert_int_equal(w.problem.kind, DS_AUDIT_MALFORMED);
    assert_int_equal(w.problem.seq, 1);

    char text[160];
    ds_audit_problem_t p = {.kind = DS_AUDIT_MISSING, .seq = 4, .seq2 = 6};
    ds_audit_problem_str(&p, text, sizeof(text));
    assert_string_equal(text, "missing entry: seq jumps from 4 to 6");
    p = (ds_audit_problem_t){.kind = DS_AUDIT_TRUNCATED, .seq = 4, .seq2 = 6};
    ds_audit_problem_str(&p, text, sizeof(text));
    assert_non_null(strstr(text, "truncated: entries after seq 4 are missing"));
    p = (ds_audit_problem_t){.kind = DS_AUDIT_REWRITTEN, .seq = 5};
    ds_audit_problem_str(&p, text, sizeof(text));
    assert_string_equal(text, "rewritten: entry 5 does not match the signed checkpoint");
    assert_string_equal(ds_audit_kind_name(DS_AUDIT_BROKEN_LINK), "broken_link");
}

/* ---- checkpoints ---- */

typedef struct keys {
    char dir[64];
    char other[64];
} keys_t;

static int keys_setup(void **state)
{
    keys_t *k = calloc(1, sizeof(*k));
    (void)snprintf(k->dir, sizeof(k->dir), "/tmp/ds-audit-unit-XXXXXX");
    (void)snprintf(k->other, sizeof(k->other), "/tmp/ds-audit-unit-XXXXXX");
    if (mkdtemp(k->dir) == NULL || mkdtemp(k->other) == NULL) {
        free(k);
        return -1;
    }
    *state = k;
    return 0;
}

static void rm_key_dir(const char *dir)
{
    char path[128];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, DS_AUDIT_KEY_FILE);
    (void)unlink(path);
    (void)rmdir(dir);
}

static int keys_teardown(void **state)
{
    keys_t *k = *state;
    rm_key_dir(k->dir);
    rm_key_dir(k->other);
    free(k);
    return 0;
}

static ds_audit_checkpoint_t cp_example(void)
{
    ds_audit_checkpoint_t cp = {.seq = 42};
    memcpy(cp.tenant_id, tenant, sizeof(tenant));
    assert_int_equal(ds_audit_unhex(vector1, DS_AUDIT_HEX_LEN, cp.hash, 32), 0);
    memcpy(cp.signed_at, "2024-06-10T06:13:20Z", DS_AUDIT_TIME_LEN + 1);
    return cp;
}

static void test_checkpoint_sign_open(void **state)
{
    keys_t *k = *state;
    ds_audit_signer_t *s = NULL;
    assert_int_equal(ds_audit_signer_open(k->dir, false, &s), -ENOENT);
    assert_int_equal(ds_audit_signer_open(k->dir, true, &s), 0);
    char path[128];
    (void)snprintf(path, sizeof(path), "%s/%s", k->dir, DS_AUDIT_KEY_FILE);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* The same key on the next open: the first one made wins. */
    ds_audit_signer_t *again = NULL;
    assert_int_equal(ds_audit_signer_open(k->dir, true, &again), 0);
    assert_string_equal(ds_audit_signer_key_id(s), ds_audit_signer_key_id(again));
    assert_int_equal(strlen(ds_audit_signer_key_id(s)), DS_AUDIT_KEY_ID_HEX);
    ds_audit_signer_free(&again);

    ds_audit_checkpoint_t cp = cp_example();
    char *bytes = NULL;
    size_t len = 0;
    assert_int_equal(ds_audit_checkpoint_sign(s, &cp, &bytes, &len), 0);
    char want[512];
    (void)snprintf(want, sizeof(want),
                   "{\"v\":1,\"tenant_id\":\"%s\",\"seq\":42,\"hash\":\"%s\","
                   "\"signed_at\":\"2024-06-10T06:13:20Z\",\"key_id\":\"%s\"}\n",
                   tenant, vector1, ds_audit_signer_key_id(s));
    assert_true(len == strlen(want) + 129);
    assert_memory_equal(bytes, want, strlen(want));
    ds_audit_checkpoint_t got;
    assert_int_equal(ds_audit_checkpoint_open(s, (const uint8_t *)bytes, len, &got), 0);
    assert_int_equal(got.seq, 42);
    assert_memory_equal(got.hash, cp.hash, 32);
    assert_string_equal(got.tenant_id, tenant);

    /* Forgeries: one payload byte changed (the seq), the signature changed, a signature by
     * another key (with this key's id, and with its own). */
    char *forged = strdup(bytes);
    char *seq = strstr(forged, "\"seq\":42");
    seq[7] = '3';
    assert_int_equal(ds_audit_checkpoint_open(s, (const uint8_t *)forged, len, &got),
                     -EKEYREJECTED);
    memcpy(forged, bytes, len);
    forged[len - 2] = forged[len - 2] == '0' ? '1' : '0';
    assert_int_equal(ds_audit_checkpoint_open(s, (const uint8_t *)forged, len, &got),
                     -EKEYREJECTED);
    ds_audit_signer_t *other = NULL;
    assert_int_equal(ds_audit_signer_open(k->other, true, &other), 0);
    char *theirs = NULL;
    size_t tlen = 0;
    assert_int_equal(ds_audit_checkpoint_sign(other, &cp, &theirs, &tlen), 0);
    assert_int_equal(ds_audit_checkpoint_open(s, (const uint8_t *)theirs, tlen, &got),
                     -EKEYREJECTED);
    memcpy(forged, bytes, len); /* their signature under our key id */
    memcpy(forged + len - 129, theirs + tlen - 129, 129);
    assert_int_equal(ds_audit_checkpoint_open(s, (const uint8_t *)forged, len, &got),
                     -EKEYREJECTED);
    free(theirs);
    ds_audit_signer_free(&other);
    free(forged);
    free(bytes);
    ds_audit_signer_free(&s);
}

static void test_checkpoint_strict_format(void **state)
{
    keys_t *k = *state;
    ds_audit_signer_t *s = NULL;
    assert_int_equal(ds_audit_signer_open(k->dir, true, &s), 0);
    ds_audit_checkpoint_t cp = cp_example();
    char *bytes = NULL;
    size_t len = 0;
    assert_int_equal(ds_audit_checkpoint_sign(s, &cp, &bytes, &len), 0);
    ds_audit_checkpoint_t got;
    uint8_t sig[DS_AUDIT_SIG_LEN];
    assert_int_equal(ds_audit_checkpoint_parse((const uint8_t *)bytes, len, &got, sig), 0);
    /* Other spellings of the same values are refused before any signature check. */
    char buf[600];
    const char *variants[][2] = {
        {"\"seq\":42", "\"seq\":042"}, {"\"v\":1", "\"v\": 1"},  {"\"seq\":42", "\"seq\":42.0"},
        {"bebdb7", "BEBDB7"},          {"\"v\":1,", "\"v\":2,"}, {"2024-06-10T", "2024-06-10 "},
    };
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        const char *at = strstr(bytes, variants[i][0]);
        assert_non_null(at);
        size_t head = (size_t)(at - bytes);
        size_t ol = strlen(variants[i][0]);
        int n = snprintf(buf, sizeof(buf), "%.*s%s%s", (int)head, bytes, variants[i][1], at + ol);
        assert_int_equal(ds_audit_checkpoint_parse((const uint8_t *)buf, (size_t)n, &got, sig),
                         DS_EDECODE);
    }
    assert_int_equal(ds_audit_checkpoint_parse((const uint8_t *)bytes, len - 1, &got, sig),
                     DS_EDECODE);
    assert_int_equal(ds_audit_checkpoint_parse((const uint8_t *)"", 0, &got, sig), DS_EDECODE);
    /* A seq of 0 or a short tenant is not signed. */
    cp.seq = 0;
    char *none = NULL;
    assert_int_equal(ds_audit_checkpoint_sign(s, &cp, &none, &len), -EINVAL);
    free(bytes);
    ds_audit_signer_free(&s);
}

static void test_signer_refuses_open_key(void **state)
{
    keys_t *k = *state;
    ds_audit_signer_t *s = NULL;
    assert_int_equal(ds_audit_signer_open(k->dir, true, &s), 0);
    ds_audit_signer_free(&s);
    char path[128];
    (void)snprintf(path, sizeof(path), "%s/%s", k->dir, DS_AUDIT_KEY_FILE);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(ds_audit_signer_open(k->dir, true, &s), -EPERM);
    assert_int_equal(chmod(path, 0600), 0);
    /* Not a key. */
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello\n", 6), 6);
    (void)close(fd);
    assert_int_equal(ds_audit_signer_open(k->dir, true, &s), -EBADMSG);
    assert_int_equal(unlink(path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vector),
        cmocka_unit_test(test_walk_intact_and_resumed),
        cmocka_unit_test(test_walk_problems),
        cmocka_unit_test_setup_teardown(test_checkpoint_sign_open, keys_setup, keys_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_strict_format, keys_setup, keys_teardown),
        cmocka_unit_test_setup_teardown(test_signer_refuses_open_key, keys_setup, keys_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
