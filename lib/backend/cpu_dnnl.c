/* cpu_dnnl.c - the CPU backend's reduced-precision weight products for decoding (backend.h:
 * precision_info, pack, gemm_packed, packed_free), through oneDNN's matmul primitive. Built
 * when oneDNN is found (Makefile: S2S_HAVE_DNNL); without it the CPU has no such ops.
 *
 * int8 (CTranslate2's scheme): each output row j of W gets the symmetric scale
 * s_j = max|W_j| / q (q = 127, or 63 on CPUs without VNNI: their u8 x s8 instruction adds pairs
 * of products into int16, which 255 x 127 x 2 overflows and 255 x 63 x 2 does not); at each
 * product every input row r gets t_r = max|x_r| / 127 and is stored as the unsigned byte
 * round(x / t_r) + 128 (oneDNN's fast int8 path takes u8 activations and s8 weights); oneDNN
 * accumulates in int32 and the result is y = t_r s_j (acc - 128 sum_k Wq_jk). Per-row scales
 * on both sides make each row's result independent of the other rows in the batch.
 *
 * bf16: weights rounded to bfloat16 once, inputs at each product; products accumulate in fp32
 * straight into y (a sum post-op adds y's old value). oneDNN picks the order of those fp32 sums
 * by the row count (one-row kernels on AVX-512 BF16 CPUs), so a row's result may differ from
 * the same row in a batch in its last bits: batch invariance is int8's, not bf16's.
 *
 * Both run on oneDNN's OpenMP threads, as many as the context's. The weights are reordered once
 * into the layout oneDNN's kernel for this CPU prefers (AMX tiles, VNNI blocks, ...), with the
 * row count left to run time so one primitive serves every batch. */
#include "internal.h"
#include "backend.h"
#include <dnnl.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_dnnl.h"

#define SCRATCH_BYTES (4u << 20) /* int32 results per call: rows are processed in blocks this big */

struct s2s_packed {
    s2s_precision prec;
    int n, k, rows; /* rows: the most rows one matmul call takes (the scratch's height) */
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_primitive_t mm;
    dnnl_memory_t wmem;  /* the weights in the primitive's layout */
    float *wscale;       /* int8: [n] s_j */
    int32_t *wcomp;      /* int8: [n] 128 * sum_k Wq_jk */
    void *xq;            /* [rows, k] the converted input rows (u8 or bf16) */
    float *xscale;       /* int8: [rows] t_r */
    int32_t *acc;        /* int8: [rows, n] */
};

static const char *dnnl_what(dnnl_status_t st)
{
    switch (st) {
    case dnnl_out_of_memory:
        return "out of memory";
    case dnnl_invalid_arguments:
        return "invalid arguments";
    case dnnl_unimplemented:
        return "not implemented for this CPU";
    case dnnl_runtime_error:
        return "runtime error";
    default:
        return "failure";
    }
}

#define DNNL_TRY(call)                                                                                        \
    do {                                                                                                      \
        dnnl_status_t dnnl_st_ = (call);                                                                      \
        if (dnnl_st_ != dnnl_success)                                                                         \
            return S2S_FAIL(dnnl_st_ == dnnl_out_of_memory ? S2S_ERR_OUT_OF_MEMORY : S2S_ERR_INTERNAL,        \
                            "oneDNN: %s: %s (status %d)", #call, dnnl_what(dnnl_st_), (int)dnnl_st_);         \
    } while (0)

/* ---- what this CPU can do --------------------------------------------------------------- */

/* The ISA oneDNN runs with (it honours ONEDNN_MAX_CPU_ISA), within the backend's cap. ISA
 * values are feature sets, one bit per feature: the cap keeps the features both have. */
static unsigned cpu_isa(const s2s_backend *be)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return be->isa_cap ? isa & be->isa_cap : isa;
}

static int has(unsigned isa, unsigned feature) { return (isa & feature) == feature; }

static const char *isa_name(unsigned isa)
{
    if (has(isa, dnnl_cpu_isa_avx512_core_amx))
        return "AVX-512 with AMX";
    if (has(isa, dnnl_cpu_isa_avx512_core_bf16))
        return "AVX-512 with BF16 and VNNI";
    if (has(isa, dnnl_cpu_isa_avx512_core_vnni))
        return "AVX-512 with VNNI";
    if (has(isa, dnnl_cpu_isa_avx512_core))
        return "AVX-512";
    if (has(isa, dnnl_cpu_isa_avx2_vnni))
        return "AVX2 with VNNI";
    if (has(isa, dnnl_cpu_isa_avx2))
        return "AVX2";
    if (has(isa, dnnl_cpu_isa_avx))
        return "AVX";
    return "SSE4.1 or less";
}

