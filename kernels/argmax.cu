/* argmax.cu - out[r] = the first index of the largest value of x[r, :] (x [rows, cols],
 * out int32 [rows]), for greedy decoding. One block per row; each thread keeps its best
 * (value, index) over a strided slice, then warp and block reductions keep the larger value,
 * the smaller index on ties, so the answer does not depend on the reduction order.
 * NaN follows the CPU's sequential scan `if (x[c] > x[best]) best = c` from best = 0: NaN at
 * column 0 gives 0; any other NaN is never chosen (an all-NaN tail gives 0). */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void argmax_kernel(int32_t *__restrict__ out, const float *__restrict__ x, int cols)
{
    __shared__ s2s_best red[33];
    const float *xr = x + (size_t)blockIdx.x * cols;
    s2s_best a = {-INFINITY, INT_MAX};
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = xr[c];
        if (!isnan(v) && (a.i == INT_MAX || v > a.v)) {
            a.v = v;
            a.i = c;
        }
    }
    s2s_best w = s2s_block_best(a, red);
    if (threadIdx.x == 0)
        out[blockIdx.x] = (isnan(xr[0]) || w.i == INT_MAX) ? 0 : w.i;
}

extern "C" cudaError_t s2s_k_argmax(int32_t *out, const float *x, int rows, int cols, cudaStream_t st)
{
    if (rows <= 0 || cols <= 0)
        return cudaSuccess;
    const int threads = cols >= 8192 ? 512 : (cols >= 1024 ? 256 : 128);
    argmax_kernel<<<rows, threads, 0, st>>>(out, x, cols);
    return cudaGetLastError();
}
