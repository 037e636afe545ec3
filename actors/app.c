/* app: config, data directory and database options shared by every command. See actors/app.h. */
#include "actors/app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/cli.h"
#include "runtime/mem.h"

extern char **environ;

int ds_app_take_opt(const char *cmd, int argc, char **argv, int *i, ds_app_opts_t *opts)
{
    const char *arg = argv[*i];
    const char **slot = NULL;
    const char *name = NULL;
    if (ds_cli_is_opt(arg, "--config")) {
        slot = &opts->config_path;
        name = "--config";
    } else if (ds_cli_is_opt(arg, "--data-dir")) {
        slot = &opts->data_dir;
        name = "--data-dir";
    } else {
        return 0;
    }
    return ds_cli_opt_value(cmd, argc, argv, i, name, slot) == 0 ? 1 : DS_CLI_USAGE;
}

/* An absolute version of path (relative to the working directory). */
static char *app_absolute(const char *path)
{
    if (path[0] == '/') {
        return ds_xstrdup(path);
    }
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        return ds_xstrdup(path);
    }
    return ds_xasprintf("%s/%s", cwd, path);
}

int ds_app_init(const ds_app_opts_t *opts, ds_app_t *app)
{
    *app = (ds_app_t){0};
    const char *path = opts->config_path;
    if (path == NULL) {
        path = getenv("DOSSIER_CONFIG"); // NOLINT(concurrency-mt-unsafe): before any thread
        if (path != NULL && path[0] == '\0') {
            path = NULL;
        }
    }
    ds_config_error_t err = {0};
    if (ds_config_load(path, environ, &app->cfg, &err) < 0) {
        char buf[800];
        (void)fprintf(stderr, "dossier: %s\n", ds_config_error_str(&err, buf, sizeof(buf)));
        return DS_CLI_FAIL;
    }
    char *dir = NULL;
    if (opts->data_dir != NULL) {
        dir = ds_xstrdup(opts->data_dir);
    } else {
        // NOLINTNEXTLINE(concurrency-mt-unsafe): before any thread
        const char *xdg = getenv("XDG_DATA_HOME");
        const char *home = getenv("HOME"); // NOLINT(concurrency-mt-unsafe): as above
        if (ds_config_resolve_data_dir(app->cfg, (unsigned)geteuid(), xdg, home, &dir) < 0) {
            (void)fprintf(stderr, "dossier: cannot tell the data directory: set --data-dir\n");
            ds_app_fini(app);
            return DS_CLI_FAIL;
        }
    }
    app->data_dir = app_absolute(dir);
    free(dir);
    return DS_CLI_OK;
}

void ds_app_fini(ds_app_t *app)
{
    ds_config_free(&app->cfg);
    free(app->data_dir);
    *app = (ds_app_t){0};
}

int ds_app_open_db(const ds_app_t *app, ds_db_t **out)
{
    ds_db_opts_t o = {
        .data_dir = app->data_dir,
        .dsn = app->cfg->database.dsn,
        .owner_dsn = app->cfg->database.owner_dsn,
    };
    return ds_db_open(&o, out);
}