static int vnni(unsigned isa) { return has(isa, dnnl_cpu_isa_avx512_core_vnni) || has(isa, dnnl_cpu_isa_avx2_vnni); }

s2s_status s2s_dnnl_precision_info(s2s_backend *be, s2s_precision prec, char *buf, size_t cap)
{
    unsigned isa = cpu_isa(be);
    const dnnl_version_t *v = dnnl_version();
    char lib[48];
    snprintf(lib, sizeof lib, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
    if (prec == S2S_PRECISION_INT8) {
        if (!has(isa, dnnl_cpu_isa_avx2)) {
            snprintf(buf, cap, "int8 needs AVX2 or better; this CPU offers %s", isa_name(isa));
            return S2S_ERR_UNSUPPORTED;
        }
        snprintf(buf, cap, "int8 weights (%d-bit, a scale per row) and activations, %s on %s%s", vnni(isa) ? 8 : 7,
                 lib, isa_name(isa), vnni(isa) ? "" : " (no VNNI: 7-bit weights keep int16 sums exact)");
        return S2S_OK;
    }
    if (prec == S2S_PRECISION_BF16) {
        if (!has(isa, dnnl_cpu_isa_avx512_core_bf16)) {
            snprintf(buf, cap, "bf16 needs AVX-512 BF16 or AMX; this CPU offers %s", isa_name(isa));
            return S2S_ERR_UNSUPPORTED;
        }
        snprintf(buf, cap, "bf16 weights and activations, fp32 sums, %s on %s", lib, isa_name(isa));
        return S2S_OK;
    }
    snprintf(buf, cap, "precision %d has no packed weights", (int)prec);
    return S2S_ERR_UNSUPPORTED;
}

/* ---- packing ------------------------------------------------------------------------------ */

void s2s_dnnl_packed_free(s2s_backend *be, s2s_packed *p)
{
    (void)be;
    if (!p)
        return;
    if (p->mm)
        dnnl_primitive_destroy(p->mm);
    if (p->wmem)
        dnnl_memory_destroy(p->wmem);
    if (p->stream)
        dnnl_stream_destroy(p->stream);
    if (p->eng)
        dnnl_engine_destroy(p->eng);
    free(p->wscale);
    free(p->wcomp);
    free(p->xq);
    free(p->xscale);
    free(p->acc);
    free(p);
}

/* W's element (output j, input kk). */
static float w_at(const float *w, int ldw, int kn, int j, int kk)
{
    return kn ? w[(size_t)kk * ldw + j] : w[(size_t)j * ldw + kk];
}

/* int8: the scales and compensations, and Wq in plain [n][k] order. */
static s2s_status quantize_weights(s2s_packed *p, const float *w, int ldw, int kn, int qmax, int8_t **out)
{
    int n = p->n, k = p->k;
    int8_t *q = s2s_host_alloc((size_t)n * k, "int8 weights");
    p->wscale = s2s_host_alloc(sizeof(float) * (size_t)n, "int8 weight scales");
    p->wcomp = s2s_host_alloc(sizeof(int32_t) * (size_t)n, "int8 compensations");
    if (!q || !p->wscale || !p->wcomp) {
        free(q);
        return S2S_ERR_OUT_OF_MEMORY;
    }
    for (int j = 0; j < n; j++) {
        float amax = 0.0f;
        for (int kk = 0; kk < k; kk++)
            amax = fmaxf(amax, fabsf(w_at(w, ldw, kn, j, kk)));
        if (!isfinite(amax)) {
            free(q);
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "weight row %d holds a value that is not finite: cannot convert it "
                                                 "to int8",
                            j);
        }
        /* a row below 1e-30 is zeros: a smaller scale's reciprocal would overflow */
        float s = amax > 1e-30f ? amax / (float)qmax : 1.0f, inv = amax > 1e-30f ? 1.0f / s : 0.0f;
        int32_t sum = 0;
        for (int kk = 0; kk < k; kk++) {
            long v = lrintf(w_at(w, ldw, kn, j, kk) * inv);
            v = v > qmax ? qmax : v < -qmax ? -qmax : v;
            q[(size_t)j * k + kk] = (int8_t)v;
            sum += (int32_t)v;
        }
        p->wscale[j] = s;
        p->wcomp[j] = 128 * sum;
    }
    *out = q;
    return S2S_OK;
}

