/* cli_db: `dossier db start|stop|status|conninfo|psql`, the operator's handle on the database.
 * Each works whether or not a `dossier serve` runs on the same data directory: it uses the
 * running private cluster, or starts it for the command and stops it after (the last user of a
 * cluster stops it; transports/pg/instance.h). `db start` leaves the cluster running and
 * `db stop` stops it whoever uses it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "actors/app.h"
#include "actors/cli.h"
#include "actors/db.h"
#include "runtime/mem.h"

static const char db_help[] =
    "Usage: dossier db <command> [options]\n"
    "\n"
    "Commands:\n"
    "  start              start the private PostgreSQL cluster and keep it running until\n"
    "                     `db stop` (otherwise the last command or node using it stops it)\n"
    "  stop               stop the private cluster (even while a node uses it)\n"
    "  status [--json]    whether the private cluster runs, and where\n"
    "  conninfo [--role owner|app|super]\n"
    "                     print a libpq connection string (with the role's password)\n"
    "  psql [-- PSQL-ARGS]\n"
    "                     run psql as the owner role; SQL on standard input works\n"
    "\n"
    "Options:\n" DS_APP_OPTS_HELP "  -h, --help         show this help\n"
    "\n"
    "With database.dsn in the config, start/stop/status have nothing to manage, and\n"
    "conninfo/psql use the configured server.\n"
    "Exit status: 0 ok, 1 failure, 2 usage error; psql's own status for `db psql`.\n";

typedef struct db_args {
    ds_app_opts_t app;
    const char *role;
    bool json;
    int psql_argc; /* arguments after "--" */
    char **psql_argv;
} db_args_t;

static int db_parse(const char *sub, int argc, char **argv, db_args_t *a)
{
    for (int i = 1; i < argc; i++) {
        int taken = ds_app_take_opt("db", argc, argv, &i, &a->app);
        if (taken != 0) {
            if (taken != 1) {
                return taken;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            (void)fputs(db_help, stdout);
            return -1;
        } else if (strcmp(argv[i], "--json") == 0 && strcmp(sub, "status") == 0) {
            a->json = true;
        } else if (ds_cli_is_opt(argv[i], "--role") && strcmp(sub, "conninfo") == 0) {
            if (ds_cli_opt_value("db", argc, argv, &i, "--role", &a->role) != 0) {
                return DS_CLI_USAGE;
            }
        } else if (strcmp(argv[i], "--") == 0 && strcmp(sub, "psql") == 0) {
            a->psql_argc = argc - i - 1;
            a->psql_argv = argv + i + 1;
            break;
        } else {
            return ds_cli_usage_error("db", "unknown argument", argv[i]);
        }
    }
    return DS_CLI_OK;
}

/* Runs psql with conninfo split: the password goes in PGPASSWORD (never on the command line,
 * where ps would show it). Returns psql's exit status, or DS_CLI_FAIL. */
static int db_run_psql(const ds_db_t *db, const char *conninfo, int argc, char **argv)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (opts == NULL) {
        PQfreemem(err);
        return DS_CLI_FAIL;
    }
    size_t cap = 64 + strlen(conninfo);
    char *safe = ds_xcalloc(1, cap);
    const char *password = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }
        if (strcmp(o->keyword, "password") == 0) {
            password = o->val;
            continue;
        }
        size_t used = strlen(safe);
        (void)snprintf(safe + used, cap - used, "%s%s='%s'", used > 0 ? " " : "", o->keyword,
                       o->val);
    }
    ds_pg_instance_t *inst = ds_db_instance((ds_db_t *)db);
    char *psql = inst != NULL ? ds_xasprintf("%s/psql", ds_pg_instance_bindir(inst))
                              : ds_xstrdup("/usr/bin/psql");
    char **args = ds_xcalloc((size_t)argc + 3, sizeof(char *));
    args[0] = psql;
    args[1] = safe;
    for (int i = 0; i < argc; i++) {
        args[i + 2] = argv[i];
    }
    (void)fflush(stdout);
    /* As system(3): while psql runs, Ctrl-C is for psql (it cancels the query) and must not
     * kill us, which would drop our share of the cluster under psql's feet. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    struct sigaction old_int;
    struct sigaction old_quit;
    sigemptyset(&ign.sa_mask);
    (void)sigaction(SIGINT, &ign, &old_int);
    (void)sigaction(SIGQUIT, &ign, &old_quit);
    pid_t pid = fork();
    if (pid == 0) {
        (void)sigaction(SIGINT, &old_int, NULL);
        (void)sigaction(SIGQUIT, &old_quit, NULL);
        // NOLINTNEXTLINE(concurrency-mt-unsafe): the forked child, one thread
        if (password != NULL && setenv("PGPASSWORD", password, 1) < 0) {
            _exit(127);
        }
        execv(psql, args);
        (void)fprintf(stderr, "dossier: cannot run %s\n", psql);
        _exit(127);
    }
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    (void)sigaction(SIGINT, &old_int, NULL);
    (void)sigaction(SIGQUIT, &old_quit, NULL);
    PQconninfoFree(opts);
    free(args);
    free(psql);
    free(safe);
    if (pid < 0) {
        return DS_CLI_FAIL;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : DS_CLI_FAIL;
}

static int db_role(const char *name, ds_pg_role_t *out)
{
    if (name == NULL || strcmp(name, "owner") == 0) {
        *out = DS_PG_ROLE_OWNER;
    } else if (strcmp(name, "app") == 0) {
        *out = DS_PG_ROLE_APP;
    } else if (strcmp(name, "super") == 0) {
        *out = DS_PG_ROLE_SUPER;
    } else {
        return -EINVAL;
    }
    return 0;
}

static int db_status(const ds_app_t *app, bool json)
{
    if (app->cfg->database.dsn[0] != '\0') {
        (void)printf(json ? "{\"managed\":false}\n"
                          : "database: external (database.dsn); nothing is managed\n");
        return DS_CLI_OK;
    }
    ds_pg_instance_t *inst = NULL;
    if (ds_pg_instance_open(app->data_dir, NULL, &inst) < 0) {
        (void)fprintf(stderr, "dossier: cannot open the data directory %s\n", app->data_dir);
        return DS_CLI_FAIL;
    }
    bool running = ds_pg_instance_running(inst);
    if (json) {
        (void)printf(
            "{\"managed\":true,\"running\":%s,\"data_dir\":\"%s\",\"socket_dir\":\"%s\"}\n",
            running ? "true" : "false", app->data_dir, ds_pg_instance_socket_dir(inst));
    } else {
        (void)printf("private cluster: %s\ndata directory: %s\nsocket directory: %s\n",
                     running ? "running" : "stopped", app->data_dir,
                     ds_pg_instance_socket_dir(inst));
    }
    ds_pg_instance_free(&inst);
    return DS_CLI_OK;
}

static int db_start_stop(const ds_app_t *app, bool start)
{
    if (app->cfg->database.dsn[0] != '\0') {
        (void)fprintf(stderr, "dossier: the database is external (database.dsn): nothing to %s\n",
                      start ? "start" : "stop");
        return DS_CLI_FAIL;
    }
    ds_pg_instance_t *inst = NULL;
    int rc = ds_pg_instance_open(app->data_dir, NULL, &inst);
    if (rc == 0) {
        rc = start ? ds_pg_instance_start(inst, NULL) : ds_pg_instance_stop(inst);
    }
    if (rc == 0 && start) {
        rc = ds_pg_instance_pin(inst); /* runs until `db stop` */
    }
    ds_pg_instance_free(&inst);
    if (rc < 0) {
        (void)fprintf(stderr, "dossier: could not %s the private cluster (see the log above)\n",
                      start ? "start" : "stop");
        return DS_CLI_FAIL;
    }
    return DS_CLI_OK;
}

