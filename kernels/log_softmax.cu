/* log_softmax.cu - y[r, :] = x[r, :] - log sum_c exp(x[r, c]) for x, y [rows, cols]; y may
 * alias x (each element is read by the thread that later writes it, and the statistics pass
 * finishes at a barrier before any write). One block per row: an online max / sum-of-exp pass,
 * then the write pass. */
#include "common.cuh"
#include "launchers.cuh"

static __global__ void log_softmax_kernel(float *y, const float *x, int cols)
{
    __shared__ s2s_smstat red[32];
    const size_t off = (size_t)blockIdx.x * cols;
    s2s_smstat st = {-INFINITY, 0.0f};
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        st = s2s_smstat_add(st, x[off + c]);
    st = s2s_block_smstat(st, red);
    const float lse = st.m + logf(st.s);
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        y[off + c] = x[off + c] - lse;
}

extern "C" cudaError_t s2s_k_log_softmax(float *y, const float *x, int rows, int cols, cudaStream_t st)
{
    if (rows <= 0 || cols <= 0)
        return cudaSuccess;
    const int threads = cols >= 8192 ? 512 : (cols >= 1024 ? 256 : 128);
    log_softmax_kernel<<<rows, threads, 0, st>>>(y, x, cols);
    return cudaGetLastError();
}
