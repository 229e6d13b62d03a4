/* gru_bwd.cu - backward of one GRU time step over a [B, H] batch. Thread (b, j): on a valid
 * row, dht = dh + dy and s2s_gru_bwd_unit (cell_math.h) writes dxp, dhp [B, 3H] (dhp: the
 * gradient of h_prev W_hh^T + b_hh) and returns the direct part of dh_prev (z * dht). On a
 * padded row dxp = dhp = 0 and dh_prev = dh.
 * act [B, 4H]: saved r, z, n, hn; h_prev, dy (nullable), dh: [B, H]. dh_prev may alias dh (read
 * before write by the same thread, hence no __restrict__ on the pair). */
#include "cell_math.h"
#include "common.cuh"
#include "launchers.cuh"

static __global__ void gru_bwd_kernel(int B, int H, const float *__restrict__ act, const float *__restrict__ h_prev,
                                      const float *__restrict__ dy, const float *dh, const int32_t *__restrict__ len,
                                      int t, float *__restrict__ dxp, float *__restrict__ dhp, float *dh_prev)
{
    const int n = B * H;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const int b = i / H, j = i - b * H;
        const size_t g3 = (size_t)b * 3 * H + j, g4 = (size_t)b * 4 * H + j;
        const float dhi = dh[i];
        if (!len || t < len[b]) {
            float dht = dhi + (dy ? dy[i] : 0.0f);
            dh_prev[i] = s2s_gru_bwd_unit(act + g4, H, h_prev[i], dht, dxp + g3, dhp + g3);
        } else {
            dxp[g3] = dxp[g3 + H] = dxp[g3 + 2 * H] = 0.0f;
            dhp[g3] = dhp[g3 + H] = dhp[g3 + 2 * H] = 0.0f;
            dh_prev[i] = dhi;
        }
    }
}

extern "C" cudaError_t s2s_k_gru_bwd(int B, int H, const float *act, const float *h_prev, const float *dy,
                                     const float *dh, const int32_t *len, int t, float *dxp, float *dhp,
                                     float *dh_prev, cudaStream_t st)
{
    if (B <= 0 || H <= 0)
        return cudaSuccess;
    gru_bwd_kernel<<<s2s_k_grid((size_t)B * H, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(B, H, act, h_prev, dy, dh,
                                                                                      len, t, dxp, dhp, dh_prev);
    return cudaGetLastError();
}