/* The matmul src x wei -> dst on eng, adding onto dst's old values when sum (a sum post-op). */
static dnnl_status_t matmul_pd(dnnl_engine_t eng, const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *wei,
                               const dnnl_memory_desc_t *dst, int sum, dnnl_primitive_desc_t *pd)
{
    dnnl_matmul_desc_t md;
    dnnl_status_t st = dnnl_matmul_desc_init(&md, src, wei, NULL, dst);
    if (st != dnnl_success)
        return st;
    dnnl_primitive_attr_t attr;
    if ((st = dnnl_primitive_attr_create(&attr)) != dnnl_success)
        return st;
    dnnl_post_ops_t po = NULL;
    if (sum) {
        st = dnnl_post_ops_create(&po);
        if (st == dnnl_success)
            st = dnnl_post_ops_append_sum(po, 1.0f);
        if (st == dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, &md, attr, eng, NULL);
    if (po)
        dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* The matmul [rows? x k] x [k x n] -> [rows? x n] with the row count given at each call. */
static s2s_status make_primitive(const s2s_backend *be, s2s_packed *p, dnnl_primitive_desc_t *pd_out)
{
    int q = p->prec == S2S_PRECISION_INT8;
    dnnl_dims_t sd = {DNNL_RUNTIME_DIM_VAL, p->k}, wd = {p->k, p->n}, dd = {DNNL_RUNTIME_DIM_VAL, p->n};
    dnnl_dims_t dstr = {DNNL_RUNTIME_DIM_VAL, 1};
    dnnl_memory_desc_t src, wei, dst;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&src, 2, sd, q ? dnnl_u8 : dnnl_bf16, dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&wei, 2, wd, q ? dnnl_s8 : dnnl_bf16, dnnl_format_tag_any));
    if (q)
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_s32, dnnl_ab));
    else /* bf16 writes into y itself, whose row stride comes with each call */
        DNNL_TRY(dnnl_memory_desc_init_by_strides(&dst, 2, dd, dnnl_f32, dstr));
    dnnl_status_t st = matmul_pd(p->eng, &src, &wei, &dst, !q, pd_out); /* bf16: y += x W, beta 0 zeroes y */
    if (st == dnnl_unimplemented)
        return S2S_FAIL(S2S_ERR_UNSUPPORTED, "oneDNN has no %s matmul for this CPU (%s)", q ? "int8" : "bf16",
                        isa_name(cpu_isa(be)));
    DNNL_TRY(st);
    return S2S_OK;
}

/* Copies the plain weights (dims k x n, element (kk, j) at strides[0] kk + strides[1] j) into
 * the primitive's layout, converting to its data type. */
static s2s_status reorder_weights(s2s_packed *p, dnnl_primitive_desc_t pd, const void *plain, dnnl_data_type_t dt,
                                  const dnnl_dims_t strides)
{
    const dnnl_memory_desc_t *wq = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (!wq)
        return S2S_FAIL(S2S_ERR_INTERNAL, "oneDNN: the matmul gave no weights layout");
    dnnl_dims_t wd = {p->k, p->n};
    dnnl_memory_desc_t from_md;
    DNNL_TRY(dnnl_memory_desc_init_by_strides(&from_md, 2, wd, dt, strides));
    DNNL_TRY(dnnl_memory_create(&p->wmem, wq, p->eng, DNNL_MEMORY_ALLOCATE));
    dnnl_memory_t from;
    DNNL_TRY(dnnl_memory_create(&from, &from_md, p->eng, (void *)plain));
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&rpd, &from_md, p->eng, wq, p->eng, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&r, rpd);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, p->wmem}};
        st = dnnl_primitive_execute(r, p->stream, 2, args);
    }
    if (st == dnnl_success)
        st = dnnl_stream_wait(p->stream);
    if (r)
        dnnl_primitive_destroy(r);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(from);
    DNNL_TRY(st);
    return S2S_OK;
}

