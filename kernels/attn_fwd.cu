/* attn_fwd.cu - Luong dot attention for one decoder step. keys, vals [S, B, H] (time-major:
 * row s*B + b), q [B, H], src_len [B] (NULL: all S valid). Writes alpha [B, S] =
 * softmax over s < src_len[b] of q[b] . keys[s, b] (0 beyond) and ctx [B, H] =
 * sum_s alpha[b, s] vals[s, b].
 *
 * One block per batch row b, the row's S scores in shared memory (S <= S2S_K_ATTN_MAX_S):
 *  1. a warp per source position s: lanes stride over H (coalesced reads of keys), then a
 *     warp butterfly;
 *  2. block max and sum of exp, alpha = exp(score - max) / sum as on the CPU;
 *  3. threads over H: ctx[b, j] = sum over s in increasing order (the CPU's order) of
 *     alpha[s] * vals[s, b, j], reading one coalesced row of vals per s.
 * With B blocks only (B ~ 64 on a 132-SM GPU) the kernel lives on memory-level parallelism,
 * so when H % 4 == 0 and every row is 16-byte aligned (the usual case) rows move as float4
 * (V4 = true): four times the bytes per load in flight. */
#include "common.cuh"
#include "launchers.cuh"

#define ATTN_THREADS 512


template <bool V4>
static __global__ void attn_fwd_kernel(int S, int B, int H, const float *__restrict__ keys,
                                       const float *__restrict__ vals, const float *__restrict__ q,
                                       const int32_t *__restrict__ src_len, float *__restrict__ alpha,
                                       float *__restrict__ ctx)
{
    extern __shared__ float sc[]; /* [S] scores, then alpha */
    __shared__ float red[32];
    const int b = blockIdx.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    int L = src_len ? src_len[b] : S;
    L = L < 0 ? 0 : (L > S ? S : L);
    const float *qb = q + (size_t)b * H;

    for (int s = warp; s < L; s += nwarps) {
        float d = s2s_warp_sum(s2s_lane_dot<V4>(qb, keys + ((size_t)s * B + b) * H, H, lane));
        if (lane == 0)
            sc[s] = d;
    }
    __syncthreads();

    float mx = -INFINITY;
    for (int s = threadIdx.x; s < L; s += blockDim.x)
        mx = fmaxf(mx, sc[s]);
    mx = s2s_block_max(mx, red);
    float z = 0.0f;
    for (int s = threadIdx.x; s < L; s += blockDim.x) {
        float e = expf(sc[s] - mx);
        sc[s] = e;
        z += e;
    }
    z = s2s_block_sum(z, red);
    float *ab = alpha + (size_t)b * S;
    for (int s = threadIdx.x; s < S; s += blockDim.x) {
        float a = 0.0f;
        if (s < L) {
            a = sc[s] / z;
            sc[s] = a;
        }
        ab[s] = a;
    }
    __syncthreads();

    if constexpr (V4) {
        float4 *cb = (float4 *)(ctx + (size_t)b * H);
        for (int j = threadIdx.x; j < H / 4; j += blockDim.x) {
            float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
            for (int s = 0; s < L; s++) {
                const float a = sc[s];
                const float4 v = ((const float4 *)(vals + ((size_t)s * B + b) * H))[j];
                acc.x += a * v.x;
                acc.y += a * v.y;
                acc.z += a * v.z;
                acc.w += a * v.w;
            }
            cb[j] = acc;
        }
    } else {
        for (int j = threadIdx.x; j < H; j += blockDim.x) {
            float acc = 0.0f;
#pragma unroll 4
            for (int s = 0; s < L; s++)
                acc += sc[s] * vals[((size_t)s * B + b) * H + j];
            ctx[(size_t)b * H + j] = acc;
        }
    }
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" cudaError_t s2s_k_attn_fwd(int S, int B, int H, const float *keys, const float *vals, const float *q,
                                      const int32_t *src_len, float *alpha, float *ctx, cudaStream_t st)
{
    if (B <= 0 || S <= 0 || H <= 0)
        return cudaSuccess;
    if (S > S2S_K_ATTN_MAX_S)
        return cudaErrorInvalidValue;
    /* + 4 floats: the unrolled context loop loads the next scores ahead of the loop test, and
     * compute-sanitizer flagged that read past sc[S-1] (values it never uses) */
    const size_t smem = ((size_t)S + 4) * sizeof(float);
    if (H % 4 == 0 && aligned16(keys) && aligned16(vals) && aligned16(q) && aligned16(ctx))
        attn_fwd_kernel<true><<<B, ATTN_THREADS, smem, st>>>(S, B, H, keys, vals, q, src_len, alpha, ctx);
    else
        attn_fwd_kernel<false><<<B, ATTN_THREADS, smem, st>>>(S, B, H, keys, vals, q, src_len, alpha, ctx);
    return cudaGetLastError();
}
