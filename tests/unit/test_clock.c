/* Unit tests for runtime/clock.c. Sanity only: the sleep-based check has a wide margin and
 * asserts that ticks convert to about the right time, never how fast anything runs. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "runtime/clock.h"

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000), .tv_nsec = (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void test_now_monotonic(void **state)
{
    (void)state;
    int64_t prev = ds_clock_now();
    assert_true(prev > 0);
    for (int i = 0; i < 100000; i++) {
        int64_t t = ds_clock_now();
        assert_true(t >= prev);
        prev = t;
    }
}

static void test_ticks_monotonic(void **state)
{
    (void)state;
    ds_clock_init();
    uint64_t prev = ds_clock_ticks();
    for (int i = 0; i < 100000; i++) {
        uint64_t t = ds_clock_ticks();
        assert_true(t >= prev);
        prev = t;
    }
}

static void test_ticks_to_ns_sane(void **state)
{
    (void)state;
    ds_clock_init();
    ds_clock_init(); /* idempotent */
    int64_t t0 = ds_clock_now();
    uint64_t c0 = ds_clock_ticks();
    sleep_ns(20000000);
    uint64_t c1 = ds_clock_ticks();
    int64_t t1 = ds_clock_now();
    uint64_t ns = ds_clock_ticks_to_ns(c1 - c0);
    uint64_t ref = (uint64_t)(t1 - t0);
    assert_true(ref >= 20000000);
    /* Within 50% either way. */
    assert_true(ns * 2 >= ref);
    assert_true(ns <= ref + ref / 2);
    assert_int_equal(ds_clock_ticks_to_ns(0), 0);
}

static void *init_thread(void *arg)
{
    (void)arg;
    ds_clock_init();
    uint64_t a = ds_clock_ticks();
    uint64_t b = ds_clock_ticks();
    return (void *)(uintptr_t)(b >= a);
}

static void test_init_concurrent(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, init_thread, NULL), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *ok = NULL;
        assert_int_equal(pthread_join(t[i], &ok), 0);
        assert_true(ok != NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_now_monotonic),
        cmocka_unit_test(test_init_concurrent),
        cmocka_unit_test(test_ticks_monotonic),
        cmocka_unit_test(test_ticks_to_ns_sane),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
