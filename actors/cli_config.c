/* cli_config: `dossier config check FILE` (is this file valid? the first bad key and its line)
 * and `dossier config show` (the effective config: defaults, file, environment). */
#include <stdio.h>
#include <string.h>

#include "actors/app.h"
#include "actors/cli.h"
#include "config/config.h"

extern char **environ;

static const char config_help[] =
    "Usage: dossier config check FILE\n"
    "       dossier config show [--config FILE] [--secrets]\n"
    "\n"
    "check  validates FILE over the built-in defaults and the DOSSIER_* environment, and\n"
    "       reports the first bad key as FILE:LINE: KEY: MESSAGE\n"
    "show   prints the effective config as YAML (DSNs only with --secrets)\n"
    "\n"
    "Exit status: 0 valid, 1 invalid, 2 usage error.\n";

static int config_check(const char *path)
{
    ds_config_error_t err = {0};
    int rc = ds_config_check_file(path, environ, &err);
    if (rc < 0) {
        char buf[1024];
        (void)fprintf(stderr, "%s\n", ds_config_error_str(&err, buf, sizeof(buf)));
        return DS_CLI_FAIL;
    }
    (void)printf("%s: ok\n", path);
    return DS_CLI_OK;
}

static int config_show(int argc, char **argv)
{
    ds_app_opts_t opts = {0};
    unsigned flags = 0;
    for (int i = 2; i < argc; i++) {
        int taken = ds_app_take_opt("config", argc, argv, &i, &opts);
        if (taken == 1) {
            continue;
        }
        if (taken != 0) {
            return taken;
        }
        if (strcmp(argv[i], "--secrets") == 0) {
            flags |= DS_CONFIG_DUMP_SECRETS;
        } else {
            return ds_cli_usage_error("config", "unknown argument", argv[i]);
        }
    }
    ds_app_t app = {0};
    int rc = ds_app_init(&opts, &app);
    if (rc == DS_CLI_OK && ds_config_dump(app.cfg, flags, stdout) < 0) {
        rc = DS_CLI_FAIL;
    }
    ds_app_fini(&app);
    return rc;
}

int ds_cli_config(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        (void)fputs(config_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? DS_CLI_USAGE : DS_CLI_OK;
    }
    if (strcmp(argv[1], "check") == 0) {
        if (argc != 3) {
            return ds_cli_usage_error("config", "check takes one FILE", NULL);
        }
        return config_check(argv[2]);
    }
    if (strcmp(argv[1], "show") == 0) {
        return config_show(argc, argv);
    }
    return ds_cli_usage_error("config", "unknown command", argv[1]);
}
