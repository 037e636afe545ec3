/* cli: helpers shared by the subcommands. See actors/cli.h. */
#include "actors/cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int ds_cli_usage_error(const char *cmd, const char *what, const char *arg)
{
    if (arg != NULL) {
        (void)fprintf(stderr, "dossier: %s '%s'\n", what, arg);
    } else {
        (void)fprintf(stderr, "dossier: %s\n", what);
    }
    (void)fprintf(stderr, "Try 'dossier%s%s --help'.\n", cmd != NULL ? " " : "",
                  cmd != NULL ? cmd : "");
    return DS_CLI_USAGE;
}

bool ds_cli_is_opt(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

int ds_cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0') {
        return -EINVAL;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return -EINVAL;
        }
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v)) {
            return -EINVAL;
        }
    }
    if (v < min || v > max) {
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int ds_cli_opt_value(const char *cmd, int argc, char **argv, int *i, const char *name,
                     const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 0;
    }
    if (*i + 1 < argc) {
        *i += 1;
        *value = argv[*i];
        return 0;
    }
    return ds_cli_usage_error(cmd, "missing value for option", name);
}
