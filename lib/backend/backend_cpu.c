/* backend_cpu.c - the CPU backend: the plain-C reference of every op in backend.h.
 * GEMMs go through CBLAS (OpenBLAS); pointwise loops use OpenMP with the context's thread
 * count. Reductions run in a fixed order so that results do not depend on the thread count. */
#include "internal.h"
#include "backend.h"
#include "cell_math.h"
#include "philox.h"
#include <cblas.h>
#ifdef S2S_HAVE_DNNL
#include "cpu_dnnl.h"
#endif
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cpu_backend {
    struct s2s_backend head;
#ifdef S2S_HAVE_DNNL
    s2s_bf16_gemm *bf16; /* precision BF16: the products' primitives and copies (cpu_dnnl.c) */
    s2s_bf16_ro ro;      /* ops->read_only's block */
#endif
} cpu_backend;

/* Parallelise a loop only when it is large enough to pay for the fork. */
#define OMP_PRAGMA(x) _Pragma(#x)
#define OMP_FOR(n) OMP_PRAGMA(omp parallel for num_threads(be->threads) if ((n) > 16384) schedule(static))

static int valid_at(const int32_t *len, int b, int t) { return !len || t < len[b]; }

/* ---- memory ---------------------------------------------------------------------- */

static s2s_status cpu_alloc(s2s_backend *be, size_t bytes, void **out)
{
    *out = NULL;
    size_t rounded = (bytes + 255) & ~(size_t)255;
    void *p = aligned_alloc(256, rounded ? rounded : 256);
    if (!p)
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "could not allocate %zu bytes of host memory; try a smaller batch",
                        bytes);
    *out = p;
    return S2S_OK;
}

static void cpu_release(s2s_backend *be, void *p) { free(p); }

static s2s_status cpu_copy(s2s_backend *be, void *dst, const void *src, size_t bytes)
{
    if (bytes)
        memmove(dst, src, bytes);
    return S2S_OK;
}

static s2s_status cpu_sync(s2s_backend *be) { return S2S_OK; }

/* One lane: ops run as issued, which is an order every lane program allows. */
static s2s_status cpu_lane(s2s_backend *be, int i)
{
    return i == 0 ? S2S_OK : S2S_FAIL(S2S_ERR_INTERNAL, "lane %d asked for; the CPU has one", i);
}

static s2s_status cpu_lane_event(s2s_backend *be, int ev)
{
    return ev >= 0 && ev < S2S_LANE_EVENTS ? S2S_OK : S2S_FAIL(S2S_ERR_INTERNAL, "lane event slot %d", ev);
}

/* VmRSS and VmHWM of /proc/self/status, in bytes. */
static s2s_status cpu_mem_stats(s2s_backend *be, size_t *current, size_t *peak)
{
    *current = *peak = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return S2S_FAIL(S2S_ERR_UNSUPPORTED, "cannot read /proc/self/status for memory statistics");
    char line[256];
    unsigned long kb;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmRSS: %lu kB", &kb) == 1)
            *current = (size_t)kb * 1024;
        else if (sscanf(line, "VmHWM: %lu kB", &kb) == 1)
            *peak = (size_t)kb * 1024;
    }
    fclose(f);
    return S2S_OK;
}

/* ---- dense ----------------------------------------------------------------------- */

/* Only the bf16 products keep copies; every call starts a new generation of them. */
static s2s_status cpu_read_only(s2s_backend *be, const float *x, size_t n)
{
#ifdef S2S_HAVE_DNNL
    cpu_backend *cb = (cpu_backend *)be;
    cb->ro.x = n ? x : NULL;
    cb->ro.n = x ? n : 0;
    cb->ro.gen++;
#endif
    return S2S_OK;
}

static s2s_status cpu_fill(s2s_backend *be, float *x, size_t n, float v)
{
    OMP_FOR(n)
    for (size_t i = 0; i < n; i++)
        x[i] = v;
    return S2S_OK;
}

/* One CBLAS call on a block of C's rows [i0, i0+mi) or columns [j0, j0+nj). */
static void gemm_block(int ta, int tb, int i0, int mi, int j0, int nj, int k, float alpha, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc)
{
    const float *ab = ta ? a + i0 : a + (size_t)i0 * lda;
    const float *bb = tb ? b + (size_t)j0 * ldb : b + j0;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, mi, nj, k, alpha, ab,
                lda, bb, ldb, beta, c + (size_t)i0 * ldc + j0, ldc);
}

#define BF16_MIN_MACS 4e6 /* smaller products stay fp32: a bf16 one does not pay for its copies */

/* OpenBLAS runs single-threaded (set at backend creation): its own threading costs more
 * than it gains on the small recurrent GEMMs. Large GEMMs are split here, by rows or columns
 * of C in blocks of 16, across the context's threads; each element is computed by one call and
 * the split depends only on the shape and thread count, so runs repeat bit for bit. */
