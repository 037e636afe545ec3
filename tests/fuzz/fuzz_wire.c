/* fuzz_wire: ds_wire_decode() over arbitrary bytes. Whatever it accepts must be a valid message
 * whose re-encoding (on the same clock) gives back the very same bytes; whatever it refuses
 * must be refused with one of its documented codes. The runtime's catalog and a test catalog
 * with every field kind (tests/unit/test_catalog.msgs.h) are registered. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/catalog.h"
#include "runtime/err.h"
#include "runtime/msg.h"
#include "runtime/wire.h"

#define DS_CATALOG_FILE    "tests/unit/test_catalog.msgs.h"
#define DS_CATALOG_PREFIX  test_
#define DS_CATALOG_UPREFIX TEST_
#include "runtime/catalog_decl.inc"

#define DS_CATALOG_FILE    "tests/unit/test_catalog.msgs.h"
#define DS_CATALOG_PREFIX  test_
#define DS_CATALOG_UPREFIX TEST_
#define DS_CATALOG_SYMBOL  fuzz_catalog
#define DS_CATALOG_NAME    "test"
#include "runtime/catalog_def.inc"

enum {
    MAX_PAYLOAD = 512
};
static const int64_t now = 1000000000;

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool registered; /* libFuzzer runs inputs on one thread */
    if (!registered) {
        if (ds_catalog_register(&fuzz_catalog) != 0) {
            abort();
        }
        registered = true;
    }
    ds_msg_t *m = NULL;
    int rc = ds_wire_decode(data, size, MAX_PAYLOAD, now, &m);
    if (rc != 0) {
        if (m != NULL || (rc != DS_EDECODE && rc != DS_EUNKNOWN && rc != -EMSGSIZE)) {
            abort();
        }
        return 0;
    }
    if (m->len > MAX_PAYLOAD || ds_catalog_validate(m->type, m->data, m->len) != 0) {
        abort();
    }
    size_t cap = ds_wire_size(m);
    uint8_t *out = malloc(cap);
    size_t len = 0;
    if (out == NULL || ds_wire_encode(m, now, out, cap, &len) != 0 || len != size ||
        memcmp(out, data, size) != 0) {
        abort();
    }
    free(out);
    ds_msg_free(&m);
    return 0;
}
