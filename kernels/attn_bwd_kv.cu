/* attn_bwd_kv.cu - backward of T decoder steps' attention, the keys' and values' part. q, dctx
 * [T, B, H]; alpha, dscore [T, B, S] (attn_bwd's); keys' and values' gradients [S, B, H]:
 *   dkeys[s, b] += sum_t dscore[t, b, s] q[t, b]
 *   dvals[s, b] += sum_t alpha[t, b, s] dctx[t, b]
 * for s < src_len[b] only (positions beyond are left untouched, as on the CPU). dkeys may alias
 * dvals (dot attention: keys = vals); each element then gets both sums.
 *
 * One block per (b, s) pair, threads over H: each thread owns its columns of one row (no two
 * threads write one element), sums over t in increasing order in registers, as the CPU does,
 * and adds once. Reads of q and dctx rows are coalesced; a row's T rows are read by its S
 * blocks, which run close together (blockIdx = b S + s) and hit in L2. */
#include "common.cuh"
#include "launchers.cuh"

#define KV_THREADS 128

static __global__ void attn_bwd_kv_kernel(int S, int T, int B, int H, const float *__restrict__ q,
                                          const float *__restrict__ alpha, const float *__restrict__ dscore,
                                          const float *__restrict__ dctx, const int32_t *__restrict__ src_len,
                                          float *dkeys, float *dvals)
{
    const int b = (int)(blockIdx.x / (unsigned)S), s = (int)(blockIdx.x % (unsigned)S);
    int L = src_len ? src_len[b] : S;
    if (s >= L)
        return;
    const bool shared_kv = dkeys == dvals;
    const size_t at = ((size_t)s * B + b) * H;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        float ak = 0.0f, av = 0.0f;
        for (int t = 0; t < T; t++) {
            const size_t r = (size_t)t * B + b;
            ak += dscore[r * S + s] * q[r * H + j];
            av += alpha[r * S + s] * dctx[r * H + j];
        }
        if (shared_kv) {
            dkeys[at + j] += ak + av;
        } else {
            dkeys[at + j] += ak;
            dvals[at + j] += av;
        }
    }
}

extern "C" cudaError_t s2s_k_attn_bwd_kv(int S, int T, int B, int H, const float *q, const float *alpha,
                                         const float *dscore, const float *dctx, const int32_t *src_len,
                                         float *dkeys, float *dvals, cudaStream_t st)
{
    if (B <= 0 || S <= 0 || H <= 0 || T <= 0)
        return cudaSuccess;
    if ((size_t)B * S > 0x7fffffffu)
        return cudaErrorInvalidValue;
    attn_bwd_kv_kernel<<<(unsigned)(B * S), KV_THREADS, 0, st>>>(S, T, B, H, q, alpha, dscore, dctx, src_len, dkeys,
                                                                 dvals);
    return cudaGetLastError();
}
