/* http_msgs: the HTTP gateway's message catalog. See transports/http/http_msgs.h. */
#include "transports/http/http_msgs.h"

#include "runtime/catalog.h"

#define DS_CATALOG_FILE    "schema/http.msgs.h"
#define DS_CATALOG_PREFIX  http_
#define DS_CATALOG_UPREFIX HTTP_
#define DS_CATALOG_SYMBOL  ds_http_catalog
#define DS_CATALOG_NAME    "http"
#include "runtime/catalog_def.inc"

int ds_http_msgs_register(void)
{
    return ds_catalog_register(&ds_http_catalog);
}
