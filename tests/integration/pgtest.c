/* pgtest: support for integration tests that need PostgreSQL. See tests/integration/pgtest.h. */
#include "tests/integration/pgtest.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/rand.h>

#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/mem.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "transports/pg/pg_msgs.h"
#include "transports/pg/pool.h"

extern char **environ;

/* ---- 1. the suite's server ---- */

static char *env_value(const char *line, const char *key)
{
    size_t k = strlen(key);
    if (strncmp(line, key, k) != 0 || line[k] != '=') {
        return NULL;
    }
    char *v = ds_xstrdup(line + k + 1);
    v[strcspn(v, "\r\n")] = '\0';
    return v;
}

int pgtest_env_load(pgtest_env_t *out)
{
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): read once on the test thread before any other */
    const char *path = getenv("DS_TEST_PG_ENV");
    if (path == NULL || path[0] == '\0') {
        return -ENOENT;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -ENOENT;
    }
    pgtest_env_t e = {0};
    struct {
        const char *key;
        char **dst;
    } keys[] = {
        {"DS_PG_HOST", &e.host},           {"DS_PG_PORT", &e.port},
        {"DS_PG_BINDIR", &e.bindir},       {"DS_PG_SUPER_DSN", &e.super_dsn},
        {"DS_PG_OWNER_DSN", &e.owner_dsn}, {"DS_PG_APP_DSN", &e.app_dsn},
        {"DS_PG_DATA_DIR", &e.data_dir},
    };
    char line[4096];
    while (fgets(line, sizeof(line), f) != NULL) {
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            char *v = *keys[i].dst == NULL ? env_value(line, keys[i].key) : NULL;
            if (v != NULL) {
                *keys[i].dst = v;
            }
        }
    }
    (void)fclose(f);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (*keys[i].dst == NULL) {
            (void)fprintf(stderr, "pgtest: %s lacks %s\n", path, keys[i].key);
            pgtest_env_fini(&e);
            return -EINVAL;
        }
    }
    *out = e;
    return 0;
}

void pgtest_env_fini(pgtest_env_t *env)
{
    char **fields[] = {&env->host,      &env->port,    &env->bindir,  &env->super_dsn,
                       &env->owner_dsn, &env->app_dsn, &env->data_dir};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        free(*fields[i]);
        *fields[i] = NULL;
    }
}

void pgtest_env_or_skip(pgtest_env_t *out)
{
    int rc = pgtest_env_load(out);
    if (rc < 0) {
        (void)fprintf(stderr,
                      "skip: DS_TEST_PG_ENV is unset or unreadable (%s): this test needs the "
                      "suite's PostgreSQL (see tests/integration/pgtest.h)\n",
                      ds_strerror(rc));
        exit(77); // NOLINT(concurrency-mt-unsafe): from main(), before any thread starts
    }
}

/* ---- 4. synchronous SQL ---- */

