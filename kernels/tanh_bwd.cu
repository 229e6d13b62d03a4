/* tanh_bwd.cu - dx = dy * (1 - y^2) over n elements, y the forward output; dx may alias dy. */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void tanh_bwd_kernel(float *dx, const float *__restrict__ y, const float *dy, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float yi = y[i];
        dx[i] = dy[i] * (1.0f - yi * yi);
    }
}

extern "C" cudaError_t s2s_k_tanh_bwd(float *dx, const float *y, const float *dy, size_t n, cudaStream_t st)
{
    if (n == 0)
        return cudaSuccess;
    tanh_bwd_kernel<<<s2s_k_grid(n, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(dx, y, dy, n);
    return cudaGetLastError();
}
