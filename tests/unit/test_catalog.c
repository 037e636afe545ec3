/* test_catalog: the generated codecs of the runtime's catalog and of a test catalog with every
 * field kind, the generic validator, registration and ds_msg_error(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/catalog.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/mpack.h"
#include "runtime/msg.h"

#define DS_CATALOG_FILE    "tests/unit/test_catalog.msgs.h"
#define DS_CATALOG_PREFIX  test_
#define DS_CATALOG_UPREFIX TEST_
#include "runtime/catalog_decl.inc"

#define DS_CATALOG_FILE    "tests/unit/test_catalog.msgs.h"
#define DS_CATALOG_PREFIX  test_
#define DS_CATALOG_UPREFIX TEST_
#define DS_CATALOG_SYMBOL  test_catalog
#define DS_CATALOG_NAME    "test"
#include "runtime/catalog_def.inc"

/* A payload as a message of the given type. */
static ds_msg_t *raw(uint32_t type, const uint8_t *p, size_t n)
{
    ds_msg_t *m = NULL;
    assert_int_equal(ds_msg_new(type, p, n, &m), 0);
    return m;
}

static void check_payload(const ds_msg_t *m, uint32_t type, const uint8_t *want, size_t n)
{
    assert_int_equal(m->type, type);
    assert_int_equal(m->len, n);
    assert_memory_equal(m->data, want, n);
    assert_int_equal(ds_catalog_validate(type, m->data, m->len), 0);
}

static int setup(void **state)
{
    (void)state;
    return ds_catalog_register(&test_catalog);
}

