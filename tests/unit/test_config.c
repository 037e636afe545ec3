/* Unit tests for config/: the built-in defaults against the issue's plan table and the shipped
 * config/dossier.yaml, files merged over them, environment overrides, every kind of bad input
 * with the line and key a user would be shown, plan overrides and the data directory rules.
 * Temporary files go under a mkdtemp() directory removed at the end. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
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

#include "config/config.h"
#include "config/keys.h"
#include "transports/http/reader.h"
#include "transports/http/server.h"

static char tmpdir[] = "/tmp/ds-test-config.XXXXXX";
static int file_seq;

/* Writes text to a new file under tmpdir; returns its path (free() it). */
static char *write_tmp(const char *text)
{
    char *path = NULL;
    assert_true(asprintf(&path, "%s/c%d.yaml", tmpdir, file_seq++) > 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Loads text as a file (over the defaults) with envp; the load's return code. */
static int load_text(const char *text, char *const *envp, ds_config_t **out, ds_config_error_t *e)
{
    char *path = write_tmp(text);
    int rc = ds_config_load(path, envp, out, e);
    if (rc < 0) {
        /* Every file error names the file. */
        assert_string_equal(e->file, path);
    }
    free(path);
    return rc;
}

/* Expects text to fail at line with key and a message containing part. */
static void expect_error(const char *text, unsigned line, const char *key, const char *part)
{
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    memset(&e, 0x55, sizeof(e));
    int rc = load_text(text, NULL, &cfg, &e);
    if (rc != -EINVAL || e.line != line || strcmp(e.key, key) != 0 ||
        strstr(e.message, part) == NULL) {
        char buf[800];
        print_error("for %s\n  got rc %d: %s\n  want line %u key '%s' message with '%s'\n", text,
                    rc, ds_config_error_str(&e, buf, sizeof(buf)), line, key, part);
        fail();
    }
    assert_null(cfg);
}

static char *dump_str(const ds_config_t *cfg, unsigned flags)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(ds_config_dump(cfg, flags, f), 0);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* ---- defaults ----------------------------------------------------------------------------- */

static void test_defaults_match_issue(void **state)
{
    (void)state;
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    assert_int_equal(ds_config_load(NULL, NULL, &cfg, &e), 0);
    /* The issue's table, column by column: standard / professional / enterprise. */
    static const uint64_t want[DS_PLAN_COUNT][10] = {
        {1000, 100, 100, 100000, 100, 5, 50, 10, 10000, 1},
        {10000, 1000, 1000, 1000000, 1000, 20, 200, 30, 100000, 3},
        {100000, 10000, 10000, DS_PLAN_UNLIMITED, DS_PLAN_UNLIMITED, 100, 500, 60, 1000000, 10},
    };
    for (int k = 0; k < DS_PLAN_COUNT; k++) {
        const ds_plan_t *p = ds_config_plan(cfg, (ds_plan_kind_t)k);
        assert_non_null(p);
        uint64_t got[10] = {
            p->api_requests_per_minute, p->searches_per_minute, p->storage_gb,
            p->max_documents,           p->max_users,           p->concurrent_uploads,
            p->max_file_size_mb,        p->search_timeout_s,    p->export_documents_per_hour,
            p->scheduler_weight};
        for (int i = 0; i < 10; i++) {
            assert_int_equal(got[i], want[k][i]);
        }
    }
    /* Our own additions (docs/config.md says why). */
    const ds_plan_t *s = &cfg->plans[DS_PLAN_STANDARD];
    const ds_plan_t *pr = &cfg->plans[DS_PLAN_PROFESSIONAL];
    const ds_plan_t *en = &cfg->plans[DS_PLAN_ENTERPRISE];
    assert_int_equal(s->mailbox_limit, 1000);
    assert_int_equal(pr->mailbox_limit, 4000);
    assert_int_equal(en->mailbox_limit, 16000);
    assert_int_equal(s->bytes_in_flight, 16u << 20);
    assert_int_equal(pr->bytes_in_flight, 64u << 20);
    assert_int_equal(en->bytes_in_flight, 256u << 20);
    assert_int_equal(s->statement_timeout_ms, 5000);
    assert_int_equal(en->statement_timeout_ms, 30000);
    assert_int_equal(s->pool_connections, 2);
    assert_int_equal(en->pool_connections, 8);
    /* The rest of the defaults. */
    assert_int_equal(cfg->node.id, 1);
    assert_int_equal(cfg->node.workers, 0);
    assert_string_equal(cfg->data_dir, "");
    assert_string_equal(cfg->region, "local");
    assert_string_equal(cfg->database.dsn, "");
    assert_string_equal(cfg->database.owner_dsn, "");
    assert_int_equal(cfg->database.pool_size, 8);
    assert_int_equal(cfg->database.pipeline_depth, 8);
    assert_int_equal(cfg->database.connect_timeout_ms, 5000);
    assert_int_equal(cfg->database.reconnect_min_ms, 100);
    assert_int_equal(cfg->database.reconnect_max_ms, 5000);
    assert_string_equal(cfg->blob.dir, "");
    assert_int_equal(cfg->blob.chunk_size, 65536);
    assert_string_equal(cfg->blob.keys_dir, "");
    assert_string_equal(cfg->blob.master_key_file, "");
    assert_int_equal(cfg->log.level, DS_LOG_INFO);
    /* The gateway's own defaults (transports/http/server.h, reader.h), made explicit. */
    assert_string_equal(cfg->http.listen, "127.0.0.1:8080");
    assert_int_equal(cfg->http.cors_origins.count, 0);
    assert_null(cfg->http.cors_origins.items);
    assert_int_equal(cfg->http.trusted_proxies.count, 0);
    assert_int_equal(cfg->http.header_timeout_ms, 10000);
    assert_int_equal(cfg->http.idle_timeout_ms, 60000);
    assert_int_equal(cfg->http.handler_timeout_ms, 30000);
    assert_int_equal(cfg->http.max_connections, 1024);
    assert_int_equal(cfg->http.max_connections_ip, 64);
    assert_int_equal(cfg->http.max_pipeline, 16);
    assert_int_equal(cfg->http.max_output_bytes, 1u << 20);
    assert_int_equal(cfg->http.retry_after_s, 1);
    assert_int_equal(cfg->http.stream_window, 4);
    assert_int_equal(cfg->http.limits.max_header_bytes, 16384);
    assert_int_equal(cfg->http.limits.max_headers, 64);
    assert_int_equal(cfg->http.limits.max_url, 4096);
    assert_int_equal(cfg->http.limits.max_body, 1u << 20);
    assert_int_equal(cfg->http.limits.stream_threshold, 1u << 20);
    assert_null(ds_config_plan(cfg, DS_PLAN_COUNT));
    ds_config_free(&cfg);
    assert_null(cfg);
    ds_config_free(&cfg);
    ds_config_free(NULL);
}

/* The shipped config/dossier.yaml, loaded as a file, gives exactly the built-in defaults. */
static void test_defaults_equal_source_file(void **state)
{
    (void)state;
    const char *src = getenv("DS_SOURCE_DIR"); /* set by ctest; main thread only */
    char path[PATH_MAX];
    if (src != NULL) {
        (void)snprintf(path, sizeof(path), "%s/config/dossier.yaml", src);
    } else {
        /* Run by hand: this file's own path (absolute in CMake builds) leads to the tree. */
        const char *at = strstr(__FILE__, "tests/unit/");
        assert_non_null(at);
        (void)snprintf(path, sizeof(path), "%.*sconfig/dossier.yaml", (int)(at - __FILE__),
                       __FILE__);
    }
    ds_config_t *def = NULL;
    ds_config_t *file = NULL;
    ds_config_error_t e;
    assert_int_equal(ds_config_load(NULL, NULL, &def, &e), 0);
    assert_int_equal(ds_config_load(path, NULL, &file, &e), 0);
    char *a = dump_str(def, DS_CONFIG_DUMP_SECRETS);
    char *b = dump_str(file, DS_CONFIG_DUMP_SECRETS);
    assert_string_equal(a, b);
    free(a);
    free(b);
    ds_config_free(&def);
    ds_config_free(&file);
}

/* dump -> load -> dump is a fixed point, for defaults and for a config with every kind of
 * value changed. */
static void test_dump_round_trip(void **state)
{
    (void)state;
    char *const env[] = {"DOSSIER_DATABASE__DSN=host=/run/pg user=app password=s\"e\\cret",
                         "DOSSIER_DATABASE__OWNER_DSN=host=/run/pg user=owner", NULL};
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    assert_int_equal(load_text("region: eu-west-1\n"
                               "data_dir: /srv/dossier\n"
                               "log: {level: debug}\n"
                               "blob: {chunk_size: 1MiB}\n"
                               "plans:\n  standard:\n    max_users: unlimited\n",
                               env, &cfg, &e),
                     0);
    char *a = dump_str(cfg, DS_CONFIG_DUMP_SECRETS);
    ds_config_t *again = NULL;
    assert_int_equal(ds_config_load_buffer(a, strlen(a), "dump", NULL, &again, &e), 0);
    char *b = dump_str(again, DS_CONFIG_DUMP_SECRETS);
    assert_string_equal(a, b);
    assert_string_equal(again->database.dsn, "host=/run/pg user=app password=s\"e\\cret");
    assert_int_equal(again->blob.chunk_size, 1u << 20);
    assert_int_equal(again->plans[DS_PLAN_STANDARD].max_users, DS_PLAN_UNLIMITED);
    assert_int_equal(again->log.level, DS_LOG_DEBUG);
    /* Without DS_CONFIG_DUMP_SECRETS the DSNs are not shown. */
    char *hidden = dump_str(cfg, 0);
    assert_null(strstr(hidden, "secret"));
    assert_non_null(strstr(hidden, "# dsn: set, not shown"));
    assert_non_null(strstr(hidden, "max_users: unlimited"));
    free(a);
    free(b);
    free(hidden);
    ds_config_free(&cfg);
    ds_config_free(&again);
}

/* The key table is consistent: every range fits its member, `unlimited` only on 64-bit
 * members whose range stays under the sentinel, and every id's path finds that id again. */
static void check_field(const ds__field_t *f)
{
    if (f->type != DS__K_UINT && f->type != DS__K_BYTES) {
        return;
    }
    uint64_t type_max = f->size == 2 ? UINT16_MAX : f->size == 4 ? UINT32_MAX : UINT64_MAX;
    assert_true(f->size == 2 || f->size == 4 || f->size == 8);
    assert_true(f->min <= f->max);
    assert_true(f->max <= type_max);
    if (f->flags & DS__F_UNLIMITED) {
        assert_int_equal(f->size, 8);
        assert_true(f->max < DS_PLAN_UNLIMITED);
    }
}

static void test_key_table(void **state)
{
    (void)state;
    for (int i = 0; i < DS__NCFG; i++) {
        check_field(&ds__cfg_fields[i]);
    }
    for (int i = 0; i < DS__NPLAN_FIELDS; i++) {
        check_field(&ds__plan_fields[i]);
    }
    for (int id = 0; id < DS__NKEYS; id++) {
        char path[DS__PATH_MAX];
        ds__key_t key;
        (void)ds__key_path(id, path, sizeof(path));
        assert_int_equal(ds__key_lookup(path, strlen(path), &key), 0);
        assert_int_equal(key.id, id);
    }
    /* The http ranges stop at the gateway's ceilings. */
    static const struct {
        const char *path;
        uint64_t max;
    } ceilings[] = {
        {"http.limits.max_header_bytes", DS_HTTP_HEADER_BYTES_MAX},
        {"http.limits.max_headers", DS_HTTP_HEADERS_MAX},
        {"http.limits.max_url", DS_HTTP_URL_MAX},
        {"http.limits.max_body", DS_HTTP_STREAM_BODY_MAX},
        {"http.limits.stream_threshold", DS_HTTP_BODY_MAX},
        {"http.cors_origins", DS_HTTP_CORS_ORIGINS_MAX},
        {"http.trusted_proxies", DS_HTTP_TRUSTED_PROXIES_MAX},
    };
    ds__key_t key;
    for (size_t i = 0; i < sizeof(ceilings) / sizeof(ceilings[0]); i++) {
        assert_int_equal(ds__key_lookup(ceilings[i].path, strlen(ceilings[i].path), &key), 0);
        assert_int_equal(key.field->max, ceilings[i].max);
    }
    assert_int_equal(DS_CONFIG_ORIGIN_MAX, DS_HTTP_ORIGIN_MAX);
    assert_int_equal(ds__key_lookup("http.limits", 11, &key), 0);
    assert_int_equal(key.type, DS__K_SECTION);
    assert_int_equal(ds__key_lookup("plans.standard.", 15, &key), -ENOENT);
    assert_int_equal(ds__key_lookup("plans.", 6, &key), -ENOENT);
    assert_int_equal(ds__key_lookup("plans", 5, &key), 0);
    assert_int_equal(key.type, DS__K_SECTION);
}

/* ---- files over the defaults -------------------------------------------------------------- */

static void test_partial_file(void **state)
{
    (void)state;
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    assert_int_equal(load_text("region: eu\n", NULL, &cfg, &e), 0);
    assert_string_equal(cfg->region, "eu");
    assert_int_equal(cfg->database.pool_size, 8);
    assert_int_equal(cfg->plans[DS_PLAN_ENTERPRISE].scheduler_weight, 10);
    ds_config_free(&cfg);

    assert_int_equal(load_text("# only some keys\n"
                               "database:\n"
                               "  pool_size: 16\n"
                               "plans:\n"
                               "  enterprise:\n"
                               "    max_users: 5_000\n"
                               "    bytes_in_flight: 1 GiB\n",
                               NULL, &cfg, &e),
                     0);
    assert_int_equal(cfg->database.pool_size, 16);
    assert_int_equal(cfg->database.connect_timeout_ms, 5000);
    assert_int_equal(cfg->plans[DS_PLAN_ENTERPRISE].max_users, 5000);
    assert_int_equal(cfg->plans[DS_PLAN_ENTERPRISE].bytes_in_flight, 1u << 30);
    assert_int_equal(cfg->plans[DS_PLAN_ENTERPRISE].max_documents, DS_PLAN_UNLIMITED);
    assert_int_equal(cfg->plans[DS_PLAN_STANDARD].max_users, 100);
    assert_string_equal(cfg->region, "local");
    ds_config_free(&cfg);

    /* Empty files, a bare document marker, empty sections and flow style all work. */
    static const char *const fine[] = {
        "",
        "# nothing\n",
        "---\n",
        "---\n...\n",
        "~\n",
        "database:\n",
        "plans: {standard: {}}\n",
        "{region: x, node: {id: 7}}\n",
        "region: 'quoted'\n",
        "data_dir:\n",
    };
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        if (load_text(fine[i], NULL, &cfg, &e) != 0) {
            char buf[800];
            print_error("'%s': %s\n", fine[i], ds_config_error_str(&e, buf, sizeof(buf)));
            fail();
        }
        ds_config_free(&cfg);
    }
}

static void test_load_buffer(void **state)
{
    (void)state;
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    const char text[] = "region: ap\nnode: {id: 3}"; /* no final newline, no NUL needed */
    assert_int_equal(ds_config_load_buffer(text, sizeof(text) - 1, NULL, NULL, &cfg, &e), 0);
    assert_string_equal(cfg->region, "ap");
    assert_int_equal(cfg->node.id, 3);
    ds_config_free(&cfg);
    assert_int_equal(ds_config_load_buffer(NULL, 0, NULL, NULL, &cfg, &e), 0);
    assert_string_equal(cfg->region, "local");
    ds_config_free(&cfg);
    assert_int_equal(ds_config_load_buffer("region: [", 9, NULL, NULL, &cfg, &e), -EINVAL);
    assert_string_equal(e.file, "<buffer>");
    assert_int_equal(ds_config_load_buffer(text, DS_CONFIG_FILE_MAX + 1, "big", NULL, &cfg, &e),
                     -EFBIG);
    assert_string_equal(e.file, "big");
    assert_null(cfg);
}

/* ---- environment -------------------------------------------------------------------------- */

static void test_env_overrides(void **state)
{
    (void)state;
    char *const env[] = {
        "HOME=/root",
        "DOSSIER_CONFIG=/not/read/here.yaml", /* reserved: selects the file, for the caller */
        "DOSSIER_LOG_LEVEL=nonsense",         /* reserved: the runtime's own variable */
        "DOSSIER_BIN=/usr/bin/dossier",       /* reserved: the test scripts' */
        "DOSSIER_DATABASE__POOL_SIZE=16",
        "DOSSIER_plans__Standard__SCHEDULER_WEIGHT=2",
        "DOSSIER_REGION=eu",
        "DOSSIER_PLANS__ENTERPRISE__MAX_DOCUMENTS=2_000_000",
        "DOSSIER_PLANS__PROFESSIONAL__MAX_USERS=unlimited",
        "DOSSIER_LOG__LEVEL=warn",
        "DOSSIER_BLOB__KEYS_DIR=",
        "DOSSIER_NOEQUALS",
        NULL,
    };
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    /* The environment wins over the file. */
    assert_int_equal(
        load_text("database: {pool_size: 4}\nblob: {keys_dir: /k}\nregion: us\n", env, &cfg, &e),
        0);
    assert_int_equal(cfg->database.pool_size, 16);
    assert_int_equal(cfg->plans[DS_PLAN_STANDARD].scheduler_weight, 2);
    assert_int_equal(cfg->plans[DS_PLAN_PROFESSIONAL].scheduler_weight, 3);
    assert_string_equal(cfg->region, "eu");
    assert_int_equal(cfg->plans[DS_PLAN_ENTERPRISE].max_documents, 2000000);
    assert_int_equal(cfg->plans[DS_PLAN_PROFESSIONAL].max_users, DS_PLAN_UNLIMITED);
    assert_int_equal(cfg->log.level, DS_LOG_WARN);
    assert_string_equal(cfg->blob.keys_dir, "");
    ds_config_free(&cfg);
}

static void expect_env_error(const char *var, const char *key, const char *part)
{
    char *const env[] = {(char *)var, NULL};
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    int rc = ds_config_load(NULL, env, &cfg, &e);
    char buf[800];
    if (rc != -EINVAL || strcmp(e.file, "environment") != 0 || e.line != 0 ||
        strcmp(e.key, key) != 0 || strstr(e.message, part) == NULL) {
        print_error("for %s: rc %d: %s\n", var, rc, ds_config_error_str(&e, buf, sizeof(buf)));
        fail();
    }
    assert_null(cfg);
}

static void test_env_errors(void **state)
{
    (void)state;
    expect_env_error("DOSSIER_DATABASE_POOL_SIZE=16", "DOSSIER_DATABASE_POOL_SIZE",
                     "names no config key");
    expect_env_error("DOSSIER_NOPE=1", "DOSSIER_NOPE", "names no config key");
    expect_env_error("DOSSIER_=1", "DOSSIER_", "names no config key");
    expect_env_error("DOSSIER_DATABASE.POOL_SIZE=1", "DOSSIER_DATABASE.POOL_SIZE",
                     "names no config key");
    expect_env_error("DOSSIER_PLANS__GOLD__MAX_USERS=1", "DOSSIER_PLANS__GOLD__MAX_USERS",
                     "names no config key");
    expect_env_error("DOSSIER_DATABASE=x", "DOSSIER_DATABASE", "names the section database");
    expect_env_error("DOSSIER_DATABASE__POOL_SIZE=many", "DOSSIER_DATABASE__POOL_SIZE",
                     "expected an integer, got \"many\"");
    expect_env_error("DOSSIER_DATABASE__POOL_SIZE=", "DOSSIER_DATABASE__POOL_SIZE",
                     "expected an integer, got no value");
    expect_env_error("DOSSIER_DATABASE__POOL_SIZE=0", "DOSSIER_DATABASE__POOL_SIZE",
                     "must be between 1 and 1024");
    expect_env_error("DOSSIER_DATABASE__POOL_SIZE=-1", "DOSSIER_DATABASE__POOL_SIZE",
                     "expected an integer");
    expect_env_error("DOSSIER_PLANS__STANDARD__SCHEDULER_WEIGHT=unlimited",
                     "DOSSIER_PLANS__STANDARD__SCHEDULER_WEIGHT", "expected an integer, got");
    expect_env_error("DOSSIER_REGION=EU", "DOSSIER_REGION", "must be 1 to 32 characters");
    expect_env_error("DOSSIER_LOG__LEVEL=loud", "DOSSIER_LOG__LEVEL",
                     "expected debug, info, warn, error or off");

    /* The same key twice, in two spellings. */
    char *const twice[] = {"DOSSIER_REGION=eu", "DOSSIER_region=us", NULL};
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    assert_int_equal(ds_config_load(NULL, twice, &cfg, &e), -EINVAL);
    assert_string_equal(e.key, "DOSSIER_region");
    assert_non_null(strstr(e.message, "DOSSIER_REGION sets too"));
    char buf[400];
    assert_string_equal(ds_config_error_str(&e, buf, sizeof(buf)),
                        "environment: DOSSIER_region: sets region, which DOSSIER_REGION sets too");
}

/* ---- bad files ---------------------------------------------------------------------------- */

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_error("region: eu\n"
                 "database:\n"
                 "  pool_size: 8\n"
                 "  pool_sise: 9\n",
                 4, "database.pool_sise", "unknown key");
    expect_error("\n\nregoin: eu\n", 3, "regoin", "unknown key");
    expect_error("plans:\n  gold:\n    max_users: 1\n", 2, "plans.gold", "unknown key");
    expect_error("plans:\n  standard:\n    max_user: 1\n", 3, "plans.standard.max_user",
                 "unknown key");
    /* A dotted key is not a shortcut for nesting. */
    expect_error("database.pool_size: 4\n", 1, "database.pool_size", "unknown key");
    expect_error("Region: eu\n", 1, "Region", "unknown key");
    expect_error("\"\": 1\n", 1, "", "unknown key");
    expect_error("\"reg\\0ion\": 1\n", 1, "reg", "unknown key");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_error("database:\n  connect_timeout_ms: 10\n  pool_size: sixteen\n", 3,
                 "database.pool_size", "expected an integer, got \"sixteen\"");
    expect_error("database:\n  pool_size: \"16\"\n", 2, "database.pool_size",
                 "expected an integer, got a quoted string");
    expect_error("database:\n  pool_size:\n", 2, "database.pool_size",
                 "expected an integer, got no value");
    expect_error("database:\n  pool_size: 1.5\n", 2, "database.pool_size", "expected an integer");
    expect_error("database:\n  pool_size: 0x10\n", 2, "database.pool_size", "expected an integer");
    expect_error("database:\n  pool_size: 1__0\n", 2, "database.pool_size", "expected an integer");
    expect_error("database:\n  pool_size: 2000\n", 2, "database.pool_size",
                 "must be between 1 and 1024");
    expect_error("database:\n  pool_size: 99999999999999999999999\n", 2, "database.pool_size",
                 "must be between 1 and 1024");
    expect_error("database:\n  pool_size:\n    value: 3\n", 3, "database.pool_size",
                 "expected an integer, got a mapping");
    expect_error("database:\n  pool_size: [1, 2]\n", 2, "database.pool_size",
                 "expected an integer, got a sequence");
    expect_error("database: 5\n", 1, "database", "expected a mapping of keys");
    expect_error("- region\n", 1, "", "expected a mapping of keys, got a sequence");
    expect_error("just text\n", 1, "", "expected a mapping of keys at the top level");
    expect_error("node: {id: 0}\n", 1, "node.id", "must be between 1 and 65535");
    expect_error("node: {id: 65536}\n", 1, "node.id", "must be between 1 and 65535");
    expect_error("blob:\n  chunk_size: 65537\n", 2, "blob.chunk_size", "must be a power of two");
    expect_error("blob:\n  chunk_size: 8MiB\n", 2, "blob.chunk_size",
                 "must be between 4096 and 4194304");
    expect_error("blob:\n  chunk_size: 64KB\n", 2, "blob.chunk_size",
                 "expected a size in bytes (65536 or 64KiB), got \"64KB\"");
    expect_error("blob: {dir: relative/path}\n", 1, "blob.dir", "must be an absolute path");
    expect_error("data_dir: \"a\\tb\"\n", 1, "data_dir", "must not contain control characters");
    expect_error("region: \"eu\\x80\"\n", 1, "region", "control characters"); /* U+0080 */
    expect_error("region: \"eu\\u2028\"\n", 1, "region", "control characters");
    expect_error("data_dir: \"/x\\x85y\"\n", 1, "data_dir", "control characters");
    expect_error("region: -eu\n", 1, "region", "must be 1 to 32");
    expect_error("region: abcdefghijabcdefghijabcdefghijabc\n", 1, "region", "must be 1 to 32");
    expect_error("log:\n  level: verbose\n", 2, "log.level", "expected debug, info, warn");
    expect_error("plans:\n  standard:\n    scheduler_weight: unlimited\n", 3,
                 "plans.standard.scheduler_weight", "expected an integer, got \"unlimited\"");
    expect_error("plans:\n  standard:\n    max_users: Unlimited\n", 3, "plans.standard.max_users",
                 "expected an integer or unlimited");
    expect_error("plans:\n  standard:\n    bytes_in_flight: 1KiB\n", 3,
                 "plans.standard.bytes_in_flight", "must be between 4096 and 1099511627776");
}

