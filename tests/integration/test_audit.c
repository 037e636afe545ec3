/* Integration tests: the audit chain against the suite's PostgreSQL (issue 5 §4). Entries are
 * appended with dossier.audit_append() as dossier_app; checkpoints are signed into a blob store
 * of this test's own; then the OWNER role, which can edit the table, tampers with it, and the
 * C verifier (actors/audit) must name the first problem: an edited entry, a missing one, a cut
 * tail, a chain rewritten consistently (caught only by the checkpoint), a broken link, a forged
 * or damaged checkpoint. The checkpointer must never sign over a tampered chain, and the actor
 * run by `dossier serve` must sign heads through the real pool and blob store.
 * Needs DS_TEST_PG_ENV (pgtest.h), else it exits 77. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "actors/audit/chain.h"
#include "actors/audit/checkpoint.h"
#include "actors/audit/checkpointer.h"
#include "actors/audit/verify.h"
#include "actors/tenants.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/rt.h"
#include "tests/integration/pgsql.h"
#include "tests/integration/pgtest.h"
#include "transports/blob/blob.h"
#include "transports/blob/keystore.h"
#include "transports/pg/pool.h"

#define SEC INT64_C(1000000000)

static pgtest_env_t env;

/* The stores of this run: a key store, a blob store and the signing key under one directory. */
static struct {
    char dir[64];
    char keys_dir[96];
    ds_keystore_t *keys;
    ds_blob_store_t *blobs;
    ds_audit_signer_t *signer;
    PGconn *owner;
    PGconn *app;
} g;

/* ---- SQL helpers ---- */

/* Runs sql in a transaction of tenant (RLS is forced on the owner too). */
static void tenant_sql(PGconn *c, const char *tenant, const char *sql)
{
    const char *p[] = {tenant};
    q_execp(c, "BEGIN", 0, NULL);
    q_execp(c, "SELECT set_config('app.tenant_id', $1, true)", 1, p);
    q_execp(c, sql, 0, NULL);
    q_execp(c, "COMMIT", 0, NULL);
}

