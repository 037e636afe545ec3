/* admit: the shared connection count (runtime/admit.h): caps in total and per key, release,
 * long keys, references, and many threads taking and releasing at once (under TSan this also
 * checks the mutex covers every field). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/admit.h"
#include "runtime/err.h"

enum {
    THREADS = 4,
    ROUNDS = 2000,
};

static void test_caps(void **state)
{
    (void)state;
    ds_admit_t *a = NULL;
    assert_int_equal(ds_admit_new(0, 1, &a), -EINVAL);
    assert_int_equal(ds_admit_new(1, 0, &a), -EINVAL);
    assert_int_equal(ds_admit_new(5, 2, &a), 0);
    assert_int_equal(ds_admit_take(a, "10.0.0.1"), 0);
    assert_int_equal(ds_admit_take(a, "10.0.0.1"), 0);
    assert_int_equal(ds_admit_take(a, "10.0.0.1"), DS_EFULL); /* per key */
    assert_int_equal(ds_admit_take(a, "10.0.0.2"), 0);
    assert_int_equal(ds_admit_take(a, "10.0.0.3"), 0);
    assert_int_equal(ds_admit_take(a, "10.0.0.4"), 0);
    assert_int_equal(ds_admit_held(a), 5);
    assert_int_equal(ds_admit_take(a, "10.0.0.5"), DS_EFULL); /* in total */
    ds_admit_release(a, "10.0.0.1");
    ds_admit_release(a, "10.0.0.9"); /* not held: nothing */
    assert_int_equal(ds_admit_held(a), 4);
    assert_int_equal(ds_admit_take(a, "10.0.0.5"), 0);
    assert_int_equal(ds_admit_take(a, "10.0.0.1"), DS_EFULL); /* the total again */
    ds_admit_release(a, "10.0.0.2");
    assert_int_equal(ds_admit_take(a, "10.0.0.1"), 0);
    assert_int_equal(ds_admit_take(a, "10.0.0.1"), DS_EFULL); /* its cap: 2 */

    /* Keys equal in their first DS_ADMIT_KEY_MAX bytes count as one. */
    ds_admit_t *b = NULL;
    assert_int_equal(ds_admit_new(10, 1, &b), 0);
    char k1[100];
    char k2[100];
    memset(k1, 'k', sizeof(k1) - 1);
    k1[sizeof(k1) - 1] = '\0';
    memcpy(k2, k1, sizeof(k2));
    k2[DS_ADMIT_KEY_MAX + 5] = 'z';
    assert_int_equal(ds_admit_take(b, k1), 0);
    assert_int_equal(ds_admit_take(b, k2), DS_EFULL);
    ds_admit_release(b, k2);
    assert_int_equal(ds_admit_take(b, k1), 0);
    ds_admit_unref(&b);
    assert_null(b);

    ds_admit_t *again = ds_admit_ref(a);
    assert_ptr_equal(again, a);
    ds_admit_unref(&again);
    assert_int_equal(ds_admit_held(a), 5); /* still alive */
    ds_admit_unref(&a);
    ds_admit_unref(&a); /* NULL: nothing */
}

typedef struct worker {
    ds_admit_t *a;
    int id;
    uint32_t refused;
} worker_t;

static void *churn(void *arg)
{
    worker_t *w = arg;
    char key[32];
    for (int i = 0; i < ROUNDS; i++) {
        (void)snprintf(key, sizeof(key), "peer-%d", (i + w->id) % 7);
        if (ds_admit_take(w->a, key) == 0) {
            ds_admit_release(w->a, key);
        } else {
            w->refused++;
        }
    }
    return NULL;
}

/* Threads taking and releasing at once: every take is paired with a release, so the table is
 * empty afterwards; the caps (THREADS per key and in all) are never in the way. */
static void test_threads(void **state)
{
    (void)state;
    ds_admit_t *a = NULL;
    assert_int_equal(ds_admit_new(THREADS, THREADS, &a), 0);
    pthread_t t[THREADS];
    worker_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.a = ds_admit_ref(a), .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, churn, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].refused, 0);
        ds_admit_unref(&w[i].a);
    }
    assert_int_equal(ds_admit_held(a), 0);
    ds_admit_unref(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