static void test_bad_yaml(void **state)
{
    (void)state;
    /* Syntax errors carry the parser's line. */
    expect_error("region: eu\ndatabase:\n  pool_size: 8\n bad: [\n", 4, "",
                 "did not find expected key");
    expect_error("region: eu\nnode:\n\tid: 2\n", 3, "node",
                 "found character that cannot start any token");
    expect_error("region: \"eu\n\n", 3, "region", "found unexpected end of stream");
    expect_error("region: eu\n\nnode: {id: 1\n", 4, "node", "did not find expected");
    /* Invalid UTF-8: a reader error, located by its byte offset. */
    expect_error("region: eu\nnode:\n  id: \xff\n", 3, "", "invalid leading UTF-8 octet");
    /* Structure YAML allows but a config does not. */
    expect_error("region: eu\nregion: us\n", 2, "region", "duplicate key");
    expect_error("node: {id: 1}\nnode: {workers: 2}\n", 2, "node", "duplicate key");
    expect_error("region: &r eu\ndata_dir: *r\n", 2, "data_dir", "YAML aliases are not supported");
    expect_error("database:\n  pool_size: !!int 5\n", 2, "database.pool_size",
                 "YAML tags are not supported");
    expect_error("region: eu\n---\nregion: us\n", 2, "", "only one YAML document is allowed");
    expect_error("? {a: 1}\n: 2\n", 1, "", "a key must be a plain name");
}

