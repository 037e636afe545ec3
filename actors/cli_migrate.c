/* cli_migrate: `dossier migrate [status]`: applies the schema migrations (transports/pg/migrate.h)
 * as the owner role, or lists their state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/app.h"
#include "actors/cli.h"
#include "actors/db.h"
#include "runtime/err.h"
#include "transports/pg/migrate.h"

static const char migrate_help[] =
    "Usage: dossier migrate [status] [options]\n"
    "\n"
    "Applies the pending schema migrations in order (each in its own transaction, under an\n"
    "advisory lock), or with `status` lists every migration and whether it is applied.\n"
    "A migration whose file changed after it was applied is refused.\n"
    "\n"
    "Options:\n" DS_APP_OPTS_HELP
    "  --dir DIR          read NNNN_name.sql files from DIR instead of the built-in ones\n"
    "  --json             machine-readable output\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 ok (status: everything applied), 1 failure or (status) pending, changed or\n"
    "unknown migrations, 2 usage error.\n";

static const char *const migrate_state_names[] = {
    [DS_MIGRATION_PENDING] = "pending",
    [DS_MIGRATION_APPLIED] = "applied",
    [DS_MIGRATION_CHANGED] = "changed",
    [DS_MIGRATION_UNKNOWN] = "unknown",
};

static int migrate_print_status(PGconn *conn, const ds_migration_set_t *set, bool json)
{
    ds_migration_status_t *st = NULL;
    size_t n = 0;
    if (ds_migrate_status(conn, set, &st, &n) < 0) {
        (void)fprintf(stderr, "dossier: could not read the applied migrations: %s",
                      PQerrorMessage(conn));
        return DS_CLI_FAIL;
    }
    bool current = true;
    if (json) {
        (void)fputs("{\"migrations\":[", stdout);
    }
    for (size_t i = 0; i < n; i++) {
        const char *state = migrate_state_names[st[i].state];
        current = current && st[i].state == DS_MIGRATION_APPLIED;
        if (json) {
            (void)printf(
                "%s{\"version\":%d,\"name\":\"%s\",\"state\":\"%s\",\"applied_at\":%s%s%s}",
                i > 0 ? "," : "", st[i].version, st[i].name, state, st[i].applied_at[0] ? "\"" : "",
                st[i].applied_at[0] ? st[i].applied_at : "null", st[i].applied_at[0] ? "\"" : "");
        } else {
            (void)printf("%-8s %-40s %s\n", state, st[i].name, st[i].applied_at);
        }
    }
    if (json) {
        (void)printf("],\"current\":%s}\n", current ? "true" : "false");
    }
    free(st);
    return current ? DS_CLI_OK : DS_CLI_FAIL;
}

static int migrate_run(PGconn *conn, const ds_migration_set_t *set, bool json)
{
    size_t applied = 0;
    char *why = NULL;
    int rc = ds_migrate_apply(conn, set, &applied, &why);
    if (rc < 0) {
        (void)fprintf(stderr, "dossier: %s\n", why != NULL ? why : ds_strerror(rc));
        free(why);
        return DS_CLI_FAIL;
    }
    if (json) {
        (void)printf("{\"applied\":%zu,\"total\":%zu}\n", applied, set->count);
    } else {
        (void)printf("applied %zu migration(s); %zu in all, the database is current\n", applied,
                     set->count);
    }
    return DS_CLI_OK;
}

int ds_cli_migrate(int argc, char **argv)
{
    ds_app_opts_t opts = {0};
    const char *dir = NULL;
    bool status = false;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        int taken = ds_app_take_opt("migrate", argc, argv, &i, &opts);
        if (taken == 1) {
            continue;
        }
        if (taken != 0) {
            return taken;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            (void)fputs(migrate_help, stdout);
            return DS_CLI_OK;
        }
        if (strcmp(argv[i], "status") == 0 && i == 1) {
            status = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (ds_cli_is_opt(argv[i], "--dir")) {
            if (ds_cli_opt_value("migrate", argc, argv, &i, "--dir", &dir) != 0) {
                return DS_CLI_USAGE;
            }
        } else {
            return ds_cli_usage_error("migrate", "unknown argument", argv[i]);
        }
    }
    ds_migration_set_t *set = NULL;
    int rc = dir != NULL ? ds_migrate_set_from_dir(dir, &set) : ds_migrate_set_embedded(&set);
    if (rc < 0) {
        (void)fprintf(stderr, "dossier: cannot read the migrations%s%s: %s\n", dir ? " in " : "",
                      dir ? dir : "", ds_strerror(rc));
        return DS_CLI_FAIL;
    }
    ds_app_t app = {0};
    ds_db_t *db = NULL;
    PGconn *conn = NULL;
    int status_code = ds_app_init(&opts, &app);
    if (status_code == DS_CLI_OK &&
        (ds_app_open_db(&app, &db) < 0 || ds_db_connect(db, DS_PG_ROLE_OWNER, &conn) < 0)) {
        (void)fprintf(stderr, "dossier: cannot reach the database (see the log above)\n");
        status_code = DS_CLI_FAIL;
    }
    if (status_code == DS_CLI_OK) {
        status_code = status ? migrate_print_status(conn, set, json) : migrate_run(conn, set, json);
    }
    PQfinish(conn);
    ds_db_close(&db);
    ds_app_fini(&app);
    ds_migrate_set_free(&set);
    return status_code;
}
