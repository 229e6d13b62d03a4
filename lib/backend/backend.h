/* backend.h - the op table: every operation the layers need, implemented once per device
 * (backend_cpu.c, backend_cuda.c). Layer and model code call these and never branch on the
 * device.
 *
 * Conventions for every op:
 * - Pointers named like tensors (x, w, dy, ...) live on the backend's device: host memory for
 *   the CPU backend, device memory for the CUDA backend. Arguments documented as "host" are
 *   host memory on both.
 * - Matrices are row-major; ld* is the row stride in elements (>= the column count).
 * - Time-major sequence tensors are [T, B, D]: row t*B + b.
 * - len (int32 [B], device) holds sequence lengths; a step t of row b is valid when
 *   t < len[b]. len may be NULL: every position is valid.
 * - Ops are asynchronous on the CUDA backend; to_host and sync wait. They run in the order
 *   issued, on lane 0 unless a lane op (below) directs them to another lane.
 * - Every op returns S2S_OK or a status with s2s_last_error() set; none aborts.
 * - Reductions run in a fixed order, so the same inputs give the same bits on one device.
 */
#ifndef S2S_BACKEND_H
#define S2S_BACKEND_H

#include "seq2seq.h"
#include <stdint.h>
#include <stddef.h>

typedef struct s2s_backend s2s_backend;

/* A parameter tensor on the device: its values and its gradient (same shape). */
typedef struct s2s_pview {
    float *w, *g;
    int rows, cols;
} s2s_pview;

/* A weight block converted for reduced-precision products (ops->pack); the backend's own. */
typedef struct s2s_packed s2s_packed;

/* A tensor of groups of `rows` rows of `width` floats that are rows row0 .. row0+rows-1 of
 * groups of rows_global rows (a shard of a batch, for dropout masks; kernels/philox.h). */
typedef struct s2s_drop_rows {
    int width, rows, rows_global, row0;
} s2s_drop_rows;

/* Whether r describes a real shard (otherwise element order is the plain one). */
static inline int s2s_drop_rows_on(const s2s_drop_rows *r) { return r && r->rows_global != r->rows; }

/* The weights of one direction of one recurrent layer, in PyTorch's layout. G is the gate count
 * (LSTM 4, GRU 3, RNN 1). pk_*: reduced-precision copies, set only while a decode at that
 * precision runs (model/precision.c): pk_hh of w_hh, pk_ih[i] of w_ih's columns from pk_col[i]
 * (input feeding splits layer 0's input in two); NULL: the fp32 GEMM. */
typedef struct s2s_rnn_w {
    s2s_cell cell;
    int in, H, G;
    s2s_pview w_ih, w_hh, b_ih, b_hh; /* [G*H, in], [G*H, H], [G*H], [G*H] */
    s2s_packed *pk_hh, *pk_ih[2];
    int pk_col[2];
} s2s_rnn_w;