static void test_checks_across_keys(void **state)
{
    (void)state;
    expect_error("database:\n  reconnect_max_ms: 1000\n  reconnect_min_ms: 2000\n", 3,
                 "database.reconnect_min_ms", "must not exceed database.reconnect_max_ms (1000)");
    expect_error("database:\n  reconnect_max_ms: 50\n", 2, "database.reconnect_max_ms",
                 "must not be less than database.reconnect_min_ms (100)");
    expect_error("database:\n  dsn: host=db user=app\n", 2, "database.dsn",
                 "needs database.owner_dsn too");

    char *const env[] = {"DOSSIER_DATABASE__OWNER_DSN=host=db user=owner", NULL};
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    assert_int_equal(ds_config_load(NULL, env, &cfg, &e), -EINVAL);
    assert_string_equal(e.file, "environment");
    assert_string_equal(e.key, "DOSSIER_DATABASE__OWNER_DSN");
    assert_string_equal(e.message, "needs database.dsn too");
    /* The environment completes what the file began. */
    assert_int_equal(load_text("database: {dsn: host=db user=app}\n", env, &cfg, &e), 0);
    assert_string_equal(cfg->database.dsn, "host=db user=app");
    assert_string_equal(cfg->database.owner_dsn, "host=db user=owner");
    ds_config_free(&cfg);
}