static void tenant_new(char id[DS_AUDIT_UUID_LEN + 1])
{
    PGresult *r =
        q(g.owner,
          "INSERT INTO dossier.tenants (slug, name, region)"
          " VALUES ('a-' || substr(md5(random()::text || clock_timestamp()::text), 1, 20),"
          " 'audit test', 'test') RETURNING id::text",
          0, NULL);
    (void)snprintf(id, DS_AUDIT_UUID_LEN + 1, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

static void tenant_drop(const char *id)
{
    const char *p[] = {id};
    q_execp(g.owner, "BEGIN", 0, NULL);
    q_execp(g.owner, "SELECT dossier.tenant_purge($1)", 1, p);
    q_execp(g.owner, "DELETE FROM dossier.tenants WHERE id = $1", 1, p);
    q_execp(g.owner, "COMMIT", 0, NULL);
}

/* Appends n entries as dossier_app, with NULLs, non-ASCII text and nested details. */
static void append(const char *tenant, int n)
{
    const char *p[] = {tenant};
    q_execp(g.app, "BEGIN", 0, NULL);
    q_execp(g.app, "SELECT set_config('app.tenant_id', $1, true)", 1, p);
    for (int i = 0; i < n; i++) {
        q_execp(
            g.app,
            "SELECT dossier.audit_append(CASE WHEN random() < 0.5 THEN 'user' ELSE 'system' END,"
            " gen_random_uuid(), 'Zo\xc3\xab <zoe@example.com>', 'user.create', 'user', NULL,"
            " '10.0.0.1'::inet, 'req-' || md5(random()::text), 'success',"
            " jsonb_build_object('n', random(), 's', '\xc3\xa9\\\"', 'deep', "
            "'{\"a\":[1,2.50]}'::jsonb))",
            0, NULL);
    }
    q_execp(g.app, "COMMIT", 0, NULL);
}

static uint64_t head_seq(const char *tenant)
{
    const char *p[] = {tenant};
    q_execp(g.owner, "BEGIN", 0, NULL);
    q_execp(g.owner, "SELECT set_config('app.tenant_id', $1, true)", 1, p);
    PGresult *r = q(g.owner, "SELECT coalesce(max(seq), 0) FROM dossier.audit_log", 0, NULL);
    uint64_t s = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    q_execp(g.owner, "COMMIT", 0, NULL);
    return s;
}

/* ---- verifying and checkpointing ---- */

/* What `dossier audit verify` does: the latest checkpoint (if any), then the whole chain, as
 * the owner. Returns the walk; *cp_rc gets the checkpoint load's code. */
static ds_audit_walk_t verify_full(const char *tenant, uint32_t batch, int *cp_rc)
{
    ds_audit_checkpoint_t cp;
    int rc = ds_audit_checkpoint_load(g.blobs, g.signer, tenant, &cp);
    if (cp_rc != NULL) {
        *cp_rc = rc;
    }
    ds_audit_verify_opts_t o = {.checkpoint = rc == 0 ? &cp : NULL, .batch = batch};
    ds_audit_walk_t w;
    char *why = NULL;
    rc = ds_audit_verify_conn(g.owner, tenant, &o, &w, &why);
    if (rc != 0) {
        fail_msg("verify: %s (%s)", ds_strerror(rc), why != NULL ? why : "");
    }
    free(why);
    return w;
}

static ds_audit_walk_t verify_plain(const char *tenant)
{
    ds_audit_walk_t w;
    char *why = NULL;
    assert_int_equal(ds_audit_verify_conn(g.owner, tenant, NULL, &w, &why), 0);
    free(why);
    return w;
}

/* The checkpointer's blocking path, as the application role. */
static ds_audit_walk_t checkpoint(const char *tenant)
{
    ds_audit_walk_t w;
    char *why = NULL;
    int rc = ds_audit_checkpoint_sync(g.app, g.blobs, g.signer, tenant, &w, &why);
    if (rc != 0) {
        fail_msg("checkpoint: %s (%s)", ds_strerror(rc), why != NULL ? why : "");
    }
    free(why);
    return w;
}

static uint64_t latest_seq(const char *tenant)
{
    ds_audit_checkpoint_t cp;
    int rc = ds_audit_checkpoint_load(g.blobs, g.signer, tenant, &cp);
    return rc == 0 ? cp.seq : 0;
}

static void expect_problem(const ds_audit_walk_t *w, ds_audit_kind_t kind, uint64_t seq)
{
    if (w->problem.kind != kind || w->problem.seq != seq) {
        char text[200];
        ds_audit_problem_str(&w->problem, text, sizeof(text));
        fail_msg("expected %s at %llu, got: %s", ds_audit_kind_name(kind), (unsigned long long)seq,
                 text);
    }
}

/* ---- tests ---- */

/* The SQL encoder and the C one agree: on the independent vector of tests/unit/test_audit.c,
 * and on every entry audit_append stored. */
static void test_encoder_matches_sql(void **state)
{
    (void)state;
    PGresult *r = q(g.owner,
                    "SELECT encode(sha256(decode(repeat('00', 32), 'hex') || dossier.audit_encode("
                    "'0190a3c4-0000-7000-8000-000000000001', 1,"
                    " '0190a3c4-0001-7000-8000-000000000002', '2024-06-10 06:13:20.123456+00',"
                    " 'user', '0190a3c4-0002-7000-8000-000000000003',"
                    " 'Zo\xc3\xab <zoe@example.com>', 'user.create', 'user', NULL, '10.0.0.1',"
                    " NULL, 'success', '{\"b\": \"\xc3\xa9\", \"a\": 1}')), 'hex')",
                    0, NULL);
    assert_string_equal(PQgetvalue(r, 0, 0),
                        "bebdb7b86267e2a22d45bec54c9350baf09655a7e9dff0290e859bb62f181f57");
    PQclear(r);

    char tenant[DS_AUDIT_UUID_LEN + 1];
    tenant_new(tenant);
    append(tenant, 4);
    const char *p[] = {tenant, "0", "00000000-0000-0000-0000-000000000000", "100"};
    q_execp(g.owner, "BEGIN", 0, NULL);
    q_execp(g.owner, "SELECT set_config('app.tenant_id', $1, true)", 1, p);
    r = q(g.owner, DS_AUDIT_BATCH_SQL, 4, p);
    q_execp(g.owner, "COMMIT", 0, NULL);
    assert_int_equal(PQntuples(r), 4);
    for (int i = 0; i < 4; i++) {
        ds_pg_value_t row[DS_AUDIT_NCOLS];
        for (int c = 0; c < DS_AUDIT_NCOLS; c++) {
            bool null = PQgetisnull(r, i, c) != 0;
            row[c] = (ds_pg_value_t){.ptr = null ? NULL : PQgetvalue(r, i, c),
                                     .len = (uint32_t)PQgetlength(r, i, c),
                                     .null = null};
        }
        uint8_t prev[DS_AUDIT_HASH_LEN];
        uint8_t got[DS_AUDIT_HASH_LEN];
        char hex[DS_AUDIT_HEX_LEN + 1];
        assert_int_equal(ds_audit_unhex(row[DS_AUDIT_COL_PREV_HASH].ptr, DS_AUDIT_HEX_LEN, prev,
                                        DS_AUDIT_HASH_LEN),
                         0);
        assert_int_equal(ds_audit_entry_hash(row, prev, got), 0);
        ds_audit_hex(got, DS_AUDIT_HASH_LEN, hex);
        assert_string_equal(hex, PQgetvalue(r, i, DS_AUDIT_COL_HASH));
    }
    PQclear(r);
    tenant_drop(tenant);
}

static void test_intact_chain(void **state)
{
    (void)state;
    char tenant[DS_AUDIT_UUID_LEN + 1];
    tenant_new(tenant);
    int cp_rc = 0;
    ds_audit_walk_t w = verify_full(tenant, 0, &cp_rc); /* empty: intact, no checkpoint */
    assert_int_equal(cp_rc, -ENOENT);
    expect_problem(&w, DS_AUDIT_INTACT, 0);
    assert_int_equal(w.checked, 0);

    append(tenant, 5);
    w = checkpoint(tenant);
    expect_problem(&w, DS_AUDIT_INTACT, 0);
    assert_int_equal(latest_seq(tenant), 5);
    append(tenant, 6);
    w = verify_full(tenant, 4, &cp_rc); /* batches of 4: three queries */
    assert_int_equal(cp_rc, 0);
    expect_problem(&w, DS_AUDIT_INTACT, 0);
    assert_int_equal(w.checked, 11);
    assert_int_equal(w.last_seq, 11);
    w = checkpoint(tenant); /* resumed at 5: checks 5..11 */
    assert_int_equal(w.checked, 7);
    assert_int_equal(latest_seq(tenant), 11);
    /* Each checkpoint is kept in the history too. */
    char name[DS_AUDIT_CP_NAME_MAX];
    ds_blob_info_t info;
    ds_audit_checkpoint_name(5, name);
    assert_string_equal(name, "audit/checkpoints/00000000000000000005");
    assert_int_equal(ds_blob_stat(g.blobs, tenant, name, &info), 0);
    ds_audit_checkpoint_name(11, name);
    assert_int_equal(ds_blob_stat(g.blobs, tenant, name, &info), 0);
    /* Nothing moved: nothing signed. */
    ds_audit_checkpoint_t before;
    assert_int_equal(ds_audit_checkpoint_load(g.blobs, g.signer, tenant, &before), 0);
    w = checkpoint(tenant);
    assert_int_equal(w.checked, 1);
    ds_audit_checkpoint_t after;
    assert_int_equal(ds_audit_checkpoint_load(g.blobs, g.signer, tenant, &after), 0);
    assert_memory_equal(&before, &after, sizeof(before));
    tenant_drop(tenant);
}

static void test_owner_edits_details(void **state)
{
    (void)state;
    char tenant[DS_AUDIT_UUID_LEN + 1];
    tenant_new(tenant);
    append(tenant, 5);
    (void)checkpoint(tenant);
    tenant_sql(g.owner, tenant,
               "UPDATE dossier.audit_log SET details = '{\"n\": 0}' WHERE seq = 3");
    ds_audit_walk_t w = verify_full(tenant, 0, NULL);
    expect_problem(&w, DS_AUDIT_EDITED, 3);
    assert_int_equal(w.checked, 2);
    tenant_drop(tenant);
}

static void test_owner_deletes_middle(void **state)
{
    (void)state;
    char tenant[DS_AUDIT_UUID_LEN + 1];
    tenant_new(tenant);
    append(tenant, 5);
    tenant_sql(g.owner, tenant, "DELETE FROM dossier.audit_log WHERE seq = 3");
    ds_audit_walk_t w = verify_full(tenant, 0, NULL);
    expect_problem(&w, DS_AUDIT_MISSING, 2);
    assert_int_equal(w.problem.seq2, 4);
    tenant_drop(tenant);
}

static void test_owner_cuts_tail(void **state)
{
    (void)state;
    char tenant[DS_AUDIT_UUID_LEN + 1];
    tenant_new(tenant);
    append(tenant, 6);
    (void)checkpoint(tenant);
    tenant_sql(g.owner, tenant, "DELETE FROM dossier.audit_log WHERE seq > 4");
    /* Without the checkpoint the shorter chain is consistent; with it, the cut shows. */
    ds_audit_walk_t w = verify_plain(tenant);
    expect_problem(&w, DS_AUDIT_INTACT, 0);
    w = verify_full(tenant, 0, NULL);
    expect_problem(&w, DS_AUDIT_TRUNCATED, 4);
    assert_int_equal(w.problem.seq2, 6);
    /* The checkpointer does not sign the shorter head. Its walk resumes at the checkpoint, so
     * it reads nothing before it and reports the cut from there. */
    w = checkpoint(tenant);
    expect_problem(&w, DS_AUDIT_TRUNCATED, 5);
    assert_int_equal(latest_seq(tenant), 6);
    /* New entries past the old head: the entry at the checkpoint is not the signed one. */
    append(tenant, 4);
    w = verify_full(tenant, 0, NULL);
    expect_problem(&w, DS_AUDIT_REWRITTEN, 6);
    w = checkpoint(tenant);
    expect_problem(&w, DS_AUDIT_REWRITTEN, 6);
    assert_int_equal(latest_seq(tenant), 6);
    tenant_drop(tenant);
}

/* What an attacker owning the table does: edit an entry, then recompute every later hash and
 * link with the server's own functions, so the chain is consistent again. */
static const char rewrite_sql[] =
    "DO $$ DECLARE r record; p bytea; BEGIN"
    " UPDATE dossier.audit_log SET details = '{\"forged\": true}' WHERE seq = 2;"
    " FOR r IN SELECT * FROM dossier.audit_log WHERE seq >= 2 ORDER BY seq LOOP"
    "  SELECT hash INTO p FROM dossier.audit_log WHERE seq = r.seq - 1;"
    "  UPDATE dossier.audit_log SET prev_hash = p, hash = sha256(p || dossier.audit_encode("
    "   r.tenant_id, r.seq, r.id, r.created_at, r.actor_type, r.actor_id, r.actor_label,"
    "   r.action, r.object_type, r.object_id, r.ip, r.request_id, r.outcome, r.details))"
    "   WHERE tenant_id = r.tenant_id AND seq = r.seq;"
    " END LOOP; END $$";

static void test_owner_rewrites_chain(void **state)
{
    (void)state;
    char tenant[DS_AUDIT_UUID_LEN + 1];
    tenant_new(tenant);
    append(tenant, 5);
    (void)checkpoint(tenant);
    tenant_sql(g.owner, tenant, rewrite_sql);
    ds_audit_walk_t w = verify_plain(tenant);
    expect_problem(&w, DS_AUDIT_INTACT, 0); /* consistent: the hashes alone cannot tell */
    assert_int_equal(w.checked, 5);
    w = verify_full(tenant, 2, NULL);
    expect_problem(&w, DS_AUDIT_REWRITTEN, 5);
    /* And the checkpointer will not launder it with more entries on top. */
    append(tenant, 2);
    w = checkpoint(tenant);
    expect_problem(&w, DS_AUDIT_REWRITTEN, 5);
    assert_int_equal(latest_seq(tenant), 5);
    tenant_drop(tenant);
}

static void test_owner_rehashes_one_entry(void **state)
{
    (void)state;
    char tenant[DS_AUDIT_UUID_LEN + 1];
    tenant_new(tenant);
    append(tenant, 5);
    tenant_sql(g.owner, tenant,
               "UPDATE dossier.audit_log a SET details = '{}', hash = sha256(a.prev_hash ||"
               " dossier.audit_encode(a.tenant_id, a.seq, a.id, a.created_at, a.actor_type,"
               " a.actor_id, a.actor_label, a.action, a.object_type, a.object_id, a.ip,"
               " a.request_id, a.outcome, '{}'::jsonb)) WHERE seq = 3");
    ds_audit_walk_t w = verify_full(tenant, 0, NULL);
    expect_problem(&w, DS_AUDIT_BROKEN_LINK, 4);
    tenant_drop(tenant);
}

/* Replaces the tenant's latest checkpoint with bytes. */
static void put_latest(const char *tenant, const char *bytes, size_t len)
{
    assert_int_equal(ds_blob_put(g.blobs, tenant, DS_AUDIT_CP_LATEST, bytes, len, NULL), 0);
}

static void test_forged_checkpoints(void **state)
{
    (void)state;
    char tenant[DS_AUDIT_UUID_LEN + 1];
    char other[DS_AUDIT_UUID_LEN + 1];
    tenant_new(tenant);
    tenant_new(other);
    append(tenant, 3);
    append(other, 3);
    (void)checkpoint(tenant);
    (void)checkpoint(other);
    ds_audit_checkpoint_t cp;
    assert_int_equal(ds_audit_checkpoint_load(g.blobs, g.signer, tenant, &cp), 0);

    /* A later head claimed with the genuine signature: the signature fails. */
    char *bytes = NULL;
    size_t len = 0;
    assert_int_equal(ds_audit_checkpoint_sign(g.signer, &cp, &bytes, &len), 0);
    char *seq = strstr(bytes, "\"seq\":3,");
    assert_non_null(seq);
    seq[6] = '2';
    put_latest(tenant, bytes, len);
    int cp_rc = 0;
    (void)verify_full(tenant, 0, &cp_rc);
    assert_int_equal(cp_rc, -EKEYREJECTED);
    ds_audit_walk_t w = checkpoint(tenant);
    expect_problem(&w, DS_AUDIT_FORGED, 0);
    /* Kept as evidence: the checkpointer did not replace it. */
    ds_blob_info_t info;
    assert_int_equal(ds_blob_stat(g.blobs, tenant, DS_AUDIT_CP_LATEST, &info), 0);
    assert_int_equal(info.size, len);
    free(bytes);

    /* Signed by another key. */
    char odir[128];
    (void)snprintf(odir, sizeof(odir), "%s/otherkey", g.dir);
    ds_audit_signer_t *thief = NULL;
    assert_int_equal(ds_audit_signer_open(odir, true, &thief), 0);
    assert_int_equal(ds_audit_checkpoint_sign(thief, &cp, &bytes, &len), 0);
    put_latest(tenant, bytes, len);
    assert_int_equal(ds_audit_checkpoint_load(g.blobs, g.signer, tenant, &cp), -EKEYREJECTED);
    free(bytes);
    ds_audit_signer_free(&thief);

    /* Another tenant's genuine checkpoint copied over. */
    ds_audit_checkpoint_t theirs;
    assert_int_equal(ds_audit_checkpoint_load(g.blobs, g.signer, other, &theirs), 0);
    assert_int_equal(ds_audit_checkpoint_sign(g.signer, &theirs, &bytes, &len), 0);
    put_latest(tenant, bytes, len);
    assert_int_equal(ds_audit_checkpoint_load(g.blobs, g.signer, tenant, &cp), -EKEYREJECTED);
    free(bytes);

    /* Garbage, then a file changed on disk behind the blob store. */
    put_latest(tenant, "{\"v\":1}\n", 8);
    assert_int_equal(ds_audit_checkpoint_load(g.blobs, g.signer, tenant, &cp), DS_EDECODE);
    char path[256];
    (void)snprintf(path, sizeof(path), "%s/blobs/test/%s/audit/checkpoint-latest", g.dir, other);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b = 0;
    assert_int_equal(pread(fd, &b, 1, DS_BLOB_HEADER_LEN), 1);
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, DS_BLOB_HEADER_LEN), 1);
    (void)close(fd);
    assert_int_equal(ds_audit_checkpoint_load(g.blobs, g.signer, other, &cp), -EBADMSG);
    w = checkpoint(other);
    expect_problem(&w, DS_AUDIT_FORGED, 0);
    tenant_drop(tenant);
    tenant_drop(other);
}

