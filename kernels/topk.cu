/* topk.cu - vals[r, j], idx[r, j] = the j-th largest value of x[r, :] and its column, for
 * j < k (x [rows, cols]), largest first, the smaller column first among equal values; NaN is
 * never chosen, and slots past a row's non-NaN count get -inf and column -1. For beam search:
 * each hypothesis's best few continuations, so that only rows x k values leave the device.
 *
 * One block per row, k rounds: round j picks the best (value, column) ranked below round
 * j-1's pick in that order (each thread over a strided slice, then the warp and block
 * reductions of argmax.cu), so no per-row candidate storage is needed; k <= S2S_K_TOPK_MAX.
 * The order is total and the reduction keeps the better of two, so the result does not
 * depend on the reduction order and equals the CPU's. */
#include "common.cuh"
#include "launchers.cuh"

/* (v, i) ranks below (pv, pi): smaller value, or equal value and larger column. */
static __device__ __forceinline__ bool below(float v, int i, float pv, int pi)
{
    return v < pv || (v == pv && i > pi);
}

static __global__ void topk_kernel(float *__restrict__ vals, int32_t *__restrict__ idx, const float *__restrict__ x,
                                   int cols, int k)
{
    __shared__ s2s_best red[33];
    const float *xr = x + (size_t)blockIdx.x * cols;
    float pv = INFINITY;
    int pi = -1;
    for (int j = 0; j < k; j++) {
        s2s_best a = {-INFINITY, INT_MAX};
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            float v = xr[c];
            if (below(v, c, pv, pi) && (a.i == INT_MAX || v > a.v)) /* NaN fails below() */
                a.v = v, a.i = c;
        }
        s2s_best p = s2s_block_best(a, red);
        if (threadIdx.x == 0) {
            vals[(size_t)blockIdx.x * k + j] = p.i == INT_MAX ? -INFINITY : p.v;
            idx[(size_t)blockIdx.x * k + j] = p.i == INT_MAX ? -1 : p.i;
        }
        if (p.i != INT_MAX)
            pv = p.v, pi = p.i;
    }
}

extern "C" cudaError_t s2s_k_topk(float *vals, int32_t *idx, const float *x, int rows, int cols, int k,
                                  cudaStream_t st)
{
    if (rows <= 0 || k <= 0)
        return cudaSuccess;
    if (cols <= 0 || k > S2S_K_TOPK_MAX)
        return cudaErrorInvalidValue;
    const int threads = cols >= 8192 ? 512 : (cols >= 1024 ? 256 : 128);
    topk_kernel<<<rows, threads, 0, st>>>(vals, idx, x, cols, k);
    return cudaGetLastError();
}
