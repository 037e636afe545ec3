/* test_mpack: the msgpack writer and reader, checked byte for byte against the spec and against
 * msgpack-c as an oracle. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "runtime/err.h"
#include "runtime/mpack.h"

typedef struct enc_case {
    int64_t value;
    bool is_signed;
    uint64_t uvalue;
    size_t n;
    uint8_t bytes[9];
} enc_case_t;

static void check_bytes(const ds_mp_writer_t *w, const uint8_t *buf, const uint8_t *want, size_t n)
{
    assert_int_equal(ds_mp_writer_err(w), 0);
    assert_int_equal(ds_mp_writer_len(w), n);
    assert_memory_equal(buf, want, n);
}

static void test_uint_boundaries(void **state)
{
    (void)state;
    static const enc_case_t cases[] = {
        {0, false, 0, 1, {0x00}},
        {0, false, 127, 1, {0x7f}},
        {0, false, 128, 2, {0xcc, 0x80}},
        {0, false, 255, 2, {0xcc, 0xff}},
        {0, false, 256, 3, {0xcd, 0x01, 0x00}},
        {0, false, 65535, 3, {0xcd, 0xff, 0xff}},
        {0, false, 65536, 5, {0xce, 0x00, 0x01, 0x00, 0x00}},
        {0, false, UINT32_MAX, 5, {0xce, 0xff, 0xff, 0xff, 0xff}},
        {0, false, (uint64_t)UINT32_MAX + 1, 9, {0xcf, 0, 0, 0, 1, 0, 0, 0, 0}},
        {0, false, UINT64_MAX, 9, {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t buf[16];
        ds_mp_writer_t w;
        ds_mp_writer_init(&w, buf, sizeof(buf));
        assert_int_equal(ds_mp_put_u64(&w, cases[i].uvalue), 0);
        check_bytes(&w, buf, cases[i].bytes, cases[i].n);
        assert_int_equal(ds_mp_size_u64(cases[i].uvalue), cases[i].n);

        ds_mp_reader_t r;
        uint64_t v = 0;
        ds_mp_reader_init(&r, buf, cases[i].n);
        assert_int_equal(ds_mp_get_u64(&r, &v), 0);
        assert_true(v == cases[i].uvalue);
        assert_int_equal(ds_mp_reader_left(&r), 0);
    }
}

static void test_int_boundaries(void **state)
{
    (void)state;
    static const enc_case_t cases[] = {
        {-1, true, 0, 1, {0xff}},
        {-32, true, 0, 1, {0xe0}},
        {-33, true, 0, 2, {0xd0, 0xdf}},
        {-128, true, 0, 2, {0xd0, 0x80}},
        {-129, true, 0, 3, {0xd1, 0xff, 0x7f}},
        {-32768, true, 0, 3, {0xd1, 0x80, 0x00}},
        {-32769, true, 0, 5, {0xd2, 0xff, 0xff, 0x7f, 0xff}},
        {INT32_MIN, true, 0, 5, {0xd2, 0x80, 0x00, 0x00, 0x00}},
        {(int64_t)INT32_MIN - 1,
         true,
         0,
         9,
         {0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff}},
        {INT64_MIN, true, 0, 9, {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}},
        {0, true, 0, 1, {0x00}},
        {127, true, 0, 1, {0x7f}},
        {128, true, 0, 2, {0xcc, 0x80}},
        {INT64_MAX, true, 0, 9, {0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t buf[16];
        ds_mp_writer_t w;
        ds_mp_writer_init(&w, buf, sizeof(buf));
        assert_int_equal(ds_mp_put_i64(&w, cases[i].value), 0);
        check_bytes(&w, buf, cases[i].bytes, cases[i].n);
        assert_int_equal(ds_mp_size_i64(cases[i].value), cases[i].n);

        ds_mp_reader_t r;
        int64_t v = 0;
        ds_mp_reader_init(&r, buf, cases[i].n);
        assert_int_equal(ds_mp_get_i64(&r, &v), 0);
        assert_true(v == cases[i].value);
        assert_int_equal(ds_mp_reader_left(&r), 0);
    }
}

/* Header bytes of a str/bin/array/map of length n, and the expected header length. */
typedef struct len_case {
    uint32_t n;
    size_t hlen;
    uint8_t head[5];
} len_case_t;