/* conninfo and psql: they need the database open. */
static int db_with_db(const ds_app_t *app, const char *sub, const db_args_t *a)
{
    ds_pg_role_t role;
    if (db_role(a->role, &role) < 0) {
        return ds_cli_usage_error("db", "unknown role (owner, app or super)", a->role);
    }
    ds_db_t *db = NULL;
    if (ds_app_open_db(app, &db) < 0) {
        (void)fprintf(stderr, "dossier: cannot reach the database (see the log above)\n");
        return DS_CLI_FAIL;
    }
    char *conninfo = NULL;
    int status = DS_CLI_FAIL;
    if (ds_db_conninfo(db, role, &conninfo) < 0) {
        (void)fprintf(stderr, "dossier: no connection string for role %s\n",
                      a->role != NULL ? a->role : "owner");
    } else if (strcmp(sub, "conninfo") == 0) {
        (void)printf("%s\n", conninfo);
        status = DS_CLI_OK;
    } else {
        status = db_run_psql(db, conninfo, a->psql_argc, a->psql_argv);
    }
    if (conninfo != NULL) {
        OPENSSL_cleanse(conninfo, strlen(conninfo));
        free(conninfo);
    }
    ds_db_close(&db);
    return status;
}

int ds_cli_db(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        (void)fputs(db_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? DS_CLI_USAGE : DS_CLI_OK;
    }
    const char *sub = argv[1];
    static const char *const subs[] = {"start", "stop", "status", "conninfo", "psql"};
    bool known = false;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        known = known || strcmp(sub, subs[i]) == 0;
    }
    if (!known) {
        return ds_cli_usage_error("db", "unknown command", sub);
    }
    db_args_t a = {0};
    int rc = db_parse(sub, argc - 1, argv + 1, &a);
    if (rc != DS_CLI_OK) {
        return rc < 0 ? DS_CLI_OK : rc; /* -1: help shown */
    }
    ds_app_t app = {0};
    rc = ds_app_init(&a.app, &app);
    if (rc != DS_CLI_OK) {
        return rc;
    }
    if (strcmp(sub, "status") == 0) {
        rc = db_status(&app, a.json);
    } else if (strcmp(sub, "start") == 0 || strcmp(sub, "stop") == 0) {
        rc = db_start_stop(&app, strcmp(sub, "start") == 0);
    } else {
        rc = db_with_db(&app, sub, &a);
    }
    ds_app_fini(&app);
    return rc;
}
