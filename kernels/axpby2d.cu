/* axpby2d.cu - dst[r, c] = alpha * src[r, c] + beta * dst[r, c] over a [rows, cols] block
 * (row strides ldd, lds). beta = 0 never reads dst, so stale NaNs there do not leak (the
 * contract in backend.h). src may alias dst (each element is read before it is written by the
 * same thread). 2-D grid: x over columns (coalesced), y strides over rows. */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void axpby2d_kernel(float *dst, int ldd, const float *src, int lds,
                                      int rows, int cols, float alpha, float beta)
{
    for (int r = blockIdx.y * blockDim.y + threadIdx.y; r < rows; r += gridDim.y * blockDim.y) {
        float *d = dst + (size_t)r * ldd;
        const float *s = src + (size_t)r * lds;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x)
            d[c] = beta == 0.0f ? alpha * s[c] : alpha * s[c] + beta * d[c];
    }
}

extern "C" cudaError_t s2s_k_axpby2d(float *dst, int ldd, const float *src, int lds, int rows, int cols, float alpha,
                                     float beta, cudaStream_t st)
{
    if (rows <= 0 || cols <= 0)
        return cudaSuccess;
    dim3 block = s2s_k_block2d(cols);
    axpby2d_kernel<<<s2s_k_grid2d(rows, cols, block), block, 0, st>>>(dst, ldd, src, lds, rows, cols, alpha, beta);
    return cudaGetLastError();
}
