/* storage: the node's database, schema, tenants and blob store. See actors/storage.h. */
#include "actors/storage.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "actors/cli.h"
#include "actors/demo.h"
#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/mem.h"
#include "transports/pg/migrate.h"

/* Steps 2 to 4, on one owner connection. */
static int storage_schema(const ds_app_t *app, FILE *console, ds_storage_t *st)
{
    PGconn *conn = NULL;
    ds_migration_set_t *set = NULL;
    char *why = NULL;
    int rc = ds_db_connect(st->db, DS_PG_ROLE_OWNER, &conn);
    if (rc == 0) {
        rc = ds_migrate_set_embedded(&set);
    }
    size_t applied = 0;
    if (rc == 0) {
        rc = ds_migrate_apply(conn, set, &applied, &why);
    }
    if (rc == 0) {
        ds_log_info("schema current", DS_LOG_U64("migrations", set->count),
                    DS_LOG_U64("applied_now", applied), DS_LOG_END);
    }
    bool created = false;
    if (rc == 0 && ds_db_instance(st->db) != NULL) {
        ds_password_cost_t cost = {app->cfg->auth.password_memory_kib,
                                   app->cfg->auth.password_iterations,
                                   app->cfg->auth.password_lanes};
        rc = ds_demo_ensure(conn, app->cfg->region, &cost, console, &created, &why);
    }
    if (rc == 0) {
        rc = ds_tenants_load(conn, app->cfg, &st->tenants, &why);
    }
    if (rc < 0) {
        ds_log_error("could not prepare the database", DS_LOG_STR("error", ds_strerror(rc)),
                     DS_LOG_STR("reason", why != NULL ? why : ""), DS_LOG_END);
    }
    free(why);
    ds_migrate_set_free(&set);
    PQfinish(conn);
    return rc;
}

/* Step 5. */
static int storage_blobs(const ds_app_t *app, ds_storage_t *st)
{
    ds_config_paths_t paths = {0};
    int rc = ds_config_resolve_paths(app->cfg, app->data_dir, &paths);
    char *tenant_dir = rc == 0 ? ds_xasprintf("%s/tenants", paths.keys_dir) : NULL;
    if (rc == 0) {
        ds_keystore_cfg_t kc = {
            .master_path = paths.master_key_file,
            .tenant_dir = tenant_dir,
            .create_master = true,
        };
        rc = ds_keystore_open(&kc, &st->keys);
    }
    if (rc == 0) {
        ds_blob_cfg_t bc = {
            .root = paths.blob_dir,
            .region = app->cfg->region,
            .keys = st->keys,
            .chunk_size = app->cfg->blob.chunk_size,
        };
        rc = ds_blob_open(&bc, &st->blobs);
    }
    if (rc < 0) {
        ds_log_error("could not open the blob store", DS_LOG_STR("error", ds_strerror(rc)),
                     DS_LOG_STR("dir", paths.blob_dir != NULL ? paths.blob_dir : ""),
                     DS_LOG_STR("keys", paths.keys_dir != NULL ? paths.keys_dir : ""), DS_LOG_END);
    }
    free(tenant_dir);
    ds_config_paths_fini(&paths);
    return rc;
}

int ds_storage_open(const ds_app_t *app, FILE *console, ds_storage_t *st)
{
    *st = (ds_storage_t){0};
    int rc = ds_app_open_db(app, &st->db);
    if (rc < 0) {
        ds_log_error("could not open the database", DS_LOG_STR("error", ds_strerror(rc)),
                     DS_LOG_END);
    }
    if (rc == 0) {
        rc = ds_db_conninfo(st->db, DS_PG_ROLE_APP, &st->app_conninfo);
    }
    if (rc == 0) {
        rc = storage_schema(app, console, st);
    }
    if (rc == 0) {
        rc = storage_blobs(app, st);
    }
    if (rc < 0) {
        ds_storage_close(st);
        return DS_CLI_FAIL;
    }
    return DS_CLI_OK;
}

void ds_storage_close(ds_storage_t *st)
{
    ds_blob_free(&st->blobs);
    ds_keystore_free(&st->keys);
    ds_tenants_free(&st->tenants);
    if (st->app_conninfo != NULL) {
        OPENSSL_cleanse(st->app_conninfo, strlen(st->app_conninfo));
        free(st->app_conninfo);
    }
    ds_db_close(&st->db);
    *st = (ds_storage_t){0};
}
