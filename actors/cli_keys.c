/* cli_keys: `dossier keys rotate`: re-wraps every tenant key of the key store under a new master
 * key (transports/blob/keystore.h). Safe while nodes run: they look keys up by id, so they keep
 * reading tenant keys wrapped under the old master key or the new one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/app.h"
#include "actors/cli.h"
#include "actors/identity/signing.h"
#include "runtime/err.h"
#include "runtime/mem.h"
#include "transports/blob/keystore.h"

static const char keys_help[] =
    "Usage: dossier keys rotate [options]\n"
    "       dossier keys rotate-signing [options]\n"
    "\n"
    "rotate: generates a new master key for the region and re-wraps every tenant key under it.\n"
    "The old master key is kept as master.key.old; copy the new master.key to every node of the\n"
    "region. Running it again after a crash finishes an interrupted rotation.\n"
    "\n"
    "rotate-signing: adds a new access-token signing key (KEYS_DIR/tokens). Nodes sign with it\n"
    "from their next start and keep verifying tokens of the older keys, so nobody is logged\n"
    "out; the newest 4 keys are kept.\n"
    "\n"
    "Options:\n" DS_APP_OPTS_HELP "  --json             machine-readable output\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 ok, 1 failure, 2 usage error.\n";

static void keys_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int keys_rotate(const ds_app_t *app, bool json)
{
    ds_config_paths_t paths = {0};
    if (ds_config_resolve_paths(app->cfg, app->data_dir, &paths) < 0) {
        (void)fprintf(stderr, "dossier: cannot resolve the key store's paths\n");
        return DS_CLI_FAIL;
    }
    char *tenant_dir = ds_xasprintf("%s/tenants", paths.keys_dir);
    ds_keystore_cfg_t kc = {
        .master_path = paths.master_key_file,
        .tenant_dir = tenant_dir,
        .create_master = false,
    };
    ds_keystore_t *ks = NULL;
    ds_keystore_rotation_t r = {0};
    int rc = ds_keystore_open(&kc, &ks);
    if (rc == 0) {
        rc = ds_keystore_rotate_master(ks, &r);
    }
    if (rc < 0) {
        (void)fprintf(stderr, "dossier: could not rotate the master key (%s): %s\n",
                      paths.master_key_file, ds_strerror(rc));
    } else {
        char id[2 * DS_KEYSTORE_KEY_ID_LEN + 1];
        keys_hex(r.new_id, sizeof(r.new_id), id);
        (void)printf(json ? "{\"master_key_id\":\"%s\",\"rewrapped\":%llu,\"unchanged\":%llu}\n"
                          : "new master key %s; %llu tenant key(s) re-wrapped, %llu already were\n",
                     id, (unsigned long long)r.rewrapped, (unsigned long long)r.unchanged);
    }
    ds_keystore_free(&ks);
    free(tenant_dir);
    ds_config_paths_fini(&paths);
    return rc < 0 ? DS_CLI_FAIL : DS_CLI_OK;
}

static int keys_rotate_signing(const ds_app_t *app, bool json)
{
    ds_config_paths_t paths = {0};
    if (ds_config_resolve_paths(app->cfg, app->data_dir, &paths) < 0) {
        (void)fprintf(stderr, "dossier: cannot resolve the key store's paths\n");
        return DS_CLI_FAIL;
    }
    char kid[DS_TOKEN_KID_MAX + 1];
    char *why = NULL;
    int rc = ds_signing_rotate(paths.keys_dir, kid, &why);
    if (rc < 0) {
        (void)fprintf(stderr, "dossier: could not add a signing key: %s\n",
                      why != NULL ? why : ds_strerror(rc));
    } else {
        (void)printf(json ? "{\"signing_key_id\":\"%s\"}\n"
                          : "new signing key %s; nodes sign with it from their next start\n",
                     kid);
    }
    free(why);
    ds_config_paths_fini(&paths);
    return rc < 0 ? DS_CLI_FAIL : DS_CLI_OK;
}

int ds_cli_keys(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        (void)fputs(keys_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? DS_CLI_USAGE : DS_CLI_OK;
    }
    bool signing = strcmp(argv[1], "rotate-signing") == 0;
    if (strcmp(argv[1], "rotate") != 0 && !signing) {
        return ds_cli_usage_error("keys", "unknown command", argv[1]);
    }
    ds_app_opts_t opts = {0};
    bool json = false;
    for (int i = 2; i < argc; i++) {
        int taken = ds_app_take_opt("keys", argc, argv, &i, &opts);
        if (taken == 1) {
            continue;
        }
        if (taken != 0) {
            return taken;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            (void)fputs(keys_help, stdout);
            return DS_CLI_OK;
        } else {
            return ds_cli_usage_error("keys", "unknown argument", argv[i]);
        }
    }
    ds_app_t app = {0};
    int rc = ds_app_init(&opts, &app);
    if (rc == DS_CLI_OK) {
        rc = signing ? keys_rotate_signing(&app, json) : keys_rotate(&app, json);
    }
    ds_app_fini(&app);
    return rc;
}
