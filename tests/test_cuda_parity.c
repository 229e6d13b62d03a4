/* test_cuda_parity.c - every op of the CUDA backend against the CPU reference (backend_cpu.c).
 *
 * Each test draws fresh random inputs (seed from the clock, or S2S_TEST_SEED=<n> to replay a
 * failure; every failure message prints the seed), uploads the same bytes to both backends,
 * runs the op on both, and compares element-wise with |got - want| <= atol + rtol |want|,
 * reporting the worst element. Output buffers start as NaN on both sides, so an element the
 * GPU fails to write (or writes where the CPU does not) shows up as a NaN mismatch. Integer
 * outputs, copies and dropout masks must match bit for bit. Tolerances are stated per test.
 *
 * Sizes are odd on purpose (B = 3, H = 37, S = 7, V = 1001, strides wider than rows) and the
 * sequence ops include padded rows (len <= t), pad targets and label smoothing.
 *
 * Without a GPU every test skips; in a build without CUDA the file holds one skipping test.
 * Run: make CUDA=1 test TEST_ARGS="--filter 'cuda_parity/[a-z]*'" (or all tests with make test). */
#include <criterion/criterion.h>

#include "backend.h"
#include "internal.h"

#ifdef S2S_HAVE_CUDA

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- fixture: both backends, a seeded generator, buffers on both sides ------------------ */

#define MAX_BUFS 64

typedef struct tb { /* one tensor, same bytes on the CPU (c) and the GPU (g) */
    void *c, *g;
    size_t bytes;
} tb;

typedef struct pair {
    s2s_backend *cpu, *gpu;
    uint64_t seed, state;
    tb bufs[MAX_BUFS];
    int nbufs;
} pair;

#define NEED_GPU()                                                                                       \
    do {                                                                                                 \
        if (s2s_cuda_device_count() == 0)                                                                \
            cr_skip_test("no CUDA device: the CUDA parity tests need a GPU (cudaGetDeviceCount found 0)"); \
    } while (0)

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float unif(pair *P, float lo, float hi) { return lo + (hi - lo) * (float)(splitmix(&P->state) >> 40) / 16777216.0f; }
static int irand(pair *P, int n) { return (int)(splitmix(&P->state) % (uint64_t)n); }

static void pair_open(pair *P, s2s_precision prec)
{
    memset(P, 0, sizeof *P);
    const char *env = getenv("S2S_TEST_SEED");
    P->seed = env ? strtoull(env, NULL, 10) : ((uint64_t)time(NULL) * 1000003u) ^ (uint64_t)getpid();
    P->state = P->seed;
    cr_assert_eq(s2s_backend_cpu_create(NULL, 1, &P->cpu), S2S_OK, "CPU backend: %s", s2s_last_error());
    cr_assert_eq(s2s_backend_cuda_create(NULL, 0, prec, &P->gpu), S2S_OK, "CUDA backend: %s", s2s_last_error());
}

static void pair_close(pair *P)
{
    for (int i = 0; i < P->nbufs; i++) {
        P->cpu->ops->release(P->cpu, P->bufs[i].c);
        P->gpu->ops->release(P->gpu, P->bufs[i].g);
    }
    P->gpu->ops->free(P->gpu);
    P->cpu->ops->free(P->cpu);
}

