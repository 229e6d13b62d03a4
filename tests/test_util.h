/* test_util.h - small helpers shared by the Criterion tests: random data and tolerant
 * comparison that reports the worst element. */
#ifndef S2S_TEST_UTIL_H
#define S2S_TEST_UTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

/* Runs a shell command; out gets its output (NUL-terminated); returns its exit status (-1 when
 * it did not exit). */
static inline int tu_run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* xorshift64* stream: tests draw fresh inputs from a seed they print on failure. */
static inline uint64_t tu_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static inline float tu_uniform(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)((tu_next(s) >> 40) * (1.0 / 16777216.0));
}

static inline void tu_fill(uint64_t *s, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tu_uniform(s, lo, hi);
}

/* A seed that differs from run to run unless S2S_TEST_SEED is set. */
static inline uint64_t tu_seed(void)
{
    const char *e = getenv("S2S_TEST_SEED");
    if (e)
        return strtoull(e, NULL, 10) | 1;
    uint64_t s = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)clock();
    return s | 1;
}

/* Asserts |got - want| <= atol + rtol |want| everywhere; reports the worst element. */
static inline void tu_assert_close(const char *what, const float *got, const double *want, size_t n, double atol,
                                   double rtol, uint64_t seed)
{
    size_t worst = 0;
    double worst_excess = -1e300;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), tol = atol + rtol * fabs(want[i]);
        if (!(err <= tol))
            bad++;
        double excess = isnan(err) ? 1e300 : err - tol;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    cr_assert(bad == 0, "%s: %d of %zu elements out of tolerance (atol %g, rtol %g); worst at %zu: got %.8g want %.8g (seed %llu)",
              what, bad, n, atol, rtol, worst, (double)got[worst], want[worst], (unsigned long long)seed);
}


/* Finite differences: loss() recomputes a scalar from the current inputs. For up to
 * `samples` indices of x, compares the central difference with step h against analytic[i]. */
typedef double (*tu_loss_fn)(void *ctx);

static inline void tu_fd_check(const char *what, float *x, size_t n, const float *analytic, tu_loss_fn loss, void *ctx,
                               float h, double atol, double rtol, int samples, uint64_t seed)
{
    uint64_t s = seed ^ 0x9E3779B97F4A7C15ull;
    size_t count = n < (size_t)samples ? n : (size_t)samples;
    float *got = malloc(sizeof(float) * count);
    double *want = malloc(sizeof(double) * count);
    for (size_t k = 0; k < count; k++) {
        size_t i = n <= (size_t)samples ? k : (size_t)(tu_next(&s) % n);
        float keep = x[i];
        x[i] = keep + h;
        double lp = loss(ctx);
        x[i] = keep - h;
        double lm = loss(ctx);
        x[i] = keep;
        want[k] = (lp - lm) / (2.0 * (double)h);
        got[k] = analytic[i];
    }
    tu_assert_close(what, got, want, count, atol, rtol, seed);
    free(got);
    free(want);
}
#endif