static void test_str_bin_boundaries(void **state)
{
    (void)state;
    static const len_case_t str_cases[] = {
        {0, 1, {0xa0}},
        {31, 1, {0xbf}},
        {32, 2, {0xd9, 32}},
        {255, 2, {0xd9, 0xff}},
        {256, 3, {0xda, 0x01, 0x00}},
        {65535, 3, {0xda, 0xff, 0xff}},
        {65536, 5, {0xdb, 0x00, 0x01, 0x00, 0x00}},
    };
    static const len_case_t bin_cases[] = {
        {0, 2, {0xc4, 0}},
        {255, 2, {0xc4, 0xff}},
        {256, 3, {0xc5, 0x01, 0x00}},
        {65535, 3, {0xc5, 0xff, 0xff}},
        {65536, 5, {0xc6, 0x00, 0x01, 0x00, 0x00}},
    };
    enum {
        BIG = 65536 + 5
    };
    char *data = malloc(BIG);
    uint8_t *buf = malloc(BIG + 8);
    assert_non_null(data);
    assert_non_null(buf);
    memset(data, 'x', BIG);
    for (int kind = 0; kind < 2; kind++) {
        const len_case_t *cases = kind == 0 ? str_cases : bin_cases;
        size_t count = kind == 0 ? sizeof(str_cases) / sizeof(str_cases[0])
                                 : sizeof(bin_cases) / sizeof(bin_cases[0]);
        for (size_t i = 0; i < count; i++) {
            ds_mp_writer_t w;
            ds_mp_writer_init(&w, buf, BIG + 8);
            int rc = kind == 0 ? ds_mp_put_str(&w, data, cases[i].n)
                               : ds_mp_put_bin(&w, data, cases[i].n);
            assert_int_equal(rc, 0);
            assert_int_equal(ds_mp_writer_len(&w), cases[i].hlen + cases[i].n);
            assert_memory_equal(buf, cases[i].head, cases[i].hlen);
            assert_memory_equal(buf + cases[i].hlen, data, cases[i].n);
            size_t sz = kind == 0 ? ds_mp_size_str(cases[i].n) : ds_mp_size_bin(cases[i].n);
            assert_int_equal(sz, cases[i].hlen + cases[i].n);

            ds_mp_reader_t r;
            const char *sp = NULL;
            const uint8_t *bp = NULL;
            uint32_t len = 0;
            ds_mp_reader_init(&r, buf, ds_mp_writer_len(&w));
            rc = kind == 0 ? ds_mp_get_str(&r, &sp, &len) : ds_mp_get_bin(&r, &bp, &len);
            assert_int_equal(rc, 0);
            assert_int_equal(len, cases[i].n);
            /* zero copy: the pointer is into the input, just after the header */
            const void *p = kind == 0 ? (const void *)sp : (const void *)bp;
            assert_ptr_equal(p, buf + cases[i].hlen);
            assert_int_equal(ds_mp_reader_left(&r), 0);
        }
    }
    free(data);
    free(buf);
}

static void test_array_map_boundaries(void **state)
{
    (void)state;
    static const len_case_t arr[] = {
        {0, 1, {0x90}},
        {15, 1, {0x9f}},
        {16, 3, {0xdc, 0x00, 0x10}},
        {65535, 3, {0xdc, 0xff, 0xff}},
        {65536, 5, {0xdd, 0x00, 0x01, 0x00, 0x00}},
        {UINT32_MAX, 5, {0xdd, 0xff, 0xff, 0xff, 0xff}},
    };
    static const len_case_t map[] = {
        {0, 1, {0x80}},
        {15, 1, {0x8f}},
        {16, 3, {0xde, 0x00, 0x10}},
        {65535, 3, {0xde, 0xff, 0xff}},
        {65536, 5, {0xdf, 0x00, 0x01, 0x00, 0x00}},
        {UINT32_MAX, 5, {0xdf, 0xff, 0xff, 0xff, 0xff}},
    };
    for (size_t i = 0; i < sizeof(arr) / sizeof(arr[0]); i++) {
        for (int kind = 0; kind < 2; kind++) {
            const len_case_t *c = kind == 0 ? &arr[i] : &map[i];
            uint8_t buf[8];
            ds_mp_writer_t w;
            ds_mp_writer_init(&w, buf, sizeof(buf));
            assert_int_equal(kind == 0 ? ds_mp_put_array(&w, c->n) : ds_mp_put_map(&w, c->n), 0);
            check_bytes(&w, buf, c->head, c->hlen);
            if (kind == 0) {
                assert_int_equal(ds_mp_size_array(c->n), c->hlen);
            }
            ds_mp_reader_t r;
            uint32_t n = 0;
            ds_mp_reader_init(&r, buf, c->hlen);
            assert_int_equal(kind == 0 ? ds_mp_get_array(&r, &n) : ds_mp_get_map(&r, &n), 0);
            assert_int_equal(n, c->n);
            /* the wrong container kind is refused */
            ds_mp_reader_init(&r, buf, c->hlen);
            assert_int_equal(kind == 0 ? ds_mp_get_map(&r, &n) : ds_mp_get_array(&r, &n),
                             DS_EDECODE);
        }
    }
}

