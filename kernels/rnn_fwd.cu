/* rnn_fwd.cu - one tanh-RNN time step over a [B, H] batch: h = s2s_rnn_fwd_unit(pre) on valid
 * rows, h = h_prev on padded ones; y (nullable) = h where valid, 0 where padded. pre, h_prev,
 * h, y: [B, H]; one thread per element, coalesced. h may alias h_prev. */
#include "cell_math.h"
#include "common.cuh"
#include "launchers.cuh"

static __global__ void rnn_fwd_kernel(int B, int H, const float *__restrict__ pre, const float *h_prev,
                                      const int32_t *__restrict__ len, int t, float *h,
                                      float *y)
{
    const int n = B * H;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const int b = i / H;
        const bool ok = !len || t < len[b];
        const float hv = ok ? s2s_rnn_fwd_unit(pre[i]) : h_prev[i];
        h[i] = hv;
        if (y)
            y[i] = ok ? hv : 0.0f;
    }
}

extern "C" cudaError_t s2s_k_rnn_fwd(int B, int H, const float *pre, const float *h_prev, const int32_t *len, int t,
                                     float *h, float *y, cudaStream_t st)
{
    if (B <= 0 || H <= 0)
        return cudaSuccess;
    rnn_fwd_kernel<<<s2s_k_grid((size_t)B * H, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(B, H, pre, h_prev, len, t, h,
                                                                                      y);
    return cudaGetLastError();
}