static void test_file_errors(void **state)
{
    (void)state;
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    char missing[PATH_MAX];
    (void)snprintf(missing, sizeof(missing), "%s/missing.yaml", tmpdir);
    assert_int_equal(ds_config_load(missing, NULL, &cfg, &e), -ENOENT);
    assert_string_equal(e.file, missing);
    assert_int_equal(e.line, 0);
    assert_non_null(strstr(e.message, "cannot read the file"));
    assert_int_equal(ds_config_load(tmpdir, NULL, &cfg, &e), -EISDIR);
    assert_int_equal(ds_config_check_file(missing, NULL, &e), -ENOENT);

    /* Over DS_CONFIG_FILE_MAX: refused before parsing. */
    char *big = malloc(DS_CONFIG_FILE_MAX + 2);
    assert_non_null(big);
    memset(big, '#', DS_CONFIG_FILE_MAX + 1);
    big[DS_CONFIG_FILE_MAX + 1] = '\0';
    assert_int_equal(load_text(big, NULL, &cfg, &e), -EFBIG);
    /* Exactly at the limit is fine (a long comment). */
    big[DS_CONFIG_FILE_MAX] = '\0';
    assert_int_equal(load_text(big, NULL, &cfg, &e), 0);
    ds_config_free(&cfg);
    free(big);

    /* check_file: 0 for a good file, the error for a bad one. */
    char *good = write_tmp("region: eu\n");
    char *bad = write_tmp("region: eu\nplans:\n  standard:\n    max_users: lots\n");
    assert_int_equal(ds_config_check_file(good, NULL, &e), 0);
    assert_int_equal(ds_config_check_file(bad, NULL, &e), -EINVAL);
    char buf[600];
    char want[600];
    (void)snprintf(want, sizeof(want),
                   "%s:4: plans.standard.max_users: expected an integer or unlimited, got \"lots\"",
                   bad);
    assert_string_equal(ds_config_error_str(&e, buf, sizeof(buf)), want);
    free(good);
    free(bad);
}

