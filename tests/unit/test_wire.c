/* test_wire: message frames: the exact header bytes, the deadline conversion, and every
 * rejection of a bad frame. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/catalog.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/msg.h"
#include "runtime/wire.h"

enum {
    MAXP = 1024
};

static const int64_t sender_now = 1000000000;   /* 1 s on the sender's clock */
static const int64_t receiver_now = 7000000000; /* 7 s on the receiver's */

static ds_msg_t *sample(void)
{
    ds_down_t v = {.ref = 9, .who = ds_id_make(2, 1, 5), .reason = DS_ENOACTOR};
    ds_msg_t *m = NULL;
    assert_int_equal(ds_down_new(&v, &m), 0);
    m->flags = DS_MSG_F_SYSTEM | DS_MSG_F_ASK;
    m->from = ds_id_make(1, 3, 4);
    m->to = ds_id_make(2, 1, 5);
    m->corr = 0x1122334455667788ULL;
    m->deadline = sender_now + 250;
    m->group = 0xa1b2c3d4U;
    return m;
}

/* A valid frame of the sample message in buf; its length. */
static size_t sample_frame(uint8_t *buf, size_t cap)
{
    ds_msg_t *m = sample();
    size_t len = 0;
    assert_int_equal(ds_wire_encode(m, sender_now, buf, cap, &len), 0);
    ds_msg_free(&m);
    return len;
}

static void test_header_bytes(void **state)
{
    (void)state;
    ds_msg_t *m = sample();
    uint8_t buf[128];
    size_t len = 0;
    assert_int_equal(ds_wire_size(m), DS_WIRE_HEADER + m->len);
    assert_int_equal(ds_wire_encode(m, sender_now, buf, sizeof(buf), &len), 0);
    assert_int_equal(m->len, 14); /* [9, who (9 bytes), -5011 (3 bytes)] */
    assert_int_equal(len, 48 + 14);
    static const uint8_t want[48] = {
        'D',  'S',  1,    0x03,                         /* magic, version, flags */
        2,    0,    0,    0,                            /* type DOWN */
        4,    0,    0,    0x30, 0,    0,    1,    0,    /* from: node 1, gen 3, index 4 */
        5,    0,    0,    0x10, 0,    0,    2,    0,    /* to: node 2, gen 1, index 5 */
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* corr */
        250,  0,    0,    0,    0,    0,    0,    0,    /* ttl */
        0xd4, 0xc3, 0xb2, 0xa1,                         /* group */
        14,   0,    0,    0,                            /* payload length */
    };
    assert_memory_equal(buf, want, sizeof(want));
    assert_memory_equal(buf + 48, m->data, m->len);
    ds_msg_free(&m);
}

