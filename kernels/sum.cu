/* sum.cu - *out = sum of x[i] (square = 0) or of x[i]^2 (square = 1: the squared gradient norm)
 * over n floats, in double, deterministic.
 * Pass 1: each of up to S2S_K_REDUCE_PARTS blocks sums a grid-stride slice into one double
 * partial (thread order, then the block tree); pass 2: one block sums the partials in index
 * order. The grid depends only on n, so the bits depend only on the input. The CPU sums
 * sequentially; the two agree to about n * 1e-16 relative. */
#include "common.cuh"
#include "launchers.cuh"

template <bool SQUARE>
static __global__ void sum_partial_kernel(const float *__restrict__ x, size_t n, double *__restrict__ partials)
{
    __shared__ double smem[32];
    double s = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s += SQUARE ? (double)x[i] * (double)x[i] : (double)x[i];
    s = s2s_block_sum(s, smem);
    if (threadIdx.x == 0)
        partials[blockIdx.x] = s;
}

static __global__ void sum_final_kernel(const double *__restrict__ partials, int np, double *__restrict__ out)
{
    s2s_reduce_final(partials, np, out);
}

extern "C" cudaError_t s2s_k_sum(const float *x, size_t n, int square, double *partials, double *out, cudaStream_t st)
{
    if (n == 0)
        return cudaMemsetAsync(out, 0, sizeof(double), st);
    unsigned nb = s2s_reduce_blocks(n, S2S_K_THREADS, S2S_K_REDUCE_PARTS);
    if (square)
        sum_partial_kernel<true><<<nb, S2S_K_THREADS, 0, st>>>(x, n, partials);
    else
        sum_partial_kernel<false><<<nb, S2S_K_THREADS, 0, st>>>(x, n, partials);
    sum_final_kernel<<<1, S2S_K_THREADS, 0, st>>>(partials, (int)nb, out);
    return cudaGetLastError();
}