/* Uploads `bytes` of host data to both backends. */
static tb both(pair *P, const void *host, size_t bytes)
{
    tb t = {NULL, NULL, bytes};
    cr_assert_lt(P->nbufs, MAX_BUFS, "test uses too many buffers");
    cr_assert_eq(P->cpu->ops->alloc(P->cpu, bytes ? bytes : 4, &t.c), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(P->gpu->ops->alloc(P->gpu, bytes ? bytes : 4, &t.g), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(P->cpu->ops->to_device(P->cpu, t.c, host, bytes), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(P->gpu->ops->to_device(P->gpu, t.g, host, bytes), S2S_OK, "%s", s2s_last_error());
    P->bufs[P->nbufs++] = t;
    return t;
}

/* n floats uniform in [lo, hi), the same on both sides. */
static tb rand_f(pair *P, size_t n, float lo, float hi)
{
    float *h = malloc(n * sizeof *h + 4);
    for (size_t i = 0; i < n; i++)
        h[i] = unif(P, lo, hi);
    tb t = both(P, h, n * sizeof *h);
    free(h);
    return t;
}

/* n floats, all NaN: an output buffer. */
static tb nan_f(pair *P, size_t n)
{
    float *h = malloc(n * sizeof *h + 4);
    for (size_t i = 0; i < n; i++)
        h[i] = NAN;
    tb t = both(P, h, n * sizeof *h);
    free(h);
    return t;
}

static tb ints(pair *P, const int32_t *h, size_t n) { return both(P, h, n * sizeof *h); }

/* The same op on the CPU, then on the GPU; D(t) names t's pointer on the side being run. */
#define D(t) ((void *)(side_ ? (t).g : (t).c))
#define RUN(P, op, ...)                                                                                \
    do {                                                                                               \
        for (int side_ = 0; side_ < 2; side_++) {                                                      \
            s2s_backend *be_ = side_ ? (P)->gpu : (P)->cpu;                                            \
            s2s_status st_ = be_->ops->op(be_, __VA_ARGS__);                                           \
            cr_assert_eq(st_, S2S_OK, "%s on %s: %s (seed %" PRIu64 ")", #op, side_ ? "CUDA" : "CPU",   \
                         s2s_last_error(), (P)->seed);                                                 \
        }                                                                                              \
    } while (0)

static void *host_copy(s2s_backend *be, const void *p, size_t bytes)
{
    void *h = malloc(bytes + 4);
    cr_assert_eq(be->ops->to_host(be, h, p, bytes), S2S_OK, "to_host: %s", s2s_last_error());
    return h;
}

/* |got - want| <= atol + rtol |want| everywhere; NaN must meet NaN, Inf the same Inf. */
static void expect_close(pair *P, const char *what, tb t, double atol, double rtol)
{
    size_t n = t.bytes / sizeof(float);
    float *want = host_copy(P->cpu, t.c, t.bytes), *got = host_copy(P->gpu, t.g, t.bytes);
    double worst = -INFINITY;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double w = want[i], g = got[i], ex;
        if (isnan(w) || isnan(g))
            ex = isnan(w) && isnan(g) ? -INFINITY : INFINITY;
        else if (isinf(w) || isinf(g))
            ex = w == g ? -INFINITY : INFINITY;
        else
            ex = fabs(g - w) - (atol + rtol * fabs(w));
        if (ex > worst) {
            worst = ex;
            wi = i;
        }
    }
    float gw = n ? got[wi] : 0.0f, ww = n ? want[wi] : 0.0f;
    free(want);
    free(got);
    cr_assert(n == 0 || worst <= 0.0, "%s: worst element %zu of %zu: got %.9g, want %.9g (bound %g + %g*|want|); seed %" PRIu64,
              what, wi, n, gw, ww, atol, rtol, P->seed);
}

/* Bit-for-bit equality (floats by their bits, so NaN payloads and -0 count too). */
static void expect_exact(pair *P, const char *what, tb t)
{
    unsigned char *want = host_copy(P->cpu, t.c, t.bytes), *got = host_copy(P->gpu, t.g, t.bytes);
    size_t i = 0;
    while (i + 4 <= t.bytes && !memcmp(want + i, got + i, 4))
        i += 4;
    int32_t w = 0, g = 0;
    float wf = 0, gf = 0;
    if (i + 4 <= t.bytes) {
        memcpy(&w, want + i, 4);
        memcpy(&g, got + i, 4);
        memcpy(&wf, want + i, 4);
        memcpy(&gf, got + i, 4);
    }
    free(want);
    free(got);
    cr_assert(i + 4 > t.bytes, "%s: element %zu differs: got 0x%08x (%.9g / %d), want 0x%08x (%.9g / %d); seed %" PRIu64,
              what, i / 4, (unsigned)g, gf, g, (unsigned)w, wf, w, P->seed);
}

/* Two GPU buffers hold the same bits (determinism checks). */
static void expect_same_gpu_bits(pair *P, const char *what, const void *a, const void *b, size_t bytes)
{
    void *x = host_copy(P->gpu, a, bytes), *y = host_copy(P->gpu, b, bytes);
    int same = !memcmp(x, y, bytes);
    free(x);
    free(y);
    cr_assert(same, "%s: two runs on the same inputs gave different bits; seed %" PRIu64, what, P->seed);
}

/* Row lengths for B = 3 at step t = 4: rows 0 and 1 valid, row 2 padded (len == t). */
static const int32_t LEN3[3] = {7, 5, 4};
#define T_STEP 4

/* ---- memory ------------------------------------------------------------------------------ */

/* The cache hands a released block back for a request of the same size class; an impossible
 * request fails with OUT_OF_MEMORY and a message that names the size and suggests a fix. */
Test(cuda_parity, allocator)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    void *a = NULL, *b = NULL;
    cr_assert_eq(P.gpu->ops->alloc(P.gpu, 1000, &a), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq((uintptr_t)a % 256, 0, "alignment");
    P.gpu->ops->release(P.gpu, a);
    cr_assert_eq(P.gpu->ops->alloc(P.gpu, 1010, &b), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(a, b, "a released block of the same class was not reused");
    P.gpu->ops->release(P.gpu, b);
    P.gpu->ops->release(P.gpu, NULL);
    void *huge = NULL;
    s2s_status st = P.gpu->ops->alloc(P.gpu, (size_t)1 << 50, &huge);
    cr_assert_eq(st, S2S_ERR_OUT_OF_MEMORY, "1 PiB: status %d (%s)", (int)st, s2s_last_error());
    cr_assert_null(huge);
    cr_assert(strstr(s2s_last_error(), "1125899906842624") && strstr(s2s_last_error(), "smaller batch"),
              "message: %s", s2s_last_error());
    /* The backend still works after the failed request. */
    tb x = nan_f(&P, 5);
    RUN(&P, fill, D(x), 5, 2.5f);
    expect_exact(&P, "fill after OOM", x);
    pair_close(&P);
}

/* copy and to_device/to_host round trips: exact. */
Test(cuda_parity, copy)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    tb src = rand_f(&P, 1001, -1, 1), dst = nan_f(&P, 1001);
    RUN(&P, copy, D(dst), D(src), 1000 * sizeof(float));
    RUN(&P, copy, D(dst), D(src), 0);
    expect_exact(&P, "copy", dst);
    cr_assert_eq(P.gpu->ops->sync(P.gpu), S2S_OK, "sync: %s", s2s_last_error());
    pair_close(&P);
}

/* ---- dense ------------------------------------------------------------------------------- */

/* Exact: a store. Empty fills are no-ops. */
Test(cuda_parity, fill)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    size_t n = 3 * 1001 + 1;
    tb x = nan_f(&P, n);
    float v = unif(&P, -3, 3);
    RUN(&P, fill, D(x), n - 1, v); /* the last element stays NaN on both */
    RUN(&P, fill, D(x), 0, 1.0f);
    expect_exact(&P, "fill", x);
    pair_close(&P);
}

/* One GEMM case on both sides; C starts NaN when beta = 0 (which must ignore it). */
static void gemm_case(pair *P, int ta, int tb_, int m, int n, int k, float beta, double atol, double rtol)
{
    int arows = ta ? k : m, acols = ta ? m : k, brows = tb_ ? n : k, bcols = tb_ ? k : n;
    int lda = acols + 3, ldb = bcols + 5, ldc = n + 2; /* strides wider than rows */
    tb a = rand_f(P, (size_t)arows * lda, -1, 1), b = rand_f(P, (size_t)brows * ldb, -1, 1);
    tb c = beta == 0.0f ? nan_f(P, (size_t)m * ldc) : rand_f(P, (size_t)m * ldc, -1, 1);
    RUN(P, gemm, ta, tb_, m, n, k, 0.7f, D(a), lda, D(b), ldb, beta, D(c), ldc);
    char what[96];
    snprintf(what, sizeof what, "gemm ta=%d tb=%d m=%d n=%d k=%d beta=%g", ta, tb_, m, n, k, beta);
    expect_close(P, what, c, atol, rtol);
}

/* FP32: values in [-1, 1], k = 53: both sides accumulate in fp32 in different orders, error
 * about k * 2^-24 * sum|a b| < 1e-4; bound atol 1e-4, rtol 1e-4. Padding columns of C (ldc >
 * n) must stay untouched (NaN or their random value on both). Also k = 0 (C = beta C). */
Test(cuda_parity, gemm_fp32)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    for (int ta = 0; ta < 2; ta++)
        for (int tb_ = 0; tb_ < 2; tb_++) {
            gemm_case(&P, ta, tb_, 37, 29, 53, 0.0f, 1e-4, 1e-4);
            gemm_case(&P, ta, tb_, 37, 29, 53, 0.5f, 1e-4, 1e-4);
        }
    gemm_case(&P, 0, 0, 5, 7, 0, 0.0f, 0, 0);
    gemm_case(&P, 0, 1, 5, 7, 0, 0.5f, 0, 0);
    pair_close(&P);
}

