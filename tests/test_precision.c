/* test_precision.c - decoding's precomputations (model/precision.c, backend/cpu_dnnl.c):
 * - the reduced-precision products (int8, bf16) against the fp32 GEMM within the error their
 *   rounding allows, row by row independent of the batch, exact at the int8 extremes (where a
 *   CPU without VNNI would overflow int16 with 8-bit weights), with bad calls refused;
 * - whichever path this CPU takes, the fallback forced once (an ISA cap below AVX2): fp32 output
 *   bit for bit, one warning, prepare_decoding saying why;
 * - a trained model: int8 decoding agrees with fp32 on most sentences, the model's weights stay
 *   fp32 (read back and saved), and a weight change reaches the next int8 decode;
 * - the embedding lookup table: the same output, bit for bit, as the GEMM it replaces, for every
 *   cell and attention. CPU. */
#include "model.h"
#include "model_util.h"
#include "reverse_task.h"
#include <float.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#ifdef S2S_HAVE_DNNL
#include <dnnl.h>
#endif

static void count_warnings(s2s_log_level level, const char *msg, void *user)
{
    if (level == S2S_LOG_WARN && strstr(msg, "decoding in fp32 instead"))
        (*(int *)user)++;
}

static s2s_context *ctx_counting(uint64_t seed, int *warnings)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU, o.seed = seed, o.threads = 2;
    o.log = count_warnings, o.log_user = warnings;
    s2s_context *ctx = NULL;
    cr_assert_eq(s2s_context_create(&o, &ctx), S2S_OK, "%s", s2s_last_error());
    return ctx;
}

/* ---- the products ------------------------------------------------------------------------ */

#ifdef S2S_HAVE_DNNL
/* y = x W^T (+ y) in double, W [n,k] at w (ldw; kn: stored [k,n]). */
static double ref_at(const float *x, int ldx, const float *w, int ldw, int kn, int r, int j, int k)
{
    double s = 0.0;
    for (int kk = 0; kk < k; kk++)
        s += (double)x[(size_t)r * ldx + kk] * (kn ? w[(size_t)kk * ldw + j] : w[(size_t)j * ldw + kk]);
    return s;
}

static void check_products(s2s_backend *be, s2s_precision prec, uint64_t *seed)
{
    static const struct {
        int m, n, k, ldw, kn;
    } shape[] = {{1, 37, 19, 19, 0}, {5, 64, 33, 40, 0}, {3, 24, 24, 30, 1}, {64, 300, 96, 96, 0},
                 {400, 6000, 16, 16, 0} /* several row blocks */};
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
        int m = shape[i].m, n = shape[i].n, k = shape[i].k, ldw = shape[i].ldw, kn = shape[i].kn, ldx = k + 3;
        size_t wn = kn ? (size_t)k * ldw : (size_t)n * ldw;
        float *w = malloc(sizeof(float) * wn), *x = malloc(sizeof(float) * (size_t)m * ldx);
        float *y = malloc(sizeof(float) * (size_t)m * n), *y0 = malloc(sizeof(float) * (size_t)m * n);
        float *row = malloc(sizeof(float) * (size_t)n);
        tu_fill(seed, w, wn, -0.5f, 0.5f);
        tu_fill(seed, x, (size_t)m * ldx, -2.0f, 2.0f);
        tu_fill(seed, y0, (size_t)m * n, -1.0f, 1.0f);
        s2s_packed *p = NULL;
        cr_assert_eq(be->ops->pack(be, w, n, k, ldw, kn, prec, &p), S2S_OK, "%s", s2s_last_error());
        for (int beta = 0; beta < 2; beta++) {
            memcpy(y, y0, sizeof(float) * (size_t)m * n);
            cr_assert_eq(be->ops->gemm_packed(be, p, m, n, k, x, ldx, (float)beta, NULL, y, n), S2S_OK, "%s",
                         s2s_last_error());
            double err2 = 0.0, ref2 = 0.0;
            for (int r = 0; r < m; r++) {
                double ax = 0.0;
                for (int kk = 0; kk < k; kk++)
                    ax = fmax(ax, fabs(x[(size_t)r * ldx + kk]));
                for (int j = 0; j < n; j++) {
                    double aw = 0.0;
                    for (int kk = 0; kk < k; kk++)
                        aw = fmax(aw, fabs(kn ? w[(size_t)kk * ldw + j] : w[(size_t)j * ldw + kk]));
                    double want = ref_at(x, ldx, w, ldw, kn, r, j, k) + (beta ? y0[(size_t)r * n + j] : 0.0);
                    /* worst case of the rounding: int8 weights (at least 7-bit: 63 levels) and
                     * activations (127) each off by half a step; bf16 8 bits per factor */
                    double per = prec == S2S_PRECISION_INT8 ? 0.5 / 63 + 0.5 / 127 + 0.25 / (63.0 * 127)
                                                            : 2.0 / 256 + 1.0 / 65536;
                    double bound = k * ax * aw * per + 1e-5 * (fabs(want) + 1.0);
                    double e = fabs(y[(size_t)r * n + j] - want);
                    cr_assert_leq(e, bound, "precision %d shape %zu beta %d y[%d][%d] = %.7g, fp32 %.7g (bound %.3g)",
                                  (int)prec, i, beta, r, j, y[(size_t)r * n + j], want, bound);
                    err2 += e * e, ref2 += (want - (beta ? y0[(size_t)r * n + j] : 0.0)) *
                                          (want - (beta ? y0[(size_t)r * n + j] : 0.0));
                }
            }
            cr_assert_lt(sqrt(err2 / (ref2 + 1e-30)), 0.02, "precision %d shape %zu: relative RMS error %.4f",
                         (int)prec, i, sqrt(err2 / (ref2 + 1e-30)));
        }
        /* a bias added in the product: the bits of the bias rows then beta 1 (y0's row 0 as bias) */
        float *yb = malloc(sizeof(float) * (size_t)m * n);
        for (int r = 0; r < m; r++)
            memcpy(y + (size_t)r * n, y0, sizeof(float) * (size_t)n);
        cr_assert_eq(be->ops->gemm_packed(be, p, m, n, k, x, ldx, 1.0f, NULL, y, n), S2S_OK);
        cr_assert_eq(be->ops->gemm_packed(be, p, m, n, k, x, ldx, 0.0f, y0, yb, n), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(memcmp(y, yb, sizeof(float) * (size_t)m * n), 0, "precision %d shape %zu: the fused bias differs",
                     (int)prec, i);
        cr_assert_neq(be->ops->gemm_packed(be, p, m, n, k, x, ldx, 1.0f, y0, yb, n), S2S_OK, "bias with beta 1");
        free(yb);
        /* each row alone: int8 gives its bits in the batch (per-row scales, exact int32 sums);
         * bf16 sums in fp32 in an order oneDNN picks by the row count (a one-row kernel on
         * AVX-512 BF16 CPUs), so a row may differ from its batch by fp32 reordering only:
         * at most 2 k eps sum_k |x w| */
        memcpy(y, y0, sizeof(float) * (size_t)m * n);
        cr_assert_eq(be->ops->gemm_packed(be, p, m, n, k, x, ldx, 0.0f, NULL, y, n), S2S_OK);
        for (int r = 0; r < m; r += m > 8 ? m / 7 : 1) {
            cr_assert_eq(be->ops->gemm_packed(be, p, 1, n, k, x + (size_t)r * ldx, ldx, 0.0f, NULL, row, n), S2S_OK);
            if (prec == S2S_PRECISION_INT8) {
                cr_assert_eq(memcmp(row, y + (size_t)r * n, sizeof(float) * (size_t)n), 0,
                             "precision %d shape %zu: row %d alone differs from the batch", (int)prec, i, r);
                continue;
            }
            for (int j = 0; j < n; j++) {
                double mag = 0.0;
                for (int kk = 0; kk < k; kk++)
                    mag += fabs(x[(size_t)r * ldx + kk] * (kn ? w[(size_t)kk * ldw + j] : w[(size_t)j * ldw + kk]));
                double d = fabs((double)row[j] - y[(size_t)r * n + j]), bound = 2.0 * k * FLT_EPSILON * mag * 1.02;
                cr_assert_leq(d, bound, "precision %d shape %zu: row %d alone, y[%d] = %.9g, in the batch %.9g "
                                        "(more than fp32 reordering: %.3g)",
                              (int)prec, i, r, j, row[j], y[(size_t)r * n + j], bound);
            }
        }
        /* refused: another block's shape, a beta other than 0 or 1 */
        cr_assert_neq(be->ops->gemm_packed(be, p, m, n + 1, k, x, ldx, 0.0f, NULL, y, n + 1), S2S_OK);
        cr_assert_neq(be->ops->gemm_packed(be, p, m, n, k, x, ldx, 0.5f, NULL, y, n), S2S_OK);
        cr_assert_eq(be->ops->gemm_packed(be, p, 0, n, k, x, ldx, 0.0f, NULL, y, n), S2S_OK);
        be->ops->packed_free(be, p);
        free(w), free(x), free(y), free(y0), free(row);
    }
}