static void test_runtime_round_trips(void **state)
{
    (void)state;
    ds_msg_t *m = NULL;

    ds_exit_t ex = {.who = ds_id_make(1, 2, 3), .reason = -5001};
    ds_exit_t ex2 = {0};
    assert_int_equal(ds_exit_new(&ex, &m), 0);
    /* [u64 who, i64 reason] in their smallest forms */
    static const uint8_t exit_bytes[] = {0x92, 0xcf, 0x00, 0x01, 0x00, 0x00, 0x20,
                                         0x00, 0x00, 0x03, 0xd1, 0xec, 0x77};
    check_payload(m, DS_MT_EXIT, exit_bytes, sizeof(exit_bytes));
    assert_int_equal(ds_exit_decode(m, &ex2), 0);
    assert_true(ds_id_eq(ex2.who, ex.who));
    assert_int_equal(ex2.reason, -5001);
    ds_msg_free(&m);

    ds_down_t dn = {.ref = 1, .who = {7}, .reason = -3};
    ds_down_t dn2 = {0};
    assert_int_equal(ds_down_new(&dn, &m), 0);
    static const uint8_t down_bytes[] = {0x93, 0x01, 0x07, 0xfd};
    check_payload(m, DS_MT_DOWN, down_bytes, sizeof(down_bytes));
    assert_int_equal(ds_down_decode(m, &dn2), 0);
    assert_true(dn2.ref == 1 && dn2.who.v == 7 && dn2.reason == -3);
    ds_msg_free(&m);

    static const uint8_t empty_bytes[] = {0x90};
    ds_timeout_t to = {0};
    assert_int_equal(ds_timeout_new(NULL, &m), 0);
    check_payload(m, DS_MT_TIMEOUT, empty_bytes, 1);
    assert_int_equal(ds_timeout_decode(m, &to), 0);
    ds_msg_free(&m);
    assert_int_equal(ds_link_new(NULL, &m), 0);
    check_payload(m, DS_MT_LINK, empty_bytes, 1);
    ds_msg_free(&m);
    assert_int_equal(ds_unlink_new(NULL, &m), 0);
    check_payload(m, DS_MT_UNLINK, empty_bytes, 1);
    ds_msg_free(&m);
    ds_passivate_t pv = {0};
    assert_int_equal(ds_passivate_new(&pv, &m), 0);
    check_payload(m, DS_MT_PASSIVATE, empty_bytes, 1);
    assert_int_equal(ds_passivate_decode(m, &pv), 0);
    ds_msg_free(&m);

    ds_error_t er = {.code = DS_EFULL};
    ds_error_t er2 = {0};
    assert_int_equal(ds_error_new(&er, &m), 0);
    static const uint8_t error_bytes[] = {0x91, 0xd1, 0xec, 0x77};
    check_payload(m, DS_MT_ERROR, error_bytes, sizeof(error_bytes));
    assert_int_equal(ds_error_decode(m, &er2), 0);
    assert_int_equal(er2.code, DS_EFULL);
    ds_msg_free(&m);

    ds_stop_t st = {.reason = 2};
    ds_stop_t st2 = {0};
    assert_int_equal(ds_stop_new(&st, &m), 0);
    static const uint8_t stop_bytes[] = {0x91, 0x02};
    check_payload(m, DS_MT_STOP, stop_bytes, sizeof(stop_bytes));
    assert_int_equal(ds_stop_decode(m, &st2), 0);
    assert_int_equal(st2.reason, 2);
    ds_msg_free(&m);

    ds_monitor_t mo = {.ref = 300};
    ds_monitor_t mo2 = {0};
    assert_int_equal(ds_monitor_new(&mo, &m), 0);
    static const uint8_t monitor_bytes[] = {0x91, 0xcd, 0x01, 0x2c};
    check_payload(m, DS_MT_MONITOR, monitor_bytes, sizeof(monitor_bytes));
    assert_int_equal(ds_monitor_decode(m, &mo2), 0);
    assert_int_equal(mo2.ref, 300);
    ds_msg_free(&m);

    ds_demonitor_t de = {.ref = UINT64_MAX};
    ds_demonitor_t de2 = {0};
    assert_int_equal(ds_demonitor_new(&de, &m), 0);
    assert_int_equal(m->type, DS_MT_DEMONITOR);
    assert_int_equal(ds_demonitor_decode(m, &de2), 0);
    assert_true(de2.ref == UINT64_MAX);
    ds_msg_free(&m);

    ds_node_down_t nd = {.node = 65535};
    ds_node_down_t nd2 = {0};
    assert_int_equal(ds_node_down_new(&nd, &m), 0);
    static const uint8_t nd_bytes[] = {0x91, 0xcd, 0xff, 0xff};
    check_payload(m, DS_MT_NODE_DOWN, nd_bytes, sizeof(nd_bytes));
    assert_int_equal(ds_node_down_decode(m, &nd2), 0);
    assert_int_equal(nd2.node, 65535);
    ds_msg_free(&m);

    ds_tick_t tk = {.seq = 42};
    ds_tick_t tk2 = {0};
    assert_int_equal(ds_tick_new(&tk, &m), 0);
    static const uint8_t tick_bytes[] = {0x91, 42};
    check_payload(m, DS_MT_TICK, tick_bytes, sizeof(tick_bytes));
    assert_int_equal(ds_tick_decode(m, &tk2), 0);
    assert_int_equal(tk2.seq, 42);
    ds_msg_free(&m);
}