/* Reduced-precision GEMM products against the fp32 CPU result; fp32 accumulation. TF32 rounds
 * A and B to 10-bit mantissas (relative 2^-11 .. 2^-10 per input): per element about
 * 2e-3 * sqrt(k) * |a||b| in the worst case seen, so atol 1.5e-2 (k = 53, |a|, |b| <= 1) and
 * 4e-2 (k = 256), rtol 2e-3. BF16 rounds them to 8-bit mantissas (2^-9 relative per input, 8x
 * TF32's): the same bounds scaled by 8. */
static void gemm_reduced(s2s_precision prec, double scale)
{
    NEED_GPU();
    pair P;
    pair_open(&P, prec);
    for (int ta = 0; ta < 2; ta++)
        for (int tb_ = 0; tb_ < 2; tb_++) {
            gemm_case(&P, ta, tb_, 37, 29, 53, 0.0f, 1.5e-2 * scale, 2e-3 * scale);
            gemm_case(&P, ta, tb_, 64, 128, 256, 1.0f, 4e-2 * scale, 2e-3 * scale);
        }
    pair_close(&P);
}

Test(cuda_parity, gemm_tf32) { gemm_reduced(S2S_PRECISION_TF32, 1.0); }
Test(cuda_parity, gemm_bf16) { gemm_reduced(S2S_PRECISION_BF16, 8.0); }

/* Exact: one float add per element on both sides. ldy > cols: the gap stays NaN. */
Test(cuda_parity, bias_rows)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    int rows = 21, cols = 37, ldy = 41;
    tb b1 = rand_f(&P, cols, -1, 1), b2 = rand_f(&P, cols, -1, 1);
    tb y = nan_f(&P, (size_t)rows * ldy), y1 = nan_f(&P, (size_t)rows * ldy);
    RUN(&P, bias_rows, D(y), rows, cols, ldy, D(b1), D(b2));
    RUN(&P, bias_rows, D(y1), rows, cols, ldy, D(b1), NULL);
    expect_exact(&P, "bias_rows b1+b2", y);
    expect_exact(&P, "bias_rows b1", y1);
    pair_close(&P);
}

/* 300 rows in [-1, 1], summed in a different order (16 lanes then lanes in order vs plain row
 * order): error well under 300 * 2^-24 * 20; bound atol 2e-4, rtol 1e-4. Two GPU runs from the
 * same db must agree bit for bit. */
Test(cuda_parity, colsum)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    const int rows = 300, colss[2] = {37, 1001};
    for (int i = 0; i < 2; i++) {
        int cols = colss[i], ldy = cols + 3;
        tb dy = rand_f(&P, (size_t)rows * ldy, -1, 1);
        tb db = rand_f(&P, cols, -1, 1);
        void *again = NULL;
        cr_assert_eq(P.gpu->ops->alloc(P.gpu, cols * sizeof(float), &again), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(P.gpu->ops->copy(P.gpu, again, db.g, cols * sizeof(float)), S2S_OK, "%s", s2s_last_error());
        RUN(&P, colsum, D(db), D(dy), rows, cols, ldy);
        cr_assert_eq(P.gpu->ops->colsum(P.gpu, again, dy.g, rows, cols, ldy), S2S_OK, "%s", s2s_last_error());
        expect_close(&P, cols == 37 ? "colsum cols=37" : "colsum cols=1001", db, 2e-4, 1e-4);
        expect_same_gpu_bits(&P, "colsum", db.g, again, cols * sizeof(float));
        P.gpu->ops->release(P.gpu, again);
    }
    pair_close(&P);
}

/* Products and one add per element; the GPU may fuse them (FMA): atol 1e-6, rtol 1e-6.
 * beta = 0 must ignore a NaN dst; src may alias dst. */
Test(cuda_parity, axpby2d)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    int rows = 21, cols = 37, ldd = 40, lds = 39;
    tb src = rand_f(&P, (size_t)rows * lds, -1, 1);
    tb d0 = nan_f(&P, (size_t)rows * ldd), d1 = rand_f(&P, (size_t)rows * ldd, -1, 1);
    tb d2 = rand_f(&P, (size_t)rows * ldd, -1, 1);
    RUN(&P, axpby2d, D(d0), ldd, D(src), lds, rows, cols, 1.3f, 0.0f);
    RUN(&P, axpby2d, D(d1), ldd, D(src), lds, rows, cols, -0.4f, 0.3f);
    RUN(&P, axpby2d, D(d2), ldd, D(d2), ldd, rows, cols, 0.5f, 2.0f);
    expect_close(&P, "axpby2d beta=0", d0, 1e-6, 1e-6);
    expect_close(&P, "axpby2d", d1, 1e-6, 1e-6);
    expect_close(&P, "axpby2d aliased", d2, 1e-6, 1e-6);
    pair_close(&P);
}

