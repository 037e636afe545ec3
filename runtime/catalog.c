/* catalog: the message catalog and its generic codec. See runtime/catalog.h.
 *
 * Every generated ds_<name>_new() and ds_<name>_decode() lands in ds_catalog_encode() and
 * ds_catalog_decode_bytes() with the message's descriptor and one pointer per field, so the
 * wire validator and the typed decoders run the same code on the same table.
 *
 * Lookup: the runtime's types (< DS_MSG_USER_BASE) index a static table built at compile time;
 * registered types live in one array of descriptor pointers sorted by number, searched by
 * bisection. Registration replaces that array; it runs before the runtime's threads exist. */
#include "runtime/catalog.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/err.h"
#include "runtime/mem.h"
#include "runtime/mpack.h"

/* The runtime's catalog, generated from its def file. */
#define DS_CATALOG_FILE    "schema/runtime.msgs.h"
#define DS_CATALOG_PREFIX  /* none */
#define DS_CATALOG_UPREFIX /* none */
#define DS_CATALOG_SYMBOL  ds_runtime_catalog
#define DS_CATALOG_NAME    "runtime"
#include "runtime/catalog_def.inc"

/* Direct index of the runtime's types. */
#define DS_MSG(NAME, num, name, fields) [num] = &catalog_desc_##name,
#define DS_MSG0(NAME, num, name)        [num] = &catalog_desc_##name,
static const ds_msg_desc_t *const catalog_runtime_index[DS_MSG_USER_BASE] = {
#include "schema/runtime.msgs.h"
};
#undef DS_MSG
#undef DS_MSG0

/* Registered catalogs' descriptors, sorted by type; written only before threads start. */
typedef const ds_msg_desc_t *desc_ref_t;
static desc_ref_t *catalog_user;
static size_t catalog_user_count;

