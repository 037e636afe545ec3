/* pg_msgs: the PostgreSQL pool's message catalog (schema/pg.msgs.h), expanded with the prefix
 * pg_: DS_MT_PG_TX, ds_pg_tx_t, ds_pg_tx_new(), ds_pg_tx_decode()... (runtime/catalog.h tells
 * what each generated name does).
 * Threads: call ds_pg_msgs_register() once, before the runtime starts its threads (the pool's
 * ds_pg_pool_start() does not register it: the process does, once, with its other catalogs). */
#pragma once

#include "runtime/catalog.h"

#define DS_CATALOG_FILE    "schema/pg.msgs.h"
#define DS_CATALOG_PREFIX  pg_
#define DS_CATALOG_UPREFIX PG_
#include "runtime/catalog_decl.inc"

extern const ds_catalog_t ds_pg_catalog;

/* Registers ds_pg_catalog. 0, or -EEXIST if it (or a clashing number) is registered. */
int ds_pg_msgs_register(void);