/* Exact: one float multiply per element. */
Test(cuda_parity, scale)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    size_t n = 3 * 1001 + 2;
    tb x = rand_f(&P, n, -2, 2);
    RUN(&P, scale, D(x), n, -1.7f);
    expect_exact(&P, "scale", x);
    pair_close(&P);
}

/* CUDA's tanhf is within 2 ulp of glibc's: atol 1e-6, rtol 1e-5 (tanh_bwd: FMA only). Also
 * in place (y = x, dx = dy). */
Test(cuda_parity, tanh)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    size_t n = 3 * 1001 + 2;
    tb x = rand_f(&P, n, -4, 4), y = nan_f(&P, n), x2 = rand_f(&P, n, -4, 4);
    RUN(&P, tanh_fwd, D(y), D(x), n);
    RUN(&P, tanh_fwd, D(x2), D(x2), n);
    expect_close(&P, "tanh_fwd", y, 1e-6, 1e-5);
    expect_close(&P, "tanh_fwd in place", x2, 1e-6, 1e-5);
    tb yy = rand_f(&P, n, -1, 1), dy = rand_f(&P, n, -1, 1), dx = nan_f(&P, n);
    RUN(&P, tanh_bwd, D(dx), D(yy), D(dy), n);
    RUN(&P, tanh_bwd, D(dy), D(yy), D(dy), n);
    expect_close(&P, "tanh_bwd", dx, 1e-6, 1e-5);
    expect_close(&P, "tanh_bwd in place", dy, 1e-6, 1e-5);
    pair_close(&P);
}

/* Double accumulation in a tree vs sequentially: relative error below n * 2^-53 ~ 1e-10 of
 * sum |x| (bound 1e-9 * sum|x|). Two GPU runs must give the same bits. Also n = 1 and 0. */
Test(cuda_parity, sum_sumsq)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    const size_t sizes[3] = {1000003, 1, 0};
    for (int i = 0; i < 3; i++) {
        size_t n = sizes[i];
        tb x = rand_f(&P, n, -1, 1);
        double c_sq, g_sq, g_sq2, c_s, g_s, g_s2, abs_sum = 0;
        float *h = host_copy(P.cpu, x.c, n * sizeof(float));
        for (size_t j = 0; j < n; j++)
            abs_sum += fabs(h[j]);
        free(h);
        RUN(&P, sumsq, side_ ? x.g : x.c, n, side_ ? &g_sq : &c_sq);
        RUN(&P, sum, side_ ? x.g : x.c, n, side_ ? &g_s : &c_s);
        cr_assert_eq(P.gpu->ops->sumsq(P.gpu, x.g, n, &g_sq2), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(P.gpu->ops->sum(P.gpu, x.g, n, &g_s2), S2S_OK, "%s", s2s_last_error());
        cr_assert(fabs(g_sq - c_sq) <= 1e-9 * c_sq, "sumsq n=%zu: got %.17g, want %.17g; seed %" PRIu64, n, g_sq,
                  c_sq, P.seed);
        cr_assert(fabs(g_s - c_s) <= 1e-9 * abs_sum, "sum n=%zu: got %.17g, want %.17g; seed %" PRIu64, n, g_s, c_s,
                  P.seed);
        cr_assert(!memcmp(&g_sq, &g_sq2, sizeof g_sq) && !memcmp(&g_s, &g_s2, sizeof g_s),
                  "sum/sumsq n=%zu not deterministic; seed %" PRIu64, n, P.seed);
    }
    pair_close(&P);
}

/* ---- embedding --------------------------------------------------------------------------- */

/* Exact: a gather. ldy > dim leaves the gap NaN. */
Test(cuda_parity, gather_rows)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    int vocab = 1001, dim = 37, n = 21, ldy = 40;
    int32_t ids[21];
    for (int i = 0; i < n; i++)
        ids[i] = i % 5 == 0 ? 0 : irand(&P, vocab);
    tb w = rand_f(&P, (size_t)vocab * dim, -1, 1), id = ints(&P, ids, n), y = nan_f(&P, (size_t)n * ldy);
    RUN(&P, gather_rows, D(y), ldy, D(w), D(id), n, dim);
    expect_exact(&P, "gather_rows", y);
    pair_close(&P);
}

/* The GPU adds each id's rows in increasing i like the CPU: exact. Small vocabularies force
 * long runs of repeats; pad and out-of-range ids (-1, vocab) are skipped; dim = 300 spans three
 * column slices. Two runs: same bits. */
Test(cuda_parity, embed_bwd)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    const int vocabs[3] = {13, 1001, 1001}, ns[3] = {500, 21, 1}, dims[3] = {300, 37, 37};
    for (int k = 0; k < 3; k++) {
        int vocab = vocabs[k], n = ns[k], dim = dims[k], ldy = dim + 3, pad = 0;
        int32_t *ids = malloc(sizeof *ids * (size_t)n);
        for (int i = 0; i < n; i++)
            ids[i] = irand(&P, vocab);
        if (n > 10) {
            ids[3] = pad;
            ids[5] = -1;
            ids[7] = vocab;
        }
        tb id = ints(&P, ids, n), dy = rand_f(&P, (size_t)n * ldy, -1, 1);
        tb dw = rand_f(&P, (size_t)vocab * dim, -1, 1);
        void *again = NULL;
        size_t bytes = (size_t)vocab * dim * sizeof(float);
        cr_assert_eq(P.gpu->ops->alloc(P.gpu, bytes, &again), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(P.gpu->ops->copy(P.gpu, again, dw.g, bytes), S2S_OK, "%s", s2s_last_error());
        RUN(&P, embed_bwd, D(dw), D(dy), ldy, D(id), n, dim, vocab, pad);
        cr_assert_eq(P.gpu->ops->embed_bwd(P.gpu, again, dy.g, ldy, id.g, n, dim, vocab, pad), S2S_OK, "%s",
                     s2s_last_error());
        expect_exact(&P, "embed_bwd", dw);
        expect_same_gpu_bits(&P, "embed_bwd", dw.g, again, bytes);
        P.gpu->ops->release(P.gpu, again);
        free(ids);
    }
    pair_close(&P);
}

