/* cell_math.h - pointwise math of the recurrent cells, shared by the CPU backend and the CUDA
 * kernels (S2S_HD). One call handles one hidden unit j of one batch row.
 *
 * Gate orders follow PyTorch: LSTM i, f, g, o; GRU r, z, n. Pre-activations for a row are laid
 * out as G consecutive blocks of H (pre[k*H + j] is gate k of unit j).
 *
 * Masking: a padded position (valid = 0) leaves the state as it was and gives a zero output;
 * in backward it passes the incoming state gradient straight through and produces zero
 * gradients for the pre-activations. */
#ifndef S2S_CELL_MATH_H
#define S2S_CELL_MATH_H

#include "s2s_hd.h"
#include <math.h>
#include <stdint.h>

/* exp and tanh. On the GPU, CUDA's expf and tanhf. On the host, branch-free versions, so that
 * loops over units vectorise (libm's expf and tanhf are scalar calls): expf by Cody-Waite
 * reduction to r in [-ln2/2, ln2/2], a degree-6 Taylor polynomial and 2^k from the exponent
 * bits (inputs clamped to [-87, 88]; relative error below 2.5e-7, measured over the range);
 * tanh as (1 - e^-2|x|) / (1 + e^-2|x|), or its Taylor series to x^11 below |x| = 0.25 where
 * that form cancels (relative error below 3e-7, absolute below 1.3e-7). */
#if defined(__CUDA_ARCH__)
S2S_HD float s2s_expf(float x) { return expf(x); }
S2S_HD float s2s_tanhf(float x) { return tanhf(x); }
#else
S2S_HD float s2s_expf(float xin)
{
    float x = xin != xin ? 0.0f : xin; /* NaN: computed on 0 (no undefined conversion), returned below */
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float kf = x * 1.44269504088896341f;
    union {
        float f;
        uint32_t i;
    } half, s, p2;
    half.f = 0.5f, s.f = kf;
    half.i |= s.i & 0x80000000u; /* copysign(0.5, kf): round to nearest, halves away from zero */
    int k = (int)(kf + half.f);
    float r = x - (float)k * 0.693145751953125f - (float)k * 1.428606765330187045e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666668f + r * (0.008333334f +
                                                                                            r * 0.0013888889f)))));
    p2.i = (uint32_t)(k + 127) << 23;
    float e = p * p2.f;
    return xin != xin ? xin : e;
}
S2S_HD float s2s_tanhf(float x)
{
    float a = x < 0.0f ? -x : x, e = s2s_expf(-2.0f * a), t = (1.0f - e) / (1.0f + e), x2 = x * x;
    float p = x * (1.0f + x2 * (-0.33333334f + x2 * (0.13333334f + x2 * (-0.053968254f + x2 * (0.021869489f +
                                                                                                 x2 * -0.0088632355f)))));
    return a < 0.25f ? p : (x < 0.0f ? -t : t);
}
#endif

S2S_HD float s2s_sigmoidf(float x) { return 1.0f / (1.0f + s2s_expf(-x)); }

/* ---- LSTM ------------------------------------------------------------------------
 * pre: 4 pre-activations of unit j (x W_ih^T + b_ih + h W_hh^T + b_hh), stride H.
 * Writes h, c (state) and the 4 activations (i, f, g, o) to act (stride H) if act != 0. */
S2S_HD void s2s_lstm_fwd_unit(const float *pre, int H, float c_prev, float *h, float *c, float *act)
{
    float i = s2s_sigmoidf(pre[0]);
    float f = s2s_sigmoidf(pre[H]);
    float g = s2s_tanhf(pre[2 * H]);
    float o = s2s_sigmoidf(pre[3 * H]);
    float cn = f * c_prev + i * g;
    *c = cn;
    *h = o * s2s_tanhf(cn);
    if (act) {
        act[0] = i;
        act[H] = f;
        act[2 * H] = g;
        act[3 * H] = o;
    }
}

/* act: saved i, f, g, o (stride H); c: cell state after the step; dh, dc: gradients arriving
 * at h and c of this step. Writes dpre (stride H) and returns dc_prev. */
S2S_HD float s2s_lstm_bwd_unit(const float *act, int H, float c, float c_prev, float dh, float dc, float *dpre)
{
    float i = act[0], f = act[H], g = act[2 * H], o = act[3 * H];
    float tc = s2s_tanhf(c);
    float dct = dc + dh * o * (1.0f - tc * tc);
    dpre[0] = dct * g * i * (1.0f - i);
    dpre[H] = dct * c_prev * f * (1.0f - f);
    dpre[2 * H] = dct * i * (1.0f - g * g);
    dpre[3 * H] = dh * tc * o * (1.0f - o);
    return dct * f;
}

/* ---- GRU -------------------------------------------------------------------------
 * xp: x W_ih^T + b_ih (3 gates r, z, n, stride H); hp: h W_hh^T without bias; bhh: b_hh for the
 * 3 gates (stride H). Returns h; saves r, z, n and hn = (W_hn h + b_hn) to act (stride H). */
S2S_HD float s2s_gru_fwd_unit(const float *xp, const float *hp, const float *bhh, int H, float h_prev, float *act)
{
    float r = s2s_sigmoidf(xp[0] + hp[0] + bhh[0]);
    float z = s2s_sigmoidf(xp[H] + hp[H] + bhh[H]);
    float hn = hp[2 * H] + bhh[2 * H];
    float n = s2s_tanhf(xp[2 * H] + r * hn);
    if (act) {
        act[0] = r;
        act[H] = z;
        act[2 * H] = n;
        act[3 * H] = hn;
    }
    return (1.0f - z) * n + z * h_prev;
}

/* act: saved r, z, n, hn; dh: gradient at h of this step. Writes dxp and dhp (3 gates, stride
 * H; dhp is the gradient of h W_hh^T + b_hh) and returns the direct part of dh_prev. */
S2S_HD float s2s_gru_bwd_unit(const float *act, int H, float h_prev, float dh, float *dxp, float *dhp)
{
    float r = act[0], z = act[H], n = act[2 * H], hn = act[3 * H];
    float dn = dh * (1.0f - z) * (1.0f - n * n);
    float dz = dh * (h_prev - n) * z * (1.0f - z);
    float dr = dn * hn * r * (1.0f - r);
    dxp[0] = dr;
    dxp[H] = dz;
    dxp[2 * H] = dn;
    dhp[0] = dr;
    dhp[H] = dz;
    dhp[2 * H] = dn * r;
    return dh * z;
}

/* ---- tanh RNN ------------------------------------------------------------------- */
S2S_HD float s2s_rnn_fwd_unit(float pre) { return s2s_tanhf(pre); }

/* h: the step's output (tanh of pre); returns dpre. */
S2S_HD float s2s_rnn_bwd_unit(float h, float dh) { return dh * (1.0f - h * h); }

#endif
