/* clock: the runtime's time sources.
 * ds_clock_now() reads CLOCK_MONOTONIC in nanoseconds (~26 ns a call here); it is the time base
 * of deadlines and timers. ds_clock_ticks() reads the CPU's time-stamp counter (~11 ns) where it
 * is invariant, and falls back to CLOCK_MONOTONIC elsewhere; the scheduler charges turns with it
 * because the thread CPU clock costs ~1.3 us a call here (DESIGN.md §3).
 * Threads: safe from any thread; ds_clock_init() runs once before the first tick conversion and
 * is idempotent (the runtime calls it). */
#pragma once

#include <stdint.h>

/* Calibrates the tick rate against CLOCK_MONOTONIC (a few ms, once per process). */
void ds_clock_init(void);
/* CLOCK_MONOTONIC in nanoseconds. */
int64_t ds_clock_now(void);
/* A cheap, monotonic tick count; convert differences with ds_clock_ticks_to_ns(). */
uint64_t ds_clock_ticks(void);
/* Nanoseconds in a difference of ticks. */
uint64_t ds_clock_ticks_to_ns(uint64_t ticks);
