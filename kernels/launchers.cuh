/* launchers.cuh - the C prototypes of the kernel launchers, one per kernels/<op>.cu, called by
 * lib/backend/backend_cuda.c (compiled by the C compiler, so only C types and cuda_runtime_api.h here).
 *
 * Conventions for every launcher:
 * - Pointers are device memory unless named *_host; shapes and semantics are those of the op
 *   of the same name in lib/backend/backend.h, which validates the arguments before calling.
 * - Each enqueues its kernel(s) on `st` and returns cudaGetLastError() (launch errors only;
 *   execution errors surface at the next synchronising call). None synchronises.
 * - An empty problem (n = 0, rows = 0, ...) enqueues nothing and returns cudaSuccess.
 * - Results are deterministic: no float atomics, launch shapes depend only on the sizes. */
#ifndef S2S_KERNELS_LAUNCHERS_CUH
#define S2S_KERNELS_LAUNCHERS_CUH

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dense ------------------------------------------------------------------------ */
cudaError_t s2s_k_fill(float *x, size_t n, float v, cudaStream_t st);
cudaError_t s2s_k_bias_rows(float *y, int rows, int cols, int ldy, const float *b1, const float *b2, cudaStream_t st);
cudaError_t s2s_k_colsum(float *db, const float *dy, int rows, int cols, int ldy, cudaStream_t st);
cudaError_t s2s_k_axpby2d(float *dst, int ldd, const float *src, int lds, int rows, int cols, float alpha, float beta,
                          cudaStream_t st);
cudaError_t s2s_k_scale(float *x, size_t n, float a, cudaStream_t st);
cudaError_t s2s_k_tanh_fwd(float *y, const float *x, size_t n, cudaStream_t st);
cudaError_t s2s_k_tanh_bwd(float *dx, const float *y, const float *dy, size_t n, cudaStream_t st);

/* Two-pass reductions in double: pass 1 writes at most S2S_K_REDUCE_PARTS block partials to
 * `partials` (device, that many doubles), pass 2 sums them in index order into *out (device).
 * n = 0 writes 0. */
#define S2S_K_REDUCE_PARTS 1024
cudaError_t s2s_k_sum(const float *x, size_t n, int square, double *partials, double *out, cudaStream_t st);

/* ---- rows: embeddings and beam reordering ----------------------------------------- */
cudaError_t s2s_k_gather_rows(float *y, int ldy, const float *w, const int32_t *ids, int n, int dim, cudaStream_t st);
/* Sort-based (stable radix sort of the ids, then one block per run of equal ids), so needs a
 * device workspace: with work == NULL it only stores the bytes needed for (n, vocab) in
 * *work_bytes and returns cudaSuccess; otherwise work must hold *work_bytes bytes, 256-byte
 * aligned, and stays in use until the kernels finish on st. Ids outside [0, vocab) are
 * skipped, like pad_id. */
cudaError_t s2s_k_embed_bwd(float *dw, const float *dy, int ldy, const int32_t *ids, int n, int dim, int vocab,
                            int pad_id, void *work, size_t *work_bytes, cudaStream_t st);

/* ---- recurrent cells, one time step ---------------------------------------------- */
cudaError_t s2s_k_lstm_fwd(int B, int H, const float *pre, const float *h_prev, const float *c_prev,
                           const int32_t *len, int t, float *h, float *c, float *y, float *act, cudaStream_t st);
cudaError_t s2s_k_lstm_bwd(int B, int H, const float *act, const float *c, const float *c_prev, const float *dy,
                           const float *dh, const float *dc, const int32_t *len, int t, float *dpre, float *dh_prev,
                           float *dc_prev, cudaStream_t st);
cudaError_t s2s_k_gru_fwd(int B, int H, const float *xp, const float *hp, const float *b_hh, const float *h_prev,
                          const int32_t *len, int t, float *h, float *y, float *act, cudaStream_t st);
cudaError_t s2s_k_gru_bwd(int B, int H, const float *act, const float *h_prev, const float *dy, const float *dh,
                          const int32_t *len, int t, float *dxp, float *dhp, float *dh_prev, cudaStream_t st);
cudaError_t s2s_k_rnn_fwd(int B, int H, const float *pre, const float *h_prev, const int32_t *len, int t, float *h,
                          float *y, cudaStream_t st);
cudaError_t s2s_k_rnn_bwd(int B, int H, const float *h, const float *dy, const float *dh, const int32_t *len, int t,
                          float *dpre, float *dh_prev, cudaStream_t st);

/* ---- attention: one block per batch row, the S scores in shared memory ------------- */
#define S2S_K_ATTN_MAX_S 4096 /* 2 S floats of shared memory in attn_bwd: 32 KiB */
cudaError_t s2s_k_attn_fwd(int S, int B, int H, const float *keys, const float *vals, const float *q,
                           const int32_t *src_len, float *alpha, float *ctx, cudaStream_t st);
cudaError_t s2s_k_attn_bwd(int S, int B, int H, const float *keys, const float *vals, const float *alpha,
                           const float *dctx, const int32_t *src_len, float *dq, float *dscore, cudaStream_t st);
/* one block per (batch row, source position), B S < 2^31 */
cudaError_t s2s_k_attn_bwd_kv(int S, int T, int B, int H, const float *q, const float *alpha, const float *dscore,
                              const float *dctx, const int32_t *src_len, float *dkeys, float *dvals,
                              cudaStream_t st);

/* ---- output ----------------------------------------------------------------------- */
/* Targets outside [0, V) are treated like pad_id (loss 0, gradient 0), as on the CPU. */
cudaError_t s2s_k_xent(float *logits, const int32_t *tgt, int N, int V, int pad_id, float eps, float grad_scale,
                       float *row_loss, cudaStream_t st);
cudaError_t s2s_k_log_softmax(float *y, const float *x, int rows, int cols, cudaStream_t st);
cudaError_t s2s_k_argmax(int32_t *out, const float *x, int rows, int cols, cudaStream_t st);
#define S2S_K_TOPK_MAX 256
cudaError_t s2s_k_topk(float *vals, int32_t *idx, const float *x, int rows, int cols, int k, cudaStream_t st);

/* ---- dropout ---------------------------------------------------------------------- */
/* step (device, nullable): XORed into stream as *step << 24 when the kernel runs. rows: a
 * shard of a batch (philox.h's s2s_drop_index); rows_global == 0 for the plain order. */
typedef struct s2s_k_rows {
    int width, rows, rows_global, row0;
} s2s_k_rows;
cudaError_t s2s_k_dropout(float *y, const float *x, size_t n, float p, uint64_t seed, uint64_t stream,
                          const uint64_t *step, s2s_k_rows rows, cudaStream_t st);

/* ---- optimizers ------------------------------------------------------------------- */
/* step_size = lr / (1 - b1^step) and bc2_sqrt = sqrt(1 - b2^step), computed on the host in
 * float exactly as the CPU backend does, so both devices use the same constants. */
cudaError_t s2s_k_adam(float *p, const float *g, float *m, float *v, size_t n, float step_size, float b1, float b2,
                       float bc2_sqrt, float eps, float wd, float gscale, cudaStream_t st);
cudaError_t s2s_k_sgd(float *p, const float *g, float *mom, size_t n, float lr, float momentum, float wd,
                      float gscale, cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