/* ---- recurrent cells ----------------------------------------------------------------------
 * B = 3, H = 37, t = 4 with len {7, 5, 4} (row 2 padded) and with len = NULL. The pointwise
 * math is the same source (cell_math.h); CUDA's expf/tanhf differ from glibc's by a few ulp
 * and nvcc may fuse multiply-adds: atol 1e-5, rtol 1e-4 for every output. */

#define B3 3
#define H37 37

Test(cuda_parity, lstm_fwd)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    size_t bh = B3 * H37, b4h = 4 * bh;
    tb len = ints(&P, LEN3, B3);
    for (int with_len = 0; with_len < 2; with_len++) {
        tb pre = rand_f(&P, b4h, -3, 3), hp = rand_f(&P, bh, -1, 1), cp = rand_f(&P, bh, -2, 2);
        tb h = nan_f(&P, bh), c = nan_f(&P, bh), y = nan_f(&P, bh), act = nan_f(&P, b4h);
        RUN(&P, lstm_fwd, B3, H37, D(pre), D(hp), D(cp), with_len ? D(len) : NULL, T_STEP, D(h), D(c), D(y), D(act));
        expect_close(&P, "lstm_fwd h", h, 1e-5, 1e-4);
        expect_close(&P, "lstm_fwd c", c, 1e-5, 1e-4);
        expect_close(&P, "lstm_fwd y", y, 1e-5, 1e-4);
        expect_close(&P, "lstm_fwd act", act, 1e-5, 1e-4);
    }
    /* y and act NULL; h, c written in place over h_prev, c_prev. */
    tb pre = rand_f(&P, b4h, -3, 3), h = rand_f(&P, bh, -1, 1), c = rand_f(&P, bh, -2, 2);
    RUN(&P, lstm_fwd, B3, H37, D(pre), D(h), D(c), D(len), T_STEP, D(h), D(c), NULL, NULL);
    expect_close(&P, "lstm_fwd in place h", h, 1e-5, 1e-4);
    expect_close(&P, "lstm_fwd in place c", c, 1e-5, 1e-4);
    pair_close(&P);
}

Test(cuda_parity, lstm_bwd)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    size_t bh = B3 * H37, b4h = 4 * bh;
    tb len = ints(&P, LEN3, B3);
    for (int v = 0; v < 3; v++) { /* 0: len, dy; 1: no len, no dy; 2: len, in place */
        tb act = rand_f(&P, b4h, 0.01f, 0.99f), c = rand_f(&P, bh, -2, 2), cp = rand_f(&P, bh, -2, 2);
        tb dy = rand_f(&P, bh, -1, 1), dh = rand_f(&P, bh, -1, 1), dc = rand_f(&P, bh, -1, 1);
        tb dpre = nan_f(&P, b4h);
        tb dhp = v == 2 ? dh : nan_f(&P, bh), dcp = v == 2 ? dc : nan_f(&P, bh);
        RUN(&P, lstm_bwd, B3, H37, D(act), D(c), D(cp), v == 1 ? NULL : D(dy), D(dh), D(dc), v == 1 ? NULL : D(len),
            T_STEP, D(dpre), D(dhp), D(dcp));
        expect_close(&P, "lstm_bwd dpre", dpre, 1e-5, 1e-4);
        expect_close(&P, "lstm_bwd dh_prev", dhp, 1e-5, 1e-4);
        expect_close(&P, "lstm_bwd dc_prev", dcp, 1e-5, 1e-4);
    }
    pair_close(&P);
}

Test(cuda_parity, gru_fwd)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    size_t bh = B3 * H37, b3h = 3 * bh, b4h = 4 * bh;
    tb len = ints(&P, LEN3, B3);
    for (int with_len = 0; with_len < 2; with_len++) {
        tb xp = rand_f(&P, b3h, -2, 2), hp = rand_f(&P, b3h, -2, 2), bhh = rand_f(&P, 3 * H37, -1, 1);
        tb hprev = rand_f(&P, bh, -1, 1), h = nan_f(&P, bh), y = nan_f(&P, bh), act = nan_f(&P, b4h);
        RUN(&P, gru_fwd, B3, H37, D(xp), D(hp), D(bhh), D(hprev), with_len ? D(len) : NULL, T_STEP, D(h), D(y),
            D(act));
        expect_close(&P, "gru_fwd h", h, 1e-5, 1e-4);
        expect_close(&P, "gru_fwd y", y, 1e-5, 1e-4);
        expect_close(&P, "gru_fwd act", act, 1e-5, 1e-4);
    }
    tb xp = rand_f(&P, b3h, -2, 2), hp = rand_f(&P, b3h, -2, 2), bhh = rand_f(&P, 3 * H37, -1, 1);
    tb h = rand_f(&P, bh, -1, 1);
    RUN(&P, gru_fwd, B3, H37, D(xp), D(hp), D(bhh), D(h), D(len), T_STEP, D(h), NULL, NULL);
    expect_close(&P, "gru_fwd in place h", h, 1e-5, 1e-4);
    pair_close(&P);
}

