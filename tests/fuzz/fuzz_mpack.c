/* fuzz_mpack: the msgpack reader over arbitrary bytes, cross-checked three ways.
 *  1. ds_mp_skip() against msgpack-c: every value we accept, msgpack_unpack_next() accepts too,
 *     with the same length, and our typed reads agree with its object on scalars. (The
 *     converse does not hold by design: we refuse extension types and nesting deeper than
 *     asked, which msgpack-c takes. Depth is capped at msgpack-c's own limit, 32.)
 *  2. ds_mp_skip() against a walk that reads every value with the typed getters: both accept
 *     or both refuse, ending at the same place.
 *  3. Typed getters agree with each other (u32 vs u64, i32 vs i64, text vs str + UTF-8). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "runtime/err.h"
#include "runtime/mpack.h"

enum {
    DEPTH = 32
};

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

/* Reads one scalar with the getter its type calls for, cross-checking the related getters. */
static int read_scalar(ds_mp_reader_t *r, ds_mp_type_t t)
{
    ds_mp_reader_t probe = *r;
    switch (t) {
    case DS_MP_NIL:
        return ds_mp_get_nil(r);
    case DS_MP_BOOL: {
        bool b;
        return ds_mp_get_bool(r, &b);
    }
    case DS_MP_UINT: {
        uint64_t u;
        uint32_t u32;
        int rc = ds_mp_get_u64(r, &u);
        check(rc == 0);
        check((ds_mp_get_u32(&probe, &u32) == 0) == (u <= UINT32_MAX));
        return rc;
    }
    case DS_MP_INT: {
        int64_t i;
        int32_t i32;
        uint64_t u;
        check(ds_mp_get_u64(&probe, &u) == DS_EDECODE);
        int rc = ds_mp_get_i64(r, &i);
        check(rc == 0 && i < 0);
        check((ds_mp_get_i32(&probe, &i32) == 0) == (i >= INT32_MIN));
        return rc;
    }
    case DS_MP_FLOAT: {
        double d;
        return ds_mp_get_f64(r, &d);
    }
    case DS_MP_STR: {
        const char *s;
        const char *s2;
        uint32_t n;
        uint32_t n2;
        int rc = ds_mp_get_str(r, &s, &n);
        if (rc == 0) {
            bool utf8 = ds_mp_utf8_valid(s, n);
            check((ds_mp_get_text(&probe, &s2, &n2) == 0) == utf8);
        }
        return rc;
    }
    case DS_MP_BIN: {
        const uint8_t *p;
        uint32_t n;
        return ds_mp_get_bin(r, &p, &n);
    }
    default:
        return DS_EDECODE;
    }
}

/* Reads one value with the typed getters, iteratively, with the same depth rule as skip. */
static int walk(ds_mp_reader_t *r, unsigned max_depth)
{
    uint64_t left[DEPTH + 1];
    unsigned depth = 0;
    left[0] = 1;
    for (;;) {
        while (left[depth] == 0 && depth > 0) {
            depth--;
        }
        if (left[depth] == 0) {
            return 0;
        }
        left[depth]--;
        ds_mp_type_t t;
        if (ds_mp_peek(r, &t) != 0) {
            return DS_EDECODE;
        }
        if (t == DS_MP_ARRAY || t == DS_MP_MAP) {
            uint32_t n;
            int rc = t == DS_MP_ARRAY ? ds_mp_get_array(r, &n) : ds_mp_get_map(r, &n);
            if (rc != 0 || depth >= max_depth) {
                return DS_EDECODE;
            }
            left[++depth] = t == DS_MP_MAP ? 2 * (uint64_t)n : n;
        } else if (read_scalar(r, t) != 0) {
            return DS_EDECODE;
        }
    }
}

/* msgpack-c's view of the value at data[pos..size) must match ours, which ended at end. */
static void compare_with_msgpack_c(const uint8_t *data, size_t size, size_t pos, size_t end)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = pos;
    check(msgpack_unpack_next(&up, (const char *)data, size, &off) == MSGPACK_UNPACK_SUCCESS);
    check(off == end);
    ds_mp_reader_t r;
    ds_mp_reader_init(&r, data + pos, end - pos);
    const msgpack_object *o = &up.data;
    ds_mp_type_t t;
    check(ds_mp_peek(&r, &t) == 0);
    uint64_t u;
    int64_t i;
    uint32_t n;
    const char *s;
    const uint8_t *b;
    switch (t) {
    case DS_MP_UINT:
        check(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
        check(ds_mp_get_u64(&r, &u) == 0 && u == o->via.u64);
        break;
    case DS_MP_INT:
        check(o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
        check(ds_mp_get_i64(&r, &i) == 0 && i == o->via.i64);
        break;
    case DS_MP_STR:
        check(o->type == MSGPACK_OBJECT_STR);
        check(ds_mp_get_str(&r, &s, &n) == 0 && n == o->via.str.size);
        check(n == 0 || memcmp(s, o->via.str.ptr, n) == 0);
        break;
    case DS_MP_BIN:
        check(o->type == MSGPACK_OBJECT_BIN);
        check(ds_mp_get_bin(&r, &b, &n) == 0 && n == o->via.bin.size);
        check(n == 0 || memcmp(b, o->via.bin.ptr, n) == 0);
        break;
    case DS_MP_ARRAY:
        check(o->type == MSGPACK_OBJECT_ARRAY);
        check(ds_mp_get_array(&r, &n) == 0 && n == o->via.array.size);
        break;
    case DS_MP_MAP:
        check(o->type == MSGPACK_OBJECT_MAP);
        check(ds_mp_get_map(&r, &n) == 0 && n == o->via.map.size);
        break;
    case DS_MP_NIL:
        check(o->type == MSGPACK_OBJECT_NIL);
        break;
    case DS_MP_BOOL:
        check(o->type == MSGPACK_OBJECT_BOOLEAN);
        break;
    case DS_MP_FLOAT:
        check(o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64);
        break;
    }
    msgpack_unpacked_destroy(&up);
}

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    /* The first byte picks the depth limit; the rest is a stream of values. */
    unsigned max_depth = data[0] % (DEPTH + 1);
    data++;
    size--;
    ds_mp_reader_t r;
    ds_mp_reader_init(&r, data, size);
    while (ds_mp_reader_left(&r) > 0) {
        size_t pos = ds_mp_reader_pos(&r);
        ds_mp_reader_t w = r;
        int rc = ds_mp_skip(&r, max_depth);
        int wrc = walk(&w, max_depth);
        check((rc == 0) == (wrc == 0));
        if (rc != 0) {
            check(rc == DS_EDECODE && ds_mp_reader_pos(&r) == pos);
            break;
        }
        check(ds_mp_reader_pos(&w) == ds_mp_reader_pos(&r));
        compare_with_msgpack_c(data, size, pos, ds_mp_reader_pos(&r));
    }
    return 0;
}
