/* gather_rows.cu - y[i, :] = w[ids[i], :] for i < n: a row gather from the table w [vocab, dim]
 * into y [n, dim] with row stride ldy. 2-D grid: x over the dim columns (coalesced reads of
 * one table row and writes of one output row), y strides over the n rows. Ids are trusted
 * (the batcher checks them on the host). */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void gather_rows_kernel(float *__restrict__ y, int ldy, const float *__restrict__ w,
                                        const int32_t *__restrict__ ids, int n, int dim)
{
    for (int i = blockIdx.y * blockDim.y + threadIdx.y; i < n; i += gridDim.y * blockDim.y) {
        const float *src = w + (size_t)ids[i] * dim;
        float *dst = y + (size_t)i * ldy;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < dim; c += gridDim.x * blockDim.x)
            dst[c] = src[c];
    }
}

extern "C" cudaError_t s2s_k_gather_rows(float *y, int ldy, const float *w, const int32_t *ids, int n, int dim,
                                       cudaStream_t st)
{
    if (n <= 0 || dim <= 0)
        return cudaSuccess;
    dim3 block = s2s_k_block2d(dim);
    gather_rows_kernel<<<s2s_k_grid2d(n, dim, block), block, 0, st>>>(y, ldy, w, ids, n, dim);
    return cudaGetLastError();
}