/* x = +-1 everywhere and W = 1: every int8 code at its end of the range. */
static void check_int8_extremes(s2s_backend *be)
{
    enum { N = 8, K = 256 };
    static float w[N * K], x[2 * K], y[2 * N];
    for (int i = 0; i < N * K; i++)
        w[i] = 1.0f;
    for (int i = 0; i < K; i++)
        x[i] = 1.0f, x[K + i] = -1.0f;
    s2s_packed *p = NULL;
    cr_assert_eq(be->ops->pack(be, w, N, K, K, 0, S2S_PRECISION_INT8, &p), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(be->ops->gemm_packed(be, p, 2, N, K, x, K, 0.0f, NULL, y, N), S2S_OK, "%s", s2s_last_error());
    for (int j = 0; j < N; j++) {
        cr_assert_float_eq(y[j], (float)K, 1e-3f, "all +1: y = %.6g, not %d (int16 overflow?)", y[j], K);
        cr_assert_float_eq(y[N + j], -(float)K, 1e-3f, "all -1: y = %.6g, not -%d", y[N + j], K);
    }
    /* a NaN in a row gives NaN (as fp32 would); a row of tiny values gives zeros, not NaN */
    for (int i = 0; i < K; i++)
        x[i] = i == 7 ? NAN : 1.0f, x[K + i] = 1e-38f;
    cr_assert_eq(be->ops->gemm_packed(be, p, 2, N, K, x, K, 0.0f, NULL, y, N), S2S_OK);
    for (int j = 0; j < N; j++)
        cr_assert(isnan(y[j]) && y[N + j] == 0.0f, "NaN row: %g; tiny row: %g", y[j], y[N + j]);
    be->ops->packed_free(be, p);
    /* a weight row of tiny values: zeros */
    for (int i = 0; i < N * K; i++)
        w[i] = i < K ? 1e-39f : 1.0f;
    for (int i = 0; i < K; i++)
        x[i] = 1.0f;
    cr_assert_eq(be->ops->pack(be, w, N, K, K, 0, S2S_PRECISION_INT8, &p), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(be->ops->gemm_packed(be, p, 1, N, K, x, K, 0.0f, NULL, y, N), S2S_OK);
    cr_assert(y[0] == 0.0f && fabsf(y[1] - (float)K) < 1e-3f, "tiny weights: %g, %g", y[0], y[1]);
    be->ops->packed_free(be, p);
}
#endif

Test(precision, packed_products_within_the_rounding_bound, .timeout = 120)
{
    int warnings = 0;
    s2s_context *ctx = ctx_counting(1, &warnings);
    s2s_backend *be = ctx->be;
#ifdef S2S_HAVE_DNNL
    uint64_t seed = tu_seed();
    char why[400];
    int ran = 0;
    /* what this CPU has, then the 7-bit path (no VNNI) forced, then a CPU without AVX2 */
    unsigned caps[3] = {0, dnnl_cpu_isa_avx2, dnnl_cpu_isa_avx};
    for (int c = 0; c < 3; c++) {
        be->isa_cap = caps[c];
        for (int q = 0; q < 2; q++) {
            s2s_precision prec = q ? S2S_PRECISION_BF16 : S2S_PRECISION_INT8;
            s2s_status st = be->ops->precision_info(be, prec, why, sizeof why);
            cr_log_info("cap %#x, %s: %s", caps[c], q ? "bf16" : "int8", why);
            if (st != S2S_OK) { /* refused, with the reason, and pack refuses too */
                cr_assert_eq(st, S2S_ERR_UNSUPPORTED);
                cr_assert(strstr(why, "needs"), "%s", why);
                float w[4] = {1, 2, 3, 4};
                s2s_packed *p = (s2s_packed *)1;
                cr_assert_eq(be->ops->pack(be, w, 2, 2, 2, 0, prec, &p), S2S_ERR_UNSUPPORTED);
                cr_assert_null(p);
                continue;
            }
            check_products(be, prec, &seed);
            if (!q)
                check_int8_extremes(be);
            ran++;
        }
    }
    cr_assert(be->ops->precision_info(be, S2S_PRECISION_INT8, why, sizeof why) == S2S_ERR_UNSUPPORTED,
              "an AVX cap leaves no int8");
    cr_log_info("%d precision paths checked on this CPU", ran);
#else
    cr_assert_null(be->ops->pack, "no oneDNN in this build: the CPU has no packed weights");
#endif
    s2s_context_free(ctx);
}

/* ---- the fallback ------------------------------------------------------------------------ */

static s2s_model *small_model(s2s_context *ctx, s2s_cell cell, s2s_attention att, int bidir, int layers)
{
    s2s_model_config c = s2s_model_config_default();
    c.cell = cell, c.attention = att, c.bidirectional = bidir, c.layers = layers;
    c.hidden = 16, c.embed = 8, c.src_vocab = 13, c.tgt_vocab = 17, c.dropout = 0;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    float w[17 * 16]; /* a sharper output layer: outputs of several tokens */
    cr_assert_eq(s2s_model_param_get(m, "generator.weight", w, 17 * 16), S2S_OK);
    for (int i = 0; i < 17 * 16; i++)
        w[i] *= 4.0f;
    cr_assert_eq(s2s_model_param_set(m, "generator.weight", w, 17 * 16), S2S_OK);
    return m;
}

enum { SB = 4, SS = 6 };
static const int32_t SRC[SB * SS] = {4, 5, 6, 7, 8, 9, 10, 11, 12, 4, 0, 0, 5, 5, 6, 0, 0, 0, 12, 11, 10, 9, 8, 7};
static const int32_t SLEN[SB] = {6, 4, 3, 6};

/* Same tokens; scores within 1e-5 relative (OpenBLAS's rounding depends on the GEMM's M: the
 * table's rows are computed inside one V-row GEMM, the step's in a B-row one). */
static void expect_same(const s2s_hypothesis *a, const s2s_hypothesis *b, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        cr_assert_eq(a[i].len, b[i].len, "%s: hypothesis %d: length %d vs %d", what, i, a[i].len, b[i].len);
        cr_assert_eq(memcmp(a[i].ids, b[i].ids, sizeof(int32_t) * (size_t)a[i].len), 0, "%s: hypothesis %d", what, i);
        cr_assert(fabsf(a[i].score - b[i].score) <= 1e-5f * fabsf(a[i].score), "%s: hypothesis %d: score %.9g vs %.9g",
                  what, i, a[i].score, b[i].score);
    }
}

static void decode(s2s_model *m, s2s_decode_mode mode, s2s_precision prec, s2s_hypothesis **h)
{
    s2s_batch b = {SB, SS, 0, (int32_t *)SRC, (int32_t *)SLEN, NULL, NULL};
    s2s_decode_options o = s2s_decode_options_default();
    o.mode = mode, o.beam_size = 3, o.nbest = mode == S2S_DECODE_BEAM ? 3 : 1, o.precision = prec;
    cr_assert_eq(s2s_model_decode(m, &b, &o, h), S2S_OK, "%s", s2s_last_error());
}

/* The log-sum-exp of log_softmax(_topk): the AVX2 copy (where this CPU has AVX2) gives the
 * generic C's bits on rows of every length mod 8, with huge, tiny, infinite and NaN entries;
 * both within 1e-6 of a double-precision sum. */
Test(precision, row_lse_and_xent_gradient_same_bits_on_every_path)
{
    enum { N = 1029 };
    static float x[N];
    uint64_t r = 12345;
    for (int i = 0; i < N; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 40.0 - 30.0);
    }
    for (int cols = 1; cols <= N; cols += cols < 40 ? 1 : 97) {
        float a = s2s_cpu_row_lse(x, cols, 1), b = s2s_cpu_row_lse(x, cols, 0);
        cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "cols %d: %.9g vs %.9g", cols, a, b);
        double mx = -INFINITY, z = 0;
        for (int c = 0; c < cols; c++)
            mx = x[c] > mx ? x[c] : mx;
        for (int c = 0; c < cols; c++)
            z += exp((double)x[c] - mx);
        cr_assert(fabs(a - (mx + log(z))) <= 1e-6 * fmax(1.0, fabs(mx + log(z))), "cols %d: %.9g vs %.9g", cols, a,
                  mx + log(z));
    }
    static const float odd[][10] = {{-1e30f, 0, 1e30f, -200, 3, 4, 5, 6, 7, -88},
                                    {-INFINITY, 1, 2, 3, 4, 5, 6, 7, 8, 9},
                                    {NAN, 1, 2, 3, 4, 5, 6, 7, 8, 9},
                                    {1, 2, 3, 4, 5, 6, 7, 8, 9, NAN},
                                    {INFINITY, 1, 2, 3, 4, 5, 6, 7, 8, 9}};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        float a = s2s_cpu_row_lse(odd[i], 10, 1), b = s2s_cpu_row_lse(odd[i], 10, 0);
        cr_assert(memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b)), "row %zu: %.9g vs %.9g", i, a, b);
    }
    /* the cross-entropy's gradient row too (odd values included: NaN stays NaN on both) */
    static float g1[N + 10], g2[N + 10];
    for (int cols = 1; cols <= N; cols += cols < 40 ? 1 : 97) {
        memcpy(g1, x, sizeof(float) * (size_t)cols);
        memcpy(g2, x, sizeof(float) * (size_t)cols);
        float lse = s2s_cpu_row_lse(x, cols, 1);
        s2s_cpu_xent_grad_row(g1, cols, lse, 0.37f, 1e-4f, 1);
        s2s_cpu_xent_grad_row(g2, cols, lse, 0.37f, 1e-4f, 0);
        cr_assert_eq(memcmp(g1, g2, sizeof(float) * (size_t)cols), 0, "xent gradient, cols %d: the paths differ", cols);
    }
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        memcpy(g1, odd[i], sizeof odd[i]);
        memcpy(g2, odd[i], sizeof odd[i]);
        s2s_cpu_xent_grad_row(g1, 10, 9.5f, 1.0f, 0.01f, 1);
        s2s_cpu_xent_grad_row(g2, 10, 9.5f, 1.0f, 0.01f, 0);
        for (int c = 0; c < 10; c++)
            cr_assert(memcmp(&g1[c], &g2[c], sizeof(float)) == 0 || (isnan(g1[c]) && isnan(g2[c])),
                      "xent gradient, odd row %zu col %d: %.9g vs %.9g", i, c, g1[c], g2[c]);
    }
}