typedef struct s2s_ops {
    /* Frees the backend and everything it holds, a plug-in's state first (backend_cuda.h); work
     * still queued on its streams is waited for before the memory goes. Errors at teardown are
     * ignored. */
    void (*free)(s2s_backend *be);

    /* ---- memory ------------------------------------------------------------------ */
    /* Allocates bytes (> 0) of device memory, 256-byte aligned; *out is NULL on failure. */
    s2s_status (*alloc)(s2s_backend *be, size_t bytes, void **out);
    void (*release)(s2s_backend *be, void *p); /* p may be NULL */
    s2s_status (*to_device)(s2s_backend *be, void *dst, const void *src_host, size_t bytes);
    s2s_status (*to_host)(s2s_backend *be, void *dst_host, const void *src, size_t bytes);
    s2s_status (*copy)(s2s_backend *be, void *dst, const void *src, size_t bytes);
    s2s_status (*sync)(s2s_backend *be);
    /* Bytes held now and at most so far: the GPU backend's allocator (live blocks), or the
     * process's resident set on the CPU (VmRSS, VmHWM). */
    s2s_status (*mem_stats)(s2s_backend *be, size_t *current, size_t *peak);

    /* ---- graphs (NULL where the device has none) ----------------------------------------
     * Ops issued between graph_begin and graph_end are recorded, not run; graph_end returns an
     * executable graph that graph_launch replays with the same pointers and sizes. Ops that
     * wait for the device (to_host, sync, sum, sumsq) must not be issued while recording. */
    s2s_status (*graph_begin)(s2s_backend *be);
    s2s_status (*graph_end)(s2s_backend *be, void **graph);
    s2s_status (*graph_launch)(s2s_backend *be, void *graph);
    void (*graph_free)(s2s_backend *be, void *graph);

    /* ---- lanes ------------------------------------------------------------------------
     * A device with be->lanes > 1 runs ops issued to different lanes concurrently (CUDA
     * streams); on a device with one lane these are no-ops and everything runs in issue
     * order, which every correct lane program already respects. lane(i) sends the ops issued
     * after it to lane i < be->lanes (lane 0 is where ops go by default and where the caller
     * must be when it is done); mark(ev) records slot ev < S2S_LANE_EVENTS on the current lane;
     * wait(ev) holds the current lane's later ops until the work before the latest mark(ev)
     * is done. Work on another lane must be joined into lane 0 (wait) before lane 0 uses its
     * results or memory it used is released; other lanes must wait for lane 0's earlier work
     * before they read what it wrote. While a graph is recorded on lane 0, other lanes join
     * the recording through these waits, and must be joined back before it ends. */
    s2s_status (*lane)(s2s_backend *be, int i);
    s2s_status (*lane_mark)(s2s_backend *be, int ev);
    s2s_status (*lane_wait)(s2s_backend *be, int ev);

    /* ---- dense ------------------------------------------------------------------- */
    /* x[0..n) = v */
    s2s_status (*fill)(s2s_backend *be, float *x, size_t n, float v);
    /* C[m,n] = alpha * op(A) op(B) + beta * C. op(A) is [m,k]: A is [m,k] (ta = 0) or [k,m]
     * (ta = 1); op(B) is [k,n]: B is [k,n] (tb = 0) or [n,k] (tb = 1). beta = 0 ignores C's
     * old contents (NaN included). */
    s2s_status (*gemm)(s2s_backend *be, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc);
    /* Declares x[0..n) unchanged until the next call (x NULL, n 0: nothing): a backend may then
     * keep converted copies of what products read there (the CPU's bf16 GEMMs keep bf16 copies
     * of the weight blocks they multiply by) instead of converting at every product. The caller
     * writes nothing there meanwhile and calls again (NULL, 0) before it does; each call drops
     * the copies the previous one allowed. */
    s2s_status (*read_only)(s2s_backend *be, const float *x, size_t n);
    /* y[r, c] = b1[c] + (b2 ? b2[c] : 0) for r < rows, c < cols. */
    s2s_status (*bias_rows)(s2s_backend *be, float *y, int rows, int cols, int ldy, const float *b1, const float *b2);
    /* db[c] += sum over r of dy[r, c], summed in row order. */
    s2s_status (*colsum)(s2s_backend *be, float *db, const float *dy, int rows, int cols, int ldy);
    /* dst[r, c] = alpha * src[r, c] + beta * dst[r, c] (beta = 0 ignores dst's contents). */
    s2s_status (*axpby2d)(s2s_backend *be, float *dst, int ldd, const float *src, int lds, int rows, int cols,
                          float alpha, float beta);
    /* x *= a */
    s2s_status (*scale)(s2s_backend *be, float *x, size_t n, float a);
    /* y = tanh(x); y may alias x. */
    s2s_status (*tanh_fwd)(s2s_backend *be, float *y, const float *x, size_t n);
    /* dx = dy * (1 - y^2); dx may alias dy. */
    s2s_status (*tanh_bwd)(s2s_backend *be, float *dx, const float *y, const float *dy, size_t n);
    /* *out_host = sum of x[i]^2 over the listed blocks, accumulated in double in a fixed order.
     * Used for the global gradient norm. */
    s2s_status (*sumsq)(s2s_backend *be, const float *x, size_t n, double *out_host);
    /* *out_host = sum of x[i], accumulated in double in a fixed order. */
    s2s_status (*sum)(s2s_backend *be, const float *x, size_t n, double *out_host);

    /* ---- rows: embeddings and beam reordering -------------------------------------- */
    /* y[i, :] = w[ids[i], :] for i < n; w is [rows, dim] (contiguous), y has row stride ldy; y
     * must not overlap w. The embedding lookup, and every gather of rows by index: the beam's
     * decoder states by parent, the encoder's outputs repeated per beam. */
    s2s_status (*gather_rows)(s2s_backend *be, float *y, int ldy, const float *w, const int32_t *ids, int n, int dim);
    /* dw[v, :] += sum over i with ids[i] = v of dy[i, :], for every v except pad_id, summed in
     * increasing i (no float atomics). */
    s2s_status (*embed_bwd)(s2s_backend *be, float *dw, const float *dy, int ldy, const int32_t *ids, int n, int dim,
                            int vocab, int pad_id);

    /* ---- recurrent cells, one time step t of a [B, ...] batch --------------------------
     * LSTM. pre [B,4H]: x W_ih^T + b_ih + h_prev W_hh^T + b_hh. Writes state h, c [B,H];
     * y [B,H] (nullable): h where valid, 0 where padded; act [B,4H] (nullable): i, f, g, o.
     * Padded rows keep h = h_prev, c = c_prev. */
    s2s_status (*lstm_fwd)(s2s_backend *be, int B, int H, const float *pre, const float *h_prev, const float *c_prev,
                           const int32_t *len, int t, float *h, float *c, float *y, float *act);
    /* dy [B,H] (nullable): gradient at y; dh, dc [B,H]: gradients at the state h, c after the
     * step. c: the state after the step. Writes dpre [B,4H], dh_prev [B,H] (the direct part:
     * dh on padded rows, 0 on valid ones; the caller adds dpre W_hh), dc_prev [B,H]. dh_prev
     * may alias dh and dc_prev may alias dc. */
    s2s_status (*lstm_bwd)(s2s_backend *be, int B, int H, const float *act, const float *c, const float *c_prev,
                           const float *dy, const float *dh, const float *dc, const int32_t *len, int t, float *dpre,
                           float *dh_prev, float *dc_prev);
    /* GRU. xp [B,3H]: x W_ih^T + b_ih; hp [B,3H]: h_prev W_hh^T (no bias); b_hh [3H].
     * Writes h, y (nullable), act [B,4H] (nullable): r, z, n, W_hn h + b_hn. */
    s2s_status (*gru_fwd)(s2s_backend *be, int B, int H, const float *xp, const float *hp, const float *b_hh,
                          const float *h_prev, const int32_t *len, int t, float *h, float *y, float *act);
    /* Writes dxp [B,3H], dhp [B,3H] (gradient of h_prev W_hh^T + b_hh) and the direct part of
     * dh_prev (z*dh on valid rows, dh on padded rows). dh_prev may alias dh. */
    s2s_status (*gru_bwd)(s2s_backend *be, int B, int H, const float *act, const float *h_prev, const float *dy,
                          const float *dh, const int32_t *len, int t, float *dxp, float *dhp, float *dh_prev);
    /* tanh RNN. pre [B,H] as for LSTM. Writes h, y (nullable). */
    s2s_status (*rnn_fwd)(s2s_backend *be, int B, int H, const float *pre, const float *h_prev, const int32_t *len,
                          int t, float *h, float *y);
    /* h: state after the step. Writes dpre [B,H] and the direct part of dh_prev. */
    s2s_status (*rnn_bwd)(s2s_backend *be, int B, int H, const float *h, const float *dy, const float *dh,
                          const int32_t *len, int t, float *dpre, float *dh_prev);

    /* ---- attention (Luong), one decoder step ---------------------------------------
     * keys, vals [S,B,H] (time-major); q [B,H]; src_len [B] (>= 1). Positions s >= src_len[b]
     * get zero weight. Writes alpha [B,S] = softmax_s(q . keys[s]) and ctx [B,H] =
     * sum_s alpha[b,s] vals[s,b,:]. */
    s2s_status (*attn_fwd)(s2s_backend *be, int S, int B, int H, const float *keys, const float *vals,
                           const float *q, const int32_t *src_len, float *alpha, float *ctx);
    /* Backward of one step, the query's part. Given alpha [B,S] and dctx [B,H]: writes dscore
     * [B,S], the scores' gradient alpha[s] (dctx . vals[s] - sum_u alpha[u] dctx . vals[u]) (0
     * at s >= src_len[b]), and accumulates dq [B,H] += sum_s dscore[b,s] keys[s,b,:]. The keys'
     * and values' parts wait for attn_bwd_kv, which takes every step at once. */
    s2s_status (*attn_bwd)(s2s_backend *be, int S, int B, int H, const float *keys, const float *vals,
                           const float *alpha, const float *dctx, const int32_t *src_len, float *dq, float *dscore);
    /* Backward of T steps, the keys' and values' part. q, dctx [T,B,H]; alpha, dscore [T,B,S]
     * (attn_bwd's): for s < src_len[b], dkeys[s,b,:] += sum_t dscore[t,b,s] q[t,b,:] and
     * dvals[s,b,:] += sum_t alpha[t,b,s] dctx[t,b,:], each sum over t in increasing order and
     * added once (positions beyond are left untouched). dkeys may alias dvals; each element
     * then gets both sums. One pass over the gradients instead of one per decoder step. */
    s2s_status (*attn_bwd_kv)(s2s_backend *be, int S, int T, int B, int H, const float *q, const float *alpha,
                              const float *dscore, const float *dctx, const int32_t *src_len, float *dkeys,
                              float *dvals);

    /* ---- output ----------------------------------------------------------------------
     * Fused log-softmax + cross-entropy over logits [N,V] with targets tgt [N]. Rows whose
     * target is pad_id have loss 0 and gradient 0. With label smoothing eps the loss of a row
     * is (1-eps)(-logp[tgt]) + eps * mean_c(-logp[c]) (PyTorch's definition). Writes
     * row_loss [N]; when grad_scale != 0, overwrites logits in place with grad_scale times the
     * gradient of the row loss (no second [N,V] buffer). */
    s2s_status (*xent)(s2s_backend *be, float *logits, const int32_t *tgt, int N, int V, int pad_id, float eps,
                       float grad_scale, float *row_loss);
    /* y[r,:] = log_softmax(x[r,:]); y may alias x. */
    s2s_status (*log_softmax)(s2s_backend *be, float *y, const float *x, int rows, int cols);
    /* out[r] = the first index of the largest value of x[r,:] (int32, device). */
    s2s_status (*argmax)(s2s_backend *be, int32_t *out, const float *x, int rows, int cols);
    /* vals [rows, k], idx [rows, k] (int32): each row's k largest values of x[r, :], largest
     * first, the smaller column first among equal values; NaN is never chosen and slots past
     * a row's non-NaN count get -inf and column -1. 1 <= k <= S2S_TOPK_MAX. */
    s2s_status (*topk)(s2s_backend *be, float *vals, int32_t *idx, const float *x, int rows, int cols, int k);
    /* log_softmax then topk, the same values and columns, without the whole log-softmax
     * necessarily written out (a search's step). x's contents afterwards are unspecified. */
    s2s_status (*log_softmax_topk)(s2s_backend *be, float *vals, int32_t *idx, float *x, int rows, int cols, int k);

    /* ---- dropout ------------------------------------------------------------------------
     * y[e] = x[e] * s2s_dropout_scale(seed, stream, e, p) for e < n (kernels/philox.h); y may
     * alias x. Applied to dy with the same (seed, stream) it is the backward. With rows (a
     * shard of a batch, NULL or rows->rows_global == rows->rows for none) element e draws the
     * mask of element s2s_drop_index(e, ...) of the whole batch instead. */
    s2s_status (*dropout)(s2s_backend *be, float *y, const float *x, size_t n, float p, uint64_t seed,
                          uint64_t stream, const s2s_drop_rows *rows);
    /* The same with the training step read from step (device memory) when the op runs: the
     * stream used is stream ^ (*step << 24), which is s2s_dropout_stream(*step, site, index)
     * for stream = s2s_dropout_stream(0, site, index). A recorded graph of it serves every
     * training step. */
    s2s_status (*dropout_at)(s2s_backend *be, float *y, const float *x, size_t n, float p, uint64_t seed,
                             uint64_t stream, const uint64_t *step, const s2s_drop_rows *rows);

    /* ---- reduced-precision weights for decoding (NULL where the backend has none) ---------
     * precision_info: whether this device can multiply by weights in precision prec (BF16,
     * INT8) and how; buf (host, cap bytes) receives what it would use ("int8: oneDNN 2.6.3,
     * AVX2, ...") or, with S2S_ERR_UNSUPPORTED, why not ("bf16 needs AVX-512 BF16 or AMX; ...").
     * pack: converts the weight block W (n x k, row stride ldw; y = x W^T; kn = 1: W is stored
     * k x n, y = x W) once; the block is read during the call only. gemm_packed: y [m, n] (row
     * stride ldy) = x [m, k] (row stride ldx) times the packed block, plus beta * y, beta 0 or 1,
     * plus bias [n] on every row when bias is not NULL (added as bias_rows then beta 1 would: the
     * same bits, without the pass over y); n and k must be the packed block's. A packed block is
     * used by one thread at a time. */
    s2s_status (*precision_info)(s2s_backend *be, s2s_precision prec, char *buf, size_t cap);
    s2s_status (*pack)(s2s_backend *be, const float *w, int n, int k, int ldw, int kn, s2s_precision prec,
                       s2s_packed **out);
    s2s_status (*gemm_packed)(s2s_backend *be, s2s_packed *pw, int m, int n, int k, const float *x, int ldx, float beta,
                              const float *bias, float *y, int ldy);
    void (*packed_free)(s2s_backend *be, s2s_packed *pw); /* pw may be NULL */

    /* ---- whole recurrent layers through a vendor library (cuDNN) -------------------------
     * NULL unless the context asked for it (s2s_context_options.rnn_impl). One layer of dirs
     * directions (w[d]; d = 1 runs in reverse) over T steps of B rows; len (device) and
     * len_host (host) may both be NULL (every row T steps), padding as in lstm_fwd; the initial
     * states are zero. layer_bytes gives the size of `state`, device memory the caller keeps
     * from layer_fwd to layer_bwd (weights in the library's layout, workspace, saved
     * activations). layer_fwd: x [T*B, w->in] (ldx = w->in); writes y [T*B, dirs*H]
     * (directions side by side, 0 on padded steps), hy and cy [dirs, B, H] (the states after
     * each row's last step; cy for LSTM, may be NULL). layer_bwd: dy [T*B, dirs*H], dhy, dcy
     * [dirs, B, H] (each may be NULL: zero); writes dx [T*B, w->in] (may be NULL) and adds the
     * weight gradients into w[d]'s .g. */
    s2s_status (*layer_bytes)(s2s_backend *be, const s2s_rnn_w *w, int dirs, int T, int B, int train, size_t *bytes);
    s2s_status (*layer_fwd)(s2s_backend *be, const s2s_rnn_w *w, int dirs, int T, int B, const int32_t *len,
                            const int32_t *len_host, const float *x, float *y, float *hy, float *cy, int train,
                            void *state);
    s2s_status (*layer_bwd)(s2s_backend *be, const s2s_rnn_w *w, int dirs, int T, int B, const int32_t *len,
                            const int32_t *len_host, const float *x, const float *y, const float *dy,
                            const float *dhy, const float *dcy, float *dx, void *state);

    /* ---- optimizers ---------------------------------------------------------------------
     * Adam (PyTorch's, with L2 weight decay added to the gradient) on n parameters, step >= 1.
     * gscale multiplies the gradient first (clipping). */
    s2s_status (*adam)(s2s_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                       float b2, float eps, float wd, float gscale, int step);
    /* SGD with optional momentum buffer mom (NULL when momentum == 0), PyTorch's form. */
    s2s_status (*sgd)(s2s_backend *be, float *p, const float *g, float *mom, size_t n, float lr, float momentum,
                      float wd, float gscale);
} s2s_ops;