static s2s_status cpu_gemm(s2s_backend *be, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                           const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return S2S_OK;
    if (beta == 0.0f) /* CBLAS may compute 0*NaN; the contract says old contents are ignored */
        for (int i = 0; i < m; i++)
            memset(c + (size_t)i * ldc, 0, sizeof(float) * (size_t)n);
    if (k <= 0) {
        if (beta != 0.0f && beta != 1.0f)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    c[(size_t)i * ldc + j] *= beta;
        return S2S_OK;
    }
#ifdef S2S_HAVE_DNNL
    /* precision BF16: large products through oneDNN in bf16 with fp32 sums; it leaves the rows
     * past its last whole block, or a shape it has no fast kernel for, to the fp32 code below */
    if (be->precision == S2S_PRECISION_BF16 && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) &&
        (double)m * n * k >= BF16_MIN_MACS) {
        int done = 0;
        cpu_backend *cb = (cpu_backend *)be;
        S2S_TRY(s2s_dnnl_gemm_bf16(be, &cb->bf16, &cb->ro, ta, tb, m, n, k, a, lda, b, ldb, c, ldc, &done));
        if (done >= m)
            return S2S_OK;
        a = ta ? a + done : a + (size_t)done * lda;
        c += (size_t)done * ldc;
        m -= done;
    }
#endif
    double flops = 2.0 * m * n * k;
    int parts = be->threads;
    if (parts <= 1 || flops < 4e6) {
        gemm_block(ta, tb, 0, m, 0, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return S2S_OK;
    }
    int by_rows = m >= n;
    int extent = by_rows ? m : n;
    int chunk = ((extent + parts - 1) / parts + 15) / 16 * 16;
    int nchunks = (extent + chunk - 1) / chunk;
#pragma omp parallel for num_threads(be->threads) schedule(static)
    for (int p = 0; p < nchunks; p++) {
        int lo = p * chunk, cnt = extent - lo < chunk ? extent - lo : chunk;
        if (by_rows)
            gemm_block(ta, tb, lo, cnt, 0, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        else
            gemm_block(ta, tb, 0, m, lo, cnt, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
    return S2S_OK;
}

static s2s_status cpu_bias_rows(s2s_backend *be, float *y, int rows, int cols, int ldy, const float *b1,
                                const float *b2)
{
    OMP_FOR((size_t)rows * cols)
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            y[(size_t)r * ldy + c] = b1[c] + (b2 ? b2[c] : 0.0f);
    return S2S_OK;
}

/* Each column summed in row order, as the contract says; the rows are walked in order over
 * blocks of 256 columns (one pass over memory, vectorised across the block) instead of one
 * strided pass per column. */
#define COLSUM_BLOCK 256
static s2s_status cpu_colsum(s2s_backend *be, float *db, const float *dy, int rows, int cols, int ldy)
{
    int nblocks = (cols + COLSUM_BLOCK - 1) / COLSUM_BLOCK;
#pragma omp parallel for num_threads(be->threads) if ((size_t)rows * cols > 16384) schedule(static)
    for (int k = 0; k < nblocks; k++) {
        int c0 = k * COLSUM_BLOCK, n = cols - c0 < COLSUM_BLOCK ? cols - c0 : COLSUM_BLOCK;
        float s[COLSUM_BLOCK] = {0};
        for (int r = 0; r < rows; r++) {
            const float *row = dy + (size_t)r * ldy + c0;
            for (int c = 0; c < n; c++)
                s[c] += row[c];
        }
        for (int c = 0; c < n; c++)
            db[c0 + c] += s[c];
    }
    return S2S_OK;
}

static s2s_status cpu_axpby2d(s2s_backend *be, float *dst, int ldd, const float *src, int lds, int rows, int cols,
                              float alpha, float beta)
{
    OMP_FOR((size_t)rows * cols)
    for (int r = 0; r < rows; r++) {
        float *d = dst + (size_t)r * ldd;
        const float *s = src + (size_t)r * lds;
        if (beta == 0.0f)
            for (int c = 0; c < cols; c++)
                d[c] = alpha * s[c];
        else
            for (int c = 0; c < cols; c++)
                d[c] = alpha * s[c] + beta * d[c];
    }
    return S2S_OK;
}

static s2s_status cpu_scale(s2s_backend *be, float *x, size_t n, float a)
{
    OMP_FOR(n)
    for (size_t i = 0; i < n; i++)
        x[i] *= a;
    return S2S_OK;
}

static s2s_status cpu_tanh_fwd(s2s_backend *be, float *y, const float *x, size_t n)
{
    /* the cells' tanh (cell_math.h: within 3e-7 relative of libm's), vectorised */
    OMP_PRAGMA(omp parallel for simd num_threads(be->threads) if (n > 16384) schedule(static))
    for (size_t i = 0; i < n; i++)
        y[i] = s2s_tanhf(x[i]);
    return S2S_OK;
}

static s2s_status cpu_tanh_bwd(s2s_backend *be, float *dx, const float *y, const float *dy, size_t n)
{
    OMP_FOR(n)
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * (1.0f - y[i] * y[i]);
    return S2S_OK;
}

static s2s_status cpu_sumsq(s2s_backend *be, const float *x, size_t n, double *out)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    *out = s;
    return S2S_OK;
}

static s2s_status cpu_sum(s2s_backend *be, const float *x, size_t n, double *out)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i];
    *out = s;
    return S2S_OK;
}

/* ---- embedding ------------------------------------------------------------------- */