Test(precision, forced_fallback_decodes_as_fp32_and_says_why)
{
    int warnings = 0;
    s2s_context *ctx = ctx_counting(2, &warnings);
#ifdef S2S_HAVE_DNNL
    ctx->be->isa_cap = dnnl_cpu_isa_avx; /* a CPU without AVX2 (and so without AVX-512) */
#endif
    s2s_model *m = small_model(ctx, S2S_CELL_LSTM, S2S_ATTN_GENERAL, 1, 1);
    s2s_precision used = S2S_PRECISION_INT8;
    char what[400];
    cr_assert_eq(s2s_model_prepare_decoding(m, S2S_PRECISION_INT8, &used, what, sizeof what), S2S_OK);
    cr_assert_eq(used, S2S_PRECISION_FP32, "int8 taken below AVX2: %s", what);
    cr_assert(strncmp(what, "fp32: ", 6) == 0, "%s", what);
    cr_assert_eq(warnings, 1);
    for (int mode = 0; mode < 2; mode++) {
        s2s_decode_mode dm = mode ? S2S_DECODE_BEAM : S2S_DECODE_GREEDY;
        s2s_hypothesis *ref, *q8, *b16;
        int n = SB * (mode ? 3 : 1);
        decode(m, dm, S2S_PRECISION_FP32, &ref);
        decode(m, dm, S2S_PRECISION_INT8, &q8);
        decode(m, dm, S2S_PRECISION_BF16, &b16);
        expect_same(ref, q8, n, "int8 fallen back");
        expect_same(ref, b16, n, "bf16 fallen back");
        s2s_hypotheses_free(ref, (size_t)n), s2s_hypotheses_free(q8, (size_t)n), s2s_hypotheses_free(b16, (size_t)n);
    }
    cr_assert_eq(warnings, 2, "one warning per precision, not per decode (%d)", warnings);
    /* each precision's own answer, whatever was asked before */
    for (int round = 0; round < 2; round++)
        for (int p = 0; p < 2; p++) {
            s2s_precision want = p ? S2S_PRECISION_BF16 : S2S_PRECISION_INT8;
            cr_assert_eq(s2s_model_prepare_decoding(m, want, &used, what, sizeof what), S2S_OK);
            cr_assert_eq(used, S2S_PRECISION_FP32);
            cr_assert(strstr(what, p ? "bf16 needs" : "int8 needs"), "asked %s: %s", p ? "bf16" : "int8", what);
        }
    s2s_decode_options o = s2s_decode_options_default();
    o.precision = S2S_PRECISION_TF32; /* a GEMM precision of the GPU's, not a decoding one */
    s2s_batch b = {SB, SS, 0, (int32_t *)SRC, (int32_t *)SLEN, NULL, NULL};
    s2s_hypothesis *h = NULL;
    cr_assert_eq(s2s_model_decode(m, &b, &o, &h), S2S_ERR_INVALID_ARG);
    cr_assert_null(h);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* ---- the embedding table ----------------------------------------------------------------- */

Test(precision, embedding_table_gives_the_same_output)
{
    static const s2s_cell cells[3] = {S2S_CELL_LSTM, S2S_CELL_GRU, S2S_CELL_RNN_TANH};
    static const s2s_attention atts[3] = {S2S_ATTN_NONE, S2S_ATTN_DOT, S2S_ATTN_GENERAL};
    s2s_context *ctx = tu_context(S2S_DEVICE_CPU, S2S_PRECISION_FP32, S2S_RNN_IMPL_FUSED, 3);
    for (int c = 0; c < 3; c++)
        for (int a = 0; a < 3; a++) {
            s2s_model *m = small_model(ctx, cells[c], atts[a], a == 1, 1 + (c == 0));
            for (int mode = 0; mode < 2; mode++) {
                s2s_decode_mode dm = mode ? S2S_DECODE_BEAM : S2S_DECODE_GREEDY;
                int n = SB * (mode ? 3 : 1);
                s2s_hypothesis *with, *without;
                m->use_emb_proj = 1;
                decode(m, dm, S2S_PRECISION_FP32, &with);
                cr_assert_not_null(m->emb_proj, "the table was not made");
                m->use_emb_proj = 0;
                s2s_model_weights_changed(m);
                decode(m, dm, S2S_PRECISION_FP32, &without);
                cr_assert_null(m->emb_proj);
                char what[64];
                snprintf(what, sizeof what, "cell %d attention %d mode %d", c, a, mode);
                expect_same(with, without, n, what);
                s2s_hypotheses_free(with, (size_t)n), s2s_hypotheses_free(without, (size_t)n);
            }
            /* greedy through s2s_model_greedy_decode too */
            s2s_batch b = {SB, SS, 0, (int32_t *)SRC, (int32_t *)SLEN, NULL, NULL};
            int32_t out[2][SB * 12], len[2][SB];
            for (int t = 0; t < 2; t++) {
                m->use_emb_proj = !t;
                s2s_model_weights_changed(m);
                cr_assert_eq(s2s_model_greedy_decode(m, &b, 12, out[t], len[t]), S2S_OK, "%s", s2s_last_error());
            }
            cr_assert_eq(memcmp(len[0], len[1], sizeof len[0]), 0);
            for (int i = 0; i < SB; i++)
                cr_assert_eq(memcmp(out[0] + i * 12, out[1] + i * 12, sizeof(int32_t) * (size_t)len[0][i]), 0);
            /* new weights: the table is made again, in the same memory (recorded CUDA graphs read
             * it there), and still gives the GEMM's output */
            m->use_emb_proj = 1;
            s2s_hypothesis *h1, *h2;
            decode(m, S2S_DECODE_GREEDY, S2S_PRECISION_FP32, &h1);
            float *at = m->emb_proj;
            size_t ne = (size_t)m->cfg.tgt_vocab * m->cfg.embed;
            float *e = malloc(sizeof(float) * ne);
            cr_assert_eq(s2s_model_param_get(m, "decoder.embedding.weight", e, ne), S2S_OK);
            for (size_t i = 0; i < ne; i++)
                e[i] = -e[i];
            cr_assert_eq(s2s_model_param_set(m, "decoder.embedding.weight", e, ne), S2S_OK);
            free(e);
            cr_assert_null(m->emb_proj, "the table outlived the weights it was made from");
            decode(m, S2S_DECODE_GREEDY, S2S_PRECISION_FP32, &h2);
            cr_assert_eq(m->emb_proj, at, "the table moved");
            s2s_hypotheses_free(h1, SB);
            m->use_emb_proj = 0;
            s2s_model_weights_changed(m);
            decode(m, S2S_DECODE_GREEDY, S2S_PRECISION_FP32, &h1);
            expect_same(h1, h2, SB, "after new weights");
            s2s_hypotheses_free(h1, SB), s2s_hypotheses_free(h2, SB);
            s2s_model_free(m);
        }
    s2s_context_free(ctx);
}

/* Greedy decoding from each row's best 5 (log_softmax_topk) picks what the whole row picks,
 * with the same score bits: n-gram blocking of 50 (never reached here) forces whole rows.
 * min_len 3 makes EOS refused at first, so the pick is not always the row's first. */
Test(precision, greedy_from_the_best_five_equals_whole_rows)
{
    s2s_context *ctx = tu_context(S2S_DEVICE_CPU, S2S_PRECISION_FP32, S2S_RNN_IMPL_FUSED, 2);
    for (int c = 0; c < 2; c++) {
        s2s_model *m = small_model(ctx, c ? S2S_CELL_GRU : S2S_CELL_LSTM, S2S_ATTN_GENERAL, 1, 1);
        s2s_batch b = {SB, SS, 0, (int32_t *)SRC, (int32_t *)SLEN, NULL, NULL};
        s2s_hypothesis *h[2];
        for (int t = 0; t < 2; t++) {
            s2s_decode_options o = s2s_decode_options_default();
            o.mode = S2S_DECODE_GREEDY, o.min_len = 3, o.no_repeat_ngram = t ? 50 : 0;
            cr_assert_eq(s2s_model_decode(m, &b, &o, &h[t]), S2S_OK, "%s", s2s_last_error());
        }
        for (int i = 0; i < SB; i++) {
            cr_assert_eq(h[0][i].len, h[1][i].len, "cell %d sentence %d", c, i);
            cr_assert_geq(h[0][i].len, 3);
            cr_assert_eq(memcmp(h[0][i].ids, h[1][i].ids, sizeof(int32_t) * (size_t)h[0][i].len), 0);
            cr_assert_eq(memcmp(&h[0][i].score, &h[1][i].score, sizeof(float)), 0, "%.9g vs %.9g", h[0][i].score,
                         h[1][i].score);
        }
        s2s_hypotheses_free(h[0], SB), s2s_hypotheses_free(h[1], SB);
        s2s_model_free(m);
    }
    s2s_context_free(ctx);
}

/* ---- a trained model --------------------------------------------------------------------- */

static void train(s2s_model *m, int steps)
{
    uint64_t data = 77;
    rv_steps(m, &data, steps, 3e-3f, NULL);
}

Test(precision, trained_model_int8_agrees_and_stays_fp32, .timeout = 180)
{
    int warnings = 0;
    s2s_context *ctx = ctx_counting(9, &warnings);
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 64, c.embed = 32, c.dropout = 0.1f, c.attention = S2S_ATTN_GENERAL, c.bidirectional = 1;
    c.src_vocab = c.tgt_vocab = 4 + RV_VOCAB;
    s2s_model *m;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK);
    train(m, 300);
    s2s_precision used;
    char what[400];
    cr_assert_eq(s2s_model_prepare_decoding(m, S2S_PRECISION_INT8, &used, what, sizeof what), S2S_OK);
    cr_log_info("int8: %s", what);
    float *before, *after;
    size_t nw, nw2;
    before = tu_weights(m, &nw);
    int32_t src[RV_B * RV_MAX], len[RV_B], tgt[RV_B * RV_MAX];
    uint64_t data = 1234;
    rv_batch(&data, src, len, tgt);
    s2s_batch b = {RV_B, RV_MAX, 0, src, len, NULL, NULL};
    s2s_decode_options o = s2s_decode_options_default();
    s2s_hypothesis *ref[2], *q8[2];
    for (int mode = 0; mode < 2; mode++) {
        o.mode = mode ? S2S_DECODE_BEAM : S2S_DECODE_GREEDY;
        o.precision = S2S_PRECISION_FP32;
        cr_assert_eq(s2s_model_decode(m, &b, &o, &ref[mode]), S2S_OK, "%s", s2s_last_error());
        o.precision = S2S_PRECISION_INT8;
        cr_assert_eq(s2s_model_decode(m, &b, &o, &q8[mode]), S2S_OK, "%s", s2s_last_error());
        int same = 0, right = 0;
        for (int i = 0; i < RV_B; i++) {
            same += ref[mode][i].len == q8[mode][i].len &&
                    !memcmp(ref[mode][i].ids, q8[mode][i].ids, sizeof(int32_t) * (size_t)ref[mode][i].len);
            right += ref[mode][i].len == len[i] &&
                     !memcmp(ref[mode][i].ids, tgt + i * RV_MAX, sizeof(int32_t) * (size_t)len[i]);
        }
        cr_log_info("%s: int8 = fp32 on %d of %d sentences; fp32 right on %d", mode ? "beam 5" : "greedy", same,
                    RV_B, right);
        cr_assert_gt(right, RV_B / 2, "the model did not learn the task (%d of %d right)", right, RV_B);
        cr_assert_geq(same, RV_B * 9 / 10, "%s: int8 agrees with fp32 on only %d of %d sentences",
                      mode ? "beam" : "greedy", same, RV_B);
        if (used == S2S_PRECISION_FP32)
            expect_same(ref[mode], q8[mode], RV_B, "int8 unavailable: fp32");
    }
    /* the weights stay fp32: read back, and saved and loaded, they decode as before */
    after = tu_weights(m, &nw2);
    cr_assert_eq(nw2, nw);
    cr_assert_eq(memcmp(before, after, sizeof(float) * nw), 0, "int8 decoding changed the model's weights");
    char path[] = "/tmp/s2s_precision_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(s2s_model_save(m, NULL, NULL, NULL, path), S2S_OK, "%s", s2s_last_error());
    s2s_model *m2 = NULL;
    cr_assert_eq(s2s_model_load(ctx, path, &m2, NULL, NULL, NULL), S2S_OK, "%s", s2s_last_error());
    unlink(path);
    free(after);
    after = tu_weights(m2, &nw2);
    cr_assert_eq(nw2, nw);
    cr_assert_eq(memcmp(before, after, sizeof(float) * nw), 0, "the saved weights are not the fp32 weights");
    s2s_hypothesis *again;
    o.mode = S2S_DECODE_BEAM, o.precision = S2S_PRECISION_FP32;
    cr_assert_eq(s2s_model_decode(m2, &b, &o, &again), S2S_OK);
    expect_same(ref[1], again, RV_B, "the loaded copy");
    /* a weight change reaches the next int8 decode: EOS made certain gives empty outputs */
    float bias[4 + RV_VOCAB];
    cr_assert_eq(s2s_model_param_get(m, "generator.bias", bias, 4 + RV_VOCAB), S2S_OK);
    bias[S2S_EOS_ID] = 1000.0f;
    cr_assert_eq(s2s_model_param_set(m, "generator.bias", bias, 4 + RV_VOCAB), S2S_OK);
    s2s_hypothesis *eos;
    o.precision = S2S_PRECISION_INT8, o.min_len = 0;
    cr_assert_eq(s2s_model_decode(m, &b, &o, &eos), S2S_OK);
    for (int i = 0; i < RV_B; i++)
        cr_assert_eq(eos[i].len, 0, "sentence %d: %d tokens from stale int8 weights", i, eos[i].len);
    s2s_hypotheses_free(eos, RV_B), s2s_hypotheses_free(again, RV_B);
    for (int mode = 0; mode < 2; mode++)
        s2s_hypotheses_free(ref[mode], RV_B), s2s_hypotheses_free(q8[mode], RV_B);
    free(before), free(after);
    s2s_model_free(m2);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* ---- bf16 products for training (the context's precision BF16 on the CPU) --------------------
 * cpu_gemm's bf16 path (cpu_dnnl.c) against double references (bf16-rounded factors where it
 * runs, fp32 where it leaves rows to fp32, and which of the two ran) in every transposition,
 * with row blocks and a remainder (ta = 0), K chunks with a zero-padded tail (ta = 1), strides
 * past the shape, beta 0 (old contents ignored, NaN included) and 1; a repeat gives the same
 * bits; the context takes BF16 on the CPU exactly where the CPU can; the reverse task still
 * learns with it and reruns bit for bit. Skipped where this CPU has no bf16. */
static int cpu_bf16_ok(void)
{
#ifdef S2S_HAVE_DNNL
    s2s_backend *be = NULL;
    cr_assert_eq(s2s_backend_cpu_create(NULL, 2, &be), S2S_OK);
    char why[256];
    int ok = be->ops->precision_info(be, S2S_PRECISION_BF16, why, sizeof why) == S2S_OK;
    be->ops->free(be);
    return ok;
#else
    return 0;
#endif
}

/* x rounded to bfloat16 as the library does (nearest, ties to even) */
static double bf16_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Each element against two references in double: the product of the bf16-rounded factors
 * (where the bf16 path computes it: within fp32 summation, k eps sum |x y|) or of the fp32
 * factors (the rows it leaves to fp32: the same bound); which path ran is checked too: the RMS
 * distance to the other reference is at least 10 times the distance to its own. */
Test(precision, bf16_training_gemm_within_the_rounding_bound, .timeout = 120)
{
    if (!cpu_bf16_ok())
        cr_skip_test("this CPU (or this build) has no bf16 products");
    uint64_t seed = tu_seed(), s = seed;
    s2s_backend *be = NULL;
    cr_assert_eq(s2s_backend_cpu_create(NULL, 2, &be), S2S_OK);
    be->precision = S2S_PRECISION_BF16;
    static const struct {
        int m, n, k;
    } shape[] = {{600, 70, 300} /* 2 row blocks + 88 rows */, {100, 130, 1100} /* 3 K chunks, the last padded */,
                 {96, 48, 1024} /* fewer rows than a block; 2 whole chunks */, {5, 7, 3} /* fp32 */};
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta = 0; beta < 2; beta++) {
                    int m = shape[i].m, n = shape[i].n, k = shape[i].k;
                    int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
                    size_t an = (size_t)(ta ? k : m) * lda, bn = (size_t)(tb ? n : k) * ldb, cn = (size_t)m * ldc;
                    float *a = malloc(sizeof(float) * an), *b = malloc(sizeof(float) * bn);
                    float *c = malloc(sizeof(float) * cn), *c0 = malloc(sizeof(float) * cn),
                          *c2 = malloc(sizeof(float) * cn);
                    tu_fill(&s, a, an, -1.0f, 1.0f);
                    tu_fill(&s, b, bn, -1.0f, 1.0f);
                    tu_fill(&s, c0, cn, -1.0f, 1.0f);
                    if (!beta)
                        c0[0] = NAN; /* beta 0: ignored */
                    memcpy(c, c0, sizeof(float) * cn);
                    cr_assert_eq(be->ops->gemm(be, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, (float)beta, c, ldc), S2S_OK,
                                 "%s", s2s_last_error());
                    /* the rows the bf16 path takes (cpu_gemm, cpu_dnnl.c): products of 4e6
                     * multiply-adds or more, not A^T B^T, with ta = 0 whole blocks of 256 rows
                     * (or all rows when fewer) */
                    int big = (double)m * n * k >= 4e6 && !(ta && tb);
                    int bf_rows = !big ? 0 : ta || m < 256 ? m : m / 256 * 256;
                    double own2[2] = {0, 0}, other2[2] = {0, 0};
                    for (int r = 0; r < m; r++)
                        for (int j = 0; j < n; j++) {
                            int bf = r < bf_rows;
                            double w32 = beta ? c0[(size_t)r * ldc + j] : 0.0, w16 = w32, mag = 0.0;
                            for (int kk = 0; kk < k; kk++) {
                                float x = ta ? a[(size_t)kk * lda + r] : a[(size_t)r * lda + kk];
                                float y = tb ? b[(size_t)j * ldb + kk] : b[(size_t)kk * ldb + j];
                                w32 += (double)x * y, w16 += bf16_of(x) * bf16_of(y), mag += fabs((double)x * y);
                            }
                            double got = c[(size_t)r * ldc + j], want = bf ? w16 : w32;
                            double bound = (k + 2) * FLT_EPSILON * (mag + fabs(w32)) + 1e-6;
                            cr_assert_leq(fabs(got - want), bound,
                                          "shape %zu ta %d tb %d beta %d: c[%d][%d] = %.7g, want %.7g (%s, bound %.3g)",
                                          i, ta, tb, beta, r, j, got, want, bf ? "bf16 factors" : "fp32", bound);
                            own2[bf] += (got - want) * (got - want);
                            other2[bf] += (got - (bf ? w32 : w16)) * (got - (bf ? w32 : w16));
                        }
                    for (int p = 0; p < 2; p++)
                        cr_assert(other2[p] == 0.0 || sqrt(own2[p]) * 10.0 <= sqrt(other2[p]),
                                  "shape %zu ta %d tb %d: the %s rows are as near the other path (RMS %.3g, own %.3g)",
                                  i, ta, tb, p ? "bf16" : "fp32", sqrt(other2[p]), sqrt(own2[p]));
                    for (int r = 0; r < m; r++) /* the padding past n untouched */
                        for (int j = n; j < ldc; j++)
                            cr_assert_eq(memcmp(&c[(size_t)r * ldc + j], &c0[(size_t)r * ldc + j], sizeof(float)), 0);
                    memcpy(c2, c0, sizeof(float) * cn);
                    cr_assert_eq(be->ops->gemm(be, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, (float)beta, c2, ldc),
                                 S2S_OK);
                    cr_assert_eq(memcmp(c, c2, sizeof(float) * cn), 0, "shape %zu ta %d tb %d: a repeat differs", i,
                                 ta, tb);
                    free(a), free(b), free(c), free(c0), free(c2);
                }
    be->ops->free(be);
}

