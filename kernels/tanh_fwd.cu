/* tanh_fwd.cu - y = tanh(x) over n elements; y may alias x (each thread reads its element
 * before writing it, so no __restrict__ here). */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void tanh_fwd_kernel(float *y, const float *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = tanhf(x[i]);
}

extern "C" cudaError_t s2s_k_tanh_fwd(float *y, const float *x, size_t n, cudaStream_t st)
{
    if (n == 0)
        return cudaSuccess;
    tanh_fwd_kernel<<<s2s_k_grid(n, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(y, x, n);
    return cudaGetLastError();
}
