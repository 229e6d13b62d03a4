/* test_golden.c - the whole model against an independent implementation: PyTorch.
 *
 * tests/golden/make_golden.py builds the same encoder-decoder in PyTorch, runs forward,
 * backward and greedy decoding in float64 on float32 weights, and writes one text file per
 * case (format: tests/golden/README.md). Here each case's weights go into a library model,
 * which must reproduce the loss, the token count, every parameter gradient and the greedy
 * decoding. The files are committed; CI needs no PyTorch.
 *
 * Tolerances (float32 library against a float64 reference on identical weights):
 * - loss: |got - want| <= 1e-5 + 1e-5 |want|. The loss is ~2.5 and a float32 forward of these
 *   small shapes is good to a few ulps (~1e-6 relative).
 * - gradients: |got - want| <= 1e-5 + 1e-4 |want|. Gradients run through up to ~20 chained
 *   float32 steps (decoder time x layers, then the encoder), each adding a few ulps of
 *   relative error, so ~1e-6 relative is expected; rtol 1e-4 leaves two orders of headroom
 *   yet catches any wrong term (a missing or misplaced contribution is >= 1e-3 relative here).
 *   atol 1e-5 covers elements that are sums of cancelling terms (near-zero gradients).
 * - greedy decoding: exact. make_golden.py only keeps weights whose every argmax wins by
 *   >= 5e-3, far above float32 error in the logits.
 * The same cases run on the GPU (suite golden_cuda) when one is present, with the same
 * tolerances: the CUDA backend computes in float32 as well (S2S_PRECISION_FP32). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seq2seq.h"

#define GD_DIR "tests/golden/"
#define GD_MAX 128 /* entries of each kind in one file */
#define GD_NAME 96
/* Overridable (-DGD_GRAD_RTOL=0 ...) to see the actual errors; the suite uses these values. */
#ifndef GD_LOSS_ATOL
#define GD_LOSS_ATOL 1e-5
#endif
#ifndef GD_LOSS_RTOL
#define GD_LOSS_RTOL 1e-5
#endif
#ifndef GD_GRAD_ATOL
#define GD_GRAD_ATOL 1e-5
#endif
#ifndef GD_GRAD_RTOL
#define GD_GRAD_RTOL 1e-4
#endif

typedef struct gd_tensor {
    char name[GD_NAME];
    int ndim, shape[2];
    size_t n;
    double *v;
} gd_tensor;

typedef struct gd_ints {
    char name[GD_NAME];
    int n;
    int32_t *v;
} gd_ints;

typedef struct gd_scalar {
    char name[GD_NAME];
    double v;
} gd_scalar;

typedef struct golden {
    char path[256];
    gd_tensor param[GD_MAX], grad[GD_MAX];
    gd_ints ints[GD_MAX];
    gd_scalar scalar[GD_MAX];
    int nparam, ngrad, nints, nscalar;
} golden;

/* ---- loader ------------------------------------------------------------------------- */

static void gd_skip_line(FILE *f)
{
    int ch;
    while ((ch = fgetc(f)) != EOF && ch != '\n')
        ;
}

static void gd_read_tensor(golden *g, FILE *f, gd_tensor *t)
{
    cr_assert(fscanf(f, "%95s %d", t->name, &t->ndim) == 2 && (t->ndim == 1 || t->ndim == 2),
              "%s: bad tensor header", g->path);
    t->shape[1] = 1;
    for (int d = 0; d < t->ndim; d++)
        cr_assert(fscanf(f, "%d", &t->shape[d]) == 1 && t->shape[d] > 0, "%s: bad shape of %s", g->path, t->name);
    t->n = (size_t)t->shape[0] * (size_t)t->shape[1];
    t->v = malloc(sizeof(double) * t->n);
    cr_assert_not_null(t->v);
    for (size_t i = 0; i < t->n; i++)
        cr_assert(fscanf(f, "%lf", &t->v[i]) == 1, "%s: %s: value %zu of %zu missing", g->path, t->name, i, t->n);
}

static void gd_read_ints(golden *g, FILE *f, gd_ints *x)
{
    cr_assert(fscanf(f, "%95s %d", x->name, &x->n) == 2 && x->n >= 0, "%s: bad int header", g->path);
    x->v = malloc(sizeof(int32_t) * (size_t)(x->n + 1));
    cr_assert_not_null(x->v);
    for (int i = 0; i < x->n; i++)
        cr_assert(fscanf(f, "%d", &x->v[i]) == 1, "%s: int %s: value %d of %d missing", g->path, x->name, i, x->n);
}

