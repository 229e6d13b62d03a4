/* fill.cu - x[0..n) = v. Memory-bound: one coalesced store per element, grid-stride. */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void fill_kernel(float *__restrict__ x, size_t n, float v)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = v;
}

extern "C" cudaError_t s2s_k_fill(float *x, size_t n, float v, cudaStream_t st)
{
    if (n == 0)
        return cudaSuccess;
    fill_kernel<<<s2s_k_grid(n, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(x, n, v);
    return cudaGetLastError();
}