static s2s_status cpu_gather_rows(s2s_backend *be, float *y, int ldy, const float *w, const int32_t *ids, int n, int dim)
{
    OMP_FOR((size_t)n * dim)
    for (int i = 0; i < n; i++)
        memcpy(y + (size_t)i * ldy, w + (size_t)ids[i] * dim, sizeof(float) * (size_t)dim);
    return S2S_OK;
}

static s2s_status cpu_embed_bwd(s2s_backend *be, float *dw, const float *dy, int ldy, const int32_t *ids, int n,
                                int dim, int vocab, int pad_id)
{
    /* Sequential over i: rows for the same token are added in increasing i, as on the GPU. */
    for (int i = 0; i < n; i++) {
        int v = ids[i];
        if (v == pad_id || v < 0 || v >= vocab)
            continue;
        float *d = dw + (size_t)v * dim;
        const float *s = dy + (size_t)i * ldy;
        for (int c = 0; c < dim; c++)
            d[c] += s[c];
    }
    return S2S_OK;
}

/* ---- cells ----------------------------------------------------------------------- */

static s2s_status cpu_lstm_fwd(s2s_backend *be, int B, int H, const float *pre, const float *h_prev,
                               const float *c_prev, const int32_t *len, int t, float *h, float *c, float *y, float *act)
{
    OMP_FOR((size_t)B * H * 8)
    for (int b = 0; b < B; b++) {
        size_t s0 = (size_t)b * H, g0 = (size_t)b * 4 * H;
        if (valid_at(len, b, t)) { /* vectorised over units: libmvec's expf and tanhf */
            if (act) {
#pragma omp simd
                for (int j = 0; j < H; j++)
                    s2s_lstm_fwd_unit(pre + g0 + j, H, c_prev[s0 + j], &h[s0 + j], &c[s0 + j], act + g0 + j);
            } else {
#pragma omp simd
                for (int j = 0; j < H; j++)
                    s2s_lstm_fwd_unit(pre + g0 + j, H, c_prev[s0 + j], &h[s0 + j], &c[s0 + j], NULL);
            }
            if (y)
                memcpy(y + s0, h + s0, sizeof(float) * (size_t)H);
            continue;
        }
        for (int j = 0; j < H; j++) {
            size_t s = s0 + j, g = g0 + j;
            h[s] = h_prev[s];
            c[s] = c_prev[s];
            if (act)
                act[g] = act[g + H] = act[g + 2 * H] = act[g + 3 * H] = 0.0f;
            if (y)
                y[s] = 0.0f;
        }
    }
    return S2S_OK;
}

static s2s_status cpu_lstm_bwd(s2s_backend *be, int B, int H, const float *act, const float *c, const float *c_prev,
                               const float *dy, const float *dh, const float *dc, const int32_t *len, int t,
                               float *dpre, float *dh_prev, float *dc_prev)
{
    OMP_FOR((size_t)B * H * 8)
    for (int b = 0; b < B; b++) {
        int ok = valid_at(len, b, t);
        if (ok) { /* vectorised over units (dh_prev may alias dh, dc_prev dc: same element) */
            size_t s0 = (size_t)b * H, g0 = (size_t)b * 4 * H;
            if (dy) {
#pragma omp simd
                for (int j = 0; j < H; j++) {
                    size_t s = s0 + j;
                    dc_prev[s] = s2s_lstm_bwd_unit(act + g0 + j, H, c[s], c_prev[s], dh[s] + dy[s], dc[s], dpre + g0 + j);
                    dh_prev[s] = 0.0f;
                }
            } else {
#pragma omp simd
                for (int j = 0; j < H; j++) {
                    size_t s = s0 + j;
                    dc_prev[s] = s2s_lstm_bwd_unit(act + g0 + j, H, c[s], c_prev[s], dh[s], dc[s], dpre + g0 + j);
                    dh_prev[s] = 0.0f;
                }
            }
            continue;
        }
        for (int j = 0; j < H; j++) {
            size_t s = (size_t)b * H + j, g = (size_t)b * 4 * H + j;
            dpre[g] = dpre[g + H] = dpre[g + 2 * H] = dpre[g + 3 * H] = 0.0f;
            dh_prev[s] = dh[s];
            dc_prev[s] = dc[s];
        }
    }
    return S2S_OK;
}

static s2s_status cpu_gru_fwd(s2s_backend *be, int B, int H, const float *xp, const float *hp, const float *b_hh,
                              const float *h_prev, const int32_t *len, int t, float *h, float *y, float *act)
{
    OMP_FOR((size_t)B * H * 8)
    for (int b = 0; b < B; b++) {
        int ok = valid_at(len, b, t);
        for (int j = 0; j < H; j++) {
            size_t s = (size_t)b * H + j, g3 = (size_t)b * 3 * H + j, g4 = (size_t)b * 4 * H + j;
            if (ok) {
                h[s] = s2s_gru_fwd_unit(xp + g3, hp + g3, b_hh + j, H, h_prev[s], act ? act + g4 : NULL);
            } else {
                h[s] = h_prev[s];
                if (act)
                    act[g4] = act[g4 + H] = act[g4 + 2 * H] = act[g4 + 3 * H] = 0.0f;
            }
            if (y)
                y[s] = ok ? h[s] : 0.0f;
        }
    }
    return S2S_OK;
}