static void test_descriptors(void **state)
{
    (void)state;
    static const uint32_t nfields[] = {0, 2, 3, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1};
    static const char *const names[] = {NULL,        "exit",      "down",   "timeout", "error",
                                        "stop",      "link",      "unlink", "monitor", "demonitor",
                                        "passivate", "node_down", "tick"};
    assert_null(ds_catalog_find(0));
    for (uint32_t t = 1; t <= 12; t++) {
        const ds_msg_desc_t *d = ds_catalog_find(t);
        assert_non_null(d);
        assert_int_equal(d->type, t);
        assert_int_equal(d->nfields, nfields[t]);
        assert_string_equal(d->name, names[t]);
    }
    assert_null(ds_catalog_find(13));
    assert_null(ds_catalog_find(255));
    assert_null(ds_catalog_find(256));
    assert_null(ds_catalog_find(UINT32_MAX));
    const ds_msg_desc_t *d = ds_catalog_find(DS_MT_DOWN);
    assert_string_equal(d->fields[1].name, "who");
    assert_int_equal(d->fields[1].kind, DS_FK_ID);
    assert_int_equal(d->fields[2].kind, DS_FK_I64);
    d = ds_catalog_find(DS_MT_TEST_NOTE);
    assert_non_null(d);
    assert_int_equal(d->nfields, 6);
    assert_int_equal(d->fields[0].kind, DS_FK_STR);
    assert_int_equal(d->fields[0].max, 8);
    assert_int_equal(d->fields[1].kind, DS_FK_BIN);
    assert_int_equal(d->fields[1].max, 4);
    assert_int_equal(ds_runtime_catalog.count, 12);
}

/* Payloads that are not a STOP ([i64 reason]). */
static void test_bad_shapes(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        uint8_t bytes[12];
    } bad[] = {
        {0, {0}},                                      /* empty */
        {1, {0x02}},                                   /* not an array */
        {1, {0x90}},                                   /* missing field */
        {3, {0x92, 0x02, 0x03}},                       /* extra field */
        {2, {0x91, 0xc0}},                             /* nil for an integer */
        {3, {0x91, 0xa1, 'x'}},                        /* a string for an integer */
        {2, {0x91, 0xc3}},                             /* a bool for an integer */
        {10, {0x91, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}}, /* 2^63 does not fit an i64 */
        {3, {0x91, 0x02, 0xc0}},                       /* trailing bytes */
        {3, {0x81, 0x01, 0x02}},                       /* a map */
        {2, {0x91, 0xd1}},                             /* truncated */
        {4, {0x91, 0xd4, 0x00, 0x00}},                 /* ext */
        {5, {0xdc, 0x00, 0x01, 0x02, 0x02}},           /* array16 is fine, then trailing */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ds_msg_t *m = raw(DS_MT_STOP, bad[i].bytes, bad[i].n);
        ds_stop_t st = {.reason = 77};
        assert_int_equal(ds_stop_decode(m, &st), DS_EDECODE);
        assert_int_equal(st.reason, 77); /* untouched on failure */
        assert_int_equal(ds_catalog_validate(DS_MT_STOP, bad[i].bytes, bad[i].n), DS_EDECODE);
        ds_msg_free(&m);
    }
    /* a non-minimal array header with the right count is still the right shape */
    static const uint8_t wide[] = {0xdc, 0x00, 0x01, 0x02};
    ds_msg_t *m = raw(DS_MT_STOP, wide, sizeof(wide));
    ds_stop_t st = {0};
    assert_int_equal(ds_stop_decode(m, &st), 0);
    assert_int_equal(st.reason, 2);
    ds_msg_free(&m);
}

