/* measure.c - what the benchmark paths share (bench.c, the fused stack; bench_cudnn.c, the
 * cuDNN peer): medians of repeated runs, random device data. */
#include "bench.h"
#include "philox.h"
#include <stdlib.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void s2s_bench_summarise(double *ms, int n, s2s_bench_result *r)
{
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    r->min_ms = ms[0];
    r->median_ms = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
}

s2s_status s2s_bench_random(s2s_backend *be, uint64_t seed, uint64_t stream, size_t n, float **out)
{
    float *h = s2s_host_alloc(n * sizeof(float), "benchmark data");
    if (!h)
        return S2S_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < n; i++)
        h[i] = 2.0f * s2s_philox_uniform(seed, stream, i) - 1.0f;
    void *d = NULL;
    s2s_status st = be->ops->alloc(be, n * sizeof(float), &d);
    if (st == S2S_OK)
        st = be->ops->to_device(be, d, h, n * sizeof(float));
    free(h);
    *out = d;
    return st;
}