static s2s_status cpu_gru_bwd(s2s_backend *be, int B, int H, const float *act, const float *h_prev, const float *dy,
                              const float *dh, const int32_t *len, int t, float *dxp, float *dhp, float *dh_prev)
{
    OMP_FOR((size_t)B * H * 8)
    for (int b = 0; b < B; b++) {
        int ok = valid_at(len, b, t);
        for (int j = 0; j < H; j++) {
            size_t s = (size_t)b * H + j, g3 = (size_t)b * 3 * H + j, g4 = (size_t)b * 4 * H + j;
            if (ok) {
                float dht = dh[s] + (dy ? dy[s] : 0.0f);
                dh_prev[s] = s2s_gru_bwd_unit(act + g4, H, h_prev[s], dht, dxp + g3, dhp + g3);
            } else {
                dxp[g3] = dxp[g3 + H] = dxp[g3 + 2 * H] = 0.0f;
                dhp[g3] = dhp[g3 + H] = dhp[g3 + 2 * H] = 0.0f;
                dh_prev[s] = dh[s];
            }
        }
    }
    return S2S_OK;
}

static s2s_status cpu_rnn_fwd(s2s_backend *be, int B, int H, const float *pre, const float *h_prev,
                              const int32_t *len, int t, float *h, float *y)
{
    OMP_FOR((size_t)B * H * 4)
    for (int b = 0; b < B; b++) {
        int ok = valid_at(len, b, t);
        for (int j = 0; j < H; j++) {
            size_t s = (size_t)b * H + j;
            h[s] = ok ? s2s_rnn_fwd_unit(pre[s]) : h_prev[s];
            if (y)
                y[s] = ok ? h[s] : 0.0f;
        }
    }
    return S2S_OK;
}

static s2s_status cpu_rnn_bwd(s2s_backend *be, int B, int H, const float *h, const float *dy, const float *dh,
                              const int32_t *len, int t, float *dpre, float *dh_prev)
{
    OMP_FOR((size_t)B * H * 4)
    for (int b = 0; b < B; b++) {
        int ok = valid_at(len, b, t);
        for (int j = 0; j < H; j++) {
            size_t s = (size_t)b * H + j;
            if (ok) {
                dpre[s] = s2s_rnn_bwd_unit(h[s], dh[s] + (dy ? dy[s] : 0.0f));
                dh_prev[s] = 0.0f;
            } else {
                dpre[s] = 0.0f;
                dh_prev[s] = dh[s];
            }
        }
    }
    return S2S_OK;
}

/* ---- attention ------------------------------------------------------------------- */

