/* side: a helper thread running one job at a time (runtime/side.h). Under TSan this also proves
 * the hand-offs order the job's writes before ds_side_wait() returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "runtime/side.h"

typedef struct job {
    uint64_t in;
    uint64_t out; /* written by the helper, read by the test after the wait */
} job_t;

static void square(void *arg)
{
    job_t *j = arg;
    j->out = j->in * j->in;
}

static void test_jobs_in_turn(void **state)
{
    (void)state;
    ds_side_t *s = NULL;
    assert_int_equal(ds_side_new(&s), 0);
    job_t j = {0};
    for (uint64_t i = 1; i <= 10000; i++) {
        j.in = i; /* written before the run: visible to the helper */
        ds_side_run(s, square, &j);
        ds_side_wait(s);
        assert_true(j.out == i * i);
    }
    ds_side_wait(s); /* no job pending: returns at once */
    ds_side_free(&s);
    assert_null(s);
    ds_side_free(&s); /* NULL is fine */
}

static void test_free_with_a_job_pending(void **state)
{
    (void)state;
    ds_side_t *s = NULL;
    assert_int_equal(ds_side_new(&s), 0);
    job_t j = {.in = 7};
    ds_side_run(s, square, &j);
    ds_side_free(&s); /* waits for the job first */
    assert_true(j.out == 49);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_in_turn),
        cmocka_unit_test(test_free_with_a_job_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