/* ops->read_only: products by a B block inside the declared block give the bits they give
 * without it (the kept bf16 copy is the conversion the product would make), at the first use and
 * from the copy; after the block is released, changed and declared again the products follow
 * the new values (no stale copy); a block reaching past the declared end, and more distinct
 * blocks than the copies kept, are converted as before. Both transpositions of B. */
Test(precision, bf16_read_only_weights_same_bits_and_never_stale, .timeout = 120)
{
    if (!cpu_bf16_ok())
        cr_skip_test("this CPU (or this build) has no bf16 products");
    uint64_t s = tu_seed();
    s2s_backend *be = NULL;
    cr_assert_eq(s2s_backend_cpu_create(NULL, 2, &be), S2S_OK);
    be->precision = S2S_PRECISION_BF16;
    enum { M = 300, N = 160, K = 100, BLOCKS = 70 }; /* 256 rows in bf16, 44 in fp32; 70 > the 64 kept */
    size_t wn = (size_t)N * K, total = wn * BLOCKS;
    float *a = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * total);
    float *want = malloc(sizeof(float) * M * N), *got = malloc(sizeof(float) * M * N);
    float *all = malloc(sizeof(float) * M * N * BLOCKS);
    tu_fill(&s, a, (size_t)M * K, -1.0f, 1.0f);
    tu_fill(&s, w, total, -1.0f, 1.0f);
