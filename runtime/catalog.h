/* catalog: every message type, declared once in a def file under schema/, and the codec that
 * comes from it.
 *
 * A def file is a list of X-macro lines (schema/runtime.msgs.h tells the format):
 *     DS_MSG(EXIT, 1, exit, DS_F(ID, who) DS_F(I64, reason))
 *     DS_MSG0(TIMEOUT, 3, timeout)
 * For each line, with the catalog's prefix p (empty for the runtime, "bench_" for the
 * benchmarks), the templates runtime/catalog_decl.inc and runtime/catalog_def.inc generate:
 *   - DS_MT_<P><NAME>, the type number (an enum constant);
 *   - ds_<p><name>_t, a struct with the fields in order (a message without fields gets one
 *     private member, as C has no empty structs);
 *   - int ds_<p><name>_new(const ds_<p><name>_t *v, ds_msg_t **out): a new message whose
 *     payload is a msgpack array of the fields in order, in their smallest encodings. 0;
 *     -EMSGSIZE for a STR or BIN longer than its max; -EINVAL for a STR that is not UTF-8.
 *     v may be NULL for a message without fields. Free the message with ds_msg_free();
 *   - int ds_<p><name>_decode(const ds_msg_t *m, ds_<p><name>_t *out): 0 and the fields in
 *     *out, or DS_EDECODE when m is of another type or its payload is not exactly the array
 *     of fields (count, each field's type, range, max length and UTF-8, no trailing bytes).
 *     STR and BIN fields point into m's payload: they live as long as m;
 *   - a descriptor (type, name, field kinds and maxes) in the catalog's table, which the
 *     generic ds_catalog_validate() uses on bytes from outside (runtime/wire.c).
 *
 * The runtime's catalog (types below DS_MSG_USER_BASE) is built in. Other catalogs (types
 * DS_MSG_USER_BASE and up) are expanded in a .c file of their own and registered at start-up
 * with ds_catalog_register(); tests/bench/bench_msgs.[ch] is the model to copy:
 *     the .h:  #define DS_CATALOG_FILE "schema/bench.msgs.h"
 *              #define DS_CATALOG_PREFIX bench_
 *              #define DS_CATALOG_UPREFIX BENCH_
 *              #include "runtime/catalog_decl.inc"
 *     the .c:  the same three, plus DS_CATALOG_SYMBOL (the ds_catalog_t to define) and
 *              DS_CATALOG_NAME (a string), then #include "runtime/catalog_def.inc".
 * (A macro cannot #include, so the expansion is an include with parameters rather than a
 * DS_CATALOG_DEFINE(...) call.)
 *
 * Threads: ds_catalog_register() is not thread-safe and must run before the runtime starts its
 * threads (thread creation orders it before every later lookup). After that the tables never
 * change, so ds_catalog_find(), ds_catalog_validate() and the generated functions are
 * lock-free reads, safe from any thread. Descriptors are static: nothing here is freed. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "runtime/id.h"
#include "runtime/msg.h"

/* Text in a decoded message: ptr[0..len) is valid UTF-8, not NUL-terminated, and points into
 * the message's payload. */
typedef struct ds_str {
    const char *ptr;
    uint32_t len;
} ds_str_t;

/* Bytes in a decoded message, pointing into the message's payload. */
typedef struct ds_bytes {
    const uint8_t *ptr;
    uint32_t len;
} ds_bytes_t;

/* Field kinds, and the C type of each in the generated structs. */
typedef enum ds_field_kind {
    DS_FK_BOOL = 1, /* bool */
    DS_FK_U32,      /* uint32_t */
    DS_FK_U64,      /* uint64_t */
    DS_FK_I32,      /* int32_t */
    DS_FK_I64,      /* int64_t */
    DS_FK_F64,      /* double (float32 accepted on decode) */
    DS_FK_ID,       /* ds_actor_id_t, encoded as its u64 */
    DS_FK_STR,      /* ds_str_t: at most max bytes of UTF-8 */
    DS_FK_BIN,      /* ds_bytes_t: at most max bytes */
} ds_field_kind_t;

typedef struct ds_field_desc {
    const char *name;
    ds_field_kind_t kind;
    uint32_t max; /* STR and BIN: the longest accepted, in bytes; else 0 */
} ds_field_desc_t;

typedef struct ds_msg_desc {
    uint32_t type;
    uint32_t nfields;
    const char *name;
    const ds_field_desc_t *fields; /* nfields of them; NULL when there are none */
} ds_msg_desc_t;

typedef struct ds_catalog {
    const char *name;
    const ds_msg_desc_t *const *msgs;
    size_t count;
} ds_catalog_t;

/* The built-in catalog of the runtime's messages (schema/runtime.msgs.h). */
extern const ds_catalog_t ds_runtime_catalog;

/* Adds a catalog. 0; -EEXIST if one of its numbers is taken already (or twice in cat);
 * -EINVAL if one is below DS_MSG_USER_BASE. On error nothing is added. cat and its
 * descriptors must outlive every lookup (they are static in practice). Not thread-safe: call
 * before the runtime starts its threads. */
int ds_catalog_register(const ds_catalog_t *cat);

/* The descriptor of a type, or NULL when no catalog declares it. O(1) for the runtime's types,
 * O(log n) for the others. */
const ds_msg_desc_t *ds_catalog_find(uint32_t type);

/* Checks a payload from outside against its type's declaration. 0; DS_EUNKNOWN when no
 * catalog declares type; DS_EDECODE when p[0..n) is not exactly the declared array. */
int ds_catalog_validate(uint32_t type, const uint8_t *p, size_t n);

/* The generic codec behind the generated functions; call those instead. src and dst hold one
 * pointer per field, in order, to a value of the field's C type (NULL when nfields is 0).
 * ds_catalog_encode: errors as ds_<name>_new. ds_catalog_decode: errors as ds_<name>_decode;
 * it validates only when dst is NULL, and may have written some fields when it fails (the
 * generated decoders decode into a local copy and hand it out only on success). */
int ds_catalog_encode(const ds_msg_desc_t *desc, const void *const *src, ds_msg_t **out);
int ds_catalog_decode(const ds_msg_desc_t *desc, const ds_msg_t *m, void *const *dst);
int ds_catalog_decode_bytes(const ds_msg_desc_t *desc, const uint8_t *p, size_t n,
                            void *const *dst);

/* The runtime's messages: DS_MT_EXIT, ds_exit_t, ds_exit_new(), ds_exit_decode() and the rest
 * (see schema/runtime.msgs.h). */
#define DS_CATALOG_FILE "schema/runtime.msgs.h"
#define DS_CATALOG_PREFIX
#define DS_CATALOG_UPREFIX
#include "runtime/catalog_decl.inc"