static s2s_status pack(s2s_backend *be, s2s_packed *p, const float *w, int ldw, int kn)
{
    int q = p->prec == S2S_PRECISION_INT8;
    DNNL_TRY(dnnl_engine_create(&p->eng, dnnl_cpu, 0));
    DNNL_TRY(dnnl_stream_create(&p->stream, p->eng, dnnl_stream_default_flags));
    dnnl_primitive_desc_t pd = NULL;
    S2S_TRY(make_primitive(be, p, &pd));
    s2s_status st = S2S_OK;
    if (q) {
        int8_t *wq = NULL;
        st = quantize_weights(p, w, ldw, kn, vnni(cpu_isa(be)) ? 127 : 63, &wq);
        if (st == S2S_OK) {
            dnnl_dims_t strides = {1, p->k}; /* wq is [n][k] */
            st = reorder_weights(p, pd, wq, dnnl_s8, strides);
        }
        free(wq);
    } else {
        dnnl_dims_t strides = {kn ? ldw : 1, kn ? 1 : ldw};
        st = reorder_weights(p, pd, w, dnnl_f32, strides);
    }
    if (st == S2S_OK && dnnl_primitive_create(&p->mm, pd) != dnnl_success)
        st = S2S_FAIL(S2S_ERR_INTERNAL, "oneDNN: could not create the %s matmul", q ? "int8" : "bf16");
    dnnl_primitive_desc_destroy(pd);
    S2S_TRY(st);
    size_t rows = SCRATCH_BYTES / (sizeof(int32_t) * (size_t)p->n);
    p->rows = rows < 16 ? 16 : rows > 4096 ? 4096 : (int)rows;
    p->xq = s2s_host_alloc((size_t)p->rows * p->k * (q ? 1 : 2), "converted input rows");
    if (!p->xq)
        return S2S_ERR_OUT_OF_MEMORY;
    if (q) {
        p->xscale = s2s_host_alloc(sizeof(float) * (size_t)p->rows, "input row scales");
        p->acc = s2s_host_alloc(sizeof(int32_t) * (size_t)p->rows * p->n, "int32 sums");
        if (!p->xscale || !p->acc)
            return S2S_ERR_OUT_OF_MEMORY;
    }
    return S2S_OK;
}

s2s_status s2s_dnnl_pack(s2s_backend *be, const float *w, int n, int k, int ldw, int kn, s2s_precision prec,
                         s2s_packed **out)
{
    *out = NULL;
    char why[200];
    if (n <= 0 || k <= 0 || ldw < (kn ? n : k))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "pack: a %d x %d block with row stride %d", n, k, ldw);
    if (s2s_dnnl_precision_info(be, prec, why, sizeof why) != S2S_OK)
        return S2S_FAIL(S2S_ERR_UNSUPPORTED, "%s", why);
    s2s_packed *p = s2s_host_calloc(1, sizeof *p, "packed weights");
    if (!p)
        return S2S_ERR_OUT_OF_MEMORY;
    p->prec = prec, p->n = n, p->k = k;
    s2s_status st = pack(be, p, w, ldw, kn);
    if (st != S2S_OK) {
        s2s_dnnl_packed_free(be, p);
        return st;
    }
    *out = p;
    return S2S_OK;
}

/* ---- products ----------------------------------------------------------------------------- */

/* Rows [0, m) of x (row stride ldx) to u8 with a scale per row. */
static void quantize_rows(const s2s_backend *be, s2s_packed *p, int m, const float *x, int ldx)
{
    int k = p->k;
    uint8_t *xq = p->xq;
#pragma omp parallel for num_threads(be->threads) if ((size_t)m * k > 65536) schedule(static)
    for (int r = 0; r < m; r++) {
        const float *xr = x + (size_t)r * ldx;
        float amax = 0.0f;
        int nan = 0;
#pragma omp simd reduction(max : amax) reduction(| : nan)
        for (int kk = 0; kk < k; kk++) {
            float a = xr[kk] < 0.0f ? -xr[kk] : xr[kk];
            amax = a > amax ? a : amax;
            nan |= a != a;
        }
        /* a row below 1e-30 is zeros (a smaller scale's reciprocal would overflow); a row with a
         * NaN or an infinity gives NaN, as the fp32 product would */
        int ok = !nan && amax <= FLT_MAX, used = ok && amax > 1e-30f;
        float inv = used ? 127.0f / amax : 0.0f;
        p->xscale[r] = used ? amax / 127.0f : ok ? 0.0f : NAN;
        uint8_t *qr = xq + (size_t)r * k;
#pragma omp simd
        for (int kk = 0; kk < k; kk++) { /* x inv in [-127, 127]: + 128.5 truncated rounds it */
            float v = xr[kk] * inv + 128.5f;
            v = v >= 1.0f ? (v <= 255.0f ? v : 255.0f) : 1.0f; /* NaN (0 times inf) to 1 */
            qr[kk] = (uint8_t)v;
        }
    }
}

