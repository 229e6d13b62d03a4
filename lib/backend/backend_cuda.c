/* backend_cuda.c - the CUDA backend: the op table of backend.h on one NVIDIA GPU.
 *
 * Every op is enqueued on the current lane's stream (`stream`) and returns without waiting, except to_host,
 * sync, sumsq and sum, which wait for their result. GEMMs go to cuBLAS; every other op is one
 * launcher of kernels/<op>.cu. Device memory comes from a caching allocator, so the per-batch
 * and per-step allocations of the layers never reach cudaMalloc after the first batch.
 *
 * Errors: every CUDA runtime and cuBLAS call goes through CU_TRY / BLAS_TRY, which record
 * file:line and the runtime's own error name with S2S_FAIL and return S2S_ERR_CUDA or
 * S2S_ERR_CUBLAS. A kernel fault is reported by the next call that synchronises (to_host,
 * sync, sumsq, sum) or by the next launch, as CUDA reports it.
 *
 * Allocator: blocks are rounded up to size classes (512 bytes, then 8 classes per power of
 * two, so at most 12.5% is wasted) and released blocks go to a free list per class. Reuse is
 * stream-ordered: a block released while a queued kernel on `stream` still uses it is only
 * handed to work queued later on the same stream. Lanes (backend.h) are further streams, each
 * with its own cuBLAS handle and workspace; the lane programs join them into lane 0 before
 * anything they used is released, which keeps the reuse rule true. */
#include "internal.h"
#include "backend_cuda.h"
#include "launchers.cuh"
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- error checks ----------------------------------------------------------------- */

#define CU_TRY(call)                                                                                   \
    do {                                                                                               \
        cudaError_t cu_e_ = (call);                                                                    \
        if (cu_e_ != cudaSuccess)                                                                      \
            return S2S_FAIL(S2S_ERR_CUDA, "%s: %s (%s)", #call, cudaGetErrorName(cu_e_),               \
                            cudaGetErrorString(cu_e_));                                                \
    } while (0)

/* A kernel launcher: named by op, since the call text is long. */
#define CU_LAUNCH(op, call)                                                                            \
    do {                                                                                               \
        cudaError_t cu_e_ = (call);                                                                    \
        if (cu_e_ != cudaSuccess)                                                                      \
            return S2S_FAIL(S2S_ERR_CUDA, "kernel %s: %s (%s)", op, cudaGetErrorName(cu_e_),           \
                            cudaGetErrorString(cu_e_));                                                \
    } while (0)

#define BLAS_TRY(call)                                                                                 \
    do {                                                                                               \
        cublasStatus_t bl_s_ = (call);                                                                 \
        if (bl_s_ != CUBLAS_STATUS_SUCCESS)                                                            \
            return S2S_FAIL(S2S_ERR_CUBLAS, "%s: %s (%s)", #call, cublasGetStatusName(bl_s_),          \
                            cublasGetStatusString(bl_s_));                                             \
    } while (0)

#define ARG_CHECK(cond, ...)                                                                           \
    do {                                                                                               \
        if (!(cond))                                                                                   \
            return S2S_FAIL(S2S_ERR_INVALID_ARG, __VA_ARGS__);                                         \
    } while (0)

/* ---- the backend object ---------------------------------------------------------------- */

#define CU_MIN_BLOCK ((size_t)512)
#define CU_CLASSES 448    /* 1 + 8 per power of two from 2^9 to 2^64 */
#define CU_LIVE_SLOTS 1024 /* hash buckets of live blocks, by address */

typedef struct cu_block {
    void *ptr;
    size_t bytes; /* the class size actually allocated */
    int cls;
    struct cu_block *next;
} cu_block;

typedef struct cuda_backend {
    struct s2s_backend head;
    int device;
    cudaStream_t stream; /* the current lane's stream: every op goes here */
    cublasHandle_t blas; /* the current lane's cuBLAS handle */
    cudaStream_t lane_stream[S2S_LANES_MAX];
    cublasHandle_t lane_blas[S2S_LANES_MAX];
    void *lane_ws[S2S_LANES_MAX]; /* cuBLAS workspaces (from the cache), so GEMMs never allocate */
    cudaEvent_t ev[S2S_LANE_EVENTS];
    s2s_ops ops;          /* cuda_ops, plus the entries a plug-in sets (backend_cuda.h) */
    void *plugin;         /* the plug-in's state */
    void (*plugin_free)(s2s_backend *, void *);
    cu_block *free_list[CU_CLASSES];
    cu_block *live[CU_LIVE_SLOTS];
    cu_block *spare_records;
    size_t live_bytes, cached_bytes;
    size_t peak_bytes; /* high-water mark of live_bytes */
    double *red;      /* device: S2S_K_REDUCE_PARTS partials, then the result */
    double *red_host; /* page-locked: the result copied back */
} cuda_backend;