/* ---- the actor ---- */

/* Reads the whole capture file into buf. */
static void read_capture(const char *path, char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    (void)fclose(f);
}

static void wait_latest(const char *tenant, uint64_t seq)
{
    int64_t end = ds_clock_now() + 120 * SEC; /* a hang bound, not a timing */
    while (latest_seq(tenant) != seq && ds_clock_now() < end) {
        (void)usleep(50000);
    }
    assert_int_equal(latest_seq(tenant), seq);
}

static void test_checkpointer_actor(void **state)
{
    (void)state;
    char tenant[DS_AUDIT_UUID_LEN + 1];
    tenant_new(tenant);
    append(tenant, 5);
    ds_tenant_entry_t entry = {0};
    memcpy(entry.id, tenant, sizeof(entry.id));
    ds_tenants_t tenants = {.items = &entry, .count = 1};

    /* The actor logs on stderr: capture it to see what an operator would. */
    char capture[128];
    (void)snprintf(capture, sizeof(capture), "%s/actor.log", g.dir);
    (void)fflush(stderr);
    int saved = dup(2);
    int fd = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    (void)close(fd);

    ds_rt_cfg_t rc = {.node = 1, .workers = 2};
    ds_rt_t *rt = NULL;
    ds_loop_t *loop = NULL;
    ds_actor_id_t pool;
    assert_int_equal(ds_rt_new(&rc, &rt), 0);
    assert_int_equal(ds_rt_start(rt), 0);
    assert_int_equal(ds_loop_new(rt, "pg", &loop), 0);
    assert_int_equal(ds_loop_start(loop), 0);
    ds_pg_pool_config_t pc = {.conninfo = env.app_dsn, .size = 2};
    assert_int_equal(ds_pg_pool_start(loop, &pc, &pool), 0);
    ds_audit_checkpointer_cfg_t ac = {
        .rt = rt,
        .loop = loop,
        .pool = pool,
        .blobs = g.blobs,
        .tenants = &tenants,
        .keys_dir = g.keys_dir,
        .interval_s = 1,
    };
    assert_int_equal(ds_audit_checkpointer_start(&ac, NULL), 0);
    wait_latest(tenant, 5);
    append(tenant, 600); /* more than one batch */
    wait_latest(tenant, 605);

    /* Cut the tail and write past it: the actor logs the problem and signs nothing more. */
    tenant_sql(g.owner, tenant,
               "DO $$ BEGIN DELETE FROM dossier.audit_log WHERE seq > 603;"
               " PERFORM dossier.audit_append('system', NULL, NULL, 'user.create', NULL, NULL,"
               " NULL, NULL, 'success', NULL) FROM generate_series(1, 5); END $$");
    char *log = calloc(1, 1 << 20);
    assert_non_null(log);
    int64_t end = ds_clock_now() + 120 * SEC;
    char want[128];
    (void)snprintf(want, sizeof(want), "\"msg\":\"audit chain broken\",\"tenant\":\"%s\"", tenant);
    while (strstr(log, want) == NULL && ds_clock_now() < end) {
        (void)usleep(50000);
        read_capture(capture, log, 1 << 20);
    }
    ds_loop_free(&loop);
    assert_int_equal(ds_rt_drain(rt, 30 * SEC), 0);
    ds_rt_free(&rt);
    (void)fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    (void)close(saved);
    const char *line = strstr(log, want);
    if (line == NULL) {
        print_message("no 'audit chain broken' line for the tenant in:\n%s", log);
    }
    assert_true(line != NULL && strstr(line, "\"kind\":\"rewritten\"") != NULL);
    free(log);
    assert_int_equal(latest_seq(tenant), 605);
    assert_int_equal(head_seq(tenant), 608);

    /* The shutdown checkpoint refuses too; on a sound tenant it signs the head. */
    assert_int_equal(ds_audit_checkpoint_final(env.app_dsn, g.blobs, &tenants, g.keys_dir), 0);
    assert_int_equal(latest_seq(tenant), 605);
    char fresh[DS_AUDIT_UUID_LEN + 1];
    tenant_new(fresh);
    append(fresh, 3);
    memcpy(entry.id, fresh, sizeof(entry.id));
    assert_int_equal(ds_audit_checkpoint_final(env.app_dsn, g.blobs, &tenants, g.keys_dir), 0);
    assert_int_equal(latest_seq(fresh), 3);
    tenant_drop(fresh);
    tenant_drop(tenant);
}

