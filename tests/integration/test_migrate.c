/* Migrations (transports/pg/migrate.h) on a scratch database of the suite's server: concurrent
 * runners apply each file exactly once, a changed file, an unknown applied version and a
 * failing file are each refused or rolled back with a clear reason. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
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
#include <libpq-fe.h>

#include "runtime/err.h"
#include "tests/integration/pgtest.h"
#include "transports/pg/migrate.h"

static pgtest_env_t env;

typedef struct runner {
    const char *dsn;
    const ds_migration_set_t *set;
    size_t applied;
    int rc;
} runner_t;

static void *runner_main(void *arg)
{
    runner_t *r = arg;
    PGconn *c = PQconnectdb(r->dsn);
    r->rc = PQstatus(c) == CONNECTION_OK ? 0 : -EIO;
    char *why = NULL;
    if (r->rc == 0) {
        r->rc = ds_migrate_apply(c, r->set, &r->applied, &why);
    }
    free(why);
    PQfinish(c);
    return NULL;
}

static void test_concurrent_runners(void **state)
{
    (void)state;
    pgtest_db_t db;
    assert_int_equal(pgtest_db_create(&env, "mig", &db), 0);
    ds_migration_set_t *set = NULL;
    assert_int_equal(ds_migrate_set_embedded(&set), 0);
    assert_true(set->count >= 1);
    enum {
        N = 4
    };
    runner_t r[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        r[i] = (runner_t){.dsn = db.owner_dsn, .set = set};
        assert_int_equal(pthread_create(&t[i], NULL, runner_main, &r[i]), 0);
    }
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(r[i].rc, 0);
        total += r[i].applied;
    }
    /* Every file ran once, whichever runner took it. */
    assert_int_equal(total, set->count);
    PGconn *c = PQconnectdb(db.owner_dsn);
    assert_true(ds_migrate_current(c, set));
    char buf[32];
    assert_int_equal(pgtest_query1(db.owner_dsn, "SELECT count(*) FROM dossier.schema_migrations",
                                   buf, sizeof(buf)),
                     0);
    assert_int_equal(strtoul(buf, NULL, 10), set->count);
    PQfinish(c);
    ds_migrate_set_free(&set);
    pgtest_db_drop(&db);
}

/* Writes the embedded migrations into a new directory (plus extra, if not NULL) and returns
 * its path (free() it). */
static char *write_dir(const ds_migration_set_t *set, size_t take, const char *extra_name,
                       const char *extra_sql)
{
    char tmpl[] = "/tmp/ds-migrate-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    for (size_t i = 0; i < take; i++) {
        char path[512];
        (void)snprintf(path, sizeof(path), "%s/%s", tmpl, set->items[i].name);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(set->items[i].sql, 1, set->items[i].len, f), set->items[i].len);
        assert_int_equal(fclose(f), 0);
    }
    if (extra_name != NULL) {
        char path[512];
        (void)snprintf(path, sizeof(path), "%s/%s", tmpl, extra_name);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        assert_true(fputs(extra_sql, f) >= 0);
        assert_int_equal(fclose(f), 0);
    }
    return strdup(tmpl);
}

/* Removes a directory of plain files made by write_dir(). */
static void remove_dir(char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) { // NOLINT(concurrency-mt-unsafe): own DIR, one thread
        if (e->d_name[0] != '.') {
            char path[600];
            (void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            assert_int_equal(unlink(path), 0);
        }
    }
    (void)closedir(d);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

static int apply_dir(const char *dsn, const char *dir, char **why)
{
    ds_migration_set_t *set = NULL;
    int rc = ds_migrate_set_from_dir(dir, &set);
    if (rc == 0) {
        PGconn *c = PQconnectdb(dsn);
        rc = ds_migrate_apply(c, set, NULL, why);
        PQfinish(c);
    }
    ds_migrate_set_free(&set);
    return rc;
}

static void test_refusals(void **state)
{
    (void)state;
    pgtest_db_t db;
    assert_int_equal(pgtest_db_create(&env, "migbad", &db), 0);
    ds_migration_set_t *set = NULL;
    assert_int_equal(ds_migrate_set_embedded(&set), 0);
    char *why = NULL;

    /* A failing file: rolled back whole, the ones before it stay, the reason names it. */
    char *dir = write_dir(set, set->count, "9000_broken.sql",
                          "CREATE TABLE dossier.half_done (x int);\nSELECT no_such_function();\n");
    assert_int_equal(apply_dir(db.owner_dsn, dir, &why), -EIO);
    assert_non_null(why);
    assert_non_null(strstr(why != NULL ? why : "", "9000_broken.sql"));
    free(why);
    why = NULL;
    char buf[64];
    assert_int_equal(pgtest_query1(db.owner_dsn, "SELECT to_regclass('dossier.half_done') IS NULL",
                                   buf, sizeof(buf)),
                     0);
    assert_string_equal(buf, "t");
    assert_int_equal(pgtest_query1(db.owner_dsn, "SELECT count(*) FROM dossier.schema_migrations",
                                   buf, sizeof(buf)),
                     0);
    assert_int_equal(strtoul(buf, NULL, 10), set->count);
    remove_dir(dir);

    /* A file changed after it was applied. */
    dir = write_dir(set, set->count, NULL, NULL);
    char path[600];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, set->items[0].name);
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    assert_true(fputs("\n-- edited\n", f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(apply_dir(db.owner_dsn, dir, &why), DS_EPRECOND);
    assert_non_null(why);
    assert_non_null(strstr(why != NULL ? why : "", set->items[0].name));
    assert_non_null(strstr(why != NULL ? why : "", "changed"));
    free(why);
    why = NULL;
    remove_dir(dir);

    /* A version the binary does not know (a newer schema). */
    assert_int_equal(pgtest_exec(db.owner_dsn,
                                 "INSERT INTO dossier.schema_migrations (version, name, checksum)"
                                 " VALUES (99999, '99999_future.sql', 'x')"),
                     0);
    PGconn *c = PQconnectdb(db.owner_dsn);
    assert_int_equal(ds_migrate_apply(c, set, NULL, &why), DS_EPRECOND);
    assert_non_null(why);
    assert_non_null(strstr(why != NULL ? why : "", "99999_future.sql"));
    free(why);
    assert_false(ds_migrate_current(c, set));
    PQfinish(c);

    /* Malformed names are refused before anything runs. */
    dir = write_dir(set, 0, "1_short.sql", "SELECT 1;");
    ds_migration_set_t *bad = NULL;
    assert_int_equal(ds_migrate_set_from_dir(dir, &bad), -EINVAL);
    remove_dir(dir);
    ds_migrate_set_free(&set);
    pgtest_db_drop(&db);
}

int main(void)
{
    pgtest_env_or_skip(&env);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_runners),
        cmocka_unit_test(test_refusals),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pgtest_env_fini(&env);
    return rc;
}
