/* clock: monotonic time and cheap ticks. See runtime/clock.h.
 *
 * Ticks are the CPU's time-stamp counter when it is invariant (constant_tsc: a fixed rate
 * whatever the frequency scaling; nonstop_tsc: it keeps counting in deep C-states), as Linux
 * itself requires before it trusts the TSC. Elsewhere ticks are CLOCK_MONOTONIC nanoseconds.
 *
 * ds_clock_init() decides once (pthread_once) and calibrates the TSC against CLOCK_MONOTONIC
 * over ~10 ms. Conversion is a fixed-point multiply, ns = ticks * mult >> DS_CLOCK_SHIFT, with
 * a 128-bit product so large differences do not overflow; no division on the hot path.
 *
 * Before ds_clock_init() (the runtime calls it from ds_rt_new) ds_clock_ticks() reads
 * CLOCK_MONOTONIC and ds_clock_ticks_to_ns() is the identity, so the pair stays consistent. */
#include "runtime/clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

enum {
    DS_CLOCK_SHIFT = 32,          /* fixed-point fraction bits of the multiplier */
    DS_CLOCK_CALIB_NS = 10000000, /* calibration window: 10 ms */
};

static pthread_once_t clock_once = PTHREAD_ONCE_INIT;
/* Written once, in clock_setup. The release store of clock_use_tsc pairs with the acquire load
 * in ds_clock_ticks: a thread that got a TSC reading then sees the calibrated multiplier in
 * ds_clock_ticks_to_ns, so it never scales TSC ticks by the identity. */
static atomic_bool clock_use_tsc;
static _Atomic uint64_t clock_mult = (uint64_t)1 << DS_CLOCK_SHIFT;

int64_t ds_clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#if defined(__x86_64__)
static bool clock_flag_in(const char *line, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = strstr(line, flag); p != NULL; p = strstr(p + 1, flag)) {
        bool starts = p == line || p[-1] == ' ' || p[-1] == '\t';
        bool ends = p[n] == '\0' || p[n] == ' ' || p[n] == '\n';
        if (starts && ends) {
            return true;
        }
    }
    return false;
}

/* True when /proc/cpuinfo's first "flags" line names both constant_tsc and nonstop_tsc. */
static bool clock_tsc_invariant(void)
{
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (f == NULL) {
        return false;
    }
    char line[4096];
    bool ok = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "flags", 5) == 0) {
            ok = clock_flag_in(line, "constant_tsc") && clock_flag_in(line, "nonstop_tsc");
            break;
        }
    }
    (void)fclose(f);
    return ok;
}

/* The fixed-point ns-per-tick multiplier, measured over ~10 ms, or 0 if it makes no sense. */
static uint64_t clock_calibrate(void)
{
    int64_t t0 = ds_clock_now();
    uint64_t c0 = __rdtsc();
    int64_t t1 = t0;
    while (t1 - t0 < DS_CLOCK_CALIB_NS) {
        t1 = ds_clock_now();
    }
    uint64_t c1 = __rdtsc();
    uint64_t ticks = c1 - c0;
    if (c1 <= c0 || ticks < (uint64_t)(t1 - t0) / 100) {
        return 0; /* a counter running under 10 MHz, or backwards: do not trust it */
    }
    unsigned __int128 m = ((unsigned __int128)(uint64_t)(t1 - t0) << DS_CLOCK_SHIFT) / ticks;
    return (uint64_t)m;
}
#endif

static void clock_setup(void)
{
#if defined(__x86_64__)
    if (!clock_tsc_invariant()) {
        return;
    }
    uint64_t mult = clock_calibrate();
    if (mult == 0) {
        return;
    }
    atomic_store_explicit(&clock_mult, mult, memory_order_relaxed);
    atomic_store_explicit(&clock_use_tsc, true, memory_order_release);
#endif
}

void ds_clock_init(void)
{
    (void)pthread_once(&clock_once, clock_setup);
}

uint64_t ds_clock_ticks(void)
{
#if defined(__x86_64__)
    if (atomic_load_explicit(&clock_use_tsc, memory_order_acquire)) {
        return __rdtsc();
    }
#endif
    return (uint64_t)ds_clock_now();
}

uint64_t ds_clock_ticks_to_ns(uint64_t ticks)
{
    /* Relaxed: ordered by the acquire in ds_clock_ticks that produced these ticks. */
    uint64_t mult = atomic_load_explicit(&clock_mult, memory_order_relaxed);
    return (uint64_t)(((unsigned __int128)ticks * mult) >> DS_CLOCK_SHIFT);
}
