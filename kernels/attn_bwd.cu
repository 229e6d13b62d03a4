/* attn_bwd.cu - backward of attn_fwd for one decoder step, the query's part. Inputs as in
 * attn_fwd plus the saved alpha [B, S] and dctx [B, H]. With da[s] = dctx[b] . vals[s, b],
 * writes the scores' gradient
 *   dscore[b, s] = alpha[s] (da[s] - sum_u alpha[u] da[u])   (softmax backward; 0 at s >= L)
 * and accumulates dq[b] += sum_s dscore[b, s] keys[s, b] for s < src_len[b]. The keys' and
 * values' gradients of every step are attn_bwd_kv.cu's, after the time loop.
 *
 * One block per batch row; alpha and ds for the row live in shared memory (2 S floats,
 * S <= S2S_K_ATTN_MAX_S). da uses a warp per position (lanes over H, coalesced); the final
 * phase has threads over H and walks s in increasing order, so dq accumulates in the CPU's
 * order and every row of keys is read coalesced. As in attn_fwd, rows move as float4 when
 * H % 4 == 0 and all rows are 16-byte aligned (V4). */
#include "common.cuh"
#include "launchers.cuh"

#define ATTN_THREADS 512

/* Phase 3 for W consecutive columns (W = 4: one float4; W = 1: one float) starting at j. */
template <int W>
static __device__ __forceinline__ void accumulate(int L, int B, int H, int b, int j, const float *ds,
                                                  const float *__restrict__ keys, float *__restrict__ dq)
{
    float acc[W];
    for (int w = 0; w < W; w++)
        acc[w] = dq[(size_t)b * H + j + w];
    for (int s = 0; s < L; s++) {
        const size_t e = ((size_t)s * B + b) * H + j;
        const float d = ds[s];
        float k[W];
        if constexpr (W == 4) {
            const float4 k4 = *(const float4 *)(keys + e);
            k[0] = k4.x, k[1] = k4.y, k[2] = k4.z, k[3] = k4.w;
        } else {
            k[0] = keys[e];
        }
        for (int w = 0; w < W; w++)
            acc[w] += d * k[w];
    }
    for (int w = 0; w < W; w++)
        dq[(size_t)b * H + j + w] = acc[w];
}

template <bool V4>
static __global__ void attn_bwd_kernel(int S, int B, int H, const float *__restrict__ keys,
                                       const float *__restrict__ vals, const float *__restrict__ alpha,
                                       const float *__restrict__ dctx, const int32_t *__restrict__ src_len,
                                       float *__restrict__ dq, float *__restrict__ dscore)
{
    extern __shared__ float sm[]; /* ab[S], then ds[S] */
    float *ab = sm, *ds = sm + S;
    __shared__ float red[32];
    const int b = blockIdx.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    int L = src_len ? src_len[b] : S;
    L = L < 0 ? 0 : (L > S ? S : L);
    const float *gb = dctx + (size_t)b * H;

    for (int s = threadIdx.x; s < L; s += blockDim.x)
        ab[s] = alpha[(size_t)b * S + s];
    for (int s = warp; s < L; s += nwarps) {
        float d = s2s_warp_sum(s2s_lane_dot<V4>(gb, vals + ((size_t)s * B + b) * H, H, lane));
        if (lane == 0)
            ds[s] = d;
    }
    __syncthreads();

    float part = 0.0f;
    for (int s = threadIdx.x; s < L; s += blockDim.x)
        part += ab[s] * ds[s];
    const float dot = s2s_block_sum(part, red);
    for (int s = threadIdx.x; s < L; s += blockDim.x)
        ds[s] = ab[s] * (ds[s] - dot);
    __syncthreads();
    for (int s = threadIdx.x; s < S; s += blockDim.x)
        dscore[(size_t)b * S + s] = s < L ? ds[s] : 0.0f;

    constexpr int W = V4 ? 4 : 1;
    for (int j = threadIdx.x * W; j < H; j += blockDim.x * W)
        accumulate<W>(L, B, H, b, j, ds, keys, dq);
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" cudaError_t s2s_k_attn_bwd(int S, int B, int H, const float *keys, const float *vals, const float *alpha,
                                      const float *dctx, const int32_t *src_len, float *dq, float *dscore,
                                      cudaStream_t st)
{
    if (B <= 0 || S <= 0 || H <= 0)
        return cudaSuccess;
    if (S > S2S_K_ATTN_MAX_S)
        return cudaErrorInvalidValue;
    const size_t smem = (2 * (size_t)S + 4) * sizeof(float); /* + 4: room for loads ahead, as in attn_fwd */
    if (H % 4 == 0 && aligned16(keys) && aligned16(vals) && aligned16(dctx) && aligned16(dq))
        attn_bwd_kernel<true><<<B, ATTN_THREADS, smem, st>>>(S, B, H, keys, vals, alpha, dctx, src_len, dq, dscore);
    else
        attn_bwd_kernel<false><<<B, ATTN_THREADS, smem, st>>>(S, B, H, keys, vals, alpha, dctx, src_len, dq, dscore);
    return cudaGetLastError();
}
