/*
 * clock.h - the clocks sessiond and sessctl read, in the units they use:
 * monotonic for deadlines and latencies, real time for timestamps that
 * leave the process (spans, events).  Header-only; libsess keeps its own
 * clock behind sess_ctx_set_clock (include/sess/session.h).
 */
#ifndef SESS_COMMON_CLOCK_H
#define SESS_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_mono_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

static inline double clock_mono_s(void)
{
    return (double)clock_mono_ns() / 1e9;
}

static inline uint64_t clock_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
