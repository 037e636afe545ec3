/* cli: the `dossier` command line. main() picks a subcommand; each returns the process's exit
 * status: DS_CLI_OK, DS_CLI_FAIL (the command ran and failed) or DS_CLI_USAGE (bad arguments,
 * with a message and a hint on stderr). Human output goes to stdout, logs (JSON lines) to
 * stderr. Everything here runs on the main thread. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum ds_cli_status {
    DS_CLI_OK = 0,
    DS_CLI_FAIL = 1,
    DS_CLI_USAGE = 2,
};

/* Prints "dossier: <what> '<arg>'" (arg may be NULL) and a hint to run `dossier [cmd] --help`
 * (cmd may be NULL) on stderr. Returns DS_CLI_USAGE. */
int ds_cli_usage_error(const char *cmd, const char *what, const char *arg);

/* True if arg is the long option name, alone or as "name=value". */
bool ds_cli_is_opt(const char *arg, const char *name);

/* Reads the value of option `name` at argv[*i], given as "--name=V" or "--name V" (then *i
 * moves past V). 0 and *value, or DS_CLI_USAGE (message printed for command cmd). */
int ds_cli_opt_value(const char *cmd, int argc, char **argv, int *i, const char *name,
                     const char **value);

/* Parses s, decimal digits only, as a number in [min, max]: 0 and *out, or -EINVAL. */
int ds_cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* `dossier serve [options]`: runs a node until SIGTERM or SIGINT. argv[0] is "serve". */
int ds_cli_serve(int argc, char **argv);

/* `dossier db start|stop|status|conninfo|psql` (actors/cli_db.c). argv[0] is "db". */
int ds_cli_db(int argc, char **argv);

/* `dossier migrate [status]` (actors/cli_migrate.c). argv[0] is "migrate". */
int ds_cli_migrate(int argc, char **argv);

/* `dossier tenant create|list|show|suspend|resume|limit` (actors/cli_tenant.c). */
int ds_cli_tenant(int argc, char **argv);

/* `dossier user create|list|deactivate|reactivate|reset-password` (actors/cli_user.c). */
int ds_cli_user(int argc, char **argv);

/* `dossier config check FILE | show` (actors/cli_config.c). */
int ds_cli_config(int argc, char **argv);

/* `dossier keys rotate` (actors/cli_keys.c). */
int ds_cli_keys(int argc, char **argv);

/* `dossier routes`: actors/cli_routes.c. */
int ds_cli_routes(int argc, char **argv);

/* `dossier audit verify|export` (actors/cli_audit.c). */
int ds_cli_audit(int argc, char **argv);
