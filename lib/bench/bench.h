/* bench.h - what the benchmark paths and the cuDNN bindings share (bench.c,
 * backend_cuda_cudnn.c, backend_cuda_cudnn_layer.c). */
#ifndef S2S_BENCH_H
#define S2S_BENCH_H

#include "nn.h"

/* Monotonic wall clock in milliseconds. */
double s2s_now_ms(void);
/* Sorts ms[0..n) and stores its median and minimum in r. */
void s2s_bench_summarise(double *ms, int n, s2s_bench_result *r);
/* Uploads n uniform(-1, 1) values drawn from (seed, stream) into a new device buffer (release
 * it with be->ops->release). */
s2s_status s2s_bench_random(s2s_backend *be, uint64_t seed, uint64_t stream, size_t n, float **out);

#ifdef S2S_HAVE_CUDNN
/* The same benchmark through cuDNN's RNN API (cudnnRNNForward, cudnnRNNBackwardData_v8,
 * cudnnRNNBackwardWeights_v8) on the CUDA backend's stream and allocator. */
s2s_status s2s_cudnn_bench_rnn(s2s_backend *be, uint64_t seed, const s2s_bench_rnn_options *o, s2s_bench_result *r);
#endif
#ifdef S2S_HAVE_CUDNN
/* The cuDNN layer implementation: creates its handle and sets ops' layer_* entries
 * (backend_cuda_cudnn_layer.c); and its teardown (safe when never enabled). */
s2s_status s2s_cudnn_layers_enable(s2s_backend *be, s2s_ops *ops);
void s2s_cudnn_layers_free(s2s_backend *be);
#endif
#ifdef S2S_HAVE_CUDA
/* The CUDA backend's current stream (a cudaStream_t). */
void *s2s_cuda_stream_of(s2s_backend *be);
/* A pointer-sized slot of the CUDA backend for the cuDNN layer state. */
void **s2s_cuda_dnn_slot(s2s_backend *be);
#endif

#endif