static const ds_msg_desc_t *find_user(uint32_t type)
{
    size_t lo = 0;
    size_t hi = catalog_user_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t t = catalog_user[mid]->type;
        if (t == type) {
            return catalog_user[mid];
        }
        if (t < type) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

const ds_msg_desc_t *ds_catalog_find(uint32_t type)
{
    if (type < DS_MSG_USER_BASE) {
        return catalog_runtime_index[type];
    }
    return find_user(type);
}

static int cmp_desc(const void *a, const void *b)
{
    uint32_t x = (*(const desc_ref_t *)a)->type;
    uint32_t y = (*(const desc_ref_t *)b)->type;
    return (x > y) - (x < y);
}

int ds_catalog_register(const ds_catalog_t *cat)
{
    size_t total;
    size_t bytes;
    if (__builtin_add_overflow(catalog_user_count, cat->count, &total) ||
        __builtin_mul_overflow(total, sizeof(desc_ref_t), &bytes)) {
        return -EINVAL;
    }
    for (size_t i = 0; i < cat->count; i++) {
        uint32_t type = cat->msgs[i]->type;
        if (ds_catalog_find(type) != NULL) {
            return -EEXIST;
        }
        if (type < DS_MSG_USER_BASE) {
            return -EINVAL;
        }
    }
    desc_ref_t *all = ds_xmalloc(bytes == 0 ? 1 : bytes);
    if (catalog_user_count > 0) {
        memcpy(all, catalog_user, catalog_user_count * sizeof(desc_ref_t));
    }
    if (cat->count > 0) {
        memcpy(all + catalog_user_count, cat->msgs, cat->count * sizeof(desc_ref_t));
    }
    qsort(all, total, sizeof(desc_ref_t), cmp_desc);
    for (size_t i = 1; i < total; i++) {
        if (all[i - 1]->type == all[i]->type) {
            free(all); /* a number twice within cat */
            return -EEXIST;
        }
    }
    free(catalog_user);
    catalog_user = all;
    catalog_user_count = total;
    return 0;
}

/* Encoding. */

/* The encoded size of one field, after checking it against its declaration: 0 and *size, or
 * -EMSGSIZE (too long) or -EINVAL (text that is not UTF-8). */
static int field_size(const ds_field_desc_t *f, const void *src, size_t *size)
{
    switch (f->kind) {
    case DS_FK_BOOL:
        *size = 1;
        return 0;
    case DS_FK_U32:
        *size = ds_mp_size_u64(*(const uint32_t *)src);
        return 0;
    case DS_FK_U64:
        *size = ds_mp_size_u64(*(const uint64_t *)src);
        return 0;
    case DS_FK_I32:
        *size = ds_mp_size_i64(*(const int32_t *)src);
        return 0;
    case DS_FK_I64:
        *size = ds_mp_size_i64(*(const int64_t *)src);
        return 0;
    case DS_FK_F64:
        *size = 9;
        return 0;
    case DS_FK_ID:
        *size = ds_mp_size_u64(((const ds_actor_id_t *)src)->v);
        return 0;
    case DS_FK_STR: {
        const ds_str_t *s = src;
        if (s->len > f->max) {
            return -EMSGSIZE;
        }
        if (!ds_mp_utf8_valid(s->ptr, s->len)) {
            return -EINVAL;
        }
        *size = ds_mp_size_str(s->len);
        return 0;
    }
    case DS_FK_BIN: {
        const ds_bytes_t *b = src;
        if (b->len > f->max) {
            return -EMSGSIZE;
        }
        *size = ds_mp_size_bin(b->len);
        return 0;
    }
    }
    return -EINVAL;
}

static void field_put(ds_mp_writer_t *w, ds_field_kind_t kind, const void *src)
{
    switch (kind) {
    case DS_FK_BOOL:
        ds_mp_put_bool(w, *(const bool *)src);
        break;
    case DS_FK_U32:
        ds_mp_put_u64(w, *(const uint32_t *)src);
        break;
    case DS_FK_U64:
        ds_mp_put_u64(w, *(const uint64_t *)src);
        break;
    case DS_FK_I32:
        ds_mp_put_i64(w, *(const int32_t *)src);
        break;
    case DS_FK_I64:
        ds_mp_put_i64(w, *(const int64_t *)src);
        break;
    case DS_FK_F64:
        ds_mp_put_f64(w, *(const double *)src);
        break;
    case DS_FK_ID:
        ds_mp_put_u64(w, ((const ds_actor_id_t *)src)->v);
        break;
    case DS_FK_STR:
        ds_mp_put_str(w, ((const ds_str_t *)src)->ptr, ((const ds_str_t *)src)->len);
        break;
    case DS_FK_BIN:
        ds_mp_put_bin(w, ((const ds_bytes_t *)src)->ptr, ((const ds_bytes_t *)src)->len);
        break;
    }
}

int ds_catalog_encode(const ds_msg_desc_t *desc, const void *const *src, ds_msg_t **out)
{
    /* Exact size first, so that small messages stay inline (runtime/msg.h). Each field is
     * under 2^32 + 5 bytes and a message has few fields, so the sum cannot overflow. */
    size_t size = ds_mp_size_array(desc->nfields);
    for (uint32_t i = 0; i < desc->nfields; i++) {
        size_t fs;
        int rc = field_size(&desc->fields[i], src[i], &fs);
        if (rc < 0) {
            return rc;
        }
        size += fs;
    }
    if (size > DS_MSG_PAYLOAD_MAX) {
        return -EMSGSIZE;
    }
    uint8_t *payload;
    ds_msg_t *m;
    int rc = ds_msg_alloc(desc->type, size, &payload, &m);
    if (rc < 0) {
        return rc;
    }
    ds_mp_writer_t w;
    ds_mp_writer_init(&w, payload, size);
    ds_mp_put_array(&w, desc->nfields);
    for (uint32_t i = 0; i < desc->nfields; i++) {
        field_put(&w, desc->fields[i].kind, src[i]);
    }
    /* The size was exact: running out of room here would be a bug in the sizing above. */
    if (ds_mp_writer_err(&w) != 0 || ds_mp_writer_len(&w) != size) {
        abort();
    }
    ds_msg_seal(m, size);
    *out = m;
    return 0;
}

/* Decoding. */

/* Reads one field and, when dst is not NULL, stores it there. 0 or DS_EDECODE. */
static int field_get(ds_mp_reader_t *r, const ds_field_desc_t *f, void *dst)
{
    union {
        bool b;
        uint32_t u32;
        uint64_t u64;
        int32_t i32;
        int64_t i64;
        double f64;
        ds_str_t str;
        ds_bytes_t bin;
    } v;
    size_t size = 0;
    int rc = DS_EDECODE;
    switch (f->kind) {
    case DS_FK_BOOL:
        rc = ds_mp_get_bool(r, &v.b);
        size = sizeof(v.b);
        break;
    case DS_FK_U32:
        rc = ds_mp_get_u32(r, &v.u32);
        size = sizeof(v.u32);
        break;
    case DS_FK_U64:
    case DS_FK_ID: /* ds_actor_id_t is a struct of one uint64_t */
        rc = ds_mp_get_u64(r, &v.u64);
        size = sizeof(v.u64);
        break;
    case DS_FK_I32:
        rc = ds_mp_get_i32(r, &v.i32);
        size = sizeof(v.i32);
        break;
    case DS_FK_I64:
        rc = ds_mp_get_i64(r, &v.i64);
        size = sizeof(v.i64);
        break;
    case DS_FK_F64:
        rc = ds_mp_get_f64(r, &v.f64);
        size = sizeof(v.f64);
        break;
    case DS_FK_STR:
        rc = ds_mp_get_text(r, &v.str.ptr, &v.str.len);
        rc = rc == 0 && v.str.len > f->max ? DS_EDECODE : rc;
        size = sizeof(v.str);
        break;
    case DS_FK_BIN:
        rc = ds_mp_get_bin(r, &v.bin.ptr, &v.bin.len);
        rc = rc == 0 && v.bin.len > f->max ? DS_EDECODE : rc;
        size = sizeof(v.bin);
        break;
    }
    if (rc == 0 && dst != NULL) {
        memcpy(dst, &v, size);
    }
    return rc;
}

_Static_assert(sizeof(ds_actor_id_t) == sizeof(uint64_t), "an actor id is one uint64_t");

int ds_catalog_decode_bytes(const ds_msg_desc_t *desc, const uint8_t *p, size_t n, void *const *dst)
{
    ds_mp_reader_t r;
    ds_mp_reader_init(&r, p, n);
    uint32_t count;
    if (ds_mp_get_array(&r, &count) != 0 || count != desc->nfields) {
        return DS_EDECODE;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (field_get(&r, &desc->fields[i], dst == NULL ? NULL : dst[i]) != 0) {
            return DS_EDECODE;
        }
    }
    return ds_mp_reader_left(&r) == 0 ? 0 : DS_EDECODE;
}

int ds_catalog_decode(const ds_msg_desc_t *desc, const ds_msg_t *m, void *const *dst)
{
    if (m->type != desc->type) {
        return DS_EDECODE;
    }
    return ds_catalog_decode_bytes(desc, m->data, m->len, dst);
}

int ds_catalog_validate(uint32_t type, const uint8_t *p, size_t n)
{
    const ds_msg_desc_t *desc = ds_catalog_find(type);
    if (desc == NULL) {
        return DS_EUNKNOWN;
    }
    return ds_catalog_decode_bytes(desc, p, n, NULL);
}

int ds_msg_error(const ds_msg_t *msg)
{
    const uint16_t want = DS_MSG_F_REPLY | DS_MSG_F_ERROR;
    if ((msg->flags & want) != want || msg->type != DS_MT_ERROR) {
        return 0;
    }
    ds_error_t e;
    if (ds_error_decode(msg, &e) != 0 || e.code >= 0 || e.code < INT_MIN) {
        return DS_EDECODE; /* an error reply that carries no error is itself one */
    }
    return (int)e.code;
}