int pgtest_exec(const char *dsn, const char *sql)
{
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        (void)fprintf(stderr, "pgtest: connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return -EIO;
    }
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY ? 0 : -EIO;
    if (rc < 0) {
        (void)fprintf(stderr, "pgtest: %s: %s", sql, PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

int pgtest_query1(const char *dsn, const char *sql, char *buf, size_t cap)
{
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        (void)fprintf(stderr, "pgtest: connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return -EIO;
    }
    PGresult *r = PQexec(c, sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        (void)fprintf(stderr, "pgtest: %s: %s", sql, PQresultErrorMessage(r));
        rc = -EIO;
    } else if (PQntuples(r) < 1 || PQnfields(r) < 1) {
        rc = -ENOENT;
    } else {
        (void)snprintf(buf, cap, "%s", PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* ---- 2. scratch databases ---- */

static unsigned g_db_seq;

static void random_password(char *out, size_t cap)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        abort();
    }
    for (size_t i = 0; i < sizeof(raw) && 2 * i + 2 < cap; i++) {
        (void)snprintf(out + 2 * i, 3, "%02x", raw[i]);
    }
}

static char *role_dsn(const pgtest_env_t *env, const char *db, const char *user, const char *pw)
{
    char buf[1024];
    (void)snprintf(buf, sizeof(buf), "host=%s port=%s dbname=%s user=%s password=%s", env->host,
                   env->port, db, user, pw);
    return ds_xstrdup(buf);
}

int pgtest_db_create(const pgtest_env_t *env, const char *prefix, pgtest_db_t *out)
{
    pgtest_db_t d = {0};
    unsigned n = ++g_db_seq;
    (void)snprintf(d.name, sizeof(d.name), "%s_%ld_%u", prefix, (long)getpid(), n);
    (void)snprintf(d.owner, sizeof(d.owner), "%s_owner", d.name);
    (void)snprintf(d.app, sizeof(d.app), "%s_app", d.name);
    char opw[40], apw[40], sql[2048];
    random_password(opw, sizeof(opw));
    random_password(apw, sizeof(apw));
    (void)snprintf(sql, sizeof(sql),
                   "CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '%s';"
                   "CREATE ROLE %s LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
                   "PASSWORD '%s';",
                   d.owner, opw, d.app, apw);
    if (pgtest_exec(env->super_dsn, sql) < 0) {
        return -EIO;
    }
    (void)snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s", d.name, d.owner);
    if (pgtest_exec(env->super_dsn, sql) < 0) {
        return -EIO;
    }
    d.super_dsn = ds_xstrdup(env->super_dsn);
    d.owner_dsn = role_dsn(env, d.name, d.owner, opw);
    d.app_dsn = role_dsn(env, d.name, d.app, apw);
    (void)snprintf(sql, sizeof(sql),
                   "ALTER SCHEMA public OWNER TO %s; REVOKE ALL ON SCHEMA public FROM PUBLIC;"
                   "GRANT USAGE ON SCHEMA public TO %s;",
                   d.owner, d.app);
    /* The superuser's DSN with this database's name (a later keyword wins in a conninfo). */
    char sdsn[1024];
    (void)snprintf(sdsn, sizeof(sdsn), "%s dbname=%s", env->super_dsn, d.name);
    if (pgtest_exec(sdsn, sql) < 0) {
        pgtest_db_drop(&d);
        return -EIO;
    }
    *out = d;
    return 0;
}

void pgtest_db_drop(pgtest_db_t *db)
{
    if (db->super_dsn == NULL) {
        return;
    }
    char sql[1024];
    (void)snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    (void)pgtest_exec(db->super_dsn, sql);
    (void)snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s; DROP ROLE IF EXISTS %s", db->app,
                   db->owner);
    (void)pgtest_exec(db->super_dsn, sql);
    free(db->super_dsn);
    free(db->owner_dsn);
    free(db->app_dsn);
    *db = (pgtest_db_t){0};
}

/* ---- 3. private clusters ---- */

struct pgtest_cluster {
    char dir[64];
    char bindir[512];
    char dsn[256];
    bool running;
    bool made; /* dir exists: free deletes it */
};

/* Runs argv (as `postgres` when root), output appended to <dir>/cmd.log. 0 or -EIO. */
static int run(const pgtest_cluster_t *c, const char *const *argv)
{
    const char *full[16];
    size_t n = 0;
    if (geteuid() == 0) {
        full[n++] = "runuser";
        full[n++] = "-u";
        full[n++] = "postgres";
        full[n++] = "--";
    }
    for (size_t i = 0; argv[i] != NULL && n < 15; i++) {
        full[n++] = argv[i];
    }
    full[n] = NULL;
    char log[128];
    (void)snprintf(log, sizeof(log), "%s/cmd.log", c->dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, full[0], &fa, NULL, (char *const *)(uintptr_t)full, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        (void)fprintf(stderr, "pgtest: cannot run %s\n", full[0]);
        return -EIO;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -EIO;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        (void)fprintf(stderr, "pgtest: %s failed (see %s)\n", argv[0], log);
        return -EIO;
    }
    return 0;
}

static int cluster_files(pgtest_cluster_t *c)
{
    char path[128];
    /* 0711 so that `postgres` can reach its own subdirectories; they are 0700. */
    if (chmod(c->dir, 0711) < 0) {
        return -errno;
    }
    const char *subs[] = {"data", "run"};
    for (size_t i = 0; i < 2; i++) {
        (void)snprintf(path, sizeof(path), "%s/%s", c->dir, subs[i]);
        if (mkdir(path, 0700) < 0) {
            return -errno;
        }
    }
    (void)snprintf(path, sizeof(path), "%s/cmd.log", c->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        return -errno;
    }
    (void)close(fd);
    if (geteuid() == 0) {
        char cmd_dir[128];
        const char *items[] = {"data", "run", "cmd.log"};
        for (size_t i = 0; i < 3; i++) {
            (void)snprintf(cmd_dir, sizeof(cmd_dir), "%s/%s", c->dir, items[i]);
            /* `postgres` is created by Debian's postgresql-common. */
            char *const argv[] = {"chown", "postgres:postgres", cmd_dir, NULL};
            pid_t pid;
            if (posix_spawnp(&pid, "chown", NULL, NULL, argv, environ) != 0) {
                return -EIO;
            }
            int st;
            if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                return -EIO;
            }
        }
    }
    return 0;
}

static int cluster_config(const pgtest_cluster_t *c)
{
    char path[128];
    (void)snprintf(path, sizeof(path), "%s/data/postgresql.auto.conf", c->dir);
    FILE *f = fopen(path, "a");
    if (f == NULL) {
        return -errno;
    }
    (void)fprintf(f,
                  "listen_addresses = ''\nunix_socket_directories = '%s/run'\nport = 5432\n"
                  "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                  "max_connections = 100\nshared_buffers = 32MB\n",
                  c->dir);
    return fclose(f) == 0 ? 0 : -EIO;
}

int pgtest_cluster_new(const char *bindir, pgtest_cluster_t **out)
{
    pgtest_cluster_t *c = ds_xcalloc(1, sizeof(*c));
    (void)snprintf(c->dir, sizeof(c->dir), "/tmp/ds-pgtest-XXXXXX");
    (void)snprintf(c->bindir, sizeof(c->bindir), "%s", bindir);
    c->made = mkdtemp(c->dir) != NULL;
    if (!c->made || cluster_files(c) < 0) {
        (void)fprintf(stderr, "pgtest: cannot prepare %s\n", c->dir);
        pgtest_cluster_free(&c);
        return -EIO;
    }
    char initdb[600], data[128];
    (void)snprintf(initdb, sizeof(initdb), "%s/initdb", c->bindir);
    (void)snprintf(data, sizeof(data), "%s/data", c->dir);
    const char *argv[] = {
        initdb,      "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
        "--no-sync", NULL};
    if (run(c, argv) < 0 || cluster_config(c) < 0 || pgtest_cluster_start(c) < 0) {
        pgtest_cluster_free(&c);
        return -EIO;
    }
    (void)snprintf(c->dsn, sizeof(c->dsn), "host=%s/run port=5432 dbname=postgres user=postgres",
                   c->dir);
    *out = c;
    return 0;
}

const char *pgtest_cluster_dsn(const pgtest_cluster_t *c)
{
    return c->dsn;
}

const char *pgtest_cluster_dir(const pgtest_cluster_t *c)
{
    return c->dir;
}

int pgtest_cluster_stop(pgtest_cluster_t *c, const char *mode)
{
    char pgctl[600], data[128];
    (void)snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", c->bindir);
    (void)snprintf(data, sizeof(data), "%s/data", c->dir);
    const char *argv[] = {pgctl, "-D", data, "-m", mode, "-w", "stop", NULL};
    int rc = run(c, argv);
    if (rc == 0) {
        c->running = false;
    }
    return rc;
}

int pgtest_cluster_start(pgtest_cluster_t *c)
{
    char pgctl[600], data[128], log[128];
    (void)snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", c->bindir);
    (void)snprintf(data, sizeof(data), "%s/data", c->dir);
    (void)snprintf(log, sizeof(log), "%s/run/server.log", c->dir);
    const char *argv[] = {pgctl, "-D", data, "-l", log, "-w", "start", NULL};
    int rc = run(c, argv);
    if (rc == 0) {
        c->running = true;
    }
    return rc;
}

void pgtest_cluster_free(pgtest_cluster_t **cp)
{
    pgtest_cluster_t *c = cp != NULL ? *cp : NULL;
    if (c == NULL) {
        return;
    }
    if (c->running) {
        (void)pgtest_cluster_stop(c, "immediate");
    }
    if (c->made) {
        char *const argv[] = {"rm", "-rf", c->dir, NULL};
        pid_t pid;
        if (posix_spawnp(&pid, "rm", NULL, NULL, argv, environ) == 0) {
            int st;
            (void)waitpid(pid, &st, 0);
        }
    }
    free(c);
    *cp = NULL;
}

/* ---- 5. asking from the test thread ---- */

struct pgtest_calls {
    ds_rt_t *rt;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pgtest_call_t *slots;
    size_t n;
    size_t done;
    uint64_t order;
};

typedef struct asker {
    pgtest_calls_t *b;
    size_t slot;
    ds_actor_id_t to;
    ds_msg_t *msg; /* the ask, until sent */
    int64_t timeout_ns;
} asker_t;

static void record(pgtest_calls_t *b, size_t slot, int ask_rc, ds_msg_t **msgp)
{
    pthread_mutex_lock(&b->mu);
    pgtest_call_t *c = &b->slots[slot];
    c->replies++;
    c->ask_rc = ask_rc;
    if (c->replies == 1) {
        c->order = ++b->order;
        b->done++;
        if (msgp != NULL) {
            c->reply = *msgp;
            *msgp = NULL;
            c->decode_rc = ds_pg_reply_decode(c->reply, &c->pg);
        }
    }
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static int asker_init(ds_ctx_t *ctx, void *arg)
{
    ds_ctx_set_state(ctx, arg);
    return 0;
}

static int asker_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    asker_t *a = ds_ctx_state(ctx);
    if ((*msgp)->type == DS_MT_PG_GO && a->msg != NULL) {
        uint64_t corr;
        int rc = ds_ask(ctx, a->to, &a->msg, a->timeout_ns, &corr);
        if (rc < 0) {
            ds_msg_free(&a->msg);
            record(a->b, a->slot, rc, NULL);
            ds_ctx_stop(ctx, DS_EXIT_NORMAL);
        }
        return 0;
    }
    if (((*msgp)->flags & DS_MSG_F_REPLY) != 0 || (*msgp)->type == DS_MT_TIMEOUT) {
        record(a->b, a->slot, 0, msgp);
        ds_ctx_stop(ctx, DS_EXIT_NORMAL);
    }
    return 0;
}

static void asker_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    asker_t *a = ds_ctx_state(ctx);
    ds_msg_free(&a->msg);
    free(a);
}

static const ds_behaviour_t asker_behaviour = {
    .name = "pgtest.asker",
    .init = asker_init,
    .receive = asker_receive,
    .terminate = asker_terminate,
};

pgtest_calls_t *pgtest_calls_new(ds_rt_t *rt, size_t n)
{
    pgtest_calls_t *b = ds_xcalloc(1, sizeof(*b));
    b->rt = rt;
    b->n = n;
    b->slots = ds_xcalloc(n > 0 ? n : 1, sizeof(*b->slots));
    pthread_condattr_t ca;
    (void)pthread_condattr_init(&ca);
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    (void)pthread_cond_init(&b->cv, &ca);
    (void)pthread_condattr_destroy(&ca);
    (void)pthread_mutex_init(&b->mu, NULL);
    return b;
}

int pgtest_calls_ask(pgtest_calls_t *b, size_t i, ds_actor_id_t to, ds_msg_t **msgp,
                     int64_t timeout_ns, uint32_t group)
{
    asker_t *a = ds_xcalloc(1, sizeof(*a));
    *a = (asker_t){.b = b, .slot = i, .to = to, .msg = *msgp, .timeout_ns = timeout_ns};
    ds_spawn_opts_t opts = {.group = group};
    ds_actor_id_t id;
    int rc = ds_spawn(b->rt, &asker_behaviour, a, &opts, &id);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *msgp = NULL;
    ds_msg_t *go;
    rc = ds_pg_go_new(NULL, &go);
    if (rc == 0) {
        rc = ds_send_from(b->rt, id, &go);
    }
    if (rc < 0) {
        ds_msg_free(&go);
        record(b, i, rc, NULL);
    }
    return 0;
}

size_t pgtest_calls_wait(pgtest_calls_t *b, size_t want, int64_t hang_ns)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += (time_t)(hang_ns / 1000000000);
    pthread_mutex_lock(&b->mu);
    while (b->done < want) {
        if (pthread_cond_timedwait(&b->cv, &b->mu, &dl) == ETIMEDOUT) {
            break;
        }
    }
    size_t done = b->done;
    pthread_mutex_unlock(&b->mu);
    return done;
}