#define RO_GEMM(tb, blk, out)                                                                                  \
    cr_assert_eq(be->ops->gemm(be, 0, tb, M, N, K, 1.0f, a, K, w + (size_t)(blk) * wn, (tb) ? K : N, 0.0f, out, N), \
                 S2S_OK, "%s", s2s_last_error())
    for (int tb = 0; tb < 2; tb++) {
        RO_GEMM(tb, 3, want);
        cr_assert_eq(be->ops->read_only(be, w, total), S2S_OK);
        for (int rep = 0; rep < 2; rep++) {
            RO_GEMM(tb, 3, got);
            cr_assert_eq(memcmp(got, want, sizeof(float) * M * N), 0, "tb %d: read-only B, use %d: other bits", tb,
                         rep);
        }
        cr_assert_eq(be->ops->read_only(be, NULL, 0), S2S_OK);
        for (size_t e = 3 * wn; e < 4 * wn; e++)
            w[e] = -0.5f * w[e] + 0.25f; /* changed while not declared */
        RO_GEMM(tb, 3, want);
        cr_assert_eq(be->ops->read_only(be, w, total), S2S_OK);
        RO_GEMM(tb, 3, got);
        cr_assert_eq(memcmp(got, want, sizeof(float) * M * N), 0, "tb %d: a stale bf16 copy after the change", tb);
        cr_assert_eq(be->ops->read_only(be, w, 4 * wn - 1), S2S_OK); /* block 3 reaches one past the end */
        RO_GEMM(tb, 3, got);
        cr_assert_eq(memcmp(got, want, sizeof(float) * M * N), 0, "tb %d: a block past the declared end", tb);
        cr_assert_eq(be->ops->read_only(be, w, total), S2S_OK); /* all 70 blocks twice: kept or converted */
        for (int pass = 0; pass < 2; pass++)
            for (int blk = 0; blk < BLOCKS; blk++)
                RO_GEMM(tb, blk, all + (size_t)blk * M * N);
        cr_assert_eq(be->ops->read_only(be, NULL, 0), S2S_OK);
        for (int blk = 0; blk < BLOCKS; blk++) {
            RO_GEMM(tb, blk, want);
            cr_assert_eq(memcmp(all + (size_t)blk * M * N, want, sizeof(float) * M * N), 0,
                         "tb %d: block %d of %d declared read-only: other bits", tb, blk, BLOCKS);
        }
    }
