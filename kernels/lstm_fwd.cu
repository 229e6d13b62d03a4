/* lstm_fwd.cu - one LSTM time step over a [B, H] batch: thread (b, j) reads the 4 gate
 * pre-activations pre[b, k*H + j] (pre [B, 4H]), applies s2s_lstm_fwd_unit (cell_math.h, the
 * same code the CPU runs) and writes h, c [B, H], y [B, H] (nullable) and the saved
 * activations act [B, 4H] (nullable). Consecutive threads take consecutive j, so every load
 * and store is coalesced.
 * Row b is valid when len == NULL or t < len[b]; a padded row keeps h = h_prev, c = c_prev,
 * gets y = 0 and act = 0 (as the CPU reference). h may alias h_prev and c may alias c_prev
 * (each element is read before the same thread writes it), so those are not __restrict__. */
#include "cell_math.h"
#include "common.cuh"
#include "launchers.cuh"

static __global__ void lstm_fwd_kernel(int B, int H, const float *__restrict__ pre, const float *h_prev,
                                       const float *c_prev, const int32_t *__restrict__ len, int t,
                                       float *h, float *c, float *y,
                                       float *__restrict__ act)
{
    const int n = B * H;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const int b = i / H, j = i - b * H;
        const size_t g = (size_t)b * 4 * H + j;
        if (!len || t < len[b]) {
            float hv, cv;
            s2s_lstm_fwd_unit(pre + g, H, c_prev[i], &hv, &cv, act ? act + g : nullptr);
            h[i] = hv;
            c[i] = cv;
            if (y)
                y[i] = hv;
        } else {
            h[i] = h_prev[i];
            c[i] = c_prev[i];
            if (y)
                y[i] = 0.0f;
            if (act)
                act[g] = act[g + H] = act[g + 2 * H] = act[g + 3 * H] = 0.0f;
        }
    }
}

extern "C" cudaError_t s2s_k_lstm_fwd(int B, int H, const float *pre, const float *h_prev, const float *c_prev,
                                      const int32_t *len, int t, float *h, float *c, float *y, float *act,
                                      cudaStream_t st)
{
    if (B <= 0 || H <= 0)
        return cudaSuccess;
    lstm_fwd_kernel<<<s2s_k_grid((size_t)B * H, S2S_K_THREADS), S2S_K_THREADS, 0, st>>>(B, H, pre, h_prev, c_prev,
                                                                                       len, t, h, c, y, act);
    return cudaGetLastError();
}