/* ---- the http section and lists ---------------------------------------------------------- */

/* The list holds exactly the NULL-terminated items, in order. */
static void expect_items(const ds_config_list_t *l, const char *const *items)
{
    size_t n = 0;
    while (items[n] != NULL) {
        n++;
    }
    assert_int_equal(l->count, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(l->items[i], items[i]);
    }
}
#define EXPECT_LIST(l, n, ...) expect_items((l), (const char *const[]){__VA_ARGS__, NULL})

static void test_http_keys(void **state)
{
    (void)state;
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    assert_int_equal(load_text("http:\n"
                               "  cors_origins:\n"
                               "    - https://app.example.com\n"
                               "    - \"http://localhost:3000\"\n"
                               "    - http://[::1]:8080\n"
                               "    - https://127.0.0.1:8443\n"
                               "  trusted_proxies: [127.0.0.1, \"::0001\", 2001:DB8:0:0::7]\n"
                               "  header_timeout_ms: 500\n"
                               "  max_connections_ip: 2\n"
                               "  max_output_bytes: 64KiB\n"
                               "  limits:\n"
                               "    max_url: 256\n"
                               "    max_headers: 8\n"
                               "    max_header_bytes: 2KiB\n"
                               "    max_body: 1KiB\n"
                               "    stream_threshold: 1KiB\n",
                               NULL, &cfg, &e),
                     0);
    EXPECT_LIST(&cfg->http.cors_origins, 4, "https://app.example.com", "http://localhost:3000",
                "http://[::1]:8080", "https://127.0.0.1:8443");
    /* Addresses are stored as the gateway prints a peer, so "::0001" matches "::1". */
    EXPECT_LIST(&cfg->http.trusted_proxies, 3, "127.0.0.1", "::1", "2001:db8::7");
    assert_int_equal(cfg->http.header_timeout_ms, 500);
    assert_int_equal(cfg->http.max_connections_ip, 2);
    assert_int_equal(cfg->http.max_connections, 1024);
    assert_int_equal(cfg->http.max_output_bytes, 65536);
    assert_int_equal(cfg->http.limits.max_url, 256);
    assert_int_equal(cfg->http.limits.max_headers, 8);
    assert_int_equal(cfg->http.limits.max_header_bytes, 2048);
    assert_int_equal(cfg->http.limits.max_body, 1024);
    /* dump -> load -> dump keeps the lists. */
    char *a = dump_str(cfg, 0);
    assert_non_null(strstr(a, "  trusted_proxies: [\"127.0.0.1\", \"::1\", \"2001:db8::7\"]\n"));
    assert_non_null(strstr(a, "  limits:\n    max_header_bytes: 2048\n"));
    ds_config_t *again = NULL;
    assert_int_equal(ds_config_load_buffer(a, strlen(a), "dump", NULL, &again, &e), 0);
    char *b = dump_str(again, 0);
    assert_string_equal(a, b);
    EXPECT_LIST(&again->http.cors_origins, 4, "https://app.example.com", "http://localhost:3000",
                "http://[::1]:8080", "https://127.0.0.1:8443");
    free(a);
    free(b);
    ds_config_free(&again);
    ds_config_free(&cfg);

    /* A key with no value, or [], is the empty list; so is an empty variable. */
    assert_int_equal(load_text("http:\n  cors_origins:\n  trusted_proxies: []\n", NULL, &cfg, &e),
                     0);
    expect_items(&cfg->http.cors_origins, (const char *const[]){NULL});
    expect_items(&cfg->http.trusted_proxies, (const char *const[]){NULL});
    ds_config_free(&cfg);
}

