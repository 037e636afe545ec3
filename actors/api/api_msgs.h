/* api_msgs: the HTTP API's message catalog (schema/api.msgs.h), expanded with the prefix api_:
 * DS_MT_API_WORK_DONE, ds_api_work_done_t, ds_api_work_done_new()... (runtime/catalog.h).
 * Threads: call ds_api_msgs_register() once, before the runtime starts its threads. */
#pragma once

#include "runtime/catalog.h"

#define DS_CATALOG_FILE    "schema/api.msgs.h"
#define DS_CATALOG_PREFIX  api_
#define DS_CATALOG_UPREFIX API_
#include "runtime/catalog_decl.inc"

extern const ds_catalog_t ds_api_catalog;

/* Registers ds_api_catalog. 0, or -EEXIST if it (or a clashing number) is registered. */
int ds_api_msgs_register(void);
