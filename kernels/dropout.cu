/* dropout.cu - y[e] = x[e] * s2s_dropout_scale(seed, stream, e, p) for e < n; y may alias x.
 *
 * philox.h draws element e from word e % 4 of the Philox block at counter e / 4, so one thread
 * per group of 4 elements calls s2s_philox4x32_10 once and uses all four words: the same
 * uniforms and the same `u < p ? 0 : 1/(1-p)` as s2s_dropout_scale, at a quarter of its cost
 * (10 Philox rounds per element would make the kernel compute-bound). Masks are therefore
 * bit-identical to the CPU's, which the parity test checks. When x and y are 16-byte aligned
 * a full group moves as one float4. With step != NULL (device memory) the stream used is
 * stream ^ (*step << 24), read when the kernel runs: a recorded graph then serves every
 * training step (nn.h's s2s_dropout_stream puts the step there). */
#include "common.cuh"
#include "launchers.cuh"
#include "philox.h"

static __device__ __forceinline__ float keep_scale(float u, float p, float inv_keep)
{
    return u < p ? 0.0f : inv_keep; /* s2s_dropout_scale's expression */
}

static __global__ void dropout_kernel(float *y, const float *x, size_t n, float p, uint64_t seed, uint64_t stream,
                                      const uint64_t *step)
{
    if (step)
        stream ^= *step << 24;
    const size_t groups = (n + 3) / 4;
    const float inv_keep = 1.0f / (1.0f - p);
    const bool vec = ((((uintptr_t)x) | ((uintptr_t)y)) & 15) == 0;
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < groups; q += (size_t)gridDim.x * blockDim.x) {
        const s2s_philox4 r = s2s_philox4x32_10((uint32_t)q, (uint32_t)(q >> 32), (uint32_t)stream,
                                                (uint32_t)(stream >> 32), (uint32_t)seed, (uint32_t)(seed >> 32));
        const size_t e = 4 * q;
        if (vec && e + 3 < n) {
            float4 v = *(const float4 *)(x + e);
            v.x *= keep_scale(s2s_u32_to_unit(r.v[0]), p, inv_keep);
            v.y *= keep_scale(s2s_u32_to_unit(r.v[1]), p, inv_keep);
            v.z *= keep_scale(s2s_u32_to_unit(r.v[2]), p, inv_keep);
            v.w *= keep_scale(s2s_u32_to_unit(r.v[3]), p, inv_keep);
            *(float4 *)(y + e) = v;
        } else {
            for (int k = 0; k < 4 && e + k < n; k++)
                y[e + k] = x[e + k] * keep_scale(s2s_u32_to_unit(r.v[k]), p, inv_keep);
        }
    }
}

/* A shard of a batch: element e draws the mask of element s2s_drop_index(e) of the whole
 * batch, one Philox block per element (shards are only used by data-parallel training). */
static __global__ void dropout_rows_kernel(float *y, const float *x, size_t n, float p, uint64_t seed, uint64_t stream,
                                           const uint64_t *step, s2s_k_rows r)
{
    if (step)
        stream ^= *step << 24;
    const float inv_keep = 1.0f / (1.0f - p);
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        const uint64_t g = s2s_drop_index(e, r.width, r.rows, r.rows_global, r.row0);
        y[e] = x[e] * keep_scale(s2s_philox_uniform(seed, stream, g), p, inv_keep);
    }
}

extern "C" cudaError_t s2s_k_dropout(float *y, const float *x, size_t n, float p, uint64_t seed, uint64_t stream,
                                     const uint64_t *step, s2s_k_rows rows, cudaStream_t st)
{
    if (n == 0)
        return cudaSuccess;
    if (rows.rows_global > 0)
        dropout_rows_kernel<<<s2s_k_grid(n, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(y, x, n, p, seed, stream, step,
                                                                                  rows);
    else
        dropout_kernel<<<s2s_k_grid((n + 3) / 4, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(y, x, n, p, seed, stream,
                                                                                       step);
    return cudaGetLastError();
}
