/* Unit tests for runtime/err.c: every code has a name and a description. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/err.h"

static const int ds_codes[] = {
    DS_EFULL,    DS_ECAP,      DS_ETIMEDOUT, DS_EDECODE, DS_EUNKNOWN, DS_ENODEDOWN,
    DS_ECRASHED, DS_ESHUTDOWN, DS_EPRECOND,  DS_ELIMIT,  DS_ENOACTOR,
};

static void test_ok(void **state)
{
    (void)state;
    assert_string_equal(ds_strerror(0), "success");
    assert_string_equal(ds_errname(0), "ok");
}

static void test_ds_codes_named_and_distinct(void **state)
{
    (void)state;
    size_t n = sizeof(ds_codes) / sizeof(ds_codes[0]);
    for (size_t i = 0; i < n; i++) {
        assert_true(ds_codes[i] < -4096);
        assert_string_not_equal(ds_strerror(ds_codes[i]), "unknown error");
        assert_string_not_equal(ds_errname(ds_codes[i]), "unknown");
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(ds_errname(ds_codes[i]), ds_errname(ds_codes[j]));
        }
    }
    assert_string_equal(ds_errname(DS_EFULL), "efull");
    assert_string_equal(ds_strerror(DS_EFULL), "mailbox full");
}

static void test_errno_codes(void **state)
{
    (void)state;
    assert_string_equal(ds_errname(-ENOMEM), "enomem");
    assert_string_equal(ds_errname(-EINVAL), "einval");
    assert_string_equal(ds_errname(-EMSGSIZE), "emsgsize");
    assert_string_equal(ds_errname(-ENOENT), "enoent");
    assert_string_equal(ds_errname(-EAGAIN), "eagain");
    assert_string_equal(ds_strerror(-EMSGSIZE), "message too long");
    /* The runtime's timeout and the system's are told apart. */
    assert_string_not_equal(ds_errname(-ETIMEDOUT), ds_errname(DS_ETIMEDOUT));
}

static void test_unknown(void **state)
{
    (void)state;
    assert_string_equal(ds_strerror(-4999), "unknown error");
    assert_string_equal(ds_strerror(12345), "unknown error");
    assert_string_equal(ds_errname(-4999), "unknown");
    assert_non_null(ds_strerror(-2147483647 - 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_ds_codes_named_and_distinct),
        cmocka_unit_test(test_errno_codes),
        cmocka_unit_test(test_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