Test(cuda_parity, gru_bwd)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    size_t bh = B3 * H37, b3h = 3 * bh, b4h = 4 * bh;
    tb len = ints(&P, LEN3, B3);
    for (int v = 0; v < 3; v++) { /* 0: len, dy; 1: no len, no dy; 2: len, in place */
        tb act = rand_f(&P, b4h, -0.99f, 0.99f), hprev = rand_f(&P, bh, -1, 1);
        tb dy = rand_f(&P, bh, -1, 1), dh = rand_f(&P, bh, -1, 1);
        tb dxp = nan_f(&P, b3h), dhp = nan_f(&P, b3h), dhprev = v == 2 ? dh : nan_f(&P, bh);
        RUN(&P, gru_bwd, B3, H37, D(act), D(hprev), v == 1 ? NULL : D(dy), D(dh), v == 1 ? NULL : D(len), T_STEP,
            D(dxp), D(dhp), D(dhprev));
        expect_close(&P, "gru_bwd dxp", dxp, 1e-5, 1e-4);
        expect_close(&P, "gru_bwd dhp", dhp, 1e-5, 1e-4);
        expect_close(&P, "gru_bwd dh_prev", dhprev, 1e-5, 1e-4);
    }
    pair_close(&P);
}

Test(cuda_parity, rnn)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    size_t bh = B3 * H37;
    tb len = ints(&P, LEN3, B3);
    for (int v = 0; v < 3; v++) { /* 0: len, y, dy; 1: no len, no y, no dy; 2: len, in place */
        tb pre = rand_f(&P, bh, -3, 3), hprev = rand_f(&P, bh, -1, 1);
        tb h = v == 2 ? hprev : nan_f(&P, bh), y = nan_f(&P, bh);
        RUN(&P, rnn_fwd, B3, H37, D(pre), D(hprev), v == 1 ? NULL : D(len), T_STEP, D(h), v == 1 ? NULL : D(y));
        expect_close(&P, "rnn_fwd h", h, 1e-5, 1e-4);
        expect_close(&P, "rnn_fwd y", y, 1e-5, 1e-4);
        tb dy = rand_f(&P, bh, -1, 1), dh = rand_f(&P, bh, -1, 1), dpre = nan_f(&P, bh);
        tb dhp = v == 2 ? dh : nan_f(&P, bh);
        RUN(&P, rnn_bwd, B3, H37, D(h), v == 1 ? NULL : D(dy), D(dh), v == 1 ? NULL : D(len), T_STEP, D(dpre),
            D(dhp));
        expect_close(&P, "rnn_bwd dpre", dpre, 1e-5, 1e-4);
        expect_close(&P, "rnn_bwd dh_prev", dhp, 1e-5, 1e-4);
    }
    pair_close(&P);
}

/* ---- attention ----------------------------------------------------------------------------
 * S = 7, B = 3, src_len {7, 3, 1}; H = 37 (scalar path) and H = 64 (float4 path). Dot products
 * of H terms summed in a different order, expf within a few ulp: atol 1e-5, rtol 1e-4. */

static const int32_t SRC_LEN3[3] = {7, 3, 1};
#define S7 7

Test(cuda_parity, attn_fwd)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    for (int H = H37; H <= 64; H += 64 - H37) {
        size_t sbh = (size_t)S7 * B3 * H;
        tb keys = rand_f(&P, sbh, -1, 1), vals = rand_f(&P, sbh, -1, 1), q = rand_f(&P, (size_t)B3 * H, -1, 1);
        tb sl = ints(&P, SRC_LEN3, B3), alpha = nan_f(&P, B3 * S7), ctx = nan_f(&P, (size_t)B3 * H);
        RUN(&P, attn_fwd, S7, B3, H, D(keys), D(vals), D(q), D(sl), D(alpha), D(ctx));
        expect_close(&P, H == H37 ? "attn_fwd alpha H=37" : "attn_fwd alpha H=64", alpha, 1e-5, 1e-4);
        expect_close(&P, H == H37 ? "attn_fwd ctx H=37" : "attn_fwd ctx H=64", ctx, 1e-5, 1e-4);
    }
    pair_close(&P);
}

Test(cuda_parity, attn_bwd)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    for (int v = 0; v < 4; v++) {
        const int H = v < 2 ? H37 : 64, shared_kv = v & 1;
        size_t sbh = (size_t)S7 * B3 * H;
        tb keys = rand_f(&P, sbh, -1, 1), vals = shared_kv ? keys : rand_f(&P, sbh, -1, 1);
        tb q = rand_f(&P, (size_t)B3 * H, -1, 1), sl = ints(&P, SRC_LEN3, B3);
        tb alpha = nan_f(&P, B3 * S7), ctx = nan_f(&P, (size_t)B3 * H);
        RUN(&P, attn_fwd, S7, B3, H, D(keys), D(vals), D(q), D(sl), D(alpha), D(ctx));
        /* Both sides continue from the CPU's alpha, so the backward is compared alone. */
        float *ha = host_copy(P.cpu, alpha.c, alpha.bytes);
        cr_assert_eq(P.gpu->ops->to_device(P.gpu, alpha.g, ha, alpha.bytes), S2S_OK, "%s", s2s_last_error());
        free(ha);
        tb dctx = rand_f(&P, (size_t)B3 * H, -1, 1), dq = rand_f(&P, (size_t)B3 * H, -1, 1);
        tb dscore = nan_f(&P, B3 * S7);
        RUN(&P, attn_bwd, S7, B3, H, D(keys), D(vals), D(alpha), D(dctx), D(sl), D(dq), D(dscore));
        char what[64];
        snprintf(what, sizeof what, "attn_bwd dq H=%d shared_kv=%d", H, shared_kv);
        expect_close(&P, what, dq, 1e-5, 1e-4);
        snprintf(what, sizeof what, "attn_bwd dscore H=%d shared_kv=%d", H, shared_kv);
        expect_close(&P, what, dscore, 1e-5, 1e-4);
    }
    pair_close(&P);
}