static void gd_read_entry(golden *g, FILE *f, const char *kw)
{
    cr_assert(g->nparam < GD_MAX && g->ngrad < GD_MAX && g->nints < GD_MAX && g->nscalar < GD_MAX,
              "%s: more than %d entries of one kind", g->path, GD_MAX);
    if (kw[0] == '#') {
        gd_skip_line(f);
    } else if (!strcmp(kw, "param")) {
        gd_read_tensor(g, f, &g->param[g->nparam++]);
    } else if (!strcmp(kw, "grad")) {
        gd_read_tensor(g, f, &g->grad[g->ngrad++]);
    } else if (!strcmp(kw, "int")) {
        gd_read_ints(g, f, &g->ints[g->nints++]);
    } else if (!strcmp(kw, "scalar")) {
        gd_scalar *s = &g->scalar[g->nscalar++];
        cr_assert(fscanf(f, "%95s %lf", s->name, &s->v) == 2, "%s: bad scalar line", g->path);
    } else {
        cr_assert_fail("%s: unknown keyword '%s' (see tests/golden/README.md)", g->path, kw);
    }
}

static golden *gd_load(const char *name)
{
    golden *g = calloc(1, sizeof *g);
    cr_assert_not_null(g);
    snprintf(g->path, sizeof g->path, GD_DIR "%s.txt", name);
    FILE *f = fopen(g->path, "r");
    cr_assert_not_null(f, "golden data file %s is missing (run the suite from the repository root; regenerate "
                          "with /usr/bin/python3 tests/golden/make_golden.py)", g->path);
    char kw[32];
    while (fscanf(f, "%31s", kw) == 1)
        gd_read_entry(g, f, kw);
    fclose(f);
    cr_assert(g->nparam > 0 && g->ngrad == g->nparam, "%s: %d params, %d grads", g->path, g->nparam, g->ngrad);
    return g;
}

static void gd_free(golden *g)
{
    for (int i = 0; i < g->nparam; i++)
        free(g->param[i].v);
    for (int i = 0; i < g->ngrad; i++)
        free(g->grad[i].v);
    for (int i = 0; i < g->nints; i++)
        free(g->ints[i].v);
    free(g);
}

static const gd_tensor *gd_find(const gd_tensor *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return &t[i];
    return NULL;
}

static const gd_ints *gd_ints_of(const golden *g, const char *name)
{
    for (int i = 0; i < g->nints; i++)
        if (!strcmp(g->ints[i].name, name))
            return &g->ints[i];
    cr_assert_fail("%s: no 'int %s' entry", g->path, name);
    return NULL;
}

static int gd_int(const golden *g, const char *name)
{
    const gd_ints *x = gd_ints_of(g, name);
    cr_assert_eq(x->n, 1, "%s: int %s has %d values, expected 1", g->path, name, x->n);
    return x->v[0];
}

static double gd_scalar_of(const golden *g, const char *name)
{
    for (int i = 0; i < g->nscalar; i++)
        if (!strcmp(g->scalar[i].name, name))
            return g->scalar[i].v;
    cr_assert_fail("%s: no 'scalar %s' entry", g->path, name);
    return 0.0;
}

/* ---- comparison --------------------------------------------------------------------- */

/* Checks |got - want| <= atol + rtol |want| on n values (a [n / cols, cols] tensor); on
 * failure logs the worst element and returns 0. */
static int gd_close(const char *what, const float *got, const double *want, size_t n, int cols, double atol,
                    double rtol)
{
    size_t worst = 0, bad = 0;
    double worst_excess = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), tol = atol + rtol * fabs(want[i]);
        double excess = isnan(err) ? INFINITY : err - tol;
        bad += !(err <= tol);
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (bad) {
        char at[64];
        if (cols > 1)
            snprintf(at, sizeof at, "[%zu, %zu]", worst / (size_t)cols, worst % (size_t)cols);
        else
            snprintf(at, sizeof at, "[%zu]", worst);
        cr_log_error("%s: %zu of %zu elements out of tolerance (atol %g, rtol %g); worst %s: got %.9g, want %.9g "
                     "(diff %.3g)",
                     what, bad, n, atol, rtol, at, (double)got[worst], want[worst], (double)got[worst] - want[worst]);
    }
    return bad == 0;
}

