/* adam.cu - one Adam step (PyTorch's, L2 weight decay added to the gradient) on n parameters:
 *   g' = gscale g + wd p;  m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
 *   p -= step_size m / (sqrt(v) / bc2_sqrt + eps)
 * with step_size = lr / (1 - b1^step) and bc2_sqrt = sqrt(1 - b2^step) from the host, in the
 * CPU reference's order of operations. p, g, m, v: [n]; one thread per element, grid-stride. */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void adam_kernel(float *__restrict__ p, const float *__restrict__ g, float *__restrict__ m,
                                   float *__restrict__ v, size_t n, float step_size, float b1, float b2,
                                   float bc2_sqrt, float eps, float wd, float gscale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float pi = p[i];
        const float gi = gscale * g[i] + wd * pi;
        const float mi = b1 * m[i] + (1.0f - b1) * gi;
        const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}

extern "C" cudaError_t s2s_k_adam(float *p, const float *g, float *m, float *v, size_t n, float step_size, float b1,
                                  float b2, float bc2_sqrt, float eps, float wd, float gscale, cudaStream_t st)
{
    if (n == 0)
        return cudaSuccess;
    adam_kernel<<<s2s_k_grid(n, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(p, g, m, v, n, step_size, b1, b2, bc2_sqrt,
                                                                       eps, wd, gscale);
    return cudaGetLastError();
}