#undef RO_GEMM
    be->ops->free(be);
    free(a), free(w), free(want), free(got), free(all);
}

Test(precision, bf16_training_on_the_cpu_where_it_can, .timeout = 180)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU, o.threads = 2, o.precision = S2S_PRECISION_BF16;
    s2s_context *ctx = NULL;
    s2s_status st = s2s_context_create(&o, &ctx);
    if (!cpu_bf16_ok()) {
        cr_assert_eq(st, S2S_ERR_UNSUPPORTED, "a CPU without bf16 took a bf16 context");
        cr_assert(strstr(s2s_last_error(), "bf16") && strstr(s2s_last_error(), "FP32"), "%s", s2s_last_error());
        cr_skip_test("this CPU has no bf16 products: refused as it should be (%s)", s2s_last_error());
    }
    cr_assert_eq(st, S2S_OK, "%s", s2s_last_error());
    s2s_context_free(ctx);
    enum { STEPS = 700 };
    static float a[STEPS], f[40];
    rv_result r = rv_train_at(S2S_DEVICE_CPU, S2S_PRECISION_BF16, 5, STEPS, a);
    rv_result r32 = rv_train(S2S_DEVICE_CPU, 5, 40, f);
    cr_log_info("reverse task, bf16 products: exact match %.4f after %d steps, final loss %.4f", r.accuracy, STEPS,
                a[STEPS - 1]);
    cr_assert_geq(r.accuracy, 0.95, "bf16: exact-match accuracy %.4f < 0.95 (final loss %.4f)", r.accuracy,
                  a[STEPS - 1]);
    int differ = 0; /* the bf16 path ran: the loss curve leaves fp32's in its last bits, and stays near it */
    for (int i = 0; i < 40; i++) {
        differ += memcmp(&a[i], &f[i], sizeof(float)) != 0;
        cr_assert(fabsf(a[i] - f[i]) <= 0.05f * fabsf(f[i]) + 1e-3f, "step %d: bf16 loss %.6g, fp32 %.6g", i, a[i], f[i]);
    }
    cr_assert_gt(differ, 0, "bf16 and fp32 gave the same losses: the bf16 products did not run");
    static float again[40]; /* a rerun: the same bits */
    rv_result r2 = rv_train_at(S2S_DEVICE_CPU, S2S_PRECISION_BF16, 5, 40, again);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(memcmp(&a[i], &again[i], sizeof(float)), 0, "bf16 rerun: step %d loss %.9g, first run %.9g", i,
                     again[i], a[i]);
    free(r.weights), free(r32.weights), free(r2.weights);
}
