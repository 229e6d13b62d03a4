/* scale.cu - x[0..n) *= a, in place, grid-stride. */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void scale_kernel(float *__restrict__ x, size_t n, float a)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] *= a;
}

extern "C" cudaError_t s2s_k_scale(float *x, size_t n, float a, cudaStream_t st)
{
    if (n == 0)
        return cudaSuccess;
    scale_kernel<<<s2s_k_grid(n, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(x, n, a);
    return cudaGetLastError();
}
