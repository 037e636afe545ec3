/* main: the `dossier` binary. Subcommands:
 *   serve     run a node in the foreground (actors/serve.c)
 *   migrate   apply or list schema migrations (actors/cli_migrate.c)
 *   tenant    manage tenants (actors/cli_tenant.c)
 *   user      manage a tenant's users (actors/cli_user.c)
 *   db        the private PostgreSQL cluster, psql (actors/cli_db.c)
 *   config    check or show the config (actors/cli_config.c)
 *   keys      the key store: rotate the master key (actors/cli_keys.c)
 *   routes    the HTTP API's routes (actors/cli_routes.c)
 *   audit     verify or export a tenant's audit chain (actors/cli_audit.c)
 *   version   print the version
 *   help      print this help (also --help, -h)
 * Exit status: 0 ok, 1 failure, 2 usage error (actors/cli.h). */
#include <stdio.h>
#include <string.h>

#include "actors/cli.h"

#ifndef DS_VERSION
#define DS_VERSION "0.0.0-dev"
#endif
#ifndef DS_GIT_HASH
#define DS_GIT_HASH ""
#endif

static const char main_help[] =
    "Usage: dossier <command> [options]\n"
    "\n"
    "Dossier: a self-hostable, multi-tenant document platform.\n"
    "\n"
    "Commands:\n"
    "  serve      run a node in the foreground until SIGTERM or SIGINT\n"
    "  migrate    apply the schema migrations (or `migrate status`)\n"
    "  tenant     create, list, show, suspend and resume tenants\n"
    "  user       create, list, deactivate a tenant's users, reset passwords\n"
    "  db         start/stop the private PostgreSQL, psql, connection strings\n"
    "  config     check a config file, show the effective config\n"
    "  keys       rotate the master key or the token signing keys\n"
    "  routes     list the HTTP API's routes\n"
    "  audit      verify or export a tenant's audit chain\n"
    "  version    print the version\n"
    "  help       show this help\n"
    "\n"
    "Run 'dossier <command> --help' for a command's options.\n"
    "Exit status: 0 ok, 1 failure, 2 usage error.\n";

static int main_version(int argc, char **argv)
{
    if (argc > 1) {
        return ds_cli_usage_error("version", "unexpected argument", argv[1]);
    }
    if (DS_GIT_HASH[0] != '\0') {
        (void)printf("dossier %s (%s)\n", DS_VERSION, DS_GIT_HASH);
    } else {
        (void)printf("dossier %s\n", DS_VERSION);
    }
    return DS_CLI_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        (void)fputs(main_help, stderr);
        return DS_CLI_USAGE;
    }
    const char *cmd = argv[1];
    int status;
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {
        {"serve", ds_cli_serve},   {"migrate", ds_cli_migrate}, {"tenant", ds_cli_tenant},
        {"db", ds_cli_db},         {"config", ds_cli_config},   {"keys", ds_cli_keys},
        {"routes", ds_cli_routes}, {"user", ds_cli_user},       {"audit", ds_cli_audit},
    };
    int (*run)(int, char **) = NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(cmd, commands[i].name) == 0) {
            run = commands[i].run;
        }
    }
    if (run != NULL) {
        status = run(argc - 1, argv + 1);
    } else if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        status = main_version(argc - 1, argv + 1);
    } else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        (void)fputs(main_help, stdout);
        status = DS_CLI_OK;
    } else if (cmd[0] == '-') {
        status = ds_cli_usage_error(NULL, "unknown option", cmd);
    } else {
        status = ds_cli_usage_error(NULL, "unknown command", cmd);
    }
    if (fflush(stdout) != 0 && status == DS_CLI_OK) {
        status = DS_CLI_FAIL; /* e.g. `dossier version > /dev/full` */
    }
    return status;
}
