/* bias_rows.cu - y[r, c] = b1[c] + (b2 ? b2[c] : 0) for a [rows, cols] block of y with row
 * stride ldy (the pre-activation buffers before the input-projection GEMM accumulates into
 * them with beta = 1). 2-D grid: x over columns (coalesced), y strides over rows; the bias
 * pair is loaded once per thread and reused for every row it writes. */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void bias_rows_kernel(float *__restrict__ y, int rows, int cols, int ldy,
                                        const float *__restrict__ b1, const float *__restrict__ b2)
{
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
        float v = b1[c] + (b2 ? b2[c] : 0.0f);
        for (int r = blockIdx.y * blockDim.y + threadIdx.y; r < rows; r += gridDim.y * blockDim.y)
            y[(size_t)r * ldy + c] = v;
    }
}

extern "C" cudaError_t s2s_k_bias_rows(float *y, int rows, int cols, int ldy, const float *b1, const float *b2,
                                       cudaStream_t st)
{
    if (rows <= 0 || cols <= 0)
        return cudaSuccess;
    dim3 block = s2s_k_block2d(cols);
    bias_rows_kernel<<<s2s_k_grid2d(rows, cols, block), block, 0, st>>>(y, rows, cols, ldy, b1, b2);
    return cudaGetLastError();
}
