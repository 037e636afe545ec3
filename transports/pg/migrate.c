/* migrate: versioned SQL migrations. See transports/pg/migrate.h. */
#include "transports/pg/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "runtime/embed.h"
#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/mem.h"

DS_EMBED_DECLARE(ds_migrations);

enum {
    MIGRATE_MAX_FILES = 10000,
    MIGRATE_MAX_BYTES = 16 << 20, /* one migration file */
};

/* The runner's own bookkeeping, created (idempotently) under the lock before any file runs. */
static const char migrate_bootstrap_sql[] = "CREATE SCHEMA IF NOT EXISTS dossier;"
                                            "CREATE TABLE IF NOT EXISTS dossier.schema_migrations ("
                                            " version int PRIMARY KEY,"
                                            " name text NOT NULL,"
                                            " checksum text NOT NULL,"
                                            " applied_at timestamptz NOT NULL DEFAULT now())";

/* --- sets ----------------------------------------------------------------------------------- */

/* "NNNN_name.sql" (name: [a-z0-9_]): the version, or -1. */
static int migrate_parse_name(const char *name)
{
    size_t digits = strspn(name, "0123456789");
    size_t len = strlen(name);
    if (digits < 4 || digits > 9 || name[digits] != '_' || len < digits + 6 ||
        strcmp(name + len - 4, ".sql") != 0 || len >= sizeof(((ds_migration_status_t *)0)->name)) {
        return -1;
    }
    /* Names are printed in JSON and logs: lower-case words only. */
    if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != len - 4) {
        return -1;
    }
    return (int)strtol(name, NULL, 10);
}

static void migrate_checksum(const char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        mdlen = 0;
    }
    static const char hex[] = "0123456789abcdef";
    size_t n = mdlen < 32 ? mdlen : 32;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
}

static int migrate_cmp(const void *a, const void *b)
{
    const ds_migration_t *x = a;
    const ds_migration_t *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Sorts and checks for repeated versions. */
static int migrate_finish_set(ds_migration_set_t *set)
{
    qsort(set->items, set->count, sizeof(set->items[0]), migrate_cmp);
    for (size_t i = 1; i < set->count; i++) {
        if (set->items[i].version == set->items[i - 1].version) {
            ds_log_error("two migrations share a version", DS_LOG_STR("a", set->items[i - 1].name),
                         DS_LOG_STR("b", set->items[i].name), DS_LOG_END);
            return -EINVAL;
        }
    }
    return 0;
}

static void migrate_add(ds_migration_set_t *set, int version, const char *name, char *sql,
                        size_t len)
{
    ds_migration_t *m = &set->items[set->count++];
    m->version = version;
    m->name = ds_xstrdup(name);
    m->sql = sql;
    m->len = len;
    migrate_checksum(sql, len, m->checksum);
}

int ds_migrate_set_embedded(ds_migration_set_t **out)
{
    ds_migration_set_t *set = ds_xcalloc(1, sizeof(*set));
    set->items = ds_xcalloc(ds_migrations_count + 1, sizeof(set->items[0]));
    int rc = 0;
    for (size_t i = 0; i < ds_migrations_count && rc == 0; i++) {
        const ds_embed_file_t *f = &ds_migrations[i];
        int version = migrate_parse_name(f->name);
        if (version < 0) {
            rc = -EINVAL;
            break;
        }
        char *sql = ds_xmalloc(f->size + 1);
        memcpy(sql, f->data, f->size);
        sql[f->size] = '\0';
        migrate_add(set, version, f->name, sql, f->size);
    }
    if (rc == 0) {
        rc = migrate_finish_set(set);
    }
    if (rc < 0) {
        ds_migrate_set_free(&set);
        return rc;
    }
    *out = set;
    return 0;
}

/* Reads a whole (small) file: 0, *data and *len; or -errno, or -EFBIG. */
static int migrate_read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rbe");
    if (f == NULL) {
        return -errno;
    }
    size_t cap = 4096;
    size_t n = 0;
    char *buf = ds_xmalloc(cap + 1);
    int rc = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= MIGRATE_MAX_BYTES) {
                rc = -EFBIG;
                break;
            }
            cap *= 2;
            buf = ds_xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            rc = ferror(f) ? -EIO : 0;
            break;
        }
    }
    (void)fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

