/* pg_msgs: the PostgreSQL pool's message catalog. See transports/pg/pg_msgs.h. */
#include "transports/pg/pg_msgs.h"

#include "runtime/catalog.h"

#define DS_CATALOG_FILE    "schema/pg.msgs.h"
#define DS_CATALOG_PREFIX  pg_
#define DS_CATALOG_UPREFIX PG_
#define DS_CATALOG_SYMBOL  ds_pg_catalog
#define DS_CATALOG_NAME    "pg"
#include "runtime/catalog_def.inc"

int ds_pg_msgs_register(void)
{
    return ds_catalog_register(&ds_pg_catalog);
}
