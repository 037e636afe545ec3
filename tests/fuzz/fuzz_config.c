/* fuzz_config: the config loader over arbitrary bytes taken as a YAML file. If the first line
 * starts with "DOSSIER_" it is an environment entry (NAME=VALUE) and the rest is the file.
 * Whatever loads must dump to YAML that loads back to the same config (dump, load, dump gives
 * the same text); whatever fails must fail with a documented code and a well-formed error whose
 * line lies inside the input. The first bytes also go to ds_plan_override() as a value, which
 * must either set the field or leave the plan as it was. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

/* A string field of err is NUL-terminated within its array. */
#define TERMINATED(a) (memchr((a), '\0', sizeof(a)) != NULL)

static char *dump(const ds_config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL || ds_config_dump(cfg, DS_CONFIG_DUMP_SECRETS, f) != 0 || fclose(f) != 0) {
        abort();
    }
    return buf;
}

static void check_error(int rc, const ds_config_error_t *err, const char *text, size_t len)
{
    if (rc != -EINVAL && rc != -EFBIG) {
        abort();
    }
    if (!TERMINATED(err->file) || !TERMINATED(err->key) || !TERMINATED(err->message) ||
        err->message[0] == '\0') {
        abort();
    }
    /* Line breaks as YAML counts them: LF, CR, and NEL, LS, PS (a CR LF counts twice here,
     * an overestimate that only loosens the bound). */
    const unsigned char *s = (const unsigned char *)text;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) {
        lines += s[i] == '\n' || s[i] == '\r' ||
                 (s[i] == 0xc2 && i + 1 < len && s[i + 1] == 0x85) ||
                 (s[i] == 0xe2 && i + 2 < len && s[i + 1] == 0x80 && (s[i + 2] & 0xfe) == 0xa8);
    }
    if (strcmp(err->file, "fuzz") == 0 && err->line > lines + 1) {
        abort();
    }
}

static void round_trip(const ds_config_t *cfg)
{
    char *a = dump(cfg);
    ds_config_t *again = NULL;
    ds_config_error_t err;
    if (ds_config_load_buffer(a, strlen(a), "dump", NULL, &again, &err) != 0) {
        abort();
    }
    char *b = dump(again);
    if (strcmp(a, b) != 0) {
        abort();
    }
    free(a);
    free(b);
    ds_config_free(&again);
}

static void fuzz_override(const ds_config_t *cfg, const uint8_t *data, size_t size)
{
    ds_plan_t plan = cfg->plans[data[0] % DS_PLAN_COUNT];
    ds_plan_t before = plan;
    const char *field = ds_plan_field_name(data[0] % 14u);
    char value[32];
    size_t n = size - 1 < sizeof(value) - 1 ? size - 1 : sizeof(value) - 1;
    memcpy(value, data + 1, n);
    value[n] = '\0';
    ds_config_error_t err;
    int rc = ds_plan_override(&plan, field, value, &err);
    if (rc < 0 && ((rc != -EINVAL && rc != -ERANGE) || !TERMINATED(err.message))) {
        abort();
    }
    /* Only the named field may change, and only on success. */
    for (size_t i = 0; ds_plan_field_name(i) != NULL; i++) {
        const char *name = ds_plan_field_name(i);
        uint64_t a = 0;
        uint64_t b = 0;
        if (ds_plan_get(&plan, name, &a) != 0 || ds_plan_get(&before, name, &b) != 0 ||
            (a != b && (rc < 0 || name != field))) {
            abort();
        }
    }
}

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t len = size;
    char *env_entry = NULL;
    static const char prefix[] = "DOSSIER_";
    const char *nl = memchr(text, '\n', len);
    if (nl != NULL && len >= sizeof(prefix) - 1 && memcmp(text, prefix, sizeof(prefix) - 1) == 0) {
        env_entry = strndup(text, (size_t)(nl - text));
        if (env_entry == NULL) {
            abort();
        }
        len -= (size_t)(nl + 1 - text);
        text = nl + 1;
    }
    char *const envp[] = {env_entry, NULL};
    ds_config_t *cfg = NULL;
    ds_config_error_t err;
    memset(&err, 0x5a, sizeof(err));
    int rc = ds_config_load_buffer(text, len, "fuzz", env_entry != NULL ? envp : NULL, &cfg, &err);
    if (rc == 0) {
        round_trip(cfg);
        if (size > 0) {
            fuzz_override(cfg, data, size);
        }
    } else {
        if (cfg != NULL) {
            abort();
        }
        check_error(rc, &err, text, len);
    }
    ds_config_free(&cfg);
    free(env_entry);
    return 0;
}