int ds_migrate_set_from_dir(const char *dir, ds_migration_set_t **out)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -errno;
    }
    ds_migration_set_t *set = ds_xcalloc(1, sizeof(*set));
    size_t cap = 16;
    set->items = ds_xcalloc(cap, sizeof(set->items[0]));
    int rc = 0;
    const struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) { // NOLINT(concurrency-mt-unsafe): own DIR
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".sql") != 0) {
            continue;
        }
        int version = migrate_parse_name(e->d_name);
        if (version < 0 || set->count >= MIGRATE_MAX_FILES) {
            ds_log_error("bad migration file name", DS_LOG_STR("file", e->d_name), DS_LOG_END);
            rc = -EINVAL;
            break;
        }
        if (set->count == cap) {
            cap *= 2;
            set->items = ds_xrealloc(set->items, cap * sizeof(set->items[0]));
        }
        char *path = ds_xasprintf("%s/%s", dir, e->d_name);
        char *sql = NULL;
        size_t n = 0;
        rc = migrate_read_file(path, &sql, &n);
        free(path);
        if (rc == 0) {
            migrate_add(set, version, e->d_name, sql, n);
        }
    }
    (void)closedir(d);
    if (rc == 0) {
        rc = migrate_finish_set(set);
    }
    if (rc < 0) {
        ds_migrate_set_free(&set);
        return rc;
    }
    *out = set;
    return 0;
}

void ds_migrate_set_free(ds_migration_set_t **setp)
{
    ds_migration_set_t *set = *setp;
    if (set == NULL) {
        return;
    }
    for (size_t i = 0; i < set->count; i++) {
        free(set->items[i].name);
        free(set->items[i].sql);
    }
    free(set->items);
    free(set);
    *setp = NULL;
}

/* --- the database side ---------------------------------------------------------------------- */

static bool migrate_ok(PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* Runs sql; on failure sets *errmsg (if errmsg and not yet set) and returns -EIO. */
static int migrate_exec(PGconn *conn, const char *sql, const char *what, char **errmsg)
{
    PGresult *res = PQexec(conn, sql);
    int rc = 0;
    if (!migrate_ok(res)) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        const char *line = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
        if (errmsg != NULL && *errmsg == NULL) {
            *errmsg =
                ds_xasprintf("%s: %s (SQLSTATE %s%s%s)", what,
                             msg != NULL ? msg : PQerrorMessage(conn), state != NULL ? state : "?",
                             line != NULL ? ", at character " : "", line != NULL ? line : "");
        }
        rc = -EIO;
    }
    PQclear(res);
    return rc;
}

/* The applied rows, or NULL (with *missing true when the table does not exist yet). */
static PGresult *migrate_applied(PGconn *conn, bool *missing)
{
    *missing = false;
    PGresult *res = PQexec(conn, "SELECT to_regclass('dossier.schema_migrations') IS NULL");
    if (!migrate_ok(res) || PQntuples(res) != 1) {
        PQclear(res);
        return NULL;
    }
    *missing = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (*missing) {
        return NULL;
    }
    res = PQexec(conn, "SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', "
                       "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM dossier.schema_migrations "
                       "ORDER BY version");
    if (!migrate_ok(res)) {
        PQclear(res);
        return NULL;
    }
    return res;
}

static const ds_migration_t *migrate_find(const ds_migration_set_t *set, int version)
{
    for (size_t i = 0; i < set->count; i++) {
        if (set->items[i].version == version) {
            return &set->items[i];
        }
    }
    return NULL;
}

int ds_migrate_status(PGconn *conn, const ds_migration_set_t *set, ds_migration_status_t **out,
                      size_t *n)
{
    bool missing = false;
    PGresult *res = migrate_applied(conn, &missing);
    if (res == NULL && !missing) {
        return -EIO;
    }
    size_t rows = res != NULL ? (size_t)PQntuples(res) : 0;
    ds_migration_status_t *st = ds_xcalloc(set->count + rows + 1, sizeof(*st));
    size_t k = 0;
    for (size_t i = 0; i < set->count; i++) {
        st[k].version = set->items[i].version;
        (void)snprintf(st[k].name, sizeof(st[k].name), "%s", set->items[i].name);
        st[k].state = DS_MIGRATION_PENDING;
        k++;
    }
    for (size_t r = 0; r < rows; r++) {
        int version = (int)strtol(PQgetvalue(res, (int)r, 0), NULL, 10);
        const ds_migration_t *m = migrate_find(set, version);
        ds_migration_status_t *s = NULL;
        for (size_t i = 0; i < k && s == NULL; i++) {
            s = st[i].version == version ? &st[i] : NULL;
        }
        if (s == NULL) {
            s = &st[k++];
            s->version = version;
            (void)snprintf(s->name, sizeof(s->name), "%s", PQgetvalue(res, (int)r, 1));
        }
        s->state = m == NULL                                              ? DS_MIGRATION_UNKNOWN
                   : strcmp(m->checksum, PQgetvalue(res, (int)r, 2)) == 0 ? DS_MIGRATION_APPLIED
                                                                          : DS_MIGRATION_CHANGED;
        (void)snprintf(s->applied_at, sizeof(s->applied_at), "%s", PQgetvalue(res, (int)r, 3));
    }
    PQclear(res);
    /* Unknown versions were appended: keep the whole list in version order. */
    for (size_t i = 1; i < k; i++) {
        for (size_t j = i; j > 0 && st[j - 1].version > st[j].version; j--) {
            ds_migration_status_t t = st[j];
            st[j] = st[j - 1];
            st[j - 1] = t;
        }
    }
    *out = st;
    *n = k;
    return 0;
}