static void test_ranges(void **state)
{
    (void)state;
    static const uint8_t too_big[] = {0x91, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0}; /* 2^32 */
    static const uint8_t neg[] = {0x91, 0xff};                             /* -1 */
    static const uint8_t max32[] = {0x91, 0xce, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(ds_catalog_validate(DS_MT_NODE_DOWN, too_big, sizeof(too_big)), DS_EDECODE);
    assert_int_equal(ds_catalog_validate(DS_MT_NODE_DOWN, neg, sizeof(neg)), DS_EDECODE);
    assert_int_equal(ds_catalog_validate(DS_MT_TICK, neg, sizeof(neg)), DS_EDECODE);
    assert_int_equal(ds_catalog_validate(DS_MT_NODE_DOWN, max32, sizeof(max32)), 0);
    assert_int_equal(ds_catalog_validate(DS_MT_TICK, too_big, sizeof(too_big)), 0);
}

static void test_wrong_type(void **state)
{
    (void)state;
    ds_msg_t *m = NULL;
    ds_stop_t st = {.reason = 1};
    assert_int_equal(ds_stop_new(&st, &m), 0);
    ds_error_t er = {.code = 9};
    ds_tick_t tk = {.seq = 9};
    /* the same payload shape, but the message is a STOP */
    assert_int_equal(ds_error_decode(m, &er), DS_EDECODE);
    assert_int_equal(ds_tick_decode(m, &tk), DS_EDECODE);
    assert_int_equal(er.code, 9);
    ds_msg_free(&m);
}

static void test_unknown_type(void **state)
{
    (void)state;
    static const uint8_t empty[] = {0x90};
    assert_int_equal(ds_catalog_validate(0, empty, 1), DS_EUNKNOWN);
    assert_int_equal(ds_catalog_validate(13, empty, 1), DS_EUNKNOWN);
    assert_int_equal(ds_catalog_validate(999, empty, 1), DS_EUNKNOWN);
    assert_int_equal(ds_catalog_validate(UINT32_MAX, empty, 1), DS_EUNKNOWN);
    assert_int_equal(ds_catalog_validate(DS_MT_TEST_EMPTY, empty, 1), 0);
}

static void test_note_round_trip(void **state)
{
    (void)state;
    ds_test_note_t v = {
        .title = {"d\xc3\xa9j\xc3\xa0", 6}, /* "déjà": 6 bytes, within 8 */
        .blob = {(const uint8_t *)"\x00\xff\x10\x20", 4},
        .flag = true,
        .ratio = -0.125,
        .delta = INT32_MIN,
        .count = UINT32_MAX,
    };
    ds_msg_t *m = NULL;
    assert_int_equal(ds_test_note_new(&v, &m), 0);
    static const uint8_t want[] = {0x96, 0xa6, 'd',  0xc3, 0xa9, 'j',  0xc3, 0xa0, 0xc4,
                                   0x04, 0x00, 0xff, 0x10, 0x20, 0xc3, 0xcb, 0xbf, 0xc0,
                                   0,    0,    0,    0,    0,    0,    0xd2, 0x80, 0,
                                   0,    0,    0xce, 0xff, 0xff, 0xff, 0xff};
    check_payload(m, DS_MT_TEST_NOTE, want, sizeof(want));
    ds_test_note_t o = {0};
    assert_int_equal(ds_test_note_decode(m, &o), 0);
    assert_int_equal(o.title.len, 6);
    assert_memory_equal(o.title.ptr, v.title.ptr, 6);
    /* zero copy: decoded text and bytes point into the payload */
    assert_ptr_equal(o.title.ptr, (const char *)m->data + 2);
    assert_ptr_equal(o.blob.ptr, m->data + 10);
    assert_int_equal(o.blob.len, 4);
    assert_true(o.flag);
    assert_true(o.ratio == -0.125);
    assert_int_equal(o.delta, INT32_MIN);
    assert_int_equal(o.count, UINT32_MAX);
    ds_msg_free(&m);

    /* a long string makes a message past the inline size: encoded in a shared buffer */
    char text[300];
    memset(text, 'z', sizeof(text));
    ds_test_wide_t w = {.a = 1, .b = -1, .c = {5}, .text = {text, 300}};
    ds_test_wide_t w2 = {0};
    assert_int_equal(ds_test_wide_new(&w, &m), 0);
    assert_int_equal(m->len, 1 + 1 + 1 + 1 + 3 + 300);
    assert_int_equal(ds_test_wide_decode(m, &w2), 0);
    assert_int_equal(w2.text.len, 300);
    assert_memory_equal(w2.text.ptr, text, 300);
    ds_msg_free(&m);
}

/* NOTE payloads built by hand: [title, blob, flag, ratio, delta, count]. */
static size_t note_payload(uint8_t *buf, size_t cap, const char *title, size_t tlen, size_t blen,
                           bool ratio_f32, int64_t delta)
{
    /* our writer never makes float32, so that one is spliced in by hand */
    static const uint8_t f32[] = {0xca, 0x3f, 0x80, 0x00, 0x00}; /* 1.0f */
    ds_mp_writer_t w;
    ds_mp_writer_init(&w, buf, cap);
    ds_mp_put_array(&w, 6);
    ds_mp_put_str(&w, title, tlen);
    ds_mp_put_bin(&w, "abcdefgh", blen);
    ds_mp_put_bool(&w, false);
    if (!ratio_f32) {
        ds_mp_put_f64(&w, 1.0);
    }
    assert_int_equal(ds_mp_writer_err(&w), 0);
    size_t n = ds_mp_writer_len(&w);
    if (ratio_f32) {
        assert_true(cap - n >= sizeof(f32));
        memcpy(buf + n, f32, sizeof(f32));
        n += sizeof(f32);
    }
    ds_mp_writer_init(&w, buf + n, cap - n);
    ds_mp_put_i64(&w, delta);
    ds_mp_put_u64(&w, 3);
    assert_int_equal(ds_mp_writer_err(&w), 0);
    return n + ds_mp_writer_len(&w);
}

static void test_note_limits(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n;
    ds_test_note_t o = {0};
    ds_msg_t *m;

    n = note_payload(buf, sizeof(buf), "12345678", 8, 4, false, 0);
    assert_int_equal(ds_catalog_validate(DS_MT_TEST_NOTE, buf, n), 0);
    n = note_payload(buf, sizeof(buf), "123456789", 9, 4, false, 0); /* string over max */
    assert_int_equal(ds_catalog_validate(DS_MT_TEST_NOTE, buf, n), DS_EDECODE);
    n = note_payload(buf, sizeof(buf), "1234", 4, 5, false, 0); /* bin over max */
    assert_int_equal(ds_catalog_validate(DS_MT_TEST_NOTE, buf, n), DS_EDECODE);
    n = note_payload(buf, sizeof(buf), "ab\xc0\x80", 4, 1, false, 0); /* invalid UTF-8 */
    assert_int_equal(ds_catalog_validate(DS_MT_TEST_NOTE, buf, n), DS_EDECODE);
    m = raw(DS_MT_TEST_NOTE, buf, n);
    assert_int_equal(ds_test_note_decode(m, &o), DS_EDECODE);
    ds_msg_free(&m);
    n = note_payload(buf, sizeof(buf), "ab", 2, 1, true, 0); /* float32 accepted */
    m = raw(DS_MT_TEST_NOTE, buf, n);
    assert_int_equal(ds_test_note_decode(m, &o), 0);
    assert_true(o.ratio == 1.0);
    ds_msg_free(&m);
    n = note_payload(buf, sizeof(buf), "ab", 2, 1, false, (int64_t)INT32_MAX + 1); /* I32 range */
    assert_int_equal(ds_catalog_validate(DS_MT_TEST_NOTE, buf, n), DS_EDECODE);
    n = note_payload(buf, sizeof(buf), "ab", 2, 1, false, INT32_MAX);
    assert_int_equal(ds_catalog_validate(DS_MT_TEST_NOTE, buf, n), 0);

    /* the encoder refuses what the decoder would */
    ds_test_note_t v = {.title = {"123456789", 9}};
    m = NULL;
    assert_int_equal(ds_test_note_new(&v, &m), -EMSGSIZE);
    v.title = (ds_str_t){"\xed\xa0\x80", 3}; /* a surrogate */
    assert_int_equal(ds_test_note_new(&v, &m), -EINVAL);
    v.title = (ds_str_t){NULL, 0};
    v.blob = (ds_bytes_t){(const uint8_t *)"12345", 5};
    assert_int_equal(ds_test_note_new(&v, &m), -EMSGSIZE);
    assert_null(m);
}

static void test_registration(void **state)
{
    (void)state;
    /* the test catalog is registered already (setup): again is refused */
    assert_int_equal(ds_catalog_register(&test_catalog), -EEXIST);
    assert_int_equal(ds_catalog_register(&ds_runtime_catalog), -EEXIST);

    static const ds_msg_desc_t a = {2000, 0, "a", NULL};
    static const ds_msg_desc_t b = {2001, 0, "b", NULL};
    static const ds_msg_desc_t low = {200, 0, "low", NULL};
    static const ds_msg_desc_t clash = {1000, 0, "clash", NULL};
    static const ds_msg_desc_t *const twice[] = {&a, &b, &a};
    static const ds_msg_desc_t *const partial[] = {&a, &clash};
    static const ds_msg_desc_t *const in_runtime_range[] = {&b, &low};
    static const ds_msg_desc_t *const good[] = {&b, &a};
    const ds_catalog_t c_twice = {"twice", twice, 3};
    const ds_catalog_t c_partial = {"partial", partial, 2};
    const ds_catalog_t c_low = {"low", in_runtime_range, 2};
    const ds_catalog_t c_good = {"good", good, 2};

    assert_int_equal(ds_catalog_register(&c_twice), -EEXIST);
    assert_int_equal(ds_catalog_register(&c_partial), -EEXIST);
    assert_int_equal(ds_catalog_register(&c_low), -EINVAL);
    /* nothing of the refused catalogs was added */
    assert_null(ds_catalog_find(2000));
    assert_null(ds_catalog_find(2001));
    assert_null(ds_catalog_find(200));
    assert_string_equal(ds_catalog_find(1000)->name, "note");

    assert_int_equal(ds_catalog_register(&c_good), 0);
    assert_ptr_equal(ds_catalog_find(2000), &a);
    assert_ptr_equal(ds_catalog_find(2001), &b);
    assert_ptr_equal(ds_catalog_find(1001), ds_catalog_find(DS_MT_TEST_EMPTY));
    assert_null(ds_catalog_find(1500));
    assert_null(ds_catalog_find(3000));
}

static void test_msg_error(void **state)
{
    (void)state;
    ds_error_t er = {.code = DS_ECRASHED};
    ds_msg_t *m = NULL;
    assert_int_equal(ds_error_new(&er, &m), 0);
    assert_int_equal(ds_msg_error(m), 0); /* no flags: not an error reply */
    m->flags = DS_MSG_F_REPLY;
    assert_int_equal(ds_msg_error(m), 0);
    m->flags = DS_MSG_F_REPLY | DS_MSG_F_ERROR;
    assert_int_equal(ds_msg_error(m), DS_ECRASHED);
    ds_msg_free(&m);

    /* an error reply of another type is not one */
    ds_stop_t st = {.reason = -5};
    assert_int_equal(ds_stop_new(&st, &m), 0);
    m->flags = DS_MSG_F_REPLY | DS_MSG_F_ERROR;
    assert_int_equal(ds_msg_error(m), 0);
    ds_msg_free(&m);

    /* an error reply with no error in it, or a broken one, reads as DS_EDECODE */
    static const uint8_t zero[] = {0x91, 0x00};
    static const uint8_t huge[] = {0x91, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t broken[] = {0x91};
    const uint8_t *const payloads[] = {zero, huge, broken};
    const size_t lens[] = {sizeof(zero), sizeof(huge), sizeof(broken)};
    for (size_t i = 0; i < 3; i++) {
        m = raw(DS_MT_ERROR, payloads[i], lens[i]);
        m->flags = DS_MSG_F_REPLY | DS_MSG_F_ERROR;
        assert_int_equal(ds_msg_error(m), DS_EDECODE);
        ds_msg_free(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_round_trips), cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_bad_shapes),          cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_wrong_type),          cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_note_round_trip),     cmocka_unit_test(test_note_limits),
        cmocka_unit_test(test_registration),        cmocka_unit_test(test_msg_error),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