/* a . b in 8 lanes of partial sums (vectorised; one fixed order whatever the CPU) */
static float dot8(const float *a, const float *b, int n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[j + l] * b[j + l];
    for (int l = 0; j < n; j++, l++)
        acc[l] += a[j] * b[j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static s2s_status cpu_attn_fwd(s2s_backend *be, int S, int B, int H, const float *keys, const float *vals,
                               const float *q, const int32_t *src_len, float *alpha, float *ctx)
{
    OMP_FOR((size_t)S * B * H * 2)
    for (int b = 0; b < B; b++) {
        int n = src_len[b] < S ? src_len[b] : S;
        const float *qb = q + (size_t)b * H;
        float *ab = alpha + (size_t)b * S;
        float mx = -FLT_MAX;
        for (int s = 0; s < n; s++) {
            float d = dot8(qb, keys + ((size_t)s * B + b) * H, H);
            ab[s] = d;
            mx = d > mx ? d : mx;
        }
        float z = 0.0f;
        for (int s = 0; s < n; s++) {
            ab[s] = expf(ab[s] - mx);
            z += ab[s];
        }
        for (int s = 0; s < n; s++)
            ab[s] /= z;
        for (int s = n; s < S; s++)
            ab[s] = 0.0f;
        float *cb = ctx + (size_t)b * H;
        for (int j = 0; j < H; j++)
            cb[j] = 0.0f;
        for (int s = 0; s < n; s++) {
            const float *v = vals + ((size_t)s * B + b) * H;
            for (int j = 0; j < H; j++)
                cb[j] += ab[s] * v[j];
        }
    }
    return S2S_OK;
}

/* dalpha[s] = dctx . v_s (dot8: vectorised, one fixed order), kept in dscore; then dscore[s] =
 * alpha[s] (dalpha[s] - sum_u alpha[u] dalpha[u]), and dq += dscore[s] keys[s] in increasing s.
 * Reads each row of vals and keys once. */
static s2s_status cpu_attn_bwd(s2s_backend *be, int S, int B, int H, const float *keys, const float *vals,
                               const float *alpha, const float *dctx, const int32_t *src_len, float *dq,
                               float *dscore)
{
    OMP_FOR((size_t)S * B * H * 2)
    for (int b = 0; b < B; b++) {
        int n = src_len[b] < S ? src_len[b] : S;
        const float *ab = alpha + (size_t)b * S, *gb = dctx + (size_t)b * H;
        float *dqb = dq + (size_t)b * H, *dsb = dscore + (size_t)b * S;
        float dot = 0.0f;
        for (int s = 0; s < n; s++) {
            dsb[s] = dot8(gb, vals + ((size_t)s * B + b) * H, H);
            dot += ab[s] * dsb[s];
        }
        for (int s = 0; s < n; s++)
            dsb[s] = ab[s] * (dsb[s] - dot);
        for (int s = n < 0 ? 0 : n; s < S; s++)
            dsb[s] = 0.0f;
        for (int s = 0; s < n; s++) {
            const float *k = keys + ((size_t)s * B + b) * H;
            const float ds = dsb[s];
            for (int j = 0; j < H; j++)
                dqb[j] += ds * k[j];
        }
    }
    return S2S_OK;
}

/* attn_bwd_kv's sums for one (s, b) and columns [j0, j0 + W), W <= KV_W: over t in increasing
 * order, in registers, then added once. Inlined with W = KV_W for the whole blocks (a fixed
 * count: the compiler unrolls and vectorises it) and once more for the tail. */
#define KV_W 32
static inline __attribute__((always_inline)) void kv_block(int W, int T, int B, int S, int H, int b, int s, int j0,
                                                           const float *q, const float *alpha, const float *dscore,
                                                           const float *dctx, float *dk, float *dv)
{
    float ak[KV_W] = {0}, av[KV_W] = {0};
    for (int t = 0; t < T; t++) {
        const size_t r = (size_t)t * B + b;
        const float ds = dscore[r * S + s], a = alpha[r * S + s];
        const float *qt = q + r * H + j0, *gt = dctx + r * H + j0;
        for (int j = 0; j < W; j++) {
            ak[j] += ds * qt[j];
            av[j] += a * gt[j];
        }
    }
    if (dk == dv) {
        for (int j = 0; j < W; j++)
            dk[j0 + j] += ak[j] + av[j];
    } else {
        for (int j = 0; j < W; j++) {
            dk[j0 + j] += ak[j];
            dv[j0 + j] += av[j];
        }
    }
}

/* One batch row per iteration: its T rows of q and dctx (T H floats each) stay in cache while
 * every source position's sums read them. */
static s2s_status cpu_attn_bwd_kv(s2s_backend *be, int S, int T, int B, int H, const float *q, const float *alpha,
                                  const float *dscore, const float *dctx, const int32_t *src_len, float *dkeys,
                                  float *dvals)
{
    OMP_FOR((size_t)S * T * B * H * 2)
    for (int b = 0; b < B; b++) {
        int n = src_len[b] < S ? src_len[b] : S;
        for (int s = 0; s < n; s++) {
            const size_t at = ((size_t)s * B + b) * H;
            int j0 = 0;
            for (; j0 + KV_W <= H; j0 += KV_W)
                kv_block(KV_W, T, B, S, H, b, s, j0, q, alpha, dscore, dctx, dkeys + at, dvals + at);
            if (j0 < H)
                kv_block(H - j0, T, B, S, H, b, s, j0, q, alpha, dscore, dctx, dkeys + at, dvals + at);
        }
    }
    return S2S_OK;
}

/* ---- output ---------------------------------------------------------------------- */

/* log(sum exp(x)) of one row: its max, then the exponentials' sum in 8 lanes of partial sums
 * (one fixed order whatever the threads, the vector width or the CPU). */
static float row_lse_generic(const float *xr, int cols)
{
    float mx = -FLT_MAX, acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int c = 0; c < cols; c++)
        mx = xr[c] > mx ? xr[c] : mx;
    int c = 0;
    for (; c + 8 <= cols; c += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += s2s_expf(xr[c + l] - mx);
    for (int l = 0; c < cols; c++, l++)
        acc[l] += s2s_expf(xr[c] - mx);
    float z = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    return mx + logf(z);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define S2S_LSE_AVX2 1
/* The same numbers with AVX2 (GCC does not vectorise s2s_expf's clamps for AVX2): each lane
 * runs s2s_expf's operations in its order, without FMA (this function may not use it), and
 * the lanes are the generic version's partial sums (tests/test_precision.c compares bits). */
/* s2s_expf on 8 lanes: its operations in its order, without FMA. */
__attribute__((target("avx2"))) static inline __m256 exp8_avx2(__m256 xin)
{
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
    const __m256 l2e = _mm256_set1_ps(1.44269504088896341f), half = _mm256_set1_ps(0.5f);
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u)), zero = _mm256_setzero_ps();
    const __m256 c1 = _mm256_set1_ps(0.693145751953125f), c2 = _mm256_set1_ps(1.428606765330187045e-06f);
    const __m256 one = _mm256_set1_ps(1.0f), p2 = _mm256_set1_ps(0.5f), p3 = _mm256_set1_ps(0.16666667f);
    const __m256 p4 = _mm256_set1_ps(0.041666668f), p5 = _mm256_set1_ps(0.008333334f);
    const __m256 p6 = _mm256_set1_ps(0.0013888889f);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 nan = _mm256_cmp_ps(xin, xin, _CMP_UNORD_Q);
    __m256 x = _mm256_blendv_ps(xin, zero, nan);
    x = _mm256_max_ps(x, lo);
    x = _mm256_min_ps(x, hi);
    __m256 kf = _mm256_mul_ps(x, l2e);
    __m256 h = _mm256_or_ps(half, _mm256_and_ps(kf, sign));
    __m256i k = _mm256_cvttps_epi32(_mm256_add_ps(kf, h));
    __m256 fk = _mm256_cvtepi32_ps(k);
    __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(fk, c1)), _mm256_mul_ps(fk, c2));
    __m256 p = _mm256_add_ps(p5, _mm256_mul_ps(r, p6));
    p = _mm256_add_ps(p4, _mm256_mul_ps(r, p));
    p = _mm256_add_ps(p3, _mm256_mul_ps(r, p));
    p = _mm256_add_ps(p2, _mm256_mul_ps(r, p));
    p = _mm256_add_ps(one, _mm256_mul_ps(r, p));
    p = _mm256_add_ps(one, _mm256_mul_ps(r, p));
    __m256 e = _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, bias), 23)));
    return _mm256_blendv_ps(e, xin, nan);
}