/* T = 5 steps; the same inputs on both sides (random weights and scores stand in for attn_fwd's
 * and attn_bwd's); sums of T products in the same order, FMA on the GPU: atol 1e-5, rtol 1e-4.
 * Positions beyond a row's length must keep their (random) starting values: compared too. */
Test(cuda_parity, attn_bwd_kv)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    for (int v = 0; v < 4; v++) {
        const int H = v < 2 ? H37 : 64, shared_kv = v & 1, T = 5;
        size_t sbh = (size_t)S7 * B3 * H, tbh = (size_t)T * B3 * H, tbs = (size_t)T * B3 * S7;
        tb q = rand_f(&P, tbh, -1, 1), dctx = rand_f(&P, tbh, -1, 1), sl = ints(&P, SRC_LEN3, B3);
        tb alpha = rand_f(&P, tbs, 0, 1), dscore = rand_f(&P, tbs, -1, 1);
        tb dk = rand_f(&P, sbh, -1, 1), dv = shared_kv ? dk : rand_f(&P, sbh, -1, 1);
        RUN(&P, attn_bwd_kv, S7, T, B3, H, D(q), D(alpha), D(dscore), D(dctx), D(sl), D(dk), D(dv));
        char what[64];
        snprintf(what, sizeof what, "attn_bwd_kv dkeys H=%d shared_kv=%d", H, shared_kv);
        expect_close(&P, what, dk, 1e-5, 1e-4);
        snprintf(what, sizeof what, "attn_bwd_kv dvals H=%d shared_kv=%d", H, shared_kv);
        expect_close(&P, what, dv, 1e-5, 1e-4);
    }
    pair_close(&P);
}

/* ---- output ------------------------------------------------------------------------------ */

/* Logits in [-5, 5]: lse agrees to a few ulp of ~7 (1e-6), so row_loss atol 1e-5, rtol 1e-5;
 * the gradient grad_scale (p - eps/V - ...) has p ~ 1/V with relative error ~1e-6: atol 1e-7,
 * rtol 1e-4. Pad targets (0) and targets outside [0, V) give loss 0 and a zero row; with
 * grad_scale = 0 the logits are left as they were (exact). V = 32003 uses the wide-row path. */
Test(cuda_parity, xent)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    const int Ns[2] = {21, 5}, Vs[2] = {1001, 32003};
    for (int sz = 0; sz < 2; sz++)
        for (int mode = 0; mode < 3; mode++) {
            int N = Ns[sz], V = Vs[sz], pad = 0;
            float eps = mode == 0 ? 0.0f : 0.1f, gs = mode == 2 ? 0.0f : 1.0f / 17.0f;
            int32_t tg[21];
            for (int i = 0; i < N; i++)
                tg[i] = i % 4 == 1 ? pad : 1 + irand(&P, V - 1);
            if (N > 10) {
                tg[6] = V - 1;
                tg[10] = -3; /* out of range: treated as pad, as on the CPU */
            }
            tb logits = rand_f(&P, (size_t)N * V, -5, 5), t = ints(&P, tg, N), loss = nan_f(&P, N);
            RUN(&P, xent, D(logits), D(t), N, V, pad, eps, gs, D(loss));
            char what[80];
            snprintf(what, sizeof what, "xent N=%d V=%d eps=%g scale=%g row_loss", N, V, eps, gs);
            expect_close(&P, what, loss, 1e-5, 1e-5);
            snprintf(what, sizeof what, "xent N=%d V=%d eps=%g scale=%g grad", N, V, eps, gs);
            if (gs == 0.0f)
                expect_exact(&P, what, logits);
            else
                expect_close(&P, what, logits, 1e-7, 1e-4);
        }
    pair_close(&P);
}

/* Outputs ~ -7 with lse agreeing to ~1e-6: atol 1e-5, rtol 1e-5. In place too. */
Test(cuda_parity, log_softmax)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    const int rows[2] = {21, 3}, cols[2] = {1001, 9001};
    for (int i = 0; i < 2; i++) {
        size_t n = (size_t)rows[i] * cols[i];
        tb x = rand_f(&P, n, -5, 5), y = nan_f(&P, n);
        RUN(&P, log_softmax, D(y), D(x), rows[i], cols[i]);
        RUN(&P, log_softmax, D(x), D(x), rows[i], cols[i]);
        expect_close(&P, "log_softmax", y, 1e-5, 1e-5);
        expect_close(&P, "log_softmax in place", x, 1e-5, 1e-5);
    }
    pair_close(&P);
}

/* Inputs for argmax and topk: values on a grid of 50 (many ties); row 1 all equal, row 2 all
 * -inf, NaN at row 3's first and row 4's 18th column, row 4's largest value last; with
 * short_row, row 5 holds 20 values and then NaN. */
static tb selection_rows(pair *P, int rows, int cols, int short_row)
{
    float *h = malloc(sizeof *h * (size_t)rows * cols);
    for (int i = 0; i < rows * cols; i++)
        h[i] = (float)irand(P, 50) / 7.0f;
    for (int c = 0; c < cols; c++) {
        h[1 * cols + c] = 0.25f;
        h[2 * cols + c] = -INFINITY;
        if (short_row)
            h[5 * cols + c] = c < 20 ? (float)c : NAN;
    }
    h[3 * cols + 0] = NAN;
    h[4 * cols + 17] = NAN;
    h[4 * cols + cols - 1] = 100.0f;
    tb x = both(P, h, sizeof *h * (size_t)rows * cols);
    free(h);
    return x;
}

/* Exact. Values drawn from 50 levels so ties are common (the first index must win); special
 * rows: all equal, all -inf, NaN at column 0 (gives 0), NaN elsewhere (never chosen). */