/* The common head of every backend; each backend's struct starts with it. */
struct s2s_backend {
    const s2s_ops *ops;
    s2s_context *ctx;
    s2s_device device;
    s2s_precision precision;
    int threads;
    int lanes;      /* concurrent lanes in use (1: none); at most lanes_max */
    int lanes_max;  /* lanes the backend made */
    int wave_chunk; /* time steps per chunk in a layer wavefront (0: the whole sequence) */
    char name[160]; /* what it runs on, for people: "CPU (2 threads, OpenBLAS)", the GPU's name */
    unsigned isa_cap; /* CPU: the highest oneDNN ISA (dnnl_cpu_isa_t) reduced precision may use;
                         0: what the CPU has. Tests lower it to take the fallback paths. */
};

#define S2S_LANES_MAX 4
#define S2S_TOPK_MAX 256 /* = S2S_K_TOPK_MAX (kernels/launchers.cuh) */
#define S2S_LANE_EVENTS 40

/* Backend constructors (each file's only exported entries); ops->free frees what they make.
 * ctx is kept for logging only: a backend does not read the context's options. */
s2s_status s2s_backend_cpu_create(s2s_context *ctx, int threads, s2s_backend **out);
#ifdef S2S_HAVE_CUDA
s2s_status s2s_backend_cuda_create(s2s_context *ctx, int device, s2s_precision precision, s2s_backend **out);
/* Number of CUDA devices visible (0 when the driver or device is missing); never fails. */
int s2s_cuda_device_count(void);
#endif
#ifdef S2S_HAVE_CUDNN
/* Sets the layer_* entries of a CUDA backend's op table to cuDNN's RNN API
 * (backend_cuda_cudnn.c); the backend frees the plug-in's state with itself. */
s2s_status s2s_cudnn_layers_enable(s2s_backend *be);
#endif

/* The CPU backend's log-sum-exp of one row (generic C, or where this CPU has it the AVX2 copy,
 * which gives the same bits): exposed for tests/test_precision.c. */
float s2s_cpu_row_lse(const float *x, int cols, int generic);
/* The CPU cross-entropy's gradient row x[c] = g (s2s_expf(x[c] - lse) - u), generic or AVX2
 * (the same bits): exposed for tests/test_precision.c. */
void s2s_cpu_xent_grad_row(float *x, int cols, float lse, float g, float u, int generic);

#endif