/* ---- the model under test ------------------------------------------------------------- */

static s2s_model_config gd_config(const golden *g)
{
    s2s_model_config c = s2s_model_config_default();
    c.cell = (s2s_cell)gd_int(g, "cell");
    c.layers = gd_int(g, "layers");
    c.hidden = gd_int(g, "hidden");
    c.embed = gd_int(g, "embed");
    c.bidirectional = gd_int(g, "bidirectional");
    c.attention = (s2s_attention)gd_int(g, "attention");
    c.src_vocab = gd_int(g, "src_vocab");
    c.tgt_vocab = gd_int(g, "tgt_vocab");
    c.dropout = 0.0f;
    return c;
}

/* A context on `device`; returns NULL (after skipping the test) when that device is absent. */
static s2s_context *gd_context(s2s_device device)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = device;
    s2s_context *ctx = NULL;
    s2s_status st = s2s_context_create(&o, &ctx);
    if (device == S2S_DEVICE_CUDA && (st == S2S_ERR_NO_DEVICE || st == S2S_ERR_UNSUPPORTED))
        cr_skip_test("no CUDA device: %s", s2s_last_error());
    cr_assert_eq(st, S2S_OK, "s2s_context_create: %s", s2s_last_error());
    return ctx;
}

/* Every library tensor is in the file with the same shape, and the file has no others. */
static void gd_check_param_set(const golden *g, const s2s_model *m)
{
    int count = s2s_model_param_count(m);
    for (int i = 0; i < count; i++) {
        s2s_param_info info;
        cr_assert_eq(s2s_model_param_info_at(m, i, &info), S2S_OK, "%s", s2s_last_error());
        const gd_tensor *t = gd_find(g->param, g->nparam, info.name);
        cr_assert_not_null(t, "%s: the library has tensor %s, the reference has not", g->path, info.name);
        cr_assert(t->ndim == info.ndim && t->shape[0] == info.shape[0] && t->shape[1] == info.shape[1],
                  "%s: %s is [%d, %d] (ndim %d) in the library, [%d, %d] (ndim %d) in the reference", g->path,
                  info.name, info.shape[0], info.shape[1], info.ndim, t->shape[0], t->shape[1], t->ndim);
        cr_assert_not_null(gd_find(g->grad, g->ngrad, info.name), "%s: no gradient for %s", g->path, info.name);
    }
    cr_assert_eq(count, g->nparam, "%s: the library has %d tensors, the reference %d", g->path, count, g->nparam);
}

static float *gd_to_float(const double *x, size_t n)
{
    float *y = malloc(sizeof(float) * (n ? n : 1));
    cr_assert_not_null(y);
    for (size_t i = 0; i < n; i++)
        y[i] = (float)x[i];
    return y;
}

static void gd_set_params(const golden *g, s2s_model *m)
{
    for (int i = 0; i < g->nparam; i++) {
        const gd_tensor *t = &g->param[i];
        float *w = gd_to_float(t->v, t->n);
        cr_assert_eq(s2s_model_param_set(m, t->name, w, t->n), S2S_OK, "%s: %s", t->name, s2s_last_error());
        free(w);
    }
}

static s2s_batch gd_batch(const golden *g)
{
    s2s_batch b;
    memset(&b, 0, sizeof b);
    b.batch = gd_int(g, "batch");
    b.src_max_len = gd_int(g, "src_max_len");
    b.tgt_max_len = gd_int(g, "tgt_max_len");
    b.src = gd_ints_of(g, "src")->v;
    b.src_len = gd_ints_of(g, "src_len")->v;
    b.tgt = gd_ints_of(g, "tgt")->v;
    b.tgt_len = gd_ints_of(g, "tgt_len")->v;
    cr_assert(gd_ints_of(g, "src")->n == b.batch * b.src_max_len && gd_ints_of(g, "tgt")->n == b.batch * b.tgt_max_len,
              "%s: src/tgt sizes do not match batch x max_len", g->path);
    return b;
}

static void gd_check_loss(const golden *g, const char *what, float loss, int ntokens)
{
    double want = gd_scalar_of(g, "loss");
    double tol = GD_LOSS_ATOL + GD_LOSS_RTOL * fabs(want);
    cr_expect(fabs((double)loss - want) <= tol, "%s: %s loss: got %.9g, want %.9g (diff %.3g, tolerance %.3g)",
              g->path, what, (double)loss, want, (double)loss - want, tol);
    cr_expect_eq(ntokens, gd_int(g, "ntokens"), "%s: %s ntokens: got %d, want %d", g->path, what, ntokens,
                 gd_int(g, "ntokens"));
}

