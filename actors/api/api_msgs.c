/* api_msgs: the HTTP API's message catalog. See actors/api/api_msgs.h. */
#include "actors/api/api_msgs.h"

#include "runtime/catalog.h"

#define DS_CATALOG_FILE    "schema/api.msgs.h"
#define DS_CATALOG_PREFIX  api_
#define DS_CATALOG_UPREFIX API_
#define DS_CATALOG_SYMBOL  ds_api_catalog
#define DS_CATALOG_NAME    "api"
#include "runtime/catalog_def.inc"

int ds_api_msgs_register(void)
{
    return ds_catalog_register(&ds_api_catalog);
}
