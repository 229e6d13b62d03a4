/* lstm_bwd.cu - backward of one LSTM time step over a [B, H] batch. Thread (b, j): on a valid
 * row, dht = dh + dy (y = h there), s2s_lstm_bwd_unit (cell_math.h) writes the 4 gate
 * gradients dpre[b, k*H + j] and returns dc_prev; the direct part of dh_prev is 0 (the caller
 * adds dpre W_hh). On a padded row the state passed through unchanged, so dh_prev = dh,
 * dc_prev = dc and dpre = 0.
 * act [B, 4H]: saved i, f, g, o; c, c_prev, dy (nullable), dh, dc: [B, H]. dh_prev may alias dh
 * and dc_prev may alias dc: each element is read before the same thread writes it, which is
 * why those pointers are not __restrict__. */
#include "cell_math.h"
#include "common.cuh"
#include "launchers.cuh"

static __global__ void lstm_bwd_kernel(int B, int H, const float *__restrict__ act, const float *__restrict__ c,
                                       const float *__restrict__ c_prev, const float *__restrict__ dy,
                                       const float *dh, const float *dc, const int32_t *__restrict__ len, int t,
                                       float *__restrict__ dpre, float *dh_prev, float *dc_prev)
{
    const int n = B * H;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const int b = i / H, j = i - b * H;
        const size_t g = (size_t)b * 4 * H + j;
        const float dhi = dh[i], dci = dc[i];
        if (!len || t < len[b]) {
            float dht = dhi + (dy ? dy[i] : 0.0f);
            dc_prev[i] = s2s_lstm_bwd_unit(act + g, H, c[i], c_prev[i], dht, dci, dpre + g);
            dh_prev[i] = 0.0f;
        } else {
            dpre[g] = dpre[g + H] = dpre[g + 2 * H] = dpre[g + 3 * H] = 0.0f;
            dh_prev[i] = dhi;
            dc_prev[i] = dci;
        }
    }
}

extern "C" cudaError_t s2s_k_lstm_bwd(int B, int H, const float *act, const float *c, const float *c_prev,
                                      const float *dy, const float *dh, const float *dc, const int32_t *len, int t,
                                      float *dpre, float *dh_prev, float *dc_prev, cudaStream_t st)
{
    if (B <= 0 || H <= 0)
        return cudaSuccess;
    lstm_bwd_kernel<<<s2s_k_grid((size_t)B * H, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(
        B, H, act, c, c_prev, dy, dh, dc, len, t, dpre, dh_prev, dc_prev);
    return cudaGetLastError();
}