/* Inside the transaction, under the lock: refuses a changed or unknown migration and says
 * whether m itself is applied already. */
static int migrate_check(PGconn *conn, const ds_migration_set_t *set, const ds_migration_t *m,
                         bool *done, char **errmsg)
{
    ds_migration_status_t *st = NULL;
    size_t n = 0;
    int rc = ds_migrate_status(conn, set, &st, &n);
    if (rc < 0) {
        if (errmsg != NULL && *errmsg == NULL) {
            *errmsg =
                ds_xasprintf("could not read dossier.schema_migrations: %s", PQerrorMessage(conn));
        }
        return rc;
    }
    *done = false;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (st[i].state == DS_MIGRATION_CHANGED || st[i].state == DS_MIGRATION_UNKNOWN) {
            if (errmsg != NULL && *errmsg == NULL) {
                *errmsg = ds_xasprintf(
                    st[i].state == DS_MIGRATION_CHANGED
                        ? "migration %s was applied but its file has changed since "
                          "(checksum differs); refusing to migrate"
                        : "the database has migration %s, which this binary does not know (a "
                          "newer schema?); refusing to migrate",
                    st[i].name);
            }
            rc = DS_EPRECOND;
        }
        if (st[i].version == m->version && st[i].state == DS_MIGRATION_APPLIED) {
            *done = true;
        }
    }
    free(st);
    return rc;
}

/* One migration in its own transaction. *ran tells whether it was applied now. */
static int migrate_one(PGconn *conn, const ds_migration_set_t *set, const ds_migration_t *m,
                       bool *ran, char **errmsg)
{
    char lock[96];
    (void)snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d)", DS_MIGRATE_LOCK_KEY);
    *ran = false;
    /* READ COMMITTED whatever the role's default: each statement after the lock must see what
     * a runner that held the lock before us committed. */
    int rc = migrate_exec(conn, "BEGIN ISOLATION LEVEL READ COMMITTED", "begin", errmsg);
    if (rc == 0) {
        rc = migrate_exec(conn, lock, "advisory lock", errmsg);
    }
    if (rc == 0) {
        rc = migrate_exec(conn, migrate_bootstrap_sql, "schema_migrations", errmsg);
    }
    bool done = false;
    if (rc == 0) {
        rc = migrate_check(conn, set, m, &done, errmsg);
    }
    if (rc == 0 && !done) {
        rc = migrate_exec(conn, m->sql, m->name, errmsg);
        char version[16];
        (void)snprintf(version, sizeof(version), "%d", m->version);
        const char *params[] = {version, m->name, m->checksum};
        PGresult *res =
            rc == 0 ? PQexecParams(conn,
                                   "INSERT INTO dossier.schema_migrations (version, name, checksum)"
                                   " VALUES ($1, $2, $3)",
                                   3, NULL, params, NULL, NULL, 0)
                    : NULL;
        if (rc == 0 && !migrate_ok(res)) {
            rc = -EIO;
            if (errmsg != NULL && *errmsg == NULL) {
                *errmsg =
                    ds_xasprintf("%s: could not record it: %s", m->name, PQresultErrorMessage(res));
            }
        }
        PQclear(res);
    }
    if (rc == 0) {
        rc = migrate_exec(conn, "COMMIT", m->name, errmsg);
        *ran = rc == 0 && !done;
    } else {
        PGresult *res = PQexec(conn, "ROLLBACK");
        PQclear(res);
        *ran = false;
    }
    return rc;
}

int ds_migrate_apply(PGconn *conn, const ds_migration_set_t *set, size_t *applied, char **errmsg)
{
    size_t count = 0;
    int rc = 0;
    if (errmsg != NULL) {
        *errmsg = NULL;
    }
    for (size_t i = 0; i < set->count && rc == 0; i++) {
        bool ran = false;
        rc = migrate_one(conn, set, &set->items[i], &ran, errmsg);
        if (ran) {
            count++;
            ds_log_info("migration applied", DS_LOG_STR("file", set->items[i].name), DS_LOG_END);
        }
    }
    if (rc < 0) {
        ds_log_error("migration failed", DS_LOG_STR("reason", errmsg && *errmsg ? *errmsg : ""),
                     DS_LOG_END);
        return rc;
    }
    if (applied != NULL) {
        *applied = count;
    }
    return 0;
}

bool ds_migrate_current(PGconn *conn, const ds_migration_set_t *set)
{
    ds_migration_status_t *st = NULL;
    size_t n = 0;
    if (ds_migrate_status(conn, set, &st, &n) < 0) {
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        ok = ok && st[i].state == DS_MIGRATION_APPLIED;
    }
    free(st);
    return ok;
}