Test(cuda_parity, argmax)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    const int rows = 21, colss[2] = {1001, 9001};
    for (int k = 0; k < 2; k++) {
        int cols = colss[k];
        tb x = selection_rows(&P, rows, cols, 0);
        int32_t init[21];
        for (int i = 0; i < rows; i++)
            init[i] = -7;
        tb out = ints(&P, init, rows);
        RUN(&P, argmax, D(out), D(x), rows, cols);
        expect_exact(&P, "argmax", out);
    }
    pair_close(&P);
}

/* Exact: a total order (value, then column), so both sides pick the same entries. Rows with
 * many ties (values on a grid of 50), all equal, all -inf, NaN in places, and fewer non-NaN
 * values than k (the -inf / -1 tail); k = 13 (beam 5) and k = 131 (beam 64). */
Test(cuda_parity, topk)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    const int rows = 21, cols = 1001, ks[2] = {13, 131};
    tb x = selection_rows(&P, rows, cols, 1);
    for (int j = 0; j < 2; j++) {
        int k = ks[j];
        tb v = nan_f(&P, (size_t)rows * k);
        int32_t *init = malloc(sizeof *init * (size_t)rows * k);
        for (int i = 0; i < rows * k; i++)
            init[i] = -7;
        tb idx = ints(&P, init, (size_t)rows * k);
        free(init);
        RUN(&P, topk, D(v), D(idx), D(x), rows, cols, k);
        expect_exact(&P, "topk values", v);
        expect_exact(&P, "topk columns", idx);
    }
    pair_close(&P);
}

/* ---- dropout ------------------------------------------------------------------------------ */

/* Exact: the same Philox words and the same scale, so masks and outputs match bit for bit.
 * Odd n (a partial last group), in place, and a view starting one element in (not 16-byte
 * aligned: the scalar path). */
Test(cuda_parity, dropout)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    size_t n = 3 * 1001 + 2;
    uint64_t seed = splitmix(&P.state), stream = splitmix(&P.state);
    tb x = rand_f(&P, n, -1, 1), y = nan_f(&P, n), z = rand_f(&P, n, -1, 1), w = nan_f(&P, n);
    RUN(&P, dropout, D(y), D(x), n, 0.3f, seed, stream, NULL);
    RUN(&P, dropout, D(z), D(z), n, 0.5f, seed + 1, stream, NULL);
    RUN(&P, dropout, (float *)D(w) + 1, (float *)D(x) + 1, n - 1, 0.1f, seed, stream + 7, NULL);
    uint64_t step = 77;
    tb stepb = both(&P, &step, sizeof step), u = nan_f(&P, n), v = nan_f(&P, n);
    RUN(&P, dropout_at, D(u), D(x), n, 0.3f, seed, stream, (const uint64_t *)D(stepb), NULL);
    /* a shard: 3 rows of width 1001 (+2 left over) in groups of 3 of a batch of 8, from row 2 */
    const s2s_drop_rows rows = {1001, 3, 8, 2};
    RUN(&P, dropout_at, D(v), D(x), n, 0.3f, seed, stream, (const uint64_t *)D(stepb), &rows);
    RUN(&P, dropout, D(x), D(x), n, 0.0f, seed, stream, NULL);
    expect_exact(&P, "dropout_at shard rows", v);
    expect_exact(&P, "dropout_at", u);
    expect_exact(&P, "dropout", y);
    expect_exact(&P, "dropout in place", z);
    expect_exact(&P, "dropout unaligned", w);
    expect_exact(&P, "dropout p=0", x);
    pair_close(&P);
}

/* ---- optimizers --------------------------------------------------------------------------- */

/* Three Adam steps, bias corrections computed identically on the host; the per-element math
 * differs only by FMA contraction: atol 1e-6, rtol 1e-5 on p, m and v. */
Test(cuda_parity, adam)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    size_t n = 1001 * 37;
    float *zero = calloc(n, sizeof *zero);
    tb p = rand_f(&P, n, -1, 1), m = both(&P, zero, n * sizeof *zero), v = both(&P, zero, n * sizeof *zero);
    free(zero);
    for (int step = 1; step <= 3; step++) {
        tb g = rand_f(&P, n, -1, 1);
        RUN(&P, adam, D(p), D(g), D(m), D(v), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.5f, step);
    }
    expect_close(&P, "adam p", p, 1e-6, 1e-5);
    expect_close(&P, "adam m", m, 1e-6, 1e-5);
    expect_close(&P, "adam v", v, 1e-6, 1e-5);
    pair_close(&P);
}

/* Two SGD steps with a momentum buffer and two without: atol 1e-6, rtol 1e-5 (FMA only). */
Test(cuda_parity, sgd)
{
    NEED_GPU();
    pair P;
    pair_open(&P, S2S_PRECISION_FP32);
    size_t n = 1001 * 37;
    tb p = rand_f(&P, n, -1, 1), mom = rand_f(&P, n, -0.1f, 0.1f), p2 = rand_f(&P, n, -1, 1);
    for (int step = 0; step < 2; step++) {
        tb g = rand_f(&P, n, -1, 1);
        RUN(&P, sgd, D(p), D(g), D(mom), n, 0.1f, 0.9f, 1e-4f, 0.7f);
        RUN(&P, sgd, D(p2), D(g), NULL, n, 0.1f, 0.0f, 0.0f, 1.0f);
    }
    expect_close(&P, "sgd p (momentum)", p, 1e-6, 1e-5);
    expect_close(&P, "sgd momentum buffer", mom, 1e-6, 1e-5);
    expect_close(&P, "sgd p (plain)", p2, 1e-6, 1e-5);
    pair_close(&P);
}

#else /* !S2S_HAVE_CUDA */

Test(cuda_parity, skipped) { cr_skip_test("built without CUDA: no CUDA backend to compare with the CPU"); }

#endif