static void test_round_trip(void **state)
{
    (void)state;
    ds_msg_t *m = sample();
    uint8_t buf[128];
    size_t len = 0;
    assert_int_equal(ds_wire_encode(m, sender_now, buf, sizeof(buf), &len), 0);
    ds_msg_t *d = NULL;
    assert_int_equal(ds_wire_decode(buf, len, MAXP, receiver_now, &d), 0);
    assert_int_equal(d->type, DS_MT_DOWN);
    assert_int_equal(d->flags, DS_MSG_F_SYSTEM | DS_MSG_F_ASK);
    assert_true(ds_id_eq(d->from, m->from));
    assert_true(ds_id_eq(d->to, m->to));
    assert_true(d->corr == m->corr);
    assert_int_equal(d->group, m->group);
    /* 250 ns left, now on the receiver's clock */
    assert_true(d->deadline == receiver_now + 250);
    assert_int_equal(d->len, m->len);
    assert_memory_equal(d->data, m->data, m->len);
    /* the message owns its payload: it does not point into the frame */
    assert_true(d->data < buf || d->data >= buf + len);
    ds_down_t v = {0};
    assert_int_equal(ds_down_decode(d, &v), 0);
    assert_int_equal(v.ref, 9);
    assert_int_equal(v.reason, DS_ENOACTOR);

    /* re-encoding on the receiver's clock gives the same bytes */
    uint8_t again[128];
    size_t len2 = 0;
    assert_int_equal(ds_wire_encode(d, receiver_now, again, sizeof(again), &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(again, buf, len);
    ds_msg_free(&d);
    ds_msg_free(&m);
}

static void test_deadlines(void **state)
{
    (void)state;
    ds_msg_t *m = sample();
    uint8_t buf[128];
    size_t len = 0;
    ds_msg_t *d = NULL;

    /* no deadline: ttl 0, none on arrival */
    m->deadline = 0;
    assert_int_equal(ds_wire_encode(m, sender_now, buf, sizeof(buf), &len), 0);
    assert_int_equal(buf[32], 0);
    assert_int_equal(ds_wire_decode(buf, len, MAXP, receiver_now, &d), 0);
    assert_true(d->deadline == 0);
    ds_msg_free(&d);

    /* already past, or exactly now: ttl 1, so it stays a deadline and expires at once */
    for (int64_t late = 0; late <= 5; late += 5) {
        m->deadline = sender_now - late;
        assert_int_equal(ds_wire_encode(m, sender_now, buf, sizeof(buf), &len), 0);
        assert_int_equal(buf[32], 1);
        assert_int_equal(ds_wire_decode(buf, len, MAXP, receiver_now, &d), 0);
        assert_true(d->deadline == receiver_now + 1);
        ds_msg_free(&d);
    }

    /* far in the future: the subtraction saturates instead of overflowing */
    m->deadline = INT64_MAX;
    assert_int_equal(ds_wire_encode(m, -5, buf, sizeof(buf), &len), 0);
    assert_int_equal(buf[39], 0x7f);
    ds_msg_free(&m);
}

static void test_encode_errors(void **state)
{
    (void)state;
    ds_msg_t *m = sample();
    uint8_t buf[128];
    size_t len = 777;
    assert_int_equal(ds_wire_encode(m, sender_now, buf, ds_wire_size(m) - 1, &len), -EMSGSIZE);
    assert_int_equal(len, 777);
    assert_int_equal(ds_wire_encode(m, sender_now, buf, ds_wire_size(m), &len), 0);
    m->flags = 0x10;
    assert_int_equal(ds_wire_encode(m, sender_now, buf, sizeof(buf), &len), -EINVAL);
    m->flags = DS_MSG_F_ERROR; /* ERROR without REPLY */
    assert_int_equal(ds_wire_encode(m, sender_now, buf, sizeof(buf), &len), -EINVAL);
    ds_msg_free(&m);
}

/* Decodes a frame that must be refused with want; *out must stay untouched. */
static void expect_refused(const uint8_t *p, size_t n, size_t max_payload, int want)
{
    /* a copy of exactly n bytes so that ASan sees any read past the frame */
    uint8_t *copy = malloc(n == 0 ? 1 : n);
    assert_non_null(copy);
    if (n > 0) {
        memcpy(copy, p, n);
    }
    ds_msg_t *sentinel = (ds_msg_t *)(uintptr_t)0x1234;
    ds_msg_t *out = sentinel;
    assert_int_equal(ds_wire_decode(copy, n, max_payload, receiver_now, &out), want);
    assert_ptr_equal(out, sentinel);
    free(copy);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void test_decode_rejections(void **state)
{
    (void)state;
    uint8_t good[128];
    size_t n = sample_frame(good, sizeof(good));
    uint8_t f[130] = {0};

    /* every short or truncated length */
    for (size_t k = 0; k < n; k++) {
        expect_refused(good, k, MAXP, DS_EDECODE);
    }
    /* a trailing byte */
    memcpy(f, good, n);
    f[n] = 0;
    expect_refused(f, n + 1, MAXP, DS_EDECODE);
    /* bad magic and versions */
    memcpy(f, good, n);
    f[0] = 'X';
    expect_refused(f, n, MAXP, DS_EDECODE);
    memcpy(f, good, n);
    f[1] = 's';
    expect_refused(f, n, MAXP, DS_EDECODE);
    static const uint8_t versions[] = {0, 2, 0xff};
    for (size_t i = 0; i < sizeof(versions); i++) {
        memcpy(f, good, n);
        f[2] = versions[i];
        expect_refused(f, n, MAXP, DS_EDECODE);
    }
    /* unknown flag bits, and ERROR without REPLY */
    for (unsigned bit = 4; bit < 8; bit++) {
        memcpy(f, good, n);
        f[3] = (uint8_t)(f[3] | (1U << bit));
        expect_refused(f, n, MAXP, DS_EDECODE);
    }
    memcpy(f, good, n);
    f[3] = DS_MSG_F_ERROR;
    expect_refused(f, n, MAXP, DS_EDECODE);
    /* a length that disagrees with the bytes: one more, one less than present */
    memcpy(f, good, n);
    put_le32(f + 44, (uint32_t)(n - 48 + 1));
    expect_refused(f, n, MAXP, DS_EDECODE);
    put_le32(f + 44, (uint32_t)(n - 48 - 1));
    expect_refused(f, n, MAXP, DS_EDECODE);
    /* over the limit: -EMSGSIZE whether or not the bytes are there, and never allocated */
    expect_refused(good, n, n - 48 - 1, -EMSGSIZE);
    memcpy(f, good, 48);
    put_le32(f + 44, UINT32_MAX);
    expect_refused(f, 48, MAXP, -EMSGSIZE);
    expect_refused(f, 48, SIZE_MAX, -EMSGSIZE); /* capped by DS_MSG_PAYLOAD_MAX */
    /* an unknown type */
    memcpy(f, good, n);
    put_le32(f + 4, 77777);
    expect_refused(f, n, MAXP, DS_EUNKNOWN);
    /* a payload that is not a DOWN: declare it a STOP ([i64]) instead */
    memcpy(f, good, n);
    put_le32(f + 4, DS_MT_STOP);
    expect_refused(f, n, MAXP, DS_EDECODE);
    /* a negative ttl, and one that overflows the receiver's clock */
    memcpy(f, good, n);
    f[39] = 0x80;
    expect_refused(f, n, MAXP, DS_EDECODE);
    memcpy(f, good, n);
    memset(f + 32, 0xff, 7);
    f[39] = 0x7f; /* INT64_MAX */
    expect_refused(f, n, MAXP, DS_EDECODE);
}

static void test_empty_payload_type(void **state)
{
    (void)state;
    ds_msg_t *m = NULL;
    assert_int_equal(ds_timeout_new(NULL, &m), 0);
    m->flags = DS_MSG_F_REPLY | DS_MSG_F_ERROR; /* allowed: ERROR with REPLY */
    uint8_t buf[64];
    size_t len = 0;
    assert_int_equal(ds_wire_encode(m, 0, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, 49);
    ds_msg_t *d = NULL;
    assert_int_equal(ds_wire_decode(buf, len, 0, 0, &d), -EMSGSIZE); /* 1 byte > 0 */
    assert_int_equal(ds_wire_decode(buf, len, 1, 0, &d), 0);
    assert_int_equal(d->type, DS_MT_TIMEOUT);
    assert_int_equal(d->flags, DS_MSG_F_REPLY | DS_MSG_F_ERROR);
    ds_msg_free(&d);
    ds_msg_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_bytes),      cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_deadlines),         cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_decode_rejections), cmocka_unit_test(test_empty_payload_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