/* y = beta y + t_r s_j (acc - comp_j) for rows [0, m), or with bias: bias_j + that (beta 0). */
static void dequantize_rows(const s2s_backend *be, const s2s_packed *p, int m, float beta, const float *bias, float *y,
                            int ldy)
{
    int n = p->n;
#pragma omp parallel for num_threads(be->threads) if ((size_t)m * n > 65536) schedule(static)
    for (int r = 0; r < m; r++) {
        const int32_t *a = p->acc + (size_t)r * n;
        float *yr = y + (size_t)r * ldy, t = p->xscale[r];
        const float *ws = p->wscale;
        const int32_t *wc = p->wcomp;
        if (bias) {
#pragma omp simd
            for (int j = 0; j < n; j++)
                yr[j] = bias[j] + t * ws[j] * (float)(a[j] - wc[j]);
        } else if (beta == 0.0f) {
#pragma omp simd
            for (int j = 0; j < n; j++)
                yr[j] = t * ws[j] * (float)(a[j] - wc[j]);
        } else {
#pragma omp simd
            for (int j = 0; j < n; j++)
                yr[j] += t * ws[j] * (float)(a[j] - wc[j]);
        }
    }
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN stays NaN */
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static void bf16_rows(const s2s_backend *be, s2s_packed *p, int m, const float *x, int ldx)
{
    int k = p->k;
    uint16_t *xq = p->xq;
#pragma omp parallel for num_threads(be->threads) if ((size_t)m * k > 65536) schedule(static)
    for (int r = 0; r < m; r++)
        for (int kk = 0; kk < k; kk++)
            xq[(size_t)r * k + kk] = to_bf16(x[(size_t)r * ldx + kk]);
}

static s2s_status run_matmul(s2s_packed *p, int m, void *dst, int lddst)
{
    int q = p->prec == S2S_PRECISION_INT8;
    dnnl_dims_t sd = {m, p->k}, dd = {m, p->n}, dstr = {lddst, 1};
    dnnl_memory_desc_t smd, dmd;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&smd, 2, sd, q ? dnnl_u8 : dnnl_bf16, dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_strides(&dmd, 2, dd, q ? dnnl_s32 : dnnl_f32, dstr));
    dnnl_memory_t sm, dm;
    DNNL_TRY(dnnl_memory_create(&sm, &smd, p->eng, p->xq));
    dnnl_status_t st = dnnl_memory_create(&dm, &dmd, p->eng, dst);
    if (st != dnnl_success) {
        dnnl_memory_destroy(sm);
        DNNL_TRY(st);
    }
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, p->wmem}, {DNNL_ARG_DST, dm}};
    st = dnnl_primitive_execute(p->mm, p->stream, 3, args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(p->stream);
    dnnl_memory_destroy(sm);
    dnnl_memory_destroy(dm);
    DNNL_TRY(st);
    return S2S_OK;
}

s2s_status s2s_dnnl_gemm_packed(s2s_backend *be, s2s_packed *p, int m, int n, int k, const float *x, int ldx,
                                float beta, const float *bias, float *y, int ldy)
{
    if (!p || n != p->n || k != p->k || (beta != 0.0f && beta != 1.0f) || (bias && beta != 0.0f) || ldx < k || ldy < n)
        return S2S_FAIL(S2S_ERR_INTERNAL, "gemm_packed: a %d x %d product (beta %g, ldx %d, ldy %d) on a %d x %d "
                                          "packed block",
                        n, k, beta, ldx, ldy, p ? p->n : 0, p ? p->k : 0);
    if (m <= 0)
        return S2S_OK;
    int saved = omp_get_max_threads();
    omp_set_num_threads(be->threads); /* oneDNN's threads: this thread's setting, restored below */
    s2s_status st = S2S_OK;
    for (int r0 = 0; r0 < m && st == S2S_OK; r0 += p->rows) {
        int mr = m - r0 < p->rows ? m - r0 : p->rows;
        const float *xr = x + (size_t)r0 * ldx;
        float *yr = y + (size_t)r0 * ldy;
        if (p->prec == S2S_PRECISION_INT8) {
            quantize_rows(be, p, mr, xr, ldx);
            st = run_matmul(p, mr, p->acc, p->n);
            if (st == S2S_OK)
                dequantize_rows(be, p, mr, beta, bias, yr, ldy);
        } else {
            bf16_rows(be, p, mr, xr, ldx);
            for (int r = 0; r < mr && (beta == 0.0f || bias); r++) /* the sum post-op adds onto y */
                if (bias)
                    memcpy(yr + (size_t)r * ldy, bias, sizeof(float) * (size_t)n);
                else
                    memset(yr + (size_t)r * ldy, 0, sizeof(float) * (size_t)n);
            st = run_matmul(p, mr, yr, ldy);
        }
    }
    omp_set_num_threads(saved);
    return st;
}

