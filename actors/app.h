/* app: what every command and the node share before anything runs: the effective config
 * (built-in defaults, then --config FILE or DOSSIER_CONFIG, then DOSSIER_* environment
 * overrides; config/config.h), the data directory (--data-dir, else the config's data_dir, else
 * /var/lib/dossier for root and $XDG_DATA_HOME/dossier otherwise) and the database options.
 * Main thread only. */
#pragma once

#include <stdbool.h>

#include "actors/db.h"
#include "config/config.h"

typedef struct ds_app {
    ds_config_t *cfg;
    char *data_dir; /* absolute */
} ds_app_t;

/* Options every command takes. */
typedef struct ds_app_opts {
    const char *config_path; /* --config, or NULL (then DOSSIER_CONFIG, then none) */
    const char *data_dir;    /* --data-dir, or NULL */
} ds_app_opts_t;

/* If argv[*i] is a common option (--config, --data-dir), takes it (and its value) and returns
 * 1; 0 if it is not one; DS_CLI_USAGE (printed) if its value is missing. */
int ds_app_take_opt(const char *cmd, int argc, char **argv, int *i, ds_app_opts_t *opts);

/* Loads the config and resolves the data directory: DS_CLI_OK, or DS_CLI_FAIL with the reason
 * printed on stderr ("dossier: FILE:LINE: key: message"). Free with ds_app_fini(). */
int ds_app_init(const ds_app_opts_t *opts, ds_app_t *app);

void ds_app_fini(ds_app_t *app);

/* Opens the database of the app (actors/db.h): 0 and *out, or the error (logged). */
int ds_app_open_db(const ds_app_t *app, ds_db_t **out);

/* The help lines of the common options, for each command's --help. */
#define DS_APP_OPTS_HELP                                                                        \
    "  --config FILE      config file (default: $DOSSIER_CONFIG, else built-in defaults)\n"     \
    "  --data-dir DIR     data directory (default: data_dir in config, else /var/lib/dossier\n" \
    "                     as root, $XDG_DATA_HOME/dossier otherwise)\n"
