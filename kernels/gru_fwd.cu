/* gru_fwd.cu - one GRU time step over a [B, H] batch. Thread (b, j) applies s2s_gru_fwd_unit
 * (cell_math.h) to xp[b, k*H + j], hp[b, k*H + j] (xp, hp [B, 3H]; hp has no bias) and
 * b_hh[k*H + j] (b_hh [3H]), writing h [B, H], y [B, H] (nullable) and act [B, 4H] (nullable:
 * r, z, n, W_hn h + b_hn). Coalesced over j.
 * A padded row (len != NULL and t >= len[b]) keeps h = h_prev, gets y = 0 and act = 0. h may
 * alias h_prev (read before write by the same thread). */
#include "cell_math.h"
#include "common.cuh"
#include "launchers.cuh"

static __global__ void gru_fwd_kernel(int B, int H, const float *__restrict__ xp, const float *__restrict__ hp,
                                      const float *__restrict__ b_hh, const float *h_prev,
                                      const int32_t *__restrict__ len, int t, float *h,
                                      float *y, float *__restrict__ act)
{
    const int n = B * H;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const int b = i / H, j = i - b * H;
        const size_t g3 = (size_t)b * 3 * H + j, g4 = (size_t)b * 4 * H + j;
        if (!len || t < len[b]) {
            float hv = s2s_gru_fwd_unit(xp + g3, hp + g3, b_hh + j, H, h_prev[i], act ? act + g4 : nullptr);
            h[i] = hv;
            if (y)
                y[i] = hv;
        } else {
            h[i] = h_prev[i];
            if (y)
                y[i] = 0.0f;
            if (act)
                act[g4] = act[g4 + H] = act[g4 + 2 * H] = act[g4 + 3 * H] = 0.0f;
        }
    }
}

extern "C" cudaError_t s2s_k_gru_fwd(int B, int H, const float *xp, const float *hp, const float *b_hh,
                                     const float *h_prev, const int32_t *len, int t, float *h, float *y, float *act,
                                     cudaStream_t st)
{
    if (B <= 0 || H <= 0)
        return cudaSuccess;
    gru_fwd_kernel<<<s2s_k_grid((size_t)B * H, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(B, H, xp, hp, b_hh, h_prev,
                                                                                      len, t, h, y, act);
    return cudaGetLastError();
}