/* ---- bf16 products for training (the context's precision BF16 on the CPU) ----------------------
 * cpu_gemm hands its large products here: A and B rounded to bfloat16 into scratch copies, the
 * products summed in fp32 by oneDNN's matmul (AMX tiles or AVX-512 BF16) and added onto C (a
 * sum post-op; cpu_gemm has zeroed C where beta is 0). oneDNN 2.6 runs its AMX kernels only on
 * shapes fixed when the primitive is made (1-5 ms to make one), so the dimension that changes
 * from batch to batch is cut into fixed blocks, and the primitives of the last GB_CACHE shapes
 * are kept:
 * - C = A B or A B^T (ta = 0: C's rows are the batch's): blocks of GB_ROWS rows, or all the rows
 *   when there are fewer; the rows past the last whole block are left to the caller (fp32).
 * - C = A^T B (ta = 1: weight gradients, the sum runs over the batch's rows): chunks of GB_K rows
 *   of A and B, the last padded with zero rows, each chunk's product added onto C.
 * A^T B^T is left to the caller. Runs repeat bit for bit with the same threads and CPU; another
 * ISA (AMX or not) sums in another order. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GB_CVT_AVX512 1
#endif

#define GB_ROWS 256
#define GB_K 512
#define GB_CACHE 256
#define GB_KEEP 64 /* bf16 copies of read-only B blocks (ops->read_only): a model's weight blocks */

typedef struct gb_entry {
    int ta, tb, m, n, k, ldc; /* the key */
    unsigned long long used;  /* 0: free */
    dnnl_primitive_t mm;      /* NULL: oneDNN offers only its reference code here; fp32 instead */
} gb_entry;

typedef struct gb_kept {
    const float *b; /* the key; NULL: a free slot */
    int tb, k, n, ldb;
    unsigned long long gen; /* copy holds B's values of this read-only generation */
    uint16_t *copy;
} gb_kept;

struct s2s_bf16_gemm {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    gb_entry e[GB_CACHE];
    unsigned long long tick;
    uint16_t *a, *b; /* the bf16 copies */
    size_t acap, bcap;
    gb_kept keep[GB_KEEP]; /* copies of B blocks in the read-only block; buffers kept across generations */
};

void s2s_dnnl_bf16_gemm_free(s2s_bf16_gemm *g)
{
    if (!g)
        return;
    for (int i = 0; i < GB_CACHE; i++)
        if (g->e[i].mm)
            dnnl_primitive_destroy(g->e[i].mm);
    if (g->stream)
        dnnl_stream_destroy(g->stream);
    if (g->eng)
        dnnl_engine_destroy(g->eng);
    for (int i = 0; i < GB_KEEP; i++)
        free(g->keep[i].copy);
    free(g->a);
    free(g->b);
    free(g);
}

/* The memory descriptors of C[m x n] += op(A)[m x k] op(B)[k x n] with A' and B' as
 * gb_convert writes them. */
static s2s_status gb_descs(const gb_entry *e, dnnl_memory_desc_t *src, dnnl_memory_desc_t *wei,
                           dnnl_memory_desc_t *dst)
{
    dnnl_dims_t sd = {e->m, e->k}, wd = {e->k, e->n}, dd = {e->m, e->n}, dstr = {e->ldc, 1};
    DNNL_TRY(dnnl_memory_desc_init_by_tag(src, 2, sd, dnnl_bf16, e->ta ? dnnl_ba : dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(wei, 2, wd, dnnl_bf16, e->tb ? dnnl_ba : dnnl_ab));
    DNNL_TRY(dnnl_memory_desc_init_by_strides(dst, 2, dd, dnnl_f32, dstr));
    return S2S_OK;
}

/* The entry's primitive (NULL where oneDNN has only reference code for it). */
static s2s_status gb_make(s2s_bf16_gemm *g, gb_entry *e)
{
    dnnl_memory_desc_t src, wei, dst;
    S2S_TRY(gb_descs(e, &src, &wei, &dst));
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = matmul_pd(g->eng, &src, &wei, &dst, 1, &pd);
    e->mm = NULL;
    if (st == dnnl_unimplemented)
        return S2S_OK;
    DNNL_TRY(st);
    const char *impl = "";
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
        impl = "";
    if (strncmp(impl, "ref", 3) != 0)
        st = dnnl_primitive_create(&e->mm, pd);
    dnnl_primitive_desc_destroy(pd);
    DNNL_TRY(st);
    return S2S_OK;
}

/* The cached primitive of a shape, made (over the least recently used entry) when missing. */
static s2s_status gb_lookup(s2s_bf16_gemm *g, int ta, int tb, int m, int n, int k, int ldc, gb_entry **out)
{
    gb_entry *old = &g->e[0];
    for (int i = 0; i < GB_CACHE; i++) {
        gb_entry *e = &g->e[i];
        if (e->used && e->ta == ta && e->tb == tb && e->m == m && e->n == n && e->k == k && e->ldc == ldc) {
            e->used = ++g->tick;
            *out = e;
            return S2S_OK;
        }
        if (e->used < old->used)
            old = e;
    }
    if (old->mm)
        dnnl_primitive_destroy(old->mm);
    *old = (gb_entry){.ta = ta, .tb = tb, .m = m, .n = n, .k = k, .ldc = ldc};
    S2S_TRY(gb_make(g, old));
    old->used = ++g->tick;
    *out = old;
    return S2S_OK;
}

#ifdef GB_CVT_AVX512
/* to_bf16 on 16 lanes (round to nearest even; this instruction reads subnormals as zero) */
__attribute__((target("avx512f,avx512bf16"))) static void gb_cvt_row_avx512(uint16_t *d, const float *s, int n)
{
    int j = 0;
    for (; j + 16 <= n; j += 16)
        _mm256_storeu_si256((__m256i *)(d + j), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(s + j)));
    for (; j < n; j++)
        d[j] = to_bf16(s[j]);
}
#endif