__attribute__((target("avx2"))) static float row_lse_avx2(const float *xr, int cols)
{
    __m256 vmx = _mm256_set1_ps(-FLT_MAX);
    int c = 0;
    for (; c + 8 <= cols; c += 8) /* max_ps(x, m) keeps m where x is NaN, as the generic loop */
        vmx = _mm256_max_ps(_mm256_loadu_ps(xr + c), vmx);
    float m8[8], mx = -FLT_MAX;
    _mm256_storeu_ps(m8, vmx);
    for (int l = 0; l < 8; l++)
        mx = m8[l] > mx ? m8[l] : mx;
    for (; c < cols; c++)
        mx = xr[c] > mx ? xr[c] : mx;
    const __m256 m = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    c = 0;
    for (; c + 8 <= cols; c += 8)
        acc = _mm256_add_ps(acc, exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(xr + c), m)));
    float a[8];
    _mm256_storeu_ps(a, acc);
    for (int l = 0; c < cols; c++, l++)
        a[l] += s2s_expf(xr[c] - mx);
    float z = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    return mx + logf(z);
}

/* x[c] = g * (s2s_expf(x[c] - lse) - u) on 8 lanes (the generic loop's bits). */
__attribute__((target("avx2"))) static void xent_grad_avx2(float *x, int cols, float lse, float g, float u)
{
    const __m256 vl = _mm256_set1_ps(lse), vg = _mm256_set1_ps(g), vu = _mm256_set1_ps(u);
    int c = 0;
    for (; c + 8 <= cols; c += 8) {
        __m256 e = exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + c), vl));
        _mm256_storeu_ps(x + c, _mm256_mul_ps(vg, _mm256_sub_ps(e, vu)));
    }
    for (; c < cols; c++)
        x[c] = g * (s2s_expf(x[c] - lse) - u);
}
#endif

/* row_lse_generic, or its AVX2 twin where this CPU has AVX2 (the same bits). */
typedef float (*row_lse_fn)(const float *, int);
static row_lse_fn row_lse_pick(void)
{
#ifdef S2S_LSE_AVX2
    if (__builtin_cpu_supports("avx2"))
        return row_lse_avx2;
#endif
    return row_lse_generic;
}

static void xent_grad_generic(float *x, int cols, float lse, float g, float u)
{
    for (int c = 0; c < cols; c++)
        x[c] = g * (s2s_expf(x[c] - lse) - u);
}

typedef void (*xent_grad_fn)(float *, int, float, float, float);
static xent_grad_fn xent_grad_pick(void)
{
#ifdef S2S_LSE_AVX2
    if (__builtin_cpu_supports("avx2"))
        return xent_grad_avx2;
#endif
    return xent_grad_generic;
}

void s2s_cpu_xent_grad_row(float *x, int cols, float lse, float g, float u, int generic)
{
    (generic ? xent_grad_generic : xent_grad_pick())(x, cols, lse, g, u);
}

/* sum of x in 8 lanes of partial sums (one fixed order whatever the CPU) */
static float sum8(const float *x, int n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += x[j + l];
    for (int l = 0; j < n; j++, l++)
        acc[l] += x[j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Per row: lse by row_lse (as log_softmax), the smoothed loss, and the gradient
 * g (softmax - smoothed one-hot) written over the logits; the generic and AVX2 paths give
 * the same bits (s2s_expf, 8-lane sums). */
static s2s_status cpu_xent(s2s_backend *be, float *logits, const int32_t *tgt, int N, int V, int pad_id, float eps,
                           float grad_scale, float *row_loss)
{
    row_lse_fn row_lse = row_lse_pick();
    xent_grad_fn grad = xent_grad_pick();
    OMP_FOR((size_t)N * V)
    for (int r = 0; r < N; r++) {
        float *x = logits + (size_t)r * V;
        int y = tgt[r];
        if (y == pad_id || y < 0 || y >= V) {
            row_loss[r] = 0.0f;
            if (grad_scale != 0.0f)
                memset(x, 0, sizeof(float) * (size_t)V);
            continue;
        }
        const float xy = x[y], lse = row_lse(x, V), sx = sum8(x, V);
        /* -mean_c logp[c] = lse - mean_c x[c] */
        row_loss[r] = (1.0f - eps) * (lse - xy) + eps * (lse - sx / (float)V);
        if (grad_scale != 0.0f) {
            float u = eps / (float)V;
            grad(x, V, lse, grad_scale, u);
            x[y] = grad_scale * (s2s_expf(xy - lse) - u - (1.0f - eps));
        }
    }
    return S2S_OK;
}

float s2s_cpu_row_lse(const float *xr, int cols, int generic)
{
    return (generic ? row_lse_generic : row_lse_pick())(xr, cols);
}

static s2s_status cpu_log_softmax(s2s_backend *be, float *y, const float *x, int rows, int cols)
{
    row_lse_fn row_lse = row_lse_pick();
    OMP_FOR((size_t)rows * cols)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *yr = y + (size_t)r * cols, lse = row_lse(xr, cols);
        for (int c = 0; c < cols; c++)
            yr[c] = xr[c] - lse;
    }
    return S2S_OK;
}

static s2s_status cpu_argmax(s2s_backend *be, int32_t *out, const float *x, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        int best = 0;
        for (int c = 1; c < cols; c++)
            if (xr[c] > xr[best])
                best = c;
        out[r] = best;
    }
    return S2S_OK;
}