static void test_list_env(void **state)
{
    (void)state;
    char *const env[] = {"DOSSIER_HTTP__CORS_ORIGINS= https://b.example ,http://c.example:81",
                         "DOSSIER_http__trusted_proxies=", "DOSSIER_HTTP__LIMITS__MAX_URL=300",
                         NULL};
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    /* The environment's list replaces the file's, whole; an empty value empties it. */
    assert_int_equal(load_text("http:\n"
                               "  cors_origins: [https://a.example]\n"
                               "  trusted_proxies: [10.0.0.1]\n",
                               env, &cfg, &e),
                     0);
    EXPECT_LIST(&cfg->http.cors_origins, 2, "https://b.example", "http://c.example:81");
    expect_items(&cfg->http.trusted_proxies, (const char *const[]){NULL});
    assert_int_equal(cfg->http.limits.max_url, 300);
    ds_config_free(&cfg);

    char *const one[] = {"DOSSIER_HTTP__TRUSTED_PROXIES=192.0.2.1", NULL};
    assert_int_equal(ds_config_load(NULL, one, &cfg, &e), 0);
    EXPECT_LIST(&cfg->http.trusted_proxies, 1, "192.0.2.1");
    ds_config_free(&cfg);

    expect_env_error("DOSSIER_HTTP__CORS_ORIGINS=https://a.example,,https://b.example",
                     "DOSSIER_HTTP__CORS_ORIGINS", "has an empty entry");
    expect_env_error("DOSSIER_HTTP__CORS_ORIGINS=https://a.example,", "DOSSIER_HTTP__CORS_ORIGINS",
                     "has an empty entry");
    expect_env_error("DOSSIER_HTTP__CORS_ORIGINS=*", "DOSSIER_HTTP__CORS_ORIGINS",
                     "wildcards are not supported");
    expect_env_error("DOSSIER_HTTP__TRUSTED_PROXIES=192.0.2.1, proxy.local",
                     "DOSSIER_HTTP__TRUSTED_PROXIES",
                     "expected an IP address (192.0.2.1, 2001:db8::1), got \"proxy.local\"");
    expect_env_error("DOSSIER_HTTP__TRUSTED_PROXIES=::1,0:0::1", "DOSSIER_HTTP__TRUSTED_PROXIES",
                     "lists \"::1\" twice");
    expect_env_error("DOSSIER_HTTP__LIMITS=1", "DOSSIER_HTTP__LIMITS",
                     "names the section http.limits");
    expect_env_error("DOSSIER_HTTP__LIMITS__MAX_BODY=2MiB", "DOSSIER_HTTP__LIMITS__MAX_BODY",
                     "must not exceed http.limits.stream_threshold (1048576)");
}

/* n entries "- PREFIX<i>SUFFIX" under http.KEY, as a file's text (free() it). */
static char *many_entries(const char *key, int n, const char *prefix, const char *suffix)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    (void)fprintf(f, "http:\n  %s:\n", key);
    for (int i = 0; i < n; i++) {
        (void)fprintf(f, "    - %s%d%s\n", prefix, i, suffix);
    }
    assert_int_equal(fclose(f), 0);
    return text;
}

static void test_list_errors(void **state)
{
    (void)state;
    static const char *const co = "http.cors_origins";
    static const char *const tp = "http.trusted_proxies";
    expect_error("http:\n  cors_origins:\n    - https://a.example\n    - https://A.example\n", 4,
                 co, "must be lower case, as browsers send it (got \"https://A.example\")");
    expect_error("http:\n  cors_origins: [\"https://*.example.com\"]\n", 2, co,
                 "wildcards are not supported");
    expect_error("http:\n  cors_origins: [\"*\"]\n", 2, co, "wildcards are not supported");
    expect_error("http:\n  cors_origins: [https://a.example/]\n", 2, co,
                 "expected an origin, scheme://host[:port] without a path");
    static const char *const bad_origins[] = {
        "null",         "a.example",        "https://",        "https:/a.example",
        "https://a:0",  "https://a:65536",  "https://a:080",   "https://a:",
        "1http://a",    "https://[::1",     "https://[zz::1]", "https://a.example/x",
        "https://.a",   "https://a b",      "https://a?x",     "https://user@a",
        "https://a:8a", "https://a:123456", "ht_tp://a",       "https://a#x",
    };
    for (size_t i = 0; i < sizeof(bad_origins) / sizeof(bad_origins[0]); i++) {
        char text[200];
        (void)snprintf(text, sizeof(text), "http:\n  cors_origins:\n    - \"%s\"\n",
                       bad_origins[i]);
        expect_error(text, 3, co, "expected an origin");
    }
    expect_error("http:\n  cors_origins: [\"https://a.example:443\"]\n", 2, co,
                 "must leave out the default port 443, as browsers do");
    expect_error("http:\n  cors_origins: [\"http://a.example:80\"]\n", 2, co,
                 "must leave out the default port 80");
    expect_error("http:\n  cors_origins:\n    - https://a.example\n    - https://a.example\n", 4,
                 co, "lists \"https://a.example\" twice");
    expect_error("http:\n  cors_origins:\n    - \"\"\n", 3, co, "has an empty entry");
    expect_error("http:\n  cors_origins:\n    -\n", 3, co, "has an empty entry");
    expect_error("http:\n  cors_origins: https://a.example\n", 2, co,
                 "expected a list of origins, got a single value");
    expect_error("http:\n  cors_origins: \"\"\n", 2, co,
                 "expected a list of origins, got a single value");
    expect_error("http:\n  cors_origins: {a: 1}\n", 2, co,
                 "expected a list of origins, got a mapping");
    expect_error("http:\n  cors_origins:\n    - {a: 1}\n", 3, co,
                 "expected a string entry, got a mapping");
    expect_error("http:\n  cors_origins:\n    - [https://a.example]\n", 3, co,
                 "expected a string entry, got a sequence");
    expect_error("http:\n  cors_origins: [&x https://a.example, *x]\n", 2, co,
                 "YAML aliases are not supported");
    expect_error("http:\n  cors_origins: [!!str https://a.example]\n", 2, co,
                 "YAML tags are not supported");
    expect_error("http:\n  cors_origins: []\n  cors_origins: []\n", 3, co, "duplicate key");
    expect_error("http:\n  listen: [a]\n", 2, "http.listen", "expected a string, got a sequence");
    /* 256 bytes: one too many. */
    char text[400];
    (void)snprintf(text, sizeof(text), "http:\n  cors_origins: [https://%0244d.example]\n", 0);
    expect_error(text, 2, co, "has an origin longer than 255 bytes");

    /* 64 entries are fine, the 65th is refused at its line (3 + 64). */
    char *big = many_entries("cors_origins", 64, "https://h", ".example");
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    assert_int_equal(load_text(big, NULL, &cfg, &e), 0);
    assert_int_equal(cfg->http.cors_origins.count, 64);
    ds_config_free(&cfg);
    free(big);
    big = many_entries("cors_origins", 65, "https://h", ".example");
    expect_error(big, 67, co, "must have at most 64 entries");
    free(big);
    big = many_entries("trusted_proxies", 17, "10.0.0.", "");
    expect_error(big, 19, tp, "must have at most 16 entries");
    free(big);

    expect_error("http:\n  trusted_proxies: [10.0.0.0/8]\n", 2, tp,
                 "address ranges are not supported, list each proxy");
    expect_error("http:\n  trusted_proxies: [proxy.local]\n", 2, tp, "expected an IP address");
    expect_error("http:\n  trusted_proxies: [\"fe80::1%eth0\"]\n", 2, tp, "expected an IP address");
    expect_error("http:\n  trusted_proxies: [1.2.3.256]\n", 2, tp, "expected an IP address");
    expect_error("http:\n  trusted_proxies: [\"a\\tb\"]\n", 2, tp, "control characters");
    expect_error("http:\n  trusted_proxies:\n    - ::1\n    - 0::1\n", 4, tp,
                 "lists \"::1\" twice");
}