static void gb_cvt_row_generic(uint16_t *d, const float *s, int n)
{
    for (int j = 0; j < n; j++)
        d[j] = to_bf16(s[j]);
}

/* d[r][0..cols) = bf16(s[r][0..cols)) for rows r < rows (row strides ldd, lds), then rows
 * rows..rows_pad of d zeros. */
static void gb_convert(const s2s_backend *be, uint16_t *d, int ldd, const float *s, int lds, int rows, int rows_pad,
                       int cols)
{
    void (*row)(uint16_t *, const float *, int) = gb_cvt_row_generic;
#ifdef GB_CVT_AVX512
    if (__builtin_cpu_supports("avx512bf16"))
        row = gb_cvt_row_avx512;
#endif
#pragma omp parallel for num_threads(be->threads) if ((size_t)rows * cols > 65536) schedule(static)
    for (int r = 0; r < rows; r++)
        row(d + (size_t)r * ldd, s + (size_t)r * lds, cols);
    if (rows_pad > rows)
        memset(d + (size_t)rows * ldd, 0, sizeof(uint16_t) * (size_t)(rows_pad - rows) * ldd);
}

static s2s_status gb_reserve(uint16_t **p, size_t *cap, size_t n)
{
    if (n <= *cap)
        return S2S_OK;
    uint16_t *q = s2s_host_alloc(sizeof(uint16_t) * n, "bf16 GEMM copies");
    if (!q)
        return S2S_ERR_OUT_OF_MEMORY;
    free(*p);
    *p = q;
    *cap = n;
    return S2S_OK;
}

/* C[m x n] (row stride ldc) += A'' B'' with the blocks' pointers. */
static s2s_status gb_run(s2s_bf16_gemm *g, const gb_entry *e, const uint16_t *a, const uint16_t *b, float *c)
{
    dnnl_memory_desc_t smd, wmd, dmd;
    S2S_TRY(gb_descs(e, &smd, &wmd, &dmd));
    dnnl_memory_t mem[3] = {NULL, NULL, NULL};
    dnnl_status_t st = dnnl_memory_create(&mem[0], &smd, g->eng, (void *)a);
    if (st == dnnl_success)
        st = dnnl_memory_create(&mem[1], &wmd, g->eng, (void *)b);
    if (st == dnnl_success)
        st = dnnl_memory_create(&mem[2], &dmd, g->eng, c);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, mem[0]}, {DNNL_ARG_WEIGHTS, mem[1]}, {DNNL_ARG_DST, mem[2]}};
        st = dnnl_primitive_execute(e->mm, g->stream, 3, args);
        if (st == dnnl_success)
            st = dnnl_stream_wait(g->stream);
    }
    for (int i = 0; i < 3; i++)
        if (mem[i])
            dnnl_memory_destroy(mem[i]);
    DNNL_TRY(st);
    return S2S_OK;
}

static s2s_status gb_create(s2s_bf16_gemm **out)
{
    s2s_bf16_gemm *g = s2s_host_calloc(1, sizeof *g, "the bf16 GEMM state");
    if (!g)
        return S2S_ERR_OUT_OF_MEMORY;
    dnnl_status_t st = dnnl_engine_create(&g->eng, dnnl_cpu, 0);
    if (st == dnnl_success)
        st = dnnl_stream_create(&g->stream, g->eng, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        s2s_dnnl_bf16_gemm_free(g);
        DNNL_TRY(st);
    }
    *out = g;
    return S2S_OK;
}

/* B' (B [n][k] when tb, else [k][n], rounded to bf16 and packed): when B lies in the read-only
 * block, its kept copy, converted once per generation (a block's slot and buffer stay from one
 * generation to the next: a model's weights come back at every batch); else converted into g->b. */
