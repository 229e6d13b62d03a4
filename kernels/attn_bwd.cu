/* attn_bwd.cu - backward of attn_fwd for one decoder step. Inputs as in attn_fwd plus the
 * saved alpha [B, S] and dctx [B, H]. With da[s] = dctx[b] . vals[s, b] and
 * ds[s] = alpha[s] (da[s] - sum_u alpha[u] da[u]) (softmax backward), accumulates
 *   dq[b]       += sum_s ds[s] keys[s, b]
 *   dkeys[s, b] += ds[s] q[b]
 *   dvals[s, b] += alpha[s] dctx[b]
 * for s < src_len[b] only (positions beyond are left untouched, as on the CPU). dkeys may alias
 * dvals (dot attention: keys = vals); each element is then updated once with both terms.
 *
 * One block per batch row; alpha and ds for the row live in shared memory (2 S floats,
 * S <= S2S_K_ATTN_MAX_S). da uses a warp per position (lanes over H, coalesced); the final
 * phase has threads over H and walks s in increasing order, so dq accumulates in the CPU's
 * order and every row of keys, dkeys, dvals is read and written coalesced. */
#include "common.cuh"
#include "launchers.cuh"

#define ATTN_THREADS 512

static __global__ void attn_bwd_kernel(int S, int B, int H, const float *__restrict__ keys,
                                       const float *__restrict__ vals, const float *__restrict__ q,
                                       const float *__restrict__ alpha, const float *__restrict__ dctx,
                                       const int32_t *__restrict__ src_len, float *__restrict__ dq, float *dkeys,
                                       float *dvals)
{
    extern __shared__ float sm[]; /* ab[S], then ds[S] */
    float *ab = sm, *ds = sm + S;
    __shared__ float red[32];
    const int b = blockIdx.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    int L = src_len ? src_len[b] : S;
    L = L < 0 ? 0 : (L > S ? S : L);
    const float *gb = dctx + (size_t)b * H, *qb = q + (size_t)b * H;

    for (int s = threadIdx.x; s < L; s += blockDim.x)
        ab[s] = alpha[(size_t)b * S + s];
    for (int s = warp; s < L; s += nwarps) {
        const float *v = vals + ((size_t)s * B + b) * H;
        float d = 0.0f;
        for (int j = lane; j < H; j += 32)
            d += gb[j] * v[j];
        d = s2s_warp_sum(d);
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

    const bool shared_kv = dkeys == dvals;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        const float qj = qb[j], gj = gb[j];
        float acc = dq[(size_t)b * H + j];
        for (int s = 0; s < L; s++) {
            const size_t e = ((size_t)s * B + b) * H + j;
            const float d = ds[s];
            acc += d * keys[e];
            if (shared_kv) {
                dkeys[e] += d * qj + ab[s] * gj;
            } else {
                dkeys[e] += d * qj;
                dvals[e] += ab[s] * gj;
            }
        }
        dq[(size_t)b * H + j] = acc;
    }
}

extern "C" cudaError_t s2s_k_attn_bwd(int S, int B, int H, const float *keys, const float *vals, const float *q,
                                      const float *alpha, const float *dctx, const int32_t *src_len, float *dq,
                                      float *dkeys, float *dvals, cudaStream_t st)
{
    if (B <= 0 || S <= 0 || H <= 0)
        return cudaSuccess;
    if (S > S2S_K_ATTN_MAX_S)
        return cudaErrorInvalidValue;
    attn_bwd_kernel<<<B, ATTN_THREADS, 2 * (size_t)S * sizeof(float), st>>>(S, B, H, keys, vals, q, alpha, dctx,
                                                                            src_len, dq, dkeys, dvals);
    return cudaGetLastError();
}