static void test_http_ranges(void **state)
{
    (void)state;
    expect_error("http:\n  limits:\n    max_url: 100\n", 3, "http.limits.max_url",
                 "must be between 256 and 8192");
    expect_error("http:\n  limits:\n    max_headers: 1025\n", 3, "http.limits.max_headers",
                 "must be between 8 and 1024");
    expect_error("http:\n  limits:\n    max_header_bytes: 64KiB\n", 3,
                 "http.limits.max_header_bytes", "must be between 1024 and 60000");
    expect_error("http:\n  limits:\n    max_body: 2GiB\n    stream_threshold: 16MiB\n", 3,
                 "http.limits.max_body", "must be between 1 and 2147483647");
    expect_error("http:\n  limits:\n    stream_threshold: 32MiB\n", 3,
                 "http.limits.stream_threshold", "must be between 1024 and 16777216");
    expect_error("http:\n  header_timeout_ms: 0\n", 2, "http.header_timeout_ms",
                 "must be between 1 and 3600000");
    expect_error("http:\n  max_connections: 65537\n", 2, "http.max_connections",
                 "must be between 1 and 65536");
    expect_error("http:\n  max_output_bytes: 1KiB\n", 2, "http.max_output_bytes",
                 "must be between 4096 and 1073741824");
    expect_error("http:\n  limits: 5\n", 2, "http.limits", "expected a mapping of keys");
    expect_error("http:\n  limits:\n    max_bodies: 5\n", 3, "http.limits.max_bodies",
                 "unknown key");
    /* Bodies are read whole: the threshold may not be under max_body; the key set last is
     * blamed. */
    expect_error("http:\n  limits:\n    stream_threshold: 512KiB\n", 3,
                 "http.limits.stream_threshold",
                 "must not be less than http.limits.max_body (1048576)");
    expect_error("http:\n  limits:\n    max_body: 4MiB\n", 3, "http.limits.max_body",
                 "must not exceed http.limits.stream_threshold (1048576)");
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    assert_int_equal(
        load_text("http: {limits: {max_body: 4MiB, stream_threshold: 4MiB}}\n", NULL, &cfg, &e), 0);
    assert_int_equal(cfg->http.limits.max_body, 4u << 20);
    ds_config_free(&cfg);
}

/* ---- plans -------------------------------------------------------------------------------- */

static void test_unlimited(void **state)
{
    (void)state;
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    assert_int_equal(load_text("plans:\n"
                               "  standard: {max_users: unlimited, storage_gb: unlimited,\n"
                               "             api_requests_per_minute: unlimited}\n"
                               "  enterprise: {max_documents: 10}\n",
                               NULL, &cfg, &e),
                     0);
    assert_int_equal(cfg->plans[DS_PLAN_STANDARD].max_users, DS_PLAN_UNLIMITED);
    assert_int_equal(cfg->plans[DS_PLAN_STANDARD].storage_gb, DS_PLAN_UNLIMITED);
    assert_int_equal(cfg->plans[DS_PLAN_STANDARD].api_requests_per_minute, DS_PLAN_UNLIMITED);
    assert_int_equal(cfg->plans[DS_PLAN_ENTERPRISE].max_documents, 10);
    ds_config_free(&cfg);
    expect_error("plans:\n  standard:\n    concurrent_uploads: unlimited\n", 3,
                 "plans.standard.concurrent_uploads", "expected an integer");
    /* The largest number is below the sentinel, so a number never reads as unlimited. */
    expect_error("plans:\n  standard:\n    max_documents: 18446744073709551615\n", 3,
                 "plans.standard.max_documents", "or unlimited");
}

static void test_plan_kinds(void **state)
{
    (void)state;
    ds_plan_kind_t k = DS_PLAN_COUNT;
    assert_int_equal(ds_plan_parse_kind("standard", &k), 0);
    assert_int_equal(k, DS_PLAN_STANDARD);
    assert_int_equal(ds_plan_parse_kind("Professional", &k), 0);
    assert_int_equal(k, DS_PLAN_PROFESSIONAL);
    assert_int_equal(ds_plan_parse_kind("ENTERPRISE", &k), 0);
    assert_int_equal(k, DS_PLAN_ENTERPRISE);
    assert_int_equal(ds_plan_parse_kind("gold", &k), -EINVAL);
    assert_int_equal(ds_plan_parse_kind(NULL, &k), -EINVAL);
    assert_int_equal(k, DS_PLAN_ENTERPRISE);
    assert_string_equal(ds_plan_kind_name(DS_PLAN_STANDARD), "standard");
    assert_string_equal(ds_plan_kind_name(DS_PLAN_PROFESSIONAL), "professional");
    assert_string_equal(ds_plan_kind_name(DS_PLAN_ENTERPRISE), "enterprise");
    assert_string_equal(ds_plan_kind_name(DS_PLAN_COUNT), "unknown");
}