static void test_scalars(void **state)
{
    (void)state;
    uint8_t buf[32];
    ds_mp_writer_t w;
    ds_mp_writer_init(&w, buf, sizeof(buf));
    assert_int_equal(ds_mp_put_nil(&w), 0);
    assert_int_equal(ds_mp_put_bool(&w, false), 0);
    assert_int_equal(ds_mp_put_bool(&w, true), 0);
    assert_int_equal(ds_mp_put_f64(&w, 1.5), 0);
    static const uint8_t want[] = {0xc0, 0xc2, 0xc3, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0};
    check_bytes(&w, buf, want, sizeof(want));

    ds_mp_reader_t r;
    bool b = true;
    double d = 0;
    ds_mp_reader_init(&r, buf, ds_mp_writer_len(&w));
    assert_int_equal(ds_mp_get_nil(&r), 0);
    assert_int_equal(ds_mp_get_bool(&r, &b), 0);
    assert_false(b);
    assert_int_equal(ds_mp_get_bool(&r, &b), 0);
    assert_true(b);
    assert_int_equal(ds_mp_get_f64(&r, &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(ds_mp_reader_left(&r), 0);

    /* float32 widens exactly */
    static const uint8_t f32[] = {0xca, 0x3f, 0xc0, 0x00, 0x00};
    ds_mp_reader_init(&r, f32, sizeof(f32));
    assert_int_equal(ds_mp_get_f64(&r, &d), 0);
    assert_true(d == 1.5);
    /* NaN and infinities round-trip bit for bit */
    ds_mp_writer_init(&w, buf, sizeof(buf));
    assert_int_equal(ds_mp_put_f64(&w, INFINITY), 0);
    ds_mp_reader_init(&r, buf, ds_mp_writer_len(&w));
    assert_int_equal(ds_mp_get_f64(&r, &d), 0);
    assert_true(isinf(d) && d > 0);
}

static void test_writer_sticky_overflow(void **state)
{
    (void)state;
    uint8_t buf[8];
    memset(buf, 0xee, sizeof(buf));
    ds_mp_writer_t w;
    ds_mp_writer_init(&w, buf, 3);
    assert_int_equal(ds_mp_put_u64(&w, 1), 0);
    assert_int_equal(ds_mp_put_u64(&w, 300), -EMSGSIZE); /* needs 3, 2 left */
    assert_int_equal(ds_mp_writer_len(&w), 1);
    assert_int_equal(buf[1], 0xee);                 /* nothing of the failed put was written */
    assert_int_equal(ds_mp_put_nil(&w), -EMSGSIZE); /* would fit, but the error sticks */
    assert_int_equal(ds_mp_writer_len(&w), 1);
    assert_int_equal(ds_mp_writer_err(&w), -EMSGSIZE);

    /* a str is all or nothing: header and data together */
    ds_mp_writer_init(&w, buf, 4);
    assert_int_equal(ds_mp_put_str(&w, "abcd", 4), -EMSGSIZE);
    assert_int_equal(ds_mp_writer_len(&w), 0);

    /* a writer without a buffer takes nothing */
    ds_mp_writer_init(&w, NULL, 100);
    assert_int_equal(ds_mp_put_nil(&w), -EMSGSIZE);

    /* lengths past 32 bits are refused without touching the data pointer */
    ds_mp_writer_init(&w, buf, sizeof(buf));
    if (SIZE_MAX > UINT32_MAX) {
        assert_int_equal(ds_mp_put_bin(&w, buf, (size_t)UINT32_MAX + 1), -EMSGSIZE);
        assert_int_equal(ds_mp_put_str(&w, "", (size_t)UINT32_MAX + 1), -EMSGSIZE);
        assert_true(ds_mp_size_str((size_t)UINT32_MAX + 1) == SIZE_MAX);
    }
}

static void test_reader_strict_ints(void **state)
{
    (void)state;
    static const uint8_t neg1[] = {0xff};
    static const uint8_t u64max[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t u64_5[] = {0xcf, 0, 0, 0, 0, 0, 0, 0, 5}; /* non-minimal 5 */
    static const uint8_t i64_7[] = {0xd3, 0, 0, 0, 0, 0, 0, 0, 7}; /* signed form of 7 */
    static const uint8_t i8_m5[] = {0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb};
    static const uint8_t u32_over[] = {0xcf, 0, 0, 0, 1, 0, 0, 0, 0}; /* 2^32 */
    static const uint8_t i32_over[] = {0xce, 0x80, 0, 0, 0};          /* INT32_MAX + 1 */
    static const uint8_t i32_under[] = {0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff};
    ds_mp_reader_t r;
    uint64_t u = 42;
    uint32_t u32 = 42;
    int64_t i = 42;
    int32_t i32 = 42;

    ds_mp_reader_init(&r, neg1, sizeof(neg1));
    assert_int_equal(ds_mp_get_u64(&r, &u), DS_EDECODE);
    assert_int_equal(ds_mp_get_u32(&r, &u32), DS_EDECODE);
    assert_int_equal(ds_mp_reader_pos(&r), 0); /* no progress on failure */
    assert_int_equal(u, 42);                   /* nor any output */
    assert_int_equal(ds_mp_get_i32(&r, &i32), 0);
    assert_int_equal(i32, -1);

    ds_mp_reader_init(&r, u64max, sizeof(u64max));
    assert_int_equal(ds_mp_get_i64(&r, &i), DS_EDECODE);
    assert_int_equal(i, 42);
    assert_int_equal(ds_mp_get_u64(&r, &u), 0);
    assert_true(u == UINT64_MAX);

    ds_mp_reader_init(&r, u64_5, sizeof(u64_5));
    assert_int_equal(ds_mp_get_i64(&r, &i), 0);
    assert_int_equal(i, 5);
    ds_mp_reader_init(&r, i64_7, sizeof(i64_7));
    assert_int_equal(ds_mp_get_u32(&r, &u32), 0);
    assert_int_equal(u32, 7);
    ds_mp_reader_init(&r, i8_m5, sizeof(i8_m5));
    assert_int_equal(ds_mp_get_i32(&r, &i32), 0);
    assert_int_equal(i32, -5);
    ds_mp_reader_init(&r, u32_over, sizeof(u32_over));
    assert_int_equal(ds_mp_get_u32(&r, &u32), DS_EDECODE);
    ds_mp_reader_init(&r, i32_over, sizeof(i32_over));
    assert_int_equal(ds_mp_get_i32(&r, &i32), DS_EDECODE);
    assert_int_equal(ds_mp_get_u32(&r, &u32), 0);
    assert_int_equal(u32, 0x80000000U);
    ds_mp_reader_init(&r, i32_under, sizeof(i32_under));
    assert_int_equal(ds_mp_get_i32(&r, &i32), DS_EDECODE);
    assert_int_equal(ds_mp_get_i64(&r, &i), 0);
    assert_true(i == (int64_t)INT32_MIN - 1);
}

static void test_reader_wrong_types(void **state)
{
    (void)state;
    static const uint8_t nil[] = {0xc0};
    static const uint8_t bin[] = {0xc4, 0x01, 'a'};
    static const uint8_t str[] = {0xa1, 'a'};
    static const uint8_t one[] = {0x01};
    ds_mp_reader_t r;
    uint64_t u;
    bool b;
    double d;
    const char *s;
    const uint8_t *p;
    uint32_t n;

    ds_mp_reader_init(&r, nil, sizeof(nil));
    assert_int_equal(ds_mp_get_u64(&r, &u), DS_EDECODE);
    assert_int_equal(ds_mp_get_bool(&r, &b), DS_EDECODE);
    assert_int_equal(ds_mp_get_array(&r, &n), DS_EDECODE);
    ds_mp_reader_init(&r, bin, sizeof(bin));
    assert_int_equal(ds_mp_get_str(&r, &s, &n), DS_EDECODE);
    assert_int_equal(ds_mp_get_bin(&r, &p, &n), 0);
    ds_mp_reader_init(&r, str, sizeof(str));
    assert_int_equal(ds_mp_get_bin(&r, &p, &n), DS_EDECODE);
    assert_int_equal(ds_mp_get_nil(&r), DS_EDECODE);
    ds_mp_reader_init(&r, one, sizeof(one));
    assert_int_equal(ds_mp_get_f64(&r, &d), DS_EDECODE); /* an integer is not a float */
    assert_int_equal(ds_mp_get_bool(&r, &b), DS_EDECODE);

    /* empty input */
    ds_mp_reader_init(&r, NULL, 0);
    assert_int_equal(ds_mp_get_nil(&r), DS_EDECODE);
    assert_int_equal(ds_mp_skip(&r, 4), DS_EDECODE);
}

static void test_peek(void **state)
{
    (void)state;
    static const struct {
        uint8_t byte;
        ds_mp_type_t type;
    } cases[] = {
        {0x00, DS_MP_UINT}, {0x80, DS_MP_MAP},  {0x90, DS_MP_ARRAY}, {0xa0, DS_MP_STR},
        {0xc0, DS_MP_NIL},  {0xc2, DS_MP_BOOL}, {0xe0, DS_MP_INT},   {0xff, DS_MP_INT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ds_mp_reader_t r;
        ds_mp_type_t t = 0;
        ds_mp_reader_init(&r, &cases[i].byte, 1);
        assert_int_equal(ds_mp_peek(&r, &t), 0);
        assert_int_equal(t, cases[i].type);
        assert_int_equal(ds_mp_reader_pos(&r), 0);
    }
}

static void test_ext_and_c1_refused(void **state)
{
    (void)state;
    /* fixext 1/2/4/8/16, ext 8/16/32, and the never-used 0xc1, each complete */
    static const uint8_t tags[] = {0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7, 0xc8, 0xc9, 0xc1};
    for (size_t i = 0; i < sizeof(tags); i++) {
        uint8_t buf[32] = {0};
        buf[0] = tags[i];
        ds_mp_reader_t r;
        ds_mp_type_t t;
        ds_mp_reader_init(&r, buf, sizeof(buf));
        assert_int_equal(ds_mp_peek(&r, &t), DS_EDECODE);
        assert_int_equal(ds_mp_skip(&r, 8), DS_EDECODE);
        assert_int_equal(ds_mp_reader_pos(&r), 0);
    }
    /* also when nested */
    static const uint8_t nested[] = {0x91, 0xd4, 0x01, 0x02};
    ds_mp_reader_t r;
    ds_mp_reader_init(&r, nested, sizeof(nested));
    assert_int_equal(ds_mp_skip(&r, 8), DS_EDECODE);
}

/* A document with every type, nested, written with our writer. */
static size_t write_doc(uint8_t *buf, size_t cap)
{
    static uint8_t blob[300];
    memset(blob, 0x5a, sizeof(blob));
    ds_mp_writer_t w;
    ds_mp_writer_init(&w, buf, cap);
    ds_mp_put_map(&w, 3);
    ds_mp_put_str(&w, "ints", 4);
    ds_mp_put_array(&w, 6);
    ds_mp_put_u64(&w, 5);
    ds_mp_put_u64(&w, 200);
    ds_mp_put_u64(&w, 70000);
    ds_mp_put_u64(&w, UINT64_MAX);
    ds_mp_put_i64(&w, -100);
    ds_mp_put_i64(&w, INT64_MIN);
    ds_mp_put_str(&w, "misc", 4);
    ds_mp_put_array(&w, 5);
    ds_mp_put_nil(&w);
    ds_mp_put_bool(&w, true);
    ds_mp_put_f64(&w, -2.25);
    ds_mp_put_bin(&w, blob, sizeof(blob));
    ds_mp_put_array(&w, 0);
    ds_mp_put_str(&w, "a longer key, past thirty-one bytes", 35);
    ds_mp_put_map(&w, 1);
    ds_mp_put_u64(&w, 1);
    ds_mp_put_array(&w, 1);
    ds_mp_put_str(&w, "deep", 4);
    assert_int_equal(ds_mp_writer_err(&w), 0);
    return ds_mp_writer_len(&w);
}

static void test_truncation_every_offset(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t n = write_doc(buf, sizeof(buf));
    ds_mp_reader_t r;
    ds_mp_reader_init(&r, buf, n);
    assert_int_equal(ds_mp_skip(&r, 3), 0);
    assert_int_equal(ds_mp_reader_pos(&r), n);
    for (size_t k = 0; k < n; k++) {
        /* a copy of exactly k bytes, so ASan catches any read past the end */
        uint8_t *p = malloc(k == 0 ? 1 : k);
        assert_non_null(p);
        memcpy(p, buf, k);
        ds_mp_reader_init(&r, p, k);
        assert_int_equal(ds_mp_skip(&r, 3), DS_EDECODE);
        assert_int_equal(ds_mp_reader_pos(&r), 0);
        free(p);
    }
}

static void test_skip_depth(void **state)
{
    (void)state;
    uint8_t buf[128];
    memset(buf, 0x91, 100); /* 100 nested one-element arrays */
    buf[100] = 0x01;
    ds_mp_reader_t r;

    ds_mp_reader_init(&r, buf + 90, 11); /* depth 10 */
    assert_int_equal(ds_mp_skip(&r, 9), DS_EDECODE);
    assert_int_equal(ds_mp_skip(&r, 10), 0);
    assert_int_equal(ds_mp_reader_pos(&r), 11);

    ds_mp_reader_init(&r, buf + 100 - DS_MP_DEPTH_MAX, DS_MP_DEPTH_MAX + 1);
    assert_int_equal(ds_mp_skip(&r, DS_MP_DEPTH_MAX), 0);
    ds_mp_reader_init(&r, buf, 101); /* depth 100: clamped to DS_MP_DEPTH_MAX */
    assert_int_equal(ds_mp_skip(&r, 1000), DS_EDECODE);

    /* scalars need no depth; an empty array counts as one level */
    static const uint8_t empty[] = {0x90};
    ds_mp_reader_init(&r, buf + 100, 1);
    assert_int_equal(ds_mp_skip(&r, 0), 0);
    ds_mp_reader_init(&r, empty, 1);
    assert_int_equal(ds_mp_skip(&r, 0), DS_EDECODE);
    assert_int_equal(ds_mp_skip(&r, 1), 0);

    /* a map holds two values per pair */
    static const uint8_t map[] = {0x82, 0x01, 0x02, 0x03, 0x04, 0xc0};
    ds_mp_reader_init(&r, map, sizeof(map));
    assert_int_equal(ds_mp_skip(&r, 1), 0);
    assert_int_equal(ds_mp_reader_pos(&r), 5);
    ds_mp_reader_init(&r, map, 4); /* one value short */
    assert_int_equal(ds_mp_skip(&r, 1), DS_EDECODE);

    /* a count beyond the bytes left fails at once */
    static const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    ds_mp_reader_init(&r, huge, sizeof(huge));
    assert_int_equal(ds_mp_skip(&r, 4), DS_EDECODE);
    static const uint8_t huge_str[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    ds_mp_reader_init(&r, huge_str, sizeof(huge_str));
    assert_int_equal(ds_mp_skip(&r, 4), DS_EDECODE);
    const char *s;
    uint32_t len;
    assert_int_equal(ds_mp_get_str(&r, &s, &len), DS_EDECODE);
}

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"plain ascii", 11, true},
        {"nul\0inside", 10, true},
        {"\xc3\xa9", 2, true},              /* é */
        {"\xe2\x82\xac", 3, true},          /* € */
        {"\xf0\x9f\x98\x80", 4, true},      /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4, true},      /* U+10FFFF */
        {"\xed\x9f\xbf", 3, true},          /* U+D7FF, just below the surrogates */
        {"\xc0\x80", 2, false},             /* overlong NUL */
        {"\xc1\xbf", 2, false},             /* overlong */
        {"\xe0\x80\x80", 3, false},         /* overlong */
        {"\xf0\x80\x80\x80", 4, false},     /* overlong */
        {"\xed\xa0\x80", 3, false},         /* U+D800, a surrogate */
        {"\xed\xbf\xbf", 3, false},         /* U+DFFF */
        {"\xf4\x90\x80\x80", 4, false},     /* U+110000 */
        {"\x80", 1, false},                 /* lone continuation */
        {"\xe2\x82", 2, false},             /* truncated */
        {"a\xf0\x9f\x98", 4, false},        /* truncated at the end */
        {"\xe2\x28\xac", 3, false},         /* bad continuation */
        {"\xf8\x88\x80\x80\x80", 5, false}, /* 5-byte form */
        {"\xff", 1, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(ds_mp_utf8_valid(cases[i].s, cases[i].n), cases[i].ok);
        uint8_t buf[16];
        ds_mp_writer_t w;
        ds_mp_writer_init(&w, buf, sizeof(buf));
        assert_int_equal(ds_mp_put_str(&w, cases[i].s, cases[i].n), 0);
        ds_mp_reader_t r;
        const char *p = NULL;
        uint32_t n = 99;
        ds_mp_reader_init(&r, buf, ds_mp_writer_len(&w));
        assert_int_equal(ds_mp_get_text(&r, &p, &n), cases[i].ok ? 0 : DS_EDECODE);
        if (cases[i].ok) {
            assert_int_equal(n, cases[i].n);
        } else {
            assert_int_equal(n, 99);
            assert_int_equal(ds_mp_reader_pos(&r), 0);
        }
    }
}

/* Differential checks against msgpack-c. */

static void test_ours_unpack_with_msgpack_c(void **state)
{
    (void)state;
    static const uint64_t uvals[] = {
        0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX, (uint64_t)UINT32_MAX + 1, UINT64_MAX};
    static const int64_t ivals[] = {
        -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN, (int64_t)INT32_MIN - 1, INT64_MIN};
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
    enum {
        CAP = 1 << 19
    };
    uint8_t *buf = malloc(CAP);
    char *text = malloc(65536);
    assert_non_null(buf);
    assert_non_null(text);
    memset(text, 'q', 65536);

    ds_mp_writer_t w;
    ds_mp_writer_init(&w, buf, CAP);
    ds_mp_put_array(&w, 11 + 10 + 8 + 8 + 4);
    for (size_t i = 0; i < 11; i++) {
        ds_mp_put_u64(&w, uvals[i]);
    }
    for (size_t i = 0; i < 10; i++) {
        ds_mp_put_i64(&w, ivals[i]);
    }
    for (size_t i = 0; i < 8; i++) {
        ds_mp_put_str(&w, text, lens[i]);
    }
    for (size_t i = 0; i < 8; i++) {
        ds_mp_put_bin(&w, text, lens[i]);
    }
    ds_mp_put_nil(&w);
    ds_mp_put_bool(&w, true);
    ds_mp_put_f64(&w, 3.25);
    ds_mp_put_map(&w, 17);
    for (uint64_t k = 0; k < 17; k++) {
        ds_mp_put_u64(&w, k);
        ds_mp_put_array(&w, 0);
    }
    assert_int_equal(ds_mp_writer_err(&w), 0);
    size_t n = ds_mp_writer_len(&w);

    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&up, (const char *)buf, n, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, n);
    msgpack_object root = up.data;
    assert_int_equal(root.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(root.via.array.size, 41);
    const msgpack_object *o = root.via.array.ptr;
    for (size_t i = 0; i < 11; i++, o++) {
        assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_true(o->via.u64 == uvals[i]);
    }
    for (size_t i = 0; i < 10; i++, o++) {
        assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
        assert_true(o->via.i64 == ivals[i]);
    }
    for (size_t i = 0; i < 8; i++, o++) {
        assert_int_equal(o->type, MSGPACK_OBJECT_STR);
        assert_int_equal(o->via.str.size, lens[i]);
        assert_memory_equal(o->via.str.ptr, text, lens[i]);
    }
    for (size_t i = 0; i < 8; i++, o++) {
        assert_int_equal(o->type, MSGPACK_OBJECT_BIN);
        assert_int_equal(o->via.bin.size, lens[i]);
        assert_memory_equal(o->via.bin.ptr, text, lens[i]);
    }
    assert_int_equal(o[0].type, MSGPACK_OBJECT_NIL);
    assert_int_equal(o[1].type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(o[1].via.boolean);
    assert_int_equal(o[2].type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o[2].via.f64 == 3.25);
    assert_int_equal(o[3].type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o[3].via.map.size, 17);
    assert_true(o[3].via.map.ptr[16].key.via.u64 == 16);
    msgpack_unpacked_destroy(&up);

    /* the same values packed by msgpack-c give the same bytes: both use the smallest forms */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 41);
    for (size_t i = 0; i < 11; i++) {
        msgpack_pack_uint64(&pk, uvals[i]);
    }
    for (size_t i = 0; i < 10; i++) {
        msgpack_pack_int64(&pk, ivals[i]);
    }
    for (size_t i = 0; i < 8; i++) {
        msgpack_pack_str_with_body(&pk, text, lens[i]);
    }
    for (size_t i = 0; i < 8; i++) {
        msgpack_pack_bin_with_body(&pk, text, lens[i]);
    }
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_double(&pk, 3.25);
    msgpack_pack_map(&pk, 17);
    for (uint64_t k = 0; k < 17; k++) {
        msgpack_pack_uint64(&pk, k);
        msgpack_pack_array(&pk, 0);
    }
    assert_int_equal(sb.size, n);
    assert_memory_equal(sb.data, buf, n);
    msgpack_sbuffer_destroy(&sb);
    free(buf);
    free(text);
}

static void test_msgpack_c_reads_with_ours(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_fix_uint64(&pk, 9); /* non-minimal forms are accepted */
    msgpack_pack_fix_int8(&pk, -3);
    msgpack_pack_float(&pk, 0.5f);   /* float32 */
    msgpack_pack_fix_int32(&pk, 77); /* signed encoding of a positive value */
    msgpack_pack_false(&pk);
    msgpack_pack_bin_with_body(&pk, "\x01\x02", 2);
    msgpack_pack_int64(&pk, -1000000);

    ds_mp_reader_t r;
    uint32_t n;
    const char *s;
    uint64_t u;
    int64_t i;
    double d;
    uint32_t u32;
    bool b;
    const uint8_t *p;
    ds_mp_reader_init(&r, sb.data, sb.size);
    assert_int_equal(ds_mp_get_map(&r, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ds_mp_get_str(&r, &s, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(s[0], 'k');
    assert_int_equal(ds_mp_get_u64(&r, &u), 0);
    assert_int_equal(u, 9);
    assert_int_equal(ds_mp_get_i64(&r, &i), 0);
    assert_int_equal(i, -3);
    assert_int_equal(ds_mp_get_f64(&r, &d), 0);
    assert_true(d == 0.5);
    assert_int_equal(ds_mp_get_u32(&r, &u32), 0);
    assert_int_equal(u32, 77);
    assert_int_equal(ds_mp_get_bool(&r, &b), 0);
    assert_false(b);
    assert_int_equal(ds_mp_get_bin(&r, &p, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(p[1], 2);
    assert_int_equal(ds_mp_get_i64(&r, &i), 0);
    assert_int_equal(i, -1000000);
    assert_int_equal(ds_mp_reader_left(&r), 0);

    /* skip agrees with msgpack-c on the length of the whole stream, value by value */
    ds_mp_reader_init(&r, sb.data, sb.size);
    size_t off = 0;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    while (ds_mp_reader_left(&r) > 0) {
        assert_int_equal(ds_mp_skip(&r, 8), 0);
        assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, ds_mp_reader_pos(&r));
    }
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uint_boundaries),
        cmocka_unit_test(test_int_boundaries),
        cmocka_unit_test(test_str_bin_boundaries),
        cmocka_unit_test(test_array_map_boundaries),
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_writer_sticky_overflow),
        cmocka_unit_test(test_reader_strict_ints),
        cmocka_unit_test(test_reader_wrong_types),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_ext_and_c1_refused),
        cmocka_unit_test(test_truncation_every_offset),
        cmocka_unit_test(test_skip_depth),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_ours_unpack_with_msgpack_c),
        cmocka_unit_test(test_msgpack_c_reads_with_ours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
