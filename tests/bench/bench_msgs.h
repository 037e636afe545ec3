/* bench_msgs: the benchmarks' message catalog (schema/bench.msgs.h), expanded with the prefix
 * bench_: DS_MT_BENCH_PING, ds_bench_ping_t, ds_bench_ping_new(), ds_bench_ping_decode()...
 * (runtime/catalog.h tells what each generated name does).
 * Threads: call ds_bench_msgs_register() once, before the runtime starts its threads. */
#pragma once

#include "runtime/catalog.h"

#define DS_CATALOG_FILE    "schema/bench.msgs.h"
#define DS_CATALOG_PREFIX  bench_
#define DS_CATALOG_UPREFIX BENCH_
#include "runtime/catalog_decl.inc"

extern const ds_catalog_t ds_bench_catalog;

/* Registers ds_bench_catalog. 0, or -EEXIST if it (or a clashing number) is registered. */
int ds_bench_msgs_register(void);
