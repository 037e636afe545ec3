/* http_msgs: the HTTP gateway's message catalog (schema/http.msgs.h), expanded with the prefix
 * http_: DS_MT_HTTP_REQUEST, ds_http_request_t, ds_http_request_new(), ds_http_request_decode()
 * and the same for every other message of the file (runtime/catalog.h tells what each
 * generated name does).
 * Threads: call ds_http_msgs_register() once, before the runtime starts its threads. */
#pragma once

#include "runtime/catalog.h"

#define DS_CATALOG_FILE    "schema/http.msgs.h"
#define DS_CATALOG_PREFIX  http_
#define DS_CATALOG_UPREFIX HTTP_
#include "runtime/catalog_decl.inc"

extern const ds_catalog_t ds_http_catalog;

/* Registers ds_http_catalog. 0, or -EEXIST if it (or a clashing number) is registered. */
int ds_http_msgs_register(void);
