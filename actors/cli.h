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

/* Parses s, decimal digits only, as a number in [min, max]: 0 and *out, or -EINVAL. */
int ds_cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* `dossier serve [options]`: runs a node until SIGTERM or SIGINT. argv[0] is "serve". */
int ds_cli_serve(int argc, char **argv);
