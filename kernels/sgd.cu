/* sgd.cu - one SGD step (PyTorch's form, L2 weight decay added to the gradient) on n
 * parameters: g' = gscale g + wd p; with a momentum buffer (mom != NULL, starting at 0)
 * mom = momentum mom + g' and p -= lr mom, else p -= lr g'. p, g, mom: [n]; grid-stride. */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void sgd_kernel(float *__restrict__ p, const float *__restrict__ g, float *__restrict__ mom,
                                  size_t n, float lr, float momentum, float wd, float gscale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float pi = p[i];
        float gi = gscale * g[i] + wd * pi;
        if (mom) {
            gi = momentum * mom[i] + gi;
            mom[i] = gi;
        }
        p[i] = pi - lr * gi;
    }
}

extern "C" cudaError_t s2s_k_sgd(float *p, const float *g, float *mom, size_t n, float lr, float momentum, float wd,
                                 float gscale, cudaStream_t st)
{
    if (n == 0)
        return cudaSuccess;
    sgd_kernel<<<s2s_k_grid(n, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(p, g, mom, n, lr, momentum, wd, gscale);
    return cudaGetLastError();
}