/* Compares every gradient; reports each failing tensor, then fails once. */
static void gd_check_grads(const golden *g, const s2s_model *m)
{
    int failed = 0;
    for (int i = 0; i < g->ngrad; i++) {
        const gd_tensor *t = &g->grad[i];
        float *got = malloc(sizeof(float) * t->n);
        cr_assert_not_null(got);
        cr_assert_eq(s2s_model_grad_get(m, t->name, got, t->n), S2S_OK, "%s: %s", t->name, s2s_last_error());
        char what[GD_NAME + 300];
        snprintf(what, sizeof what, "%s: grad %s", g->path, t->name);
        failed += !gd_close(what, got, t->v, t->n, t->shape[1], GD_GRAD_ATOL, GD_GRAD_RTOL);
        free(got);
    }
    cr_expect_eq(failed, 0, "%s: %d of %d gradients differ from PyTorch (details logged above)", g->path, failed,
                 g->ngrad);
}

static void gd_check_greedy(const golden *g, s2s_model *m, const s2s_batch *b)
{
    int max_len = gd_int(g, "greedy_max_len"), B = b->batch;
    const gd_ints *want = gd_ints_of(g, "greedy_out"), *want_len = gd_ints_of(g, "greedy_len");
    int32_t *out = calloc((size_t)B * max_len, sizeof(int32_t)), *len = calloc((size_t)B, sizeof(int32_t));
    cr_assert(out && len && want->n == B * max_len && want_len->n == B);
    cr_assert_eq(s2s_model_greedy_decode(m, b, max_len, out, len), S2S_OK, "greedy: %s", s2s_last_error());
    for (int r = 0; r < B; r++) {
        cr_expect_eq(len[r], want_len->v[r], "%s: greedy row %d: length %d, want %d", g->path, r, len[r],
                     want_len->v[r]);
        for (int i = 0; i < len[r] && i < want_len->v[r]; i++)
            cr_expect_eq(out[r * max_len + i], want->v[r * max_len + i], "%s: greedy row %d token %d: %d, want %d",
                         g->path, r, i, out[r * max_len + i], want->v[r * max_len + i]);
    }
    free(out);
    free(len);
}

static void gd_run(const char *name, s2s_device device)
{
    golden *g = gd_load(name);
    s2s_context *ctx = gd_context(device);
    s2s_model_config cfg = gd_config(g);
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &cfg, &m), S2S_OK, "s2s_model_create: %s", s2s_last_error());
    gd_check_param_set(g, m);
    gd_set_params(g, m);
    s2s_batch b = gd_batch(g);
    s2s_loss_options o = s2s_loss_options_default();
    o.label_smoothing = (float)gd_scalar_of(g, "label_smoothing");
    o.train = 1; /* dropout is 0: training and evaluation compute the same thing */
    float loss = NAN;
    int ntok = -1;
    cr_assert_eq(s2s_model_forward_backward(m, &b, &o, &loss, &ntok), S2S_OK, "forward_backward: %s",
                 s2s_last_error());
    gd_check_loss(g, "forward_backward", loss, ntok);
    gd_check_grads(g, m);
    if (o.label_smoothing == 0.0f) { /* s2s_model_evaluate has no smoothing option */
        cr_assert_eq(s2s_model_evaluate(m, &b, &loss, &ntok), S2S_OK, "evaluate: %s", s2s_last_error());
        gd_check_loss(g, "evaluate", loss, ntok);
    }
    gd_check_greedy(g, m, &b);
    s2s_model_free(m);
    s2s_context_free(ctx);
    gd_free(g);
}

#define GOLDEN_CASE(name)                                             \
    Test(golden, name) { gd_run(#name, S2S_DEVICE_CPU); }             \
    Test(golden_cuda, name) { gd_run(#name, S2S_DEVICE_CUDA); }

GOLDEN_CASE(lstm_bi_general)
GOLDEN_CASE(gru_uni_dot)
GOLDEN_CASE(rnn_bi_none)
GOLDEN_CASE(lstm_uni_dot_b4)
GOLDEN_CASE(gru_bi_general)
GOLDEN_CASE(lstm_uni_none_l2)
GOLDEN_CASE(rnn_uni_general_l2)