static void test_plan_override(void **state)
{
    (void)state;
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    assert_int_equal(ds_config_load(NULL, NULL, &cfg, &e), 0);
    ds_plan_t plan = cfg->plans[DS_PLAN_STANDARD]; /* a tenant's copy */
    assert_int_equal(ds_plan_override(&plan, "max_users", "5000", &e), 0);
    assert_int_equal(plan.max_users, 5000);
    assert_int_equal(ds_plan_override(&plan, "max_documents", "unlimited", &e), 0);
    assert_int_equal(plan.max_documents, DS_PLAN_UNLIMITED);
    assert_int_equal(ds_plan_override(&plan, "bytes_in_flight", "32MiB", &e), 0);
    assert_int_equal(plan.bytes_in_flight, 32u << 20);
    assert_int_equal(ds_plan_override(&plan, "scheduler_weight", "5", NULL), 0);
    assert_int_equal(plan.scheduler_weight, 5);

    ds_plan_t before = plan;
    assert_int_equal(ds_plan_override(&plan, "max_userz", "1", &e), -ENOENT);
    assert_string_equal(e.key, "max_userz");
    assert_string_equal(e.file, "");
    assert_int_equal(ds_plan_override(&plan, "region", "eu", &e), -ENOENT);
    assert_int_equal(ds_plan_override(&plan, "max_users", "many", &e), -EINVAL);
    assert_string_equal(e.key, "max_users");
    assert_string_equal(e.message, "expected an integer or unlimited, got \"many\"");
    assert_int_equal(ds_plan_override(&plan, "scheduler_weight", "0", &e), -ERANGE);
    assert_string_equal(e.message, "must be between 1 and 65536");
    assert_int_equal(ds_plan_override(&plan, "scheduler_weight", "unlimited", &e), -EINVAL);
    assert_int_equal(ds_plan_override(&plan, "mailbox_limit", "", &e), -EINVAL);
    assert_int_equal(ds_plan_override(&plan, "mailbox_limit", NULL, &e), -EINVAL);
    assert_int_equal(ds_plan_override(&plan, NULL, "1", &e), -ENOENT);
    for (size_t i = 0; ds_plan_field_name(i) != NULL; i++) {
        uint64_t a = 0;
        uint64_t b = 1;
        assert_int_equal(ds_plan_get(&plan, ds_plan_field_name(i), &a), 0);
        assert_int_equal(ds_plan_get(&before, ds_plan_field_name(i), &b), 0);
        assert_int_equal(a, b);
    }
    /* The config's own plan is untouched. */
    assert_int_equal(cfg->plans[DS_PLAN_STANDARD].max_users, 100);

    /* Every field can be listed and read back. */
    size_t n = 0;
    for (const char *name; (name = ds_plan_field_name(n)) != NULL; n++) {
        uint64_t v = 0;
        assert_int_equal(ds_plan_get(&plan, name, &v), 0);
        assert_true(v >= 1);
    }
    assert_int_equal(n, 14);
    uint64_t v = 0;
    assert_int_equal(ds_plan_get(&plan, "max_users", &v), 0);
    assert_int_equal(v, 5000);
    assert_int_equal(ds_plan_get(&plan, "max_documents", &v), 0);
    assert_int_equal(v, DS_PLAN_UNLIMITED);
    assert_int_equal(ds_plan_get(&plan, "nope", &v), -ENOENT);
    ds_config_free(&cfg);
}

/* ---- directories -------------------------------------------------------------------------- */

static void expect_dir(const ds_config_t *cfg, unsigned euid, const char *xdg, const char *home,
                       const char *want)
{
    char *dir = NULL;
    assert_int_equal(ds_config_resolve_data_dir(cfg, euid, xdg, home, &dir), 0);
    assert_string_equal(dir, want);
    free(dir);
}

static void test_data_dir(void **state)
{
    (void)state;
    ds_config_t *cfg = NULL;
    ds_config_error_t e;
    assert_int_equal(ds_config_load(NULL, NULL, &cfg, &e), 0);
    expect_dir(cfg, 0, "/x/data", "/root", "/var/lib/dossier");
    expect_dir(cfg, 1000, "/home/u/.data", "/home/u", "/home/u/.data/dossier");
    expect_dir(cfg, 1000, NULL, "/home/u", "/home/u/.local/share/dossier");
    expect_dir(cfg, 1000, "", "/home/u", "/home/u/.local/share/dossier");
    expect_dir(cfg, 1000, "relative/data", "/home/u", "/home/u/.local/share/dossier");
    expect_dir(cfg, 1000, NULL, "/", "/.local/share/dossier");
    char *dir = NULL;
    assert_int_equal(ds_config_resolve_data_dir(cfg, 1000, NULL, NULL, &dir), -ENOENT);
    assert_int_equal(ds_config_resolve_data_dir(cfg, 1000, "rel", "also/rel", &dir), -ENOENT);
    assert_null(dir);

    ds_config_paths_t p;
    assert_int_equal(ds_config_resolve_paths(cfg, "/srv/d", &p), 0);
    assert_string_equal(p.blob_dir, "/srv/d/blobs");
    assert_string_equal(p.keys_dir, "/srv/d/keys");
    assert_string_equal(p.master_key_file, "/srv/d/keys/master.key");
    ds_config_paths_fini(&p);
    assert_null(p.blob_dir);
    assert_int_equal(ds_config_resolve_paths(cfg, "relative", &p), -EINVAL);
    assert_int_equal(ds_config_resolve_paths(cfg, NULL, &p), -EINVAL);
    ds_config_free(&cfg);

    /* Configured values win. */
    assert_int_equal(load_text("data_dir: /data\nblob: {keys_dir: /secure/keys}\n", NULL, &cfg, &e),
                     0);
    expect_dir(cfg, 0, NULL, NULL, "/data");
    expect_dir(cfg, 1000, NULL, NULL, "/data");
    assert_int_equal(ds_config_resolve_paths(cfg, "/data/", &p), 0);
    assert_string_equal(p.blob_dir, "/data/blobs");
    assert_string_equal(p.keys_dir, "/secure/keys");
    assert_string_equal(p.master_key_file, "/secure/keys/master.key");
    ds_config_paths_fini(&p);
    ds_config_free(&cfg);
    assert_int_equal(
        load_text("blob: {master_key_file: /etc/dossier/master.key}\n", NULL, &cfg, &e), 0);
    assert_int_equal(ds_config_resolve_paths(cfg, "/d", &p), 0);
    assert_string_equal(p.master_key_file, "/etc/dossier/master.key");
    ds_config_paths_fini(&p);
    ds_config_free(&cfg);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < file_seq; i++) {
        char path[PATH_MAX];
        (void)snprintf(path, sizeof(path), "%s/c%d.yaml", tmpdir, i);
        (void)unlink(path);
    }
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_issue),
        cmocka_unit_test(test_defaults_equal_source_file),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_key_table),
        cmocka_unit_test(test_partial_file),
        cmocka_unit_test(test_load_buffer),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_bad_yaml),
        cmocka_unit_test(test_checks_across_keys),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_http_keys),
        cmocka_unit_test(test_list_env),
        cmocka_unit_test(test_list_errors),
        cmocka_unit_test(test_http_ranges),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_plan_kinds),
        cmocka_unit_test(test_plan_override),
        cmocka_unit_test(test_data_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