/* Layer wavefronts: two lanes (streams), chunks of 10 time steps. */
#define S2S_CUDA_LANES 2
#define S2S_CUDA_WAVE_CHUNK 10

static cuda_backend *cu(s2s_backend *be) { return (cuda_backend *)be; }

/* ---- caching allocator ----------------------------------------------------------------- */

/* Size class of a request: class 0 is 512 bytes; above, (2^e, 2^(e+1)] is cut into 8 classes
 * of 2^(e-3) bytes each. *rounded gets the class size. */
static int size_class(size_t bytes, size_t *rounded)
{
    if (bytes <= CU_MIN_BLOCK) {
        *rounded = CU_MIN_BLOCK;
        return 0;
    }
    int e = 63 - __builtin_clzll((unsigned long long)(bytes - 1)); /* 2^e < bytes <= 2^(e+1) */
    size_t step = (size_t)1 << (e - 3);
    size_t k = (bytes + step - 1) / step; /* 9..16 */
    *rounded = k * step;
    return 1 + (e - 9) * 8 + (int)(k - 9);
}

static size_t live_slot(const void *p) { return ((uintptr_t)p >> 9) % CU_LIVE_SLOTS; }

static cu_block *new_record(cuda_backend *cb)
{
    cu_block *r = cb->spare_records;
    if (r) {
        cb->spare_records = r->next;
        return r;
    }
    return s2s_host_alloc(sizeof *r, "a GPU allocation record");
}

/* Returns every cached (free) block to the driver; waits for queued work first, since a
 * cached block may still be read by a kernel queued before its release. */
static s2s_status empty_cache(cuda_backend *cb)
{
    for (int i = 0; i < S2S_LANES_MAX; i++)
        if (cb->lane_stream[i])
            CU_TRY(cudaStreamSynchronize(cb->lane_stream[i]));
    for (int c = 0; c < CU_CLASSES; c++) {
        while (cb->free_list[c]) {
            cu_block *r = cb->free_list[c];
            cb->free_list[c] = r->next;
            cudaError_t e = cudaFree(r->ptr);
            cb->cached_bytes -= r->bytes;
            r->next = cb->spare_records;
            cb->spare_records = r;
            CU_TRY(e);
        }
    }
    return S2S_OK;
}

static s2s_status cuda_alloc(s2s_backend *be, size_t bytes, void **out)
{
    cuda_backend *cb = cu(be);
    *out = NULL;
    ARG_CHECK(bytes <= ((size_t)1 << 60), "cannot allocate %zu bytes of GPU memory: the size looks corrupt", bytes);
    size_t rounded;
    int cls = size_class(bytes, &rounded);
    cu_block *r = cb->free_list[cls];
    if (r) {
        cb->free_list[cls] = r->next;
        cb->cached_bytes -= r->bytes;
    } else {
        void *p = NULL;
        cudaError_t e = cudaMalloc(&p, rounded);
        if (e == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError(); /* not sticky: clear it before retrying */
            S2S_TRY(empty_cache(cb));
            e = cudaMalloc(&p, rounded);
            if (e == cudaErrorMemoryAllocation) {
                (void)cudaGetLastError();
                return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY,
                                "could not allocate %zu bytes of GPU memory on %s (%zu bytes already in use by "
                                "this backend); try a smaller batch or shorter sequences",
                                bytes, cb->head.name, cb->live_bytes);
            }
        }
        CU_TRY(e);
        r = new_record(cb);
        if (!r) {
            cudaFree(p);
            return S2S_ERR_OUT_OF_MEMORY;
        }
        r->ptr = p;
        r->bytes = rounded;
        r->cls = cls;
    }
    size_t s = live_slot(r->ptr);
    r->next = cb->live[s];
    cb->live[s] = r;
    cb->live_bytes += r->bytes;
    if (cb->live_bytes > cb->peak_bytes)
        cb->peak_bytes = cb->live_bytes;
    *out = r->ptr;
    return S2S_OK;
}

static void cuda_release(s2s_backend *be, void *p)
{
    cuda_backend *cb = cu(be);
    if (!p)
        return;
    for (cu_block **pp = &cb->live[live_slot(p)]; *pp; pp = &(*pp)->next) {
        cu_block *r = *pp;
        if (r->ptr == p) {
            *pp = r->next;
            cb->live_bytes -= r->bytes;
            r->next = cb->free_list[r->cls];
            cb->free_list[r->cls] = r;
            cb->cached_bytes += r->bytes;
            return;
        }
    }
    s2s_log(be->ctx, S2S_LOG_ERROR, "CUDA backend: release of %p, which this backend did not allocate (ignored)", p);
}

