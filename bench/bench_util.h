/*
 * bench_util.h - the few helpers both bench programs (libbench.c, floor.c)
 * need: wall and CPU clocks and a small PRNG for shuffling.  Header-only,
 * static inline; bench code, not part of libsess.
 */
#ifndef SESS_BENCH_UTIL_H
#define SESS_BENCH_UTIL_H

#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

/* Monotonic wall time, seconds. */
static inline double bench_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the whole process (user + system), seconds. */
static inline double bench_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* xorshift64: fast, good enough to shuffle a pool (not for secrets). */
static inline uint64_t bench_xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

#endif