/* Column c into a row's sorted list of k (n so far). */
static void topk_insert(float *vr, int32_t *ir, int *n, int k, float v, int c)
{
    if (isnan(v) || (*n == k && !(v > vr[k - 1]))) /* equal: the earlier column stays */
        return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && vr[i - 1] < v) {
        vr[i] = vr[i - 1], ir[i] = ir[i - 1];
        i--;
    }
    vr[i] = v, ir[i] = c;
}

#define TOPK_BLOCK 16

/* One row's k largest of x - off (off = 0: x itself; x - 0 is x), as topk's contract says.
 * Once the list is full, a block of columns whose largest value does not beat the list's last
 * is passed over whole (a vectorised max; x - off rounds monotonically, so the block's largest
 * x gives its largest x - off): most are, and the result is the same as inserting column by
 * column. */
static void row_topk(const float *xr, float off, int cols, int k, float *vr, int32_t *ir)
{
    int n = 0, c = 0;
    for (; c < cols && n < k; c++)
        topk_insert(vr, ir, &n, k, xr[c] - off, c);
    for (; c < cols; c += TOPK_BLOCK) {
        int end = cols - c < TOPK_BLOCK ? cols : c + TOPK_BLOCK;
        float bm = -INFINITY;
#pragma omp simd reduction(max : bm)
        for (int j = c; j < end; j++)
            bm = xr[j] > bm ? xr[j] : bm; /* NaN never wins, as in topk_insert */
        if (!(bm - off > vr[k - 1]))
            continue;
        for (int j = c; j < end; j++)
            topk_insert(vr, ir, &n, k, xr[j] - off, j);
    }
    for (int j = n; j < k; j++)
        vr[j] = -INFINITY, ir[j] = -1;
}

static s2s_status cpu_topk(s2s_backend *be, float *vals, int32_t *idx, const float *x, int rows, int cols, int k)
{
    if (k < 1 || k > S2S_TOPK_MAX || cols < 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "topk: k = %d (1..%d), cols = %d", k, S2S_TOPK_MAX, cols);
    OMP_FOR((size_t)rows * cols)
    for (int r = 0; r < rows; r++)
        row_topk(x + (size_t)r * cols, 0.0f, cols, k, vals + (size_t)r * k, idx + (size_t)r * k);
    return S2S_OK;
}

/* Per row: the log-sum-exp, then the top k of x - lse computed as log_softmax computes it: the
 * same values and columns as log_softmax then topk, with x read, never written. */
static s2s_status cpu_log_softmax_topk(s2s_backend *be, float *vals, int32_t *idx, float *x, int rows, int cols,
                                       int k)
{
    if (k < 1 || k > S2S_TOPK_MAX || cols < 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "log_softmax_topk: k = %d (1..%d), cols = %d", k, S2S_TOPK_MAX, cols);
    row_lse_fn row_lse = row_lse_pick();
    OMP_FOR((size_t)rows * cols)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        row_topk(xr, row_lse(xr, cols), cols, k, vals + (size_t)r * k, idx + (size_t)r * k);
    }
    return S2S_OK;
}

/* y[e] = x[e] * s2s_dropout_scale(...), one Philox block per four consecutive draws: within
 * a block of DROP_BLOCK elements the last block's words are kept and reused while the draw
 * index stays in them (the same bits as one s2s_dropout_scale per element, a quarter of the
 * generator's work). */
#define DROP_BLOCK 1024
static s2s_status cpu_dropout(s2s_backend *be, float *y, const float *x, size_t n, float p, uint64_t seed,
                              uint64_t stream, const s2s_drop_rows *rows)
{
    const int on = s2s_drop_rows_on(rows);
    const int w = on ? rows->width : 0, r = on ? rows->rows : 0, rg = on ? rows->rows_global : 0,
              r0 = on ? rows->row0 : 0;
    const float keep = 1.0f / (1.0f - p);
    const size_t nblocks = (n + DROP_BLOCK - 1) / DROP_BLOCK;
    OMP_FOR(n)
    for (size_t k = 0; k < nblocks; k++) {
        size_t e1 = (k + 1) * DROP_BLOCK < n ? (k + 1) * DROP_BLOCK : n;
        uint64_t have = UINT64_MAX;
        s2s_philox4 words = {{0, 0, 0, 0}};
        for (size_t e = k * DROP_BLOCK; e < e1; e++) {
            uint64_t i = on ? s2s_drop_index(e, w, r, rg, r0) : e;
            if (i >> 2 != have) {
                have = i >> 2;
                words = s2s_philox_block(seed, stream, have);
            }
            y[e] = x[e] * (s2s_u32_to_unit(words.v[i & 3]) < p ? 0.0f : keep);
        }
    }
    return S2S_OK;
}