/* ---- set-up ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    (void)snprintf(g.dir, sizeof(g.dir), "/tmp/ds-audit-it-XXXXXX");
    if (mkdtemp(g.dir) == NULL) {
        return -1;
    }
    (void)snprintf(g.keys_dir, sizeof(g.keys_dir), "%s/keys", g.dir);
    char master[128];
    char tdir[128];
    char bdir[128];
    (void)snprintf(master, sizeof(master), "%s/master.key", g.keys_dir);
    (void)snprintf(tdir, sizeof(tdir), "%s/tenants", g.keys_dir);
    (void)snprintf(bdir, sizeof(bdir), "%s/blobs", g.dir);
    ds_keystore_cfg_t kc = {.master_path = master, .tenant_dir = tdir, .create_master = true};
    ds_blob_cfg_t bc = {.root = bdir, .region = "test", .keys = NULL};
    if (ds_keystore_open(&kc, &g.keys) != 0) {
        return -1;
    }
    bc.keys = g.keys;
    if (ds_blob_open(&bc, &g.blobs) != 0 ||
        ds_audit_signer_open(g.keys_dir, true, &g.signer) != 0) {
        return -1;
    }
    g.owner = PQconnectdb(env.owner_dsn);
    g.app = PQconnectdb(env.app_dsn);
    return PQstatus(g.owner) == CONNECTION_OK && PQstatus(g.app) == CONNECTION_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(g.owner);
    PQfinish(g.app);
    ds_audit_signer_free(&g.signer);
    ds_blob_free(&g.blobs);
    ds_keystore_free(&g.keys);
    (void)nftw(g.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

int main(void)
{
    pgtest_env_or_skip(&env);
    ds_log_init();
    ds_log_set_level(DS_LOG_INFO);
    if (ds_pg_msgs_register() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoder_matches_sql),
        cmocka_unit_test(test_intact_chain),
        cmocka_unit_test(test_owner_edits_details),
        cmocka_unit_test(test_owner_deletes_middle),
        cmocka_unit_test(test_owner_cuts_tail),
        cmocka_unit_test(test_owner_rewrites_chain),
        cmocka_unit_test(test_owner_rehashes_one_entry),
        cmocka_unit_test(test_forged_checkpoints),
        cmocka_unit_test(test_checkpointer_actor),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    pgtest_env_fini(&env);
    return failed;
}