pgtest_call_t *pgtest_calls_get(pgtest_calls_t *b, size_t i)
{
    return &b->slots[i];
}

void pgtest_calls_free(pgtest_calls_t **bp)
{
    pgtest_calls_t *b = bp != NULL ? *bp : NULL;
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (b->slots[i].reply != NULL && b->slots[i].decode_rc == 0) {
            ds_pg_reply_fini(&b->slots[i].pg);
        }
        ds_msg_free(&b->slots[i].reply);
    }
    free(b->slots);
    (void)pthread_mutex_destroy(&b->mu);
    (void)pthread_cond_destroy(&b->cv);
    free(b);
    *bp = NULL;
}

int pgtest_ask1(ds_rt_t *rt, ds_actor_id_t to, ds_msg_t **msgp, int64_t timeout_ns,
                pgtest_result_t *out)
{
    pgtest_calls_t *b = pgtest_calls_new(rt, 1);
    int rc = pgtest_calls_ask(b, 0, to, msgp, timeout_ns, 0);
    if (rc < 0) {
        pgtest_calls_free(&b);
        return rc;
    }
    if (pgtest_calls_wait(b, 1, timeout_ns + INT64_C(30000000000)) < 1) {
        (void)fprintf(stderr, "pgtest: no reply (hang)\n");
        abort();
    }
    pgtest_call_t *c = pgtest_calls_get(b, 0);
    pgtest_result_t r = {0};
    rc = c->ask_rc != 0 ? c->ask_rc : c->decode_rc;
    if (rc == 0) {
        r.code = c->pg.code;
        memcpy(r.sqlstate, c->pg.sqlstate, sizeof(r.sqlstate));
        r.stmt = c->pg.stmt;
        r.nstmts = c->pg.nstmts;
        if (r.code == 0 && r.nstmts > 0) {
            const ds_pg_rows_t *rows = &c->pg.stmts[0];
            r.nrows = rows->nrows;
            const ds_pg_value_t *v = ds_pg_rows_at(rows, 0, 0);
            if (v != NULL && v->null) {
                (void)snprintf(r.value, sizeof(r.value), "<null>");
            } else if (v != NULL) {
                (void)snprintf(r.value, sizeof(r.value), "%.*s", (int)v->len, v->ptr);
            }
        }
        *out = r;
    }
    pgtest_calls_free(&b);
    return rc;
}