static s2s_status gb_b_copy(s2s_backend *be, s2s_bf16_gemm *g, const s2s_bf16_ro *ro, int tb, int n, int k,
                            const float *b, int ldb, const uint16_t **out)
{
    int rows = tb ? n : k, cols = tb ? k : n;
    int slot = -1;
    if (ro && ro->n > 0 && b >= ro->x && (size_t)(b - ro->x) + (size_t)(rows - 1) * ldb + cols <= ro->n) {
        for (int i = 0; i < GB_KEEP && slot < 0; i++) /* this block's slot */
            if (g->keep[i].b == b && g->keep[i].tb == tb && g->keep[i].k == k && g->keep[i].n == n &&
                g->keep[i].ldb == ldb)
                slot = i;
        for (int i = 0; i < GB_KEEP && slot < 0; i++) /* a free one, else one no block of this generation used */
            if (!g->keep[i].b)
                slot = i;
        for (int i = 0; i < GB_KEEP && slot < 0; i++)
            if (g->keep[i].gen != ro->gen) {
                free(g->keep[i].copy);
                g->keep[i].copy = NULL, g->keep[i].b = NULL;
                slot = i;
            }
    }
    if (slot >= 0) {
        gb_kept *e = &g->keep[slot];
        if (!e->b) {
            e->copy = s2s_host_alloc(sizeof(uint16_t) * (size_t)rows * cols, "a bf16 copy of a weight block");
            if (!e->copy)
                return S2S_ERR_OUT_OF_MEMORY;
            e->b = b, e->tb = tb, e->k = k, e->n = n, e->ldb = ldb, e->gen = 0; /* generations start at 1 */
        }
        if (e->gen != ro->gen) {
            gb_convert(be, e->copy, cols, b, ldb, rows, rows, cols);
            e->gen = ro->gen;
        }
        *out = e->copy;
        return S2S_OK;
    }
    S2S_TRY(gb_reserve(&g->b, &g->bcap, (size_t)k * n));
    gb_convert(be, g->b, cols, b, ldb, rows, rows, cols);
    *out = g->b;
    return S2S_OK;
}

static s2s_status gb_gemm(s2s_backend *be, s2s_bf16_gemm *g, const s2s_bf16_ro *ro, int ta, int tb, int m, int n,
                          int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc, int *done)
{
    gb_entry *e;
    if (!ta) {
        int mb = m < GB_ROWS ? m : GB_ROWS, rows = m < GB_ROWS ? m : m / GB_ROWS * GB_ROWS;
        S2S_TRY(gb_lookup(g, 0, tb, mb, n, k, ldc, &e));
        if (!e->mm)
            return S2S_OK;
        S2S_TRY(gb_reserve(&g->a, &g->acap, (size_t)rows * k));
        gb_convert(be, g->a, k, a, lda, rows, rows, k);
        const uint16_t *bb;
        S2S_TRY(gb_b_copy(be, g, ro, tb, n, k, b, ldb, &bb)); /* B' [n][k] or [k][n] */
        for (int r0 = 0; r0 < rows; r0 += mb)
            S2S_TRY(gb_run(g, e, g->a + (size_t)r0 * k, bb, c + (size_t)r0 * ldc));
        *done = rows;
        return S2S_OK;
    }
    if (tb)
        return S2S_OK;
    int kc = k < GB_K ? k : GB_K, kp = (k + kc - 1) / kc * kc;
    S2S_TRY(gb_lookup(g, 1, 0, m, n, kc, ldc, &e));
    if (!e->mm)
        return S2S_OK;
    S2S_TRY(gb_reserve(&g->a, &g->acap, (size_t)kp * m));
    S2S_TRY(gb_reserve(&g->b, &g->bcap, (size_t)kp * n));
    gb_convert(be, g->a, m, a, lda, k, kp, m); /* A' [kp][m], A stored [k][m] */
    gb_convert(be, g->b, n, b, ldb, k, kp, n); /* B' [kp][n] */
    for (int k0 = 0; k0 < kp; k0 += kc)
        S2S_TRY(gb_run(g, e, g->a + (size_t)k0 * m, g->b + (size_t)k0 * n, c));
    *done = m;
    return S2S_OK;
}

s2s_status s2s_dnnl_gemm_bf16(s2s_backend *be, s2s_bf16_gemm **state, const s2s_bf16_ro *ro, int ta, int tb, int m,
                              int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc,
                              int *done)
{
    *done = 0;
    if (!*state)
        S2S_TRY(gb_create(state));
    int saved = omp_get_max_threads();
    omp_set_num_threads(be->threads); /* oneDNN's threads: this thread's setting, restored below */
    s2s_status st = gb_gemm(be, *state, ro, ta, tb, m, n, k, a, lda, b, ldb, c, ldc, done);
    omp_set_num_threads(saved);
    return st;
}
