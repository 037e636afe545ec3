/* storage: what a node needs from the outside world before its runtime starts, opened in order
 * by ds_storage_open():
 *   1. the database (actors/db.h): the private cluster of the data directory, initialized and
 *      started on first use, or the configured server;
 *   2. the schema: pending migrations applied (transports/pg/migrate.h);
 *   3. the demo tenant and admin, on the private cluster only, created once (actors/demo.h);
 *   4. the tenants with their effective plans (actors/tenants.h), for the runtime's groups;
 *   5. the key store and the encrypted blob store (transports/blob), under the data directory
 *      unless the config puts them elsewhere.
 * Everything here blocks: node start-up and shutdown only, on the main thread. */
#pragma once

#include <stdio.h>

#include "actors/app.h"
#include "actors/db.h"
#include "actors/tenants.h"
#include "transports/blob/blob.h"
#include "transports/blob/keystore.h"

typedef struct ds_storage {
    ds_db_t *db;
    ds_tenants_t *tenants;
    ds_keystore_t *keys;
    ds_blob_store_t *blobs;
    char *app_conninfo; /* the application role's conninfo (wiped on close) */
} ds_storage_t;

/* Opens everything above; the demo login goes to console. DS_CLI_OK, or DS_CLI_FAIL with the
 * reason logged (whatever was opened is closed again). */
int ds_storage_open(const ds_app_t *app, FILE *console, ds_storage_t *st);

/* Closes in reverse order; the private cluster stops if this node was its last user. */
void ds_storage_close(ds_storage_t *st);