static s2s_status cpu_dropout_at(s2s_backend *be, float *y, const float *x, size_t n, float p, uint64_t seed,
                                 uint64_t stream, const uint64_t *step, const s2s_drop_rows *rows)
{
    return cpu_dropout(be, y, x, n, p, seed, stream ^ (*step << 24), rows);
}

/* ---- optimizers ------------------------------------------------------------------ */

static s2s_status cpu_adam(s2s_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr,
                           float b1, float b2, float eps, float wd, float gscale, int step)
{
    float bc1 = 1.0f - powf(b1, (float)step), bc2 = 1.0f - powf(b2, (float)step);
    float bc2s = sqrtf(bc2);
    OMP_FOR(n)
    for (size_t i = 0; i < n; i++) {
        float gi = gscale * g[i] + wd * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] -= (lr / bc1) * m[i] / (sqrtf(v[i]) / bc2s + eps);
    }
    return S2S_OK;
}

static s2s_status cpu_sgd(s2s_backend *be, float *p, const float *g, float *mom, size_t n, float lr, float momentum,
                          float wd, float gscale)
{
    OMP_FOR(n)
    for (size_t i = 0; i < n; i++) {
        float gi = gscale * g[i] + wd * p[i];
        if (mom) {
            mom[i] = momentum * mom[i] + gi;
            gi = mom[i];
        }
        p[i] -= lr * gi;
    }
    return S2S_OK;
}

static void cpu_free(s2s_backend *be)
{
#ifdef S2S_HAVE_DNNL
    s2s_dnnl_bf16_gemm_free(((cpu_backend *)be)->bf16);
#endif
    free(be);
}

static const s2s_ops cpu_ops = {
    .free = cpu_free,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .copy = cpu_copy,
    .sync = cpu_sync,
    .mem_stats = cpu_mem_stats,
    .lane = cpu_lane,
    .lane_mark = cpu_lane_event,
    .lane_wait = cpu_lane_event,
    .fill = cpu_fill,
    .read_only = cpu_read_only,
    .gemm = cpu_gemm,
    .bias_rows = cpu_bias_rows,
    .colsum = cpu_colsum,
    .axpby2d = cpu_axpby2d,
    .scale = cpu_scale,
    .tanh_fwd = cpu_tanh_fwd,
    .tanh_bwd = cpu_tanh_bwd,
    .sumsq = cpu_sumsq,
    .sum = cpu_sum,
    .gather_rows = cpu_gather_rows,
    .embed_bwd = cpu_embed_bwd,
    .lstm_fwd = cpu_lstm_fwd,
    .lstm_bwd = cpu_lstm_bwd,
    .gru_fwd = cpu_gru_fwd,
    .gru_bwd = cpu_gru_bwd,
    .rnn_fwd = cpu_rnn_fwd,
    .rnn_bwd = cpu_rnn_bwd,
    .attn_fwd = cpu_attn_fwd,
    .attn_bwd = cpu_attn_bwd,
    .attn_bwd_kv = cpu_attn_bwd_kv,
    .xent = cpu_xent,
    .log_softmax = cpu_log_softmax,
    .argmax = cpu_argmax,
    .topk = cpu_topk,
    .log_softmax_topk = cpu_log_softmax_topk,
    .dropout = cpu_dropout,
    .dropout_at = cpu_dropout_at,
    .adam = cpu_adam,
    .sgd = cpu_sgd,
#ifdef S2S_HAVE_DNNL
    .precision_info = s2s_dnnl_precision_info,
    .pack = s2s_dnnl_pack,
    .gemm_packed = s2s_dnnl_gemm_packed,
    .packed_free = s2s_dnnl_packed_free,
#endif
};

s2s_status s2s_backend_cpu_create(s2s_context *ctx, int threads, s2s_backend **out)
{
    *out = NULL;
    cpu_backend *be = s2s_host_calloc(1, sizeof *be, "the CPU backend");
    if (!be)
        return S2S_ERR_OUT_OF_MEMORY;
    be->head.ops = &cpu_ops;
    be->head.ctx = ctx;
    be->head.device = S2S_DEVICE_CPU;
    be->head.precision = S2S_PRECISION_FP32;
    be->head.threads = threads > 0 ? threads : 1;
    be->head.lanes = be->head.lanes_max = 1;
    be->head.wave_chunk = 0;
    snprintf(be->head.name, sizeof be->head.name, "CPU (%d thread%s, OpenBLAS%s)", be->head.threads,
             be->head.threads == 1 ? "" : "s",
#ifdef S2S_HAVE_DNNL
             ", oneDNN"
#else
             ""
#endif
    );
    openblas_set_num_threads(1);
    *out = &be->head;
    return S2S_OK;
}