/* Frees every block, cached or live, and the records (backend teardown). */
static void free_all_blocks(cuda_backend *cb)
{
    for (int c = 0; c < CU_CLASSES; c++)
        while (cb->free_list[c]) {
            cu_block *r = cb->free_list[c];
            cb->free_list[c] = r->next;
            cudaFree(r->ptr);
            free(r);
        }
    for (int s = 0; s < CU_LIVE_SLOTS; s++)
        while (cb->live[s]) {
            cu_block *r = cb->live[s];
            cb->live[s] = r->next;
            cudaFree(r->ptr);
            free(r);
        }
    while (cb->spare_records) {
        cu_block *r = cb->spare_records;
        cb->spare_records = r->next;
        free(r);
    }
    cb->live_bytes = cb->cached_bytes = 0;
}

/* ---- copies and synchronisation ------------------------------------------------------ */

/* src_host is pageable memory (the library never passes page-locked buffers here), so CUDA
 * has staged it before returning and the caller may reuse it at once. */
static s2s_status cuda_to_device(s2s_backend *be, void *dst, const void *src_host, size_t bytes)
{
    if (bytes)
        CU_TRY(cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_to_host(s2s_backend *be, void *dst_host, const void *src, size_t bytes)
{
    if (!bytes)
        return S2S_OK;
    CU_TRY(cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost, cu(be)->stream));
    CU_TRY(cudaStreamSynchronize(cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_copy(s2s_backend *be, void *dst, const void *src, size_t bytes)
{
    if (bytes)
        CU_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_sync(s2s_backend *be)
{
    cuda_backend *cb = cu(be);
    for (int i = 0; i < be->lanes_max; i++)
        CU_TRY(cudaStreamSynchronize(cb->lane_stream[i]));
    return S2S_OK;
}

/* ---- lanes ----------------------------------------------------------------------------- */

static s2s_status cuda_lane(s2s_backend *be, int i)
{
    cuda_backend *cb = cu(be);
    ARG_CHECK(i >= 0 && i < be->lanes, "lane %d asked for; this backend has %d", i, be->lanes);
    cb->stream = cb->lane_stream[i];
    cb->blas = cb->lane_blas[i];
    return S2S_OK;
}

static s2s_status cuda_lane_mark(s2s_backend *be, int ev)
{
    ARG_CHECK(ev >= 0 && ev < S2S_LANE_EVENTS, "lane event slot %d", ev);
    CU_TRY(cudaEventRecord(cu(be)->ev[ev], cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_lane_wait(s2s_backend *be, int ev)
{
    ARG_CHECK(ev >= 0 && ev < S2S_LANE_EVENTS, "lane event slot %d", ev);
    CU_TRY(cudaStreamWaitEvent(cu(be)->stream, cu(be)->ev[ev], 0));
    return S2S_OK;
}

void *s2s_cuda_stream_of(s2s_backend *be) { return cu(be)->stream; }

s2s_status s2s_cuda_plugin_attach(s2s_backend *be, void *state, void (*free_fn)(s2s_backend *, void *),
                                  s2s_ops **ops)
{
    cuda_backend *cb = cu(be);
    ARG_CHECK(!cb->plugin, "a plug-in is already attached to this CUDA backend");
    cb->plugin = state;
    cb->plugin_free = free_fn;
    *ops = &cb->ops;
    return S2S_OK;
}

void *s2s_cuda_plugin_state(s2s_backend *be) { return cu(be)->plugin; }

static s2s_status cuda_mem_stats(s2s_backend *be, size_t *current, size_t *peak)
{
    *current = cu(be)->live_bytes;
    *peak = cu(be)->peak_bytes;
    return S2S_OK;
}

/* ---- graphs ---------------------------------------------------------------------------- */

/* Relaxed capture: allocations made while recording (a workspace arena growing) are allowed;
 * they happen at once and the graph records only the stream work. */
static s2s_status cuda_graph_begin(s2s_backend *be)
{
    CU_TRY(cudaStreamBeginCapture(cu(be)->lane_stream[0], cudaStreamCaptureModeRelaxed));
    return S2S_OK;
}

static s2s_status cuda_graph_end(s2s_backend *be, void **graph)
{
    cudaGraph_t g = NULL;
    cudaGraphExec_t exec = NULL;
    *graph = NULL;
    CU_TRY(cudaStreamEndCapture(cu(be)->lane_stream[0], &g)); /* where it began, whatever lane is current */
    cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    CU_TRY(e);
    *graph = exec;
    return S2S_OK;
}

static s2s_status cuda_graph_launch(s2s_backend *be, void *graph)
{
    CU_TRY(cudaGraphLaunch((cudaGraphExec_t)graph, cu(be)->lane_stream[0]));
    return S2S_OK;
}

static void cuda_graph_free(s2s_backend *be, void *graph)
{
    if (graph)
        cudaGraphExecDestroy((cudaGraphExec_t)graph);
}

/* ---- dense ----------------------------------------------------------------------------- */

/* Nothing to keep: the GPU's products read their operands as they are. */
static s2s_status cuda_read_only(s2s_backend *be, const float *x, size_t n) { return S2S_OK; }

static s2s_status cuda_fill(s2s_backend *be, float *x, size_t n, float v)
{
    CU_LAUNCH("fill", s2s_k_fill(x, n, v, cu(be)->stream));
    return S2S_OK;
}

/* k = 0: C = beta C, with beta = 0 writing zeros whatever C held (as the CPU does). */
static s2s_status gemm_k0(cuda_backend *cb, int m, int n, float beta, float *c, int ldc)
{
    if (beta == 0.0f)
        CU_TRY(cudaMemset2DAsync(c, (size_t)ldc * sizeof(float), 0, (size_t)n * sizeof(float), (size_t)m,
                                 cb->stream));
    else if (beta != 1.0f)
        CU_LAUNCH("axpby2d", s2s_k_axpby2d(c, ldc, c, ldc, m, n, beta, 0.0f, cb->stream));
    return S2S_OK;
}

/* Row-major C [m,n] = alpha op(A) op(B) + beta C is, read column-major, C^T [n,m] =
 * alpha op(B)^T op(A)^T + beta C^T, and a row-major matrix with row stride ld is its own
 * transpose column-major with leading dimension ld: so cuBLAS gets B first, then A, with the
 * same transpose flags and the same leading dimensions. No data moves. */
static s2s_status cuda_gemm(s2s_backend *be, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                            int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cuda_backend *cb = cu(be);
    ARG_CHECK(m >= 0 && n >= 0 && k >= 0, "gemm: negative size m = %d, n = %d, k = %d", m, n, k);
    if (m == 0 || n == 0)
        return S2S_OK;
    ARG_CHECK(ldc >= n, "gemm: ldc = %d < n = %d", ldc, n);
    if (k == 0)
        return gemm_k0(cb, m, n, beta, c, ldc);
    ARG_CHECK(lda >= (ta ? m : k) && ldb >= (tb ? k : n),
              "gemm: lda = %d or ldb = %d smaller than the row length of A (%d) or B (%d) as stored", lda, ldb,
              ta ? m : k, tb ? k : n);
    const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    /* FP32: true fp32 products (no tensor cores); TF32 and BF16: tensor cores, inputs rounded
     * to that format, fp32 accumulation and fp32 in memory. */
    const cublasComputeType_t ct = be->precision == S2S_PRECISION_TF32   ? CUBLAS_COMPUTE_32F_FAST_TF32
                                   : be->precision == S2S_PRECISION_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                                                         : CUBLAS_COMPUTE_32F;
    BLAS_TRY(cublasGemmEx(cb->blas, opb, opa, n, m, k, &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c,
                          CUDA_R_32F, ldc, ct, CUBLAS_GEMM_DEFAULT));
    return S2S_OK;
}

static s2s_status cuda_bias_rows(s2s_backend *be, float *y, int rows, int cols, int ldy, const float *b1,
                                 const float *b2)
{
    ARG_CHECK(rows >= 0 && cols >= 0 && ldy >= cols, "bias_rows: rows = %d, cols = %d, ldy = %d", rows, cols, ldy);
    CU_LAUNCH("bias_rows", s2s_k_bias_rows(y, rows, cols, ldy, b1, b2, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_colsum(s2s_backend *be, float *db, const float *dy, int rows, int cols, int ldy)
{
    ARG_CHECK(rows >= 0 && cols >= 0 && ldy >= cols, "colsum: rows = %d, cols = %d, ldy = %d", rows, cols, ldy);
    CU_LAUNCH("colsum", s2s_k_colsum(db, dy, rows, cols, ldy, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_axpby2d(s2s_backend *be, float *dst, int ldd, const float *src, int lds, int rows, int cols,
                               float alpha, float beta)
{
    ARG_CHECK(rows >= 0 && cols >= 0 && ldd >= cols && lds >= cols, "axpby2d: rows = %d, cols = %d, ldd = %d, lds = %d",
              rows, cols, ldd, lds);
    CU_LAUNCH("axpby2d", s2s_k_axpby2d(dst, ldd, src, lds, rows, cols, alpha, beta, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_scale(s2s_backend *be, float *x, size_t n, float a)
{
    CU_LAUNCH("scale", s2s_k_scale(x, n, a, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_tanh_fwd(s2s_backend *be, float *y, const float *x, size_t n)
{
    CU_LAUNCH("tanh_fwd", s2s_k_tanh_fwd(y, x, n, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_tanh_bwd(s2s_backend *be, float *dx, const float *y, const float *dy, size_t n)
{
    CU_LAUNCH("tanh_bwd", s2s_k_tanh_bwd(dx, y, dy, n, cu(be)->stream));
    return S2S_OK;
}

/* The two-pass reduction leaves its double in red[S2S_K_REDUCE_PARTS]; copy it back and wait. */
static s2s_status reduce_result(cuda_backend *cb, double *out_host)
{
    CU_TRY(cudaMemcpyAsync(cb->red_host, cb->red + S2S_K_REDUCE_PARTS, sizeof(double), cudaMemcpyDeviceToHost,
                           cb->stream));
    CU_TRY(cudaStreamSynchronize(cb->stream));
    *out_host = *cb->red_host;
    return S2S_OK;
}

static s2s_status cuda_sumsq(s2s_backend *be, const float *x, size_t n, double *out_host)
{
    cuda_backend *cb = cu(be);
    CU_LAUNCH("sumsq", s2s_k_sum(x, n, 1, cb->red, cb->red + S2S_K_REDUCE_PARTS, cb->stream));
    return reduce_result(cb, out_host);
}

static s2s_status cuda_sum(s2s_backend *be, const float *x, size_t n, double *out_host)
{
    cuda_backend *cb = cu(be);
    CU_LAUNCH("sum", s2s_k_sum(x, n, 0, cb->red, cb->red + S2S_K_REDUCE_PARTS, cb->stream));
    return reduce_result(cb, out_host);
}

/* ---- embedding ------------------------------------------------------------------------- */

static s2s_status cuda_gather_rows(s2s_backend *be, float *y, int ldy, const float *w, const int32_t *ids, int n,
                                 int dim)
{
    ARG_CHECK(n >= 0 && dim >= 0 && ldy >= dim, "gather_rows: n = %d, dim = %d, ldy = %d", n, dim, ldy);
    CU_LAUNCH("gather_rows", s2s_k_gather_rows(y, ldy, w, ids, n, dim, cu(be)->stream));
    return S2S_OK;
}

/* The sort workspace comes from the cache and goes back at once: stream order keeps it
 * intact until the kernels that use it have run. */
static s2s_status cuda_embed_bwd(s2s_backend *be, float *dw, const float *dy, int ldy, const int32_t *ids, int n,
                                 int dim, int vocab, int pad_id)
{
    cuda_backend *cb = cu(be);
    ARG_CHECK(n >= 0 && dim >= 0 && ldy >= dim && vocab > 0, "embed_bwd: n = %d, dim = %d, ldy = %d, vocab = %d", n,
              dim, ldy, vocab);
    if (n == 0 || dim == 0)
        return S2S_OK;
    size_t bytes = 0;
    CU_LAUNCH("embed_bwd", s2s_k_embed_bwd(dw, dy, ldy, ids, n, dim, vocab, pad_id, NULL, &bytes, cb->stream));
    void *work;
    S2S_TRY(cuda_alloc(be, bytes, &work));
    cudaError_t e = s2s_k_embed_bwd(dw, dy, ldy, ids, n, dim, vocab, pad_id, work, &bytes, cb->stream);
    cuda_release(be, work);
    CU_LAUNCH("embed_bwd", e);
    return S2S_OK;
}

/* ---- recurrent cells ------------------------------------------------------------------- */

static s2s_status cuda_lstm_fwd(s2s_backend *be, int B, int H, const float *pre, const float *h_prev,
                                const float *c_prev, const int32_t *len, int t, float *h, float *c, float *y,
                                float *act)
{
    CU_LAUNCH("lstm_fwd", s2s_k_lstm_fwd(B, H, pre, h_prev, c_prev, len, t, h, c, y, act, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_lstm_bwd(s2s_backend *be, int B, int H, const float *act, const float *c, const float *c_prev,
                                const float *dy, const float *dh, const float *dc, const int32_t *len, int t,
                                float *dpre, float *dh_prev, float *dc_prev)
{
    CU_LAUNCH("lstm_bwd",
              s2s_k_lstm_bwd(B, H, act, c, c_prev, dy, dh, dc, len, t, dpre, dh_prev, dc_prev, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_gru_fwd(s2s_backend *be, int B, int H, const float *xp, const float *hp, const float *b_hh,
                               const float *h_prev, const int32_t *len, int t, float *h, float *y, float *act)
{
    CU_LAUNCH("gru_fwd", s2s_k_gru_fwd(B, H, xp, hp, b_hh, h_prev, len, t, h, y, act, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_gru_bwd(s2s_backend *be, int B, int H, const float *act, const float *h_prev, const float *dy,
                               const float *dh, const int32_t *len, int t, float *dxp, float *dhp, float *dh_prev)
{
    CU_LAUNCH("gru_bwd", s2s_k_gru_bwd(B, H, act, h_prev, dy, dh, len, t, dxp, dhp, dh_prev, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_rnn_fwd(s2s_backend *be, int B, int H, const float *pre, const float *h_prev,
                               const int32_t *len, int t, float *h, float *y)
{
    CU_LAUNCH("rnn_fwd", s2s_k_rnn_fwd(B, H, pre, h_prev, len, t, h, y, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_rnn_bwd(s2s_backend *be, int B, int H, const float *h, const float *dy, const float *dh,
                               const int32_t *len, int t, float *dpre, float *dh_prev)
{
    CU_LAUNCH("rnn_bwd", s2s_k_rnn_bwd(B, H, h, dy, dh, len, t, dpre, dh_prev, cu(be)->stream));
    return S2S_OK;
}

/* ---- attention ------------------------------------------------------------------------- */

static s2s_status cuda_attn_fwd(s2s_backend *be, int S, int B, int H, const float *keys, const float *vals,
                                const float *q, const int32_t *src_len, float *alpha, float *ctx)
{
    if (S > S2S_K_ATTN_MAX_S)
        return S2S_FAIL(S2S_ERR_UNSUPPORTED, "attention over %d source positions; the CUDA kernel takes at most %d "
                                             "(split long sources)", S, S2S_K_ATTN_MAX_S);
    CU_LAUNCH("attn_fwd", s2s_k_attn_fwd(S, B, H, keys, vals, q, src_len, alpha, ctx, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_attn_bwd(s2s_backend *be, int S, int B, int H, const float *keys, const float *vals,
                                const float *alpha, const float *dctx, const int32_t *src_len, float *dq,
                                float *dscore)
{
    if (S > S2S_K_ATTN_MAX_S)
        return S2S_FAIL(S2S_ERR_UNSUPPORTED, "attention over %d source positions; the CUDA kernel takes at most %d "
                                             "(split long sources)", S, S2S_K_ATTN_MAX_S);
    CU_LAUNCH("attn_bwd", s2s_k_attn_bwd(S, B, H, keys, vals, alpha, dctx, src_len, dq, dscore, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_attn_bwd_kv(s2s_backend *be, int S, int T, int B, int H, const float *q, const float *alpha,
                                   const float *dscore, const float *dctx, const int32_t *src_len, float *dkeys,
                                   float *dvals)
{
    CU_LAUNCH("attn_bwd_kv",
              s2s_k_attn_bwd_kv(S, T, B, H, q, alpha, dscore, dctx, src_len, dkeys, dvals, cu(be)->stream));
    return S2S_OK;
}

/* ---- output ---------------------------------------------------------------------------- */

static s2s_status cuda_xent(s2s_backend *be, float *logits, const int32_t *tgt, int N, int V, int pad_id, float eps,
                            float grad_scale, float *row_loss)
{
    CU_LAUNCH("xent", s2s_k_xent(logits, tgt, N, V, pad_id, eps, grad_scale, row_loss, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_log_softmax(s2s_backend *be, float *y, const float *x, int rows, int cols)
{
    CU_LAUNCH("log_softmax", s2s_k_log_softmax(y, x, rows, cols, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_argmax(s2s_backend *be, int32_t *out, const float *x, int rows, int cols)
{
    CU_LAUNCH("argmax", s2s_k_argmax(out, x, rows, cols, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_topk(s2s_backend *be, float *vals, int32_t *idx, const float *x, int rows, int cols, int k)
{
    ARG_CHECK(k >= 1 && k <= S2S_TOPK_MAX && cols >= 1 && rows >= 0, "topk: k = %d (1..%d), rows = %d, cols = %d", k,
              S2S_TOPK_MAX, rows, cols);
    CU_LAUNCH("topk", s2s_k_topk(vals, idx, x, rows, cols, k, cu(be)->stream));
    return S2S_OK;
}

/* The two kernels in turn, the log-softmax in place in x (the contract lets x go). */
static s2s_status cuda_log_softmax_topk(s2s_backend *be, float *vals, int32_t *idx, float *x, int rows, int cols,
                                        int k)
{
    S2S_TRY(cuda_log_softmax(be, x, x, rows, cols));
    return cuda_topk(be, vals, idx, x, rows, cols, k);
}

/* The kernel's shard description: all zeros for the plain element order. */
static s2s_k_rows k_rows(const s2s_drop_rows *rows)
{
    s2s_k_rows r = {0, 0, 0, 0};
    if (s2s_drop_rows_on(rows))
        r = (s2s_k_rows){rows->width, rows->rows, rows->rows_global, rows->row0};
    return r;
}

static s2s_status cuda_dropout(s2s_backend *be, float *y, const float *x, size_t n, float p, uint64_t seed,
                               uint64_t stream, const s2s_drop_rows *rows)
{
    ARG_CHECK(!s2s_drop_rows_on(rows) || (rows->width > 0 && rows->rows > 0), "dropout: shard rows of width %d, %d rows",
              rows ? rows->width : 0, rows ? rows->rows : 0);
    CU_LAUNCH("dropout", s2s_k_dropout(y, x, n, p, seed, stream, NULL, k_rows(rows), cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_dropout_at(s2s_backend *be, float *y, const float *x, size_t n, float p, uint64_t seed,
                                  uint64_t stream, const uint64_t *step, const s2s_drop_rows *rows)
{
    ARG_CHECK(step != NULL, "dropout_at: step is NULL");
    ARG_CHECK(!s2s_drop_rows_on(rows) || (rows->width > 0 && rows->rows > 0), "dropout_at: shard rows of width %d, %d rows",
              rows ? rows->width : 0, rows ? rows->rows : 0);
    CU_LAUNCH("dropout", s2s_k_dropout(y, x, n, p, seed, stream, step, k_rows(rows), cu(be)->stream));
    return S2S_OK;
}

/* ---- optimizers ------------------------------------------------------------------------ */

static s2s_status cuda_adam(s2s_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr,
                            float b1, float b2, float eps, float wd, float gscale, int step)
{
    ARG_CHECK(step >= 1, "adam: step = %d; steps count from 1", step);
    /* The bias corrections exactly as the CPU backend computes them (float powf). */
    float bc1 = 1.0f - powf(b1, (float)step), bc2 = 1.0f - powf(b2, (float)step);
    CU_LAUNCH("adam", s2s_k_adam(p, g, m, v, n, lr / bc1, b1, b2, sqrtf(bc2), eps, wd, gscale, cu(be)->stream));
    return S2S_OK;
}

static s2s_status cuda_sgd(s2s_backend *be, float *p, const float *g, float *mom, size_t n, float lr, float momentum,
                           float wd, float gscale)
{
    CU_LAUNCH("sgd", s2s_k_sgd(p, g, mom, n, lr, momentum, wd, gscale, cu(be)->stream));
    return S2S_OK;
}

static void cuda_free(s2s_backend *be);

static const s2s_ops cuda_ops = {
    .free = cuda_free,
    .alloc = cuda_alloc,
    .release = cuda_release,
    .to_device = cuda_to_device,
    .to_host = cuda_to_host,
    .copy = cuda_copy,
    .sync = cuda_sync,
    .mem_stats = cuda_mem_stats,
    .lane = cuda_lane,
    .lane_mark = cuda_lane_mark,
    .lane_wait = cuda_lane_wait,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    .fill = cuda_fill,
    .read_only = cuda_read_only,
    .gemm = cuda_gemm,
    .bias_rows = cuda_bias_rows,
    .colsum = cuda_colsum,
    .axpby2d = cuda_axpby2d,
    .scale = cuda_scale,
    .tanh_fwd = cuda_tanh_fwd,
    .tanh_bwd = cuda_tanh_bwd,
    .sumsq = cuda_sumsq,
    .sum = cuda_sum,
    .gather_rows = cuda_gather_rows,
    .embed_bwd = cuda_embed_bwd,
    .lstm_fwd = cuda_lstm_fwd,
    .lstm_bwd = cuda_lstm_bwd,
    .gru_fwd = cuda_gru_fwd,
    .gru_bwd = cuda_gru_bwd,
    .rnn_fwd = cuda_rnn_fwd,
    .rnn_bwd = cuda_rnn_bwd,
    .attn_fwd = cuda_attn_fwd,
    .attn_bwd = cuda_attn_bwd,
    .attn_bwd_kv = cuda_attn_bwd_kv,
    .xent = cuda_xent,
    .log_softmax = cuda_log_softmax,
    .argmax = cuda_argmax,
    .topk = cuda_topk,
    .log_softmax_topk = cuda_log_softmax_topk,
    .dropout = cuda_dropout,
    .dropout_at = cuda_dropout_at,
    .adam = cuda_adam,
    .sgd = cuda_sgd,
};

/* ---- creation -------------------------------------------------------------------------- */

int s2s_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError(); /* no driver or no device: not an error for the caller */
        return 0;
    }
    return n;
}

/* Everything after the struct exists; on failure the caller frees what was made. */
static s2s_status cuda_init(cuda_backend *cb)
{
    struct cudaDeviceProp prop;
    CU_TRY(cudaSetDevice(cb->device));
    CU_TRY(cudaGetDeviceProperties(&prop, cb->device));
    snprintf(cb->head.name, sizeof cb->head.name, "%.100s (sm_%d%d, %d SMs, %.1f GiB)", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    /* Non-blocking: no implicit ordering with the legacy default stream of other libraries. */
    for (int i = 0; i < S2S_LANE_EVENTS; i++)
        CU_TRY(cudaEventCreateWithFlags(&cb->ev[i], cudaEventDisableTiming));
    CU_TRY(cudaMalloc((void **)&cb->red, (S2S_K_REDUCE_PARTS + 1) * sizeof(double)));
    CU_TRY(cudaMallocHost((void **)&cb->red_host, sizeof(double)));
    /* A fixed workspace per handle (NVIDIA's recommended sizes: 32 MiB on Hopper, 4 MiB
     * before), so that GEMMs never allocate, which CUDA-graph capture of the decoder step
     * needs; one per lane, since lanes run GEMMs at the same time. */
    size_t ws = prop.major >= 9 ? ((size_t)32 << 20) : ((size_t)4 << 20);
    for (int i = 0; i < cb->head.lanes_max; i++) {
        CU_TRY(cudaStreamCreateWithFlags(&cb->lane_stream[i], cudaStreamNonBlocking));
        BLAS_TRY(cublasCreate(&cb->lane_blas[i]));
        BLAS_TRY(cublasSetStream(cb->lane_blas[i], cb->lane_stream[i])); /* resets the workspace: set it after */
        S2S_TRY(cuda_alloc(&cb->head, ws, &cb->lane_ws[i]));
        BLAS_TRY(cublasSetWorkspace(cb->lane_blas[i], cb->lane_ws[i], ws));
    }
    cb->stream = cb->lane_stream[0];
    cb->blas = cb->lane_blas[0];
    return S2S_OK;
}

s2s_status s2s_backend_cuda_create(s2s_context *ctx, int device, s2s_precision precision, s2s_backend **out)
{
    if (!out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_backend_cuda_create: out is NULL");
    *out = NULL;
    if (precision != S2S_PRECISION_FP32 && precision != S2S_PRECISION_TF32 && precision != S2S_PRECISION_BF16)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "unknown precision %d", (int)precision);
    int count = s2s_cuda_device_count();
    if (device < 0 || device >= count)
        return S2S_FAIL(S2S_ERR_NO_DEVICE, "CUDA device #%d asked for, but %d CUDA device%s visible", device, count,
                        count == 1 ? " is" : "s are");
    cuda_backend *cb = s2s_host_calloc(1, sizeof *cb, "the CUDA backend");
    if (!cb)
        return S2S_ERR_OUT_OF_MEMORY;
    cb->ops = cuda_ops;
    cb->head.ops = &cb->ops;
    cb->head.ctx = ctx;
    cb->head.device = S2S_DEVICE_CUDA;
    cb->head.precision = precision;
    cb->head.threads = 1;
    cb->head.lanes = S2S_CUDA_LANES;
    cb->head.lanes_max = S2S_LANES_MAX; /* more only for benchmarks of the schedule */
    cb->head.wave_chunk = S2S_CUDA_WAVE_CHUNK;
    cb->device = device;
    s2s_status st = cuda_init(cb);
    if (st != S2S_OK) {
        cuda_free(&cb->head);
        return st;
    }
    s2s_log(ctx, S2S_LOG_DEBUG, "CUDA backend on %s, %s GEMMs", cb->head.name,
            precision == S2S_PRECISION_TF32 ? "TF32" : precision == S2S_PRECISION_BF16 ? "BF16" : "FP32");
    *out = &cb->head;
    return S2S_OK;
}

/* Safe on a partly created backend: every handle is checked before it is destroyed. Errors
 * here are ignored (nothing useful can be done with them at teardown). */
static void cuda_free(s2s_backend *be)
{
    if (!be)
        return;
    cuda_backend *cb = cu(be);
    cudaSetDevice(cb->device);
    if (cb->plugin_free)
        cb->plugin_free(be, cb->plugin);
    cb->plugin = NULL, cb->plugin_free = NULL;
    for (int i = 0; i < S2S_LANES_MAX; i++) {
        if (cb->lane_stream[i])
            cudaStreamSynchronize(cb->lane_stream[i]);
        if (cb->lane_blas[i])
            cublasDestroy(cb->lane_blas[i]);
    }
    free_all_blocks(cb); /* the cuBLAS workspace among them, after the handle is gone */
    if (cb->red)
        cudaFree(cb->red);
    if (cb->red_host)
        cudaFreeHost(cb->red_host);
    for (int i = 0; i < S2S_LANE_EVENTS; i++)
        if (cb->ev[i])
            cudaEventDestroy(cb->ev[i]);
    for (int i = 0; i < S2S_LANES_MAX; i++)
        if (cb->lane_stream[i])
            cudaStreamDestroy(cb->lane_stream[i]);
    (void)cudaGetLastError();
    free(cb);
}
