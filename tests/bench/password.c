/* password: the cost of one argon2id verification (actors/password.h, m=DS_PASSWORD_M_COST KiB,
 * t=DS_PASSWORD_T_COST, p=DS_PASSWORD_LANES), the CPU work every `POST /v1/auth/login` does, so
 * tests/bench/http.sh can print the ceiling it puts on login throughput beside the measured rate.
 *
 * Hashes one password, then verifies it n times on one thread (ms per verify), then n times on
 * each of `threads` threads at once (verifies/s of all of them: the ceiling for logins on that
 * many cores, before any HTTP, token or database work).
 *
 * Usage: password [n (20)] [threads (2)]
 * Output: RESULT argon2id m_kib=... t=... p=... n=... verify_ms=... threads=... verifies_per_s=...
 */
#include "actors/password.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    BENCH_N_DEFAULT = 20,
    BENCH_THREADS_DEFAULT = 2,
    BENCH_THREADS_MAX = 64,
};

static const char bench_password[] = "correct horse battery staple";

typedef struct verifier {
    pthread_t thread;
    const char *encoded;
    long n;
    bool ok;
} verifier_t;

static double now_s(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *verify_loop(void *arg)
{
    verifier_t *v = arg;
    v->ok = true;
    for (long i = 0; i < v->n; i++) {
        v->ok = v->ok && ds_password_verify(v->encoded, bench_password, strlen(bench_password));
    }
    return NULL;
}

static long parse_arg(const char *s, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max) {
        return -1;
    }
    return v;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? parse_arg(argv[1], 100000) : BENCH_N_DEFAULT;
    long threads = argc > 2 ? parse_arg(argv[2], BENCH_THREADS_MAX) : BENCH_THREADS_DEFAULT;
    if (argc > 3 || n < 0 || threads < 0) {
        (void)fprintf(stderr, "usage: %s [n (1..100000)] [threads (1..%d)]\n", argv[0],
                      BENCH_THREADS_MAX);
        return 2;
    }
    char encoded[DS_PASSWORD_ENCODED_MAX];
    if (ds_password_hash(bench_password, strlen(bench_password), encoded) < 0) {
        (void)fprintf(stderr, "password: could not hash\n");
        return 1;
    }

    verifier_t one = {.encoded = encoded, .n = n};
    double t0 = now_s();
    (void)verify_loop(&one);
    double single_s = now_s() - t0;

    verifier_t vs[BENCH_THREADS_MAX];
    t0 = now_s();
    long started = 0;
    for (; started < threads; started++) {
        vs[started] = (verifier_t){.encoded = encoded, .n = n};
        if (pthread_create(&vs[started].thread, NULL, verify_loop, &vs[started]) != 0) {
            break;
        }
    }
    bool ok = one.ok && started == threads;
    for (long i = 0; i < started; i++) {
        (void)pthread_join(vs[i].thread, NULL);
        ok = ok && vs[i].ok;
    }
    double parallel_s = now_s() - t0;
    if (!ok) {
        (void)fprintf(stderr, "password: a verification failed or a thread did not start\n");
        return 1;
    }
    printf("RESULT argon2id m_kib=%d t=%d p=%d n=%ld verify_ms=%.2f threads=%ld "
           "verifies_per_s=%.1f\n",
           DS_PASSWORD_M_COST, DS_PASSWORD_T_COST, DS_PASSWORD_LANES, n, single_s * 1e3 / (double)n,
           threads, (double)(n * threads) / parallel_s);
    return 0;
}
