/* rnn_bwd.cu - backward of one tanh-RNN time step over a [B, H] batch. h: the state after the
 * step. Valid row: dpre = s2s_rnn_bwd_unit(h, dh + dy), direct dh_prev = 0; padded row:
 * dpre = 0, dh_prev = dh. All [B, H]; dh_prev may alias dh (read before write). */
#include "cell_math.h"
#include "common.cuh"
#include "launchers.cuh"

static __global__ void rnn_bwd_kernel(int B, int H, const float *__restrict__ h, const float *__restrict__ dy,
                                      const float *dh, const int32_t *__restrict__ len, int t,
                                      float *__restrict__ dpre, float *dh_prev)
{
    const int n = B * H;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const int b = i / H;
        const float dhi = dh[i];
        if (!len || t < len[b]) {
            dpre[i] = s2s_rnn_bwd_unit(h[i], dhi + (dy ? dy[i] : 0.0f));
            dh_prev[i] = 0.0f;
        } else {
            dpre[i] = 0.0f;
            dh_prev[i] = dhi;
        }
    }
}

extern "C" cudaError_t s2s_k_rnn_bwd(int B, int H, const float *h, const float *dy, const float *dh,
                                     const int32_t *len, int t, float *dpre, float *dh_prev, cudaStream_t st)
{
    if (B <= 0 || H <= 0)
        return cudaSuccess;
    rnn_bwd_kernel<<<s2s_k_grid((size_t)B * H, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(B, H, h, dy, dh, len, t, dpre,
                                                                                      dh_prev);
    return cudaGetLastError();
}
