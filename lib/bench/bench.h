/* bench.h - what the benchmark paths share: bench.c (the library's fused stack), bench_cudnn.c
 * (cuDNN's RNN API as its peer) and measure.c (the helpers both use); the clock is
 * s2s_now_ms (internal.h). */
#ifndef S2S_BENCH_H
#define S2S_BENCH_H

#include "nn.h"

/* Sorts ms[0..n) and stores its median and minimum in r. */
void s2s_bench_summarise(double *ms, int n, s2s_bench_result *r);
/* Uploads n uniform(-1, 1) values drawn from (seed, stream) into a new device buffer (release
 * it with be->ops->release). */
s2s_status s2s_bench_random(s2s_backend *be, uint64_t seed, uint64_t stream, size_t n, float **out);

#ifdef S2S_HAVE_CUDNN
/* The same benchmark through cuDNN's RNN API (cudnnRNNForward, cudnnRNNBackwardData_v8,
 * cudnnRNNBackwardWeights_v8) on the CUDA backend's stream and allocator (bench_cudnn.c). */
s2s_status s2s_cudnn_bench_rnn(s2s_backend *be, uint64_t seed, const s2s_bench_rnn_options *o, s2s_bench_result *r);
#endif

#endif
