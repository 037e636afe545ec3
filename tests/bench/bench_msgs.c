/* bench_msgs: the benchmarks' message catalog. See tests/bench/bench_msgs.h. */
#include "tests/bench/bench_msgs.h"

#include "runtime/catalog.h"

#define DS_CATALOG_FILE    "schema/bench.msgs.h"
#define DS_CATALOG_PREFIX  bench_
#define DS_CATALOG_UPREFIX BENCH_
#define DS_CATALOG_SYMBOL  ds_bench_catalog
#define DS_CATALOG_NAME    "bench"
#include "runtime/catalog_def.inc"

int ds_bench_msgs_register(void)
{
    return ds_catalog_register(&ds_bench_catalog);
}
