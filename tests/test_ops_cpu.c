/* test_ops_cpu.c - the CPU reference ops: every backward against finite differences of its
 * forward, and the forward ops against direct double-precision formulas.
 *
 * Tolerances: finite differences use float32 forwards with step h = 1e-2 (smooth ops) summed
 * in double, so truncation error is O(h^2 f''') ~ 1e-4 and rounding ~1e-6/h ~ 1e-4; we allow
 * atol 2e-3 + rtol 1e-2. Direct forward checks: atol 1e-5, rtol 1e-5 (float32 vs double). */
#include "backend.h"
#include "nn.h"
#include "philox.h"
#include "test_util.h"
#include <string.h>

static s2s_backend *cpu(void)
{
    s2s_backend *be = NULL;
    cr_assert_eq(s2s_backend_cpu_create(NULL, 2, &be), S2S_OK);
    return be;
}

static double dot(const float *a, const float *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * r[i];
    return s;
}

#define FD_H 1e-2f
#define FD_ATOL 2e-3
#define FD_RTOL 1e-2

/* ---- LSTM cell ------------------------------------------------------------------------ */
typedef struct {
    s2s_backend *be;
    int B, H, t;
    int32_t *len;
    float *pre, *hp, *cp, *rh, *rc, *ry, *h, *c, *y, *act;
} lstm_case;

static double lstm_loss(void *p)
{
    lstm_case *k = p;
    size_t bh = (size_t)k->B * k->H;
    k->be->ops->lstm_fwd(k->be, k->B, k->H, k->pre, k->hp, k->cp, k->len, k->t, k->h, k->c, k->y, k->act);
    return dot(k->h, k->rh, bh) + dot(k->c, k->rc, bh) + dot(k->y, k->ry, bh);
}

Test(ops_cpu, lstm_cell_fd)
{
    uint64_t seed = tu_seed(), s = seed;
    lstm_case k = {.be = cpu(), .B = 3, .H = 5, .t = 2};
    int32_t len[3] = {4, 2, 3}; /* row 1 is padded at t = 2 */
    size_t bh = 15, bg = 60;
    k.len = len;
    float *buf = calloc(bg * 4 + bh * 12, sizeof(float)), *q = buf;
    k.pre = q, q += bg;
    k.act = q, q += bg;
    float *dpre = q; q += bg;
    k.hp = q, q += bh; k.cp = q, q += bh; k.rh = q, q += bh; k.rc = q, q += bh; k.ry = q, q += bh;
    k.h = q, q += bh; k.c = q, q += bh; k.y = q, q += bh;
    float *dh = q; q += bh;
    float *dc = q; q += bh;
    tu_fill(&s, k.pre, bg, -2, 2);
    tu_fill(&s, k.hp, bh, -1, 1);
    tu_fill(&s, k.cp, bh, -1, 1);
    tu_fill(&s, k.rh, bh, -1, 1);
    tu_fill(&s, k.rc, bh, -1, 1);
    tu_fill(&s, k.ry, bh, -1, 1);
    lstm_loss(&k);
    memcpy(dh, k.rh, bh * sizeof(float));
    memcpy(dc, k.rc, bh * sizeof(float));
    /* dh_prev and dc_prev alias dh and dc, as the layer code uses them */
    cr_assert_eq(k.be->ops->lstm_bwd(k.be, 3, 5, k.act, k.c, k.cp, k.ry, dh, dc, len, 2, dpre, dh, dc), S2S_OK);
    tu_fd_check("lstm dpre", k.pre, bg, dpre, lstm_loss, &k, FD_H, FD_ATOL, FD_RTOL, 60, seed);
    tu_fd_check("lstm dc_prev", k.cp, bh, dc, lstm_loss, &k, FD_H, FD_ATOL, FD_RTOL, 15, seed);
    tu_fd_check("lstm dh_prev (direct part)", k.hp, bh, dh, lstm_loss, &k, FD_H, FD_ATOL, FD_RTOL, 15, seed);
    /* the padded row keeps its state and outputs zero */
    lstm_loss(&k);
    for (int j = 0; j < 5; j++) {
        cr_assert_eq(k.h[5 + j], k.hp[5 + j]);
        cr_assert_eq(k.c[5 + j], k.cp[5 + j]);
        cr_assert_eq(k.y[5 + j], 0.0f);
    }
    free(buf);
    k.be->ops->free(k.be);
}

/* ---- GRU cell ------------------------------------------------------------------------- */
typedef struct {
    s2s_backend *be;
    int B, H, t;
    int32_t *len;
    float *xp, *hp, *bhh, *hprev, *rh, *ry, *h, *y, *act;
} gru_case;

static double gru_loss(void *p)
{
    gru_case *k = p;
    size_t bh = (size_t)k->B * k->H;
    k->be->ops->gru_fwd(k->be, k->B, k->H, k->xp, k->hp, k->bhh, k->hprev, k->len, k->t, k->h, k->y, k->act);
    return dot(k->h, k->rh, bh) + dot(k->y, k->ry, bh);
}

Test(ops_cpu, gru_cell_fd)
{
    uint64_t seed = tu_seed(), s = seed;
    int B = 3, H = 4;
    int32_t len[3] = {1, 5, 5}; /* row 0 padded at t = 1 */
    size_t bh = 12, b3 = 36;
    gru_case k = {.be = cpu(), .B = B, .H = H, .t = 1, .len = len};
    float *buf = calloc(b3 * 4 + 3 * H + bh * 6 + 4 * bh, sizeof(float)), *q = buf;
    k.xp = q, q += b3; k.hp = q, q += b3;
    float *dxp = q; q += b3;
    float *dhp = q; q += b3;
    k.bhh = q, q += 3 * H;
    k.hprev = q, q += bh; k.rh = q, q += bh; k.ry = q, q += bh; k.h = q, q += bh; k.y = q, q += bh;
    float *dh = q; q += bh;
    k.act = q;
    tu_fill(&s, k.xp, b3, -2, 2);
    tu_fill(&s, k.hp, b3, -2, 2);
    tu_fill(&s, k.bhh, 3 * H, -1, 1);
    tu_fill(&s, k.hprev, bh, -1, 1);
    tu_fill(&s, k.rh, bh, -1, 1);
    tu_fill(&s, k.ry, bh, -1, 1);
    gru_loss(&k);
    memcpy(dh, k.rh, bh * sizeof(float));
    cr_assert_eq(k.be->ops->gru_bwd(k.be, B, H, k.act, k.hprev, k.ry, dh, len, 1, dxp, dhp, dh), S2S_OK);
    tu_fd_check("gru dxp", k.xp, b3, dxp, gru_loss, &k, FD_H, FD_ATOL, FD_RTOL, 36, seed);
    tu_fd_check("gru dhp", k.hp, b3, dhp, gru_loss, &k, FD_H, FD_ATOL, FD_RTOL, 36, seed);
    tu_fd_check("gru dh_prev (direct part)", k.hprev, bh, dh, gru_loss, &k, FD_H, FD_ATOL, FD_RTOL, 12, seed);
    /* b_hh enters like hp: its gradient is the column sum of dhp */
    float dbhh[12] = {0};
    for (int b = 0; b < B; b++)
        for (int j = 0; j < 3 * H; j++)
            dbhh[j] += dhp[b * 3 * H + j];
    tu_fd_check("gru db_hh", k.bhh, 12, dbhh, gru_loss, &k, FD_H, FD_ATOL, FD_RTOL, 12, seed);
    free(buf);
    k.be->ops->free(k.be);
}

/* ---- tanh RNN cell ------------------------------------------------------------------- */
typedef struct {
    s2s_backend *be;
    int32_t *len;
    float *pre, *hprev, *rh, *ry, *h, *y;
} rnn_case;

static double rnn_loss(void *p)
{
    rnn_case *k = p;
    k->be->ops->rnn_fwd(k->be, 2, 6, k->pre, k->hprev, k->len, 3, k->h, k->y);
    return dot(k->h, k->rh, 12) + dot(k->y, k->ry, 12);
}

Test(ops_cpu, rnn_cell_fd)
{
    uint64_t seed = tu_seed(), s = seed;
    int32_t len[2] = {4, 3};
    float pre[12], hprev[12], rh[12], ry[12], h[12], y[12], dpre[12], dh[12];
    rnn_case k = {cpu(), len, pre, hprev, rh, ry, h, y};
    tu_fill(&s, pre, 12, -2, 2);
    tu_fill(&s, hprev, 12, -1, 1);
    tu_fill(&s, rh, 12, -1, 1);
    tu_fill(&s, ry, 12, -1, 1);
    rnn_loss(&k);
    memcpy(dh, rh, sizeof dh);
    cr_assert_eq(k.be->ops->rnn_bwd(k.be, 2, 6, h, ry, dh, len, 3, dpre, dh), S2S_OK);
    tu_fd_check("rnn dpre", pre, 12, dpre, rnn_loss, &k, FD_H, FD_ATOL, FD_RTOL, 12, seed);
    tu_fd_check("rnn dh_prev", hprev, 12, dh, rnn_loss, &k, FD_H, FD_ATOL, FD_RTOL, 12, seed);
    k.be->ops->free(k.be);
}

/* ---- attention ------------------------------------------------------------------------- */
typedef struct {
    s2s_backend *be;
    int S, B, H, T;
    int32_t *len;
    float *keys, *vals, *q, *alpha, *ctx, *r; /* q, ctx, r [T,B,H]; alpha [T,B,S] */
} attn_case;

/* T decoder steps over the same keys and values: loss = sum_t r[t] . ctx[t] */
static double attn_loss(void *p)
{
    attn_case *k = p;
    size_t bh = (size_t)k->B * k->H;
    double sum = 0;
    for (int t = 0; t < k->T; t++) {
        k->be->ops->attn_fwd(k->be, k->S, k->B, k->H, k->keys, k->vals, k->q + t * bh, k->len,
                             k->alpha + (size_t)t * k->B * k->S, k->ctx + t * bh);
        sum += dot(k->ctx + t * bh, k->r + t * bh, bh);
    }
    return sum;
}

/* S = 5, B = 3, H = 4; wide: H = 21 (dot8's 8-lane loop and its tail; attn_bwd_kv's blocks of
 * 32 columns: its tail only), S = 6, B = 2; long: H = 70 (two whole blocks and a tail). T = 3
 * steps: attn_bwd per step (dq), attn_bwd_kv once for all three (dkeys, dvals). */
static void attn_fd(int shared, int width)
{
    uint64_t seed = tu_seed(), s = seed;
    int S = width ? 6 : 5, B = width ? 2 : 3, H = width == 2 ? 70 : width ? 21 : 4, T = 3;
    int32_t len[3] = {S, width ? 4 : 2, 1};
    size_t sbh = (size_t)S * B * H, bh = (size_t)B * H, tbh = (size_t)T * bh, tbs = (size_t)T * B * S;
    float *buf = calloc(sbh * 4 + tbh * 4 + tbs * 2, sizeof(float)), *p = buf;
    attn_case k = {.be = cpu(), .S = S, .B = B, .H = H, .T = T, .len = len};
    k.keys = p, p += sbh;
    k.vals = shared ? k.keys : p;
    p += sbh;
    float *dk = p; p += sbh;
    float *dv = shared ? dk : p;
    p += sbh;
    k.q = p, p += tbh; k.ctx = p, p += tbh; k.r = p, p += tbh;
    float *dq = p; p += tbh;
    k.alpha = p, p += tbs;
    float *dscore = p;
    tu_fill(&s, k.keys, sbh, -1, 1);
    if (!shared)
        tu_fill(&s, k.vals, sbh, -1, 1);
    tu_fill(&s, k.q, tbh, -1.5, 1.5);
    tu_fill(&s, k.r, tbh, -1, 1);
    attn_loss(&k);
    /* masked positions get exactly zero weight; each row sums to one */
    for (int b = 0; b < T * B; b++) {
        double z = 0;
        for (int t = 0; t < S; t++) {
            if (t >= len[b % B])
                cr_assert_eq(k.alpha[b * S + t], 0.0f);
            z += k.alpha[b * S + t];
        }
        cr_assert_float_eq(z, 1.0, 1e-6);
    }
    for (size_t e = 0; e < tbs; e++)
        dscore[e] = NAN; /* attn_bwd writes every element, zeros at the masked positions */
    for (int t = 0; t < T; t++)
        cr_assert_eq(k.be->ops->attn_bwd(k.be, S, B, H, k.keys, k.vals, k.alpha + (size_t)t * B * S, k.r + t * bh, len,
                                         dq + t * bh, dscore + (size_t)t * B * S),
                     S2S_OK);
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++)
            for (int u = len[b]; u < S; u++)
                cr_assert_eq(dscore[((size_t)t * B + b) * S + u], 0.0f, "masked position %d of row %d", u, b);
    cr_assert_eq(k.be->ops->attn_bwd_kv(k.be, S, T, B, H, k.q, k.alpha, dscore, k.r, len, dk, dv), S2S_OK);
    tu_fd_check("attn dq", k.q, tbh, dq, attn_loss, &k, FD_H, FD_ATOL, FD_RTOL, 16, seed);
    tu_fd_check(shared ? "attn dkeys=dvals" : "attn dkeys", k.keys, sbh, dk, attn_loss, &k, FD_H, FD_ATOL, FD_RTOL, 60,
                seed);
    if (!shared)
        tu_fd_check("attn dvals", k.vals, sbh, dv, attn_loss, &k, FD_H, FD_ATOL, FD_RTOL, 60, seed);
    /* beyond a row's source length the gradients stay as they were (zero here) */
    for (int u = 0; u < S; u++)
        for (int b = 0; b < B; b++)
            for (int j = 0; u >= len[b] && j < H; j++)
                cr_assert_eq(dk[((size_t)u * B + b) * H + j], 0.0f);
    free(buf);
    k.be->ops->free(k.be);
}

Test(ops_cpu, attention_fd) { attn_fd(0, 0); }
Test(ops_cpu, attention_shared_keys_fd) { attn_fd(1, 0); }
Test(ops_cpu, attention_wide_fd) { attn_fd(0, 1); attn_fd(1, 1); attn_fd(0, 2); attn_fd(1, 2); }

/* attn_bwd_kv against the sums written out in double, with gradients that start non-zero
 * (it adds): q, dctx and the weights random, T = 5, H = 45 (a block and a tail). */
Test(ops_cpu, attention_kv_sums_against_double)
{
    uint64_t s = tu_seed();
    s2s_backend *be = cpu();
    enum { S = 4, T = 5, B = 3, H = 45 };
    int32_t len[B] = {4, 2, 3};
    static float q[T * B * H], g[T * B * H], al[T * B * S], ds[T * B * S], dk[S * B * H], dv[S * B * H],
        dk0[S * B * H], dv0[S * B * H];
    tu_fill(&s, q, T * B * H, -1, 1);
    tu_fill(&s, g, T * B * H, -1, 1);
    tu_fill(&s, al, T * B * S, 0, 1);
    tu_fill(&s, ds, T * B * S, -1, 1);
    tu_fill(&s, dk0, S * B * H, -1, 1);
    tu_fill(&s, dv0, S * B * H, -1, 1);
    for (int shared = 0; shared < 2; shared++) {
        memcpy(dk, dk0, sizeof dk);
        memcpy(dv, dv0, sizeof dv);
        float *dvp = shared ? dk : dv;
        cr_assert_eq(be->ops->attn_bwd_kv(be, S, T, B, H, q, al, ds, g, len, dk, dvp), S2S_OK);
        for (int u = 0; u < S; u++)
            for (int b = 0; b < B; b++)
                for (int j = 0; j < H; j++) {
                    size_t e = ((size_t)u * B + b) * H + j;
                    double sk = 0, sv = 0;
                    for (int t = 0; t < T && u < len[b]; t++) {
                        sk += (double)ds[((size_t)t * B + b) * S + u] * q[((size_t)t * B + b) * H + j];
                        sv += (double)al[((size_t)t * B + b) * S + u] * g[((size_t)t * B + b) * H + j];
                    }
                    double wk = dk0[e] + sk + (shared ? sv : 0), wv = dv0[e] + sv;
                    cr_assert(fabs(dk[e] - wk) <= 1e-5 + 1e-5 * fabs(wk), "dkeys[%d,%d,%d] = %g, want %g (shared %d)",
                              u, b, j, dk[e], wk, shared);
                    if (!shared)
                        cr_assert(fabs(dv[e] - wv) <= 1e-5 + 1e-5 * fabs(wv), "dvals[%d,%d,%d] = %g, want %g", u, b,
                                  j, dv[e], wv);
                }
    }
    be->ops->free(be);
}

/* ---- fused log-softmax + cross-entropy ------------------------------------------------- */
typedef struct {
    s2s_backend *be;
    int N, V;
    float eps;
    int32_t *tgt;
    float *x, *work, *rows;
} xent_case;

static double xent_loss(void *p)
{
    xent_case *k = p;
    memcpy(k->work, k->x, sizeof(float) * (size_t)k->N * k->V);
    k->be->ops->xent(k->be, k->work, k->tgt, k->N, k->V, 0, k->eps, 0.0f, k->rows);
    double s = 0;
    for (int r = 0; r < k->N; r++)
        s += k->rows[r];
    return s;
}

Test(ops_cpu, xent_fd_and_reference)
{
    uint64_t seed = tu_seed(), s = seed;
    int N = 4, V = 7;
    int32_t tgt[4] = {3, 0, 6, 1}; /* row 1 is padding */
    float x[28], work[28], rows[4], grad[28];
    xent_case k = {cpu(), N, V, 0.1f, tgt, x, work, rows};
    tu_fill(&s, x, 28, -3, 3);
    /* reference: (1-eps)(-logp[y]) + eps * mean_c(-logp[c]) in double */
    xent_loss(&k);
    for (int r = 0; r < N; r++) {
        double mx = -1e300, z = 0, sum = 0;
        for (int c = 0; c < V; c++)
            mx = fmax(mx, x[r * V + c]);
        for (int c = 0; c < V; c++)
            z += exp(x[r * V + c] - mx);
        double lse = mx + log(z);
        for (int c = 0; c < V; c++)
            sum += lse - x[r * V + c];
        double want = tgt[r] == 0 ? 0.0 : 0.9 * (lse - x[r * V + tgt[r]]) + 0.1 * sum / V;
        cr_assert(fabs(rows[r] - want) <= 1e-5 + 1e-5 * fabs(want), "row %d: got %g want %g", r, rows[r], want);
    }
    memcpy(grad, x, sizeof x);
    cr_assert_eq(k.be->ops->xent(k.be, grad, tgt, N, V, 0, 0.1f, 1.0f, rows), S2S_OK);
    for (int c = 0; c < V; c++)
        cr_assert_eq(grad[V + c], 0.0f, "padding row must get zero gradient");
    tu_fd_check("xent dlogits", x, 28, grad, xent_loss, &k, FD_H, FD_ATOL, FD_RTOL, 28, seed);
    k.be->ops->free(k.be);
}

/* Rows wider than a vector (V = 37: the AVX2 loops and their tails): the loss and every
 * gradient element against the formulas in double, g (softmax - (1 - eps) onehot - eps / V). */
Test(ops_cpu, xent_wide_rows_against_double)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_backend *be = cpu();
    enum { N = 5, V = 37 };
    int32_t tgt[N] = {36, 0, 5, 17, 8}; /* row 1 is padding */
    float x[N * V], g[N * V], rows[N], eps = 0.1f, scale = 0.5f;
    tu_fill(&s, x, N * V, -6, 6);
    memcpy(g, x, sizeof x);
    cr_assert_eq(be->ops->xent(be, g, tgt, N, V, 0, eps, scale, rows), S2S_OK);
    for (int r = 0; r < N; r++) {
        const float *xr = x + r * V;
        double mx = -1e300, z = 0, sum = 0;
        for (int c = 0; c < V; c++)
            mx = fmax(mx, xr[c]);
        for (int c = 0; c < V; c++)
            z += exp(xr[c] - mx);
        double lse = mx + log(z);
        for (int c = 0; c < V; c++)
            sum += lse - xr[c];
        double want = tgt[r] == 0 ? 0.0 : (1 - eps) * (lse - xr[tgt[r]]) + eps * sum / V;
        cr_assert(fabs(rows[r] - want) <= 1e-5 + 1e-5 * fabs(want), "row %d: loss %.7g, want %.7g", r, rows[r], want);
        for (int c = 0; c < V; c++) {
            double gw = tgt[r] == 0 ? 0.0 : scale * (exp(xr[c] - lse) - eps / V - (c == tgt[r] ? 1 - eps : 0.0));
            cr_assert(fabs(g[r * V + c] - gw) <= 1e-6 + 1e-5 * fabs(gw), "row %d col %d: grad %.7g, want %.7g", r, c,
                      g[r * V + c], gw);
        }
    }
    be->ops->free(be);
}

/* ---- embedding -------------------------------------------------------------------------- */
Test(ops_cpu, embedding_gather_and_scatter)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_backend *be = cpu();
    int V = 6, D = 3, n = 7;
    int32_t ids[7] = {2, 0, 5, 2, 1, 0, 2};
    float w[18], y[7 * 4], dy[7 * 4], dw[18] = {0};
    tu_fill(&s, w, 18, -1, 1);
    tu_fill(&s, dy, 28, -1, 1);
    cr_assert_eq(be->ops->gather_rows(be, y, 4, w, ids, n, D), S2S_OK); /* row stride 4 > D */
    for (int i = 0; i < n; i++)
        for (int c = 0; c < D; c++)
            cr_assert_eq(y[i * 4 + c], w[ids[i] * D + c]);
    cr_assert_eq(be->ops->embed_bwd(be, dw, dy, 4, ids, n, D, V, 0), S2S_OK);
    for (int v = 0; v < V; v++)
        for (int c = 0; c < D; c++) {
            float want = 0;
            for (int i = 0; i < n; i++)
                if (ids[i] == v && v != 0)
                    want += dy[i * 4 + c];
            cr_assert_eq(dw[v * D + c], want, "dw[%d,%d]: got %g want %g (seed %llu)", v, c, dw[v * D + c], want,
                         (unsigned long long)seed);
        }
    be->ops->free(be);
}

/* ---- dense ops against naive double loops ----------------------------------------------- */
Test(ops_cpu, gemm_all_transpositions)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_backend *be = cpu();
    int m = 5, n = 7, k = 3, pad = 2;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
            float a[64], b[64], c[64];
            double want[35];
            tu_fill(&s, a, 64, -1, 1);
            tu_fill(&s, b, 64, -1, 1);
            for (int i = 0; i < 64; i++)
                c[i] = NAN; /* beta = 0 must ignore old contents */
            cr_assert_eq(be->ops->gemm(be, ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.0f, c, ldc), S2S_OK);
            float got[35];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double acc = 0;
                    for (int p = 0; p < k; p++)
                        acc += (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
                    want[i * n + j] = 0.5 * acc;
                    got[i * n + j] = c[i * ldc + j];
                }
            tu_assert_close("gemm", got, want, 35, 1e-5, 1e-5, seed);
        }
    be->ops->free(be);
}

Test(ops_cpu, rows_and_columns)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_backend *be = cpu();
    float b1[4], b2[4], y[3 * 5], db[4] = {1, 1, 1, 1}, src[3 * 6], dst[3 * 5];
    tu_fill(&s, b1, 4, -1, 1);
    tu_fill(&s, b2, 4, -1, 1);
    tu_fill(&s, src, 18, -1, 1);
    tu_fill(&s, dst, 15, -1, 1);
    cr_assert_eq(be->ops->bias_rows(be, y, 3, 4, 5, b1, b2), S2S_OK);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            cr_assert_float_eq(y[r * 5 + c], b1[c] + b2[c], 1e-7);
    cr_assert_eq(be->ops->colsum(be, db, src, 3, 4, 6), S2S_OK);
    for (int c = 0; c < 4; c++)
        cr_assert_float_eq(db[c], 1.0f + src[c] + src[6 + c] + src[12 + c], 1e-6);
    float old = dst[5 + 1];
    cr_assert_eq(be->ops->axpby2d(be, dst, 5, src, 6, 3, 4, 2.0f, 0.5f), S2S_OK);
    cr_assert_float_eq(dst[5 + 1], 2.0f * src[6 + 1] + 0.5f * old, 1e-6);
    be->ops->free(be);
}

Test(ops_cpu, log_softmax_argmax_sums)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_backend *be = cpu();
    float x[2 * 9], y[2 * 9];
    tu_fill(&s, x, 18, -4, 4);
    x[9 + 4] = 10.0f;
    cr_assert_eq(be->ops->log_softmax(be, y, x, 2, 9), S2S_OK);
    for (int r = 0; r < 2; r++) {
        double z = 0;
        for (int c = 0; c < 9; c++)
            z += exp(y[r * 9 + c]);
        cr_assert_float_eq(z, 1.0, 1e-5);
    }
    int32_t am[2];
    cr_assert_eq(be->ops->argmax(be, am, x, 2, 9), S2S_OK);
    cr_assert_eq(am[1], 4);
    double ss, sum;
    cr_assert_eq(be->ops->sumsq(be, x, 18, &ss), S2S_OK);
    cr_assert_eq(be->ops->sum(be, x, 18, &sum), S2S_OK);
    double ws = 0, wsum = 0;
    for (int i = 0; i < 18; i++) {
        ws += (double)x[i] * x[i];
        wsum += x[i];
    }
    cr_assert_float_eq(ss, ws, 1e-9 * ws);
    cr_assert_float_eq(sum, wsum, 1e-9);
    be->ops->free(be);
}

/* ---- dropout and Philox --------------------------------------------------------------------- */
Test(ops_cpu, philox_known_answers)
{
    /* Known-answer vectors of Philox 4x32-10 (Random123's kat_vectors). */
    s2s_philox4 a = s2s_philox4x32_10(0, 0, 0, 0, 0, 0);
    cr_assert(a.v[0] == 0x6627e8d5u && a.v[1] == 0xe169c58du && a.v[2] == 0xbc57ac4cu && a.v[3] == 0x9b00dbd8u,
              "philox(0; 0) = %08x %08x %08x %08x", a.v[0], a.v[1], a.v[2], a.v[3]);
    s2s_philox4 b = s2s_philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
    cr_assert(b.v[0] == 0x408f276du && b.v[1] == 0x41c83b0eu && b.v[2] == 0xa20bc7c6u && b.v[3] == 0x6d5451fdu,
              "philox(~0; ~0) = %08x %08x %08x %08x", b.v[0], b.v[1], b.v[2], b.v[3]);
}

Test(ops_cpu, dropout_mask_rate_scale_and_backward)
{
    s2s_backend *be = cpu();
    size_t n = 100000;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)), *d = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0f + (float)(i % 7);
    float p = 0.3f;
    cr_assert_eq(be->ops->dropout(be, y, x, n, p, 42, 7, NULL), S2S_OK);
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] == 0.0f)
            zeros++;
        else
            cr_assert_float_eq(y[i], x[i] / (1.0f - p), 1e-5);
    }
    for (size_t i = 0; i < n; i++) /* the contract: element e's mask is s2s_dropout_scale's, bit for bit */
        cr_assert_eq(y[i], x[i] * s2s_dropout_scale(42, 7, i, p), "element %zu", i);
    /* binomial: sd = sqrt(n p (1-p)) ~ 145; allow 5 sd */
    cr_assert(fabs((double)zeros - p * n) < 5 * 145, "dropped %zu of %zu at p = %g", zeros, n, p);
    /* backward is the same mask: applying it to ones gives the mask itself */
    for (size_t i = 0; i < n; i++)
        d[i] = 1.0f;
    cr_assert_eq(be->ops->dropout(be, d, d, n, p, 42, 7, NULL), S2S_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(d[i] == 0.0f, y[i] == 0.0f);
    /* another stream gives another mask */
    cr_assert_eq(be->ops->dropout(be, d, x, n, p, 42, 8, NULL), S2S_OK);
    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += (d[i] == 0.0f) == (y[i] == 0.0f);
    cr_assert(same < n * 0.7, "masks of two streams agree on %zu of %zu", same, n);
    /* dropout_at reads the step at run time: the mask of stream ^ (step << 24) */
    uint64_t step = 5;
    cr_assert_eq(be->ops->dropout(be, y, x, n, p, 42, s2s_dropout_stream(5, 9, 3), NULL), S2S_OK);
    cr_assert_eq(be->ops->dropout_at(be, d, x, n, p, 42, s2s_dropout_stream(0, 9, 3), &step, NULL), S2S_OK);
    cr_assert_eq(memcmp(d, y, n * sizeof(float)), 0, "dropout_at differs from dropout at step 5");
    free(x), free(y), free(d);
    be->ops->free(be);
}

/* A shard of a batch draws the whole batch's masks for its rows: [T=5][B=7][W=9] dropped whole,
 * then rows 3..5 alone as a [5][3][9] tensor with rows {9, 3, 7, 3}, must give the same values;
 * rows_global == rows is the plain order. */
Test(ops_cpu, dropout_shard_rows_draw_the_whole_batch_masks)
{
    s2s_backend *be = cpu();
    enum { T = 5, B = 7, W = 9, R0 = 3, R = 3 };
    float x[T * B * W], whole[T * B * W], xs[T * R * W], part[T * R * W], plain[T * R * W];
    for (int i = 0; i < T * B * W; i++)
        x[i] = 1.0f + (float)(i % 13);
    for (int t = 0; t < T; t++)
        memcpy(xs + (size_t)t * R * W, x + ((size_t)t * B + R0) * W, sizeof(float) * R * W);
    cr_assert_eq(be->ops->dropout(be, whole, x, T * B * W, 0.4f, 11, 5, NULL), S2S_OK);
    const s2s_drop_rows rows = {W, R, B, R0}, same = {W, R, R, 0};
    cr_assert_eq(be->ops->dropout(be, part, xs, T * R * W, 0.4f, 11, 5, &rows), S2S_OK);
    for (int t = 0; t < T; t++)
        cr_assert_eq(memcmp(part + (size_t)t * R * W, whole + ((size_t)t * B + R0) * W, sizeof(float) * R * W), 0,
                     "step %d of the shard differs from the whole batch's rows", t);
    cr_assert_eq(be->ops->dropout(be, part, xs, T * R * W, 0.4f, 11, 5, &same), S2S_OK);
    cr_assert_eq(be->ops->dropout(be, plain, xs, T * R * W, 0.4f, 11, 5, NULL), S2S_OK);
    cr_assert_eq(memcmp(part, plain, sizeof part), 0, "rows_global == rows is not the plain order");
    be->ops->free(be);
}

/* ---- optimizers against PyTorch's formulas in double ----------------------------------------- */
Test(ops_cpu, adam_and_sgd_match_formulas)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_backend *be = cpu();
    enum { N = 9 };
    float p[N], g[N], m[N] = {0}, v[N] = {0}, q[N], mom[N] = {0};
    double P[N], M[N] = {0}, Vv[N] = {0}, Q[N], MOM[N] = {0};
    tu_fill(&s, p, N, -1, 1);
    memcpy(q, p, sizeof p);
    for (int i = 0; i < N; i++)
        P[i] = Q[i] = p[i];
    for (int step = 1; step <= 5; step++) {
        tu_fill(&s, g, N, -1, 1);
        float lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f, gs = 0.5f;
        cr_assert_eq(be->ops->adam(be, p, g, m, v, N, lr, b1, b2, eps, wd, gs, step), S2S_OK);
        cr_assert_eq(be->ops->sgd(be, q, g, mom, N, lr, 0.9f, wd, gs), S2S_OK);
        for (int i = 0; i < N; i++) {
            double gi = gs * g[i] + wd * P[i];
            M[i] = b1 * M[i] + (1 - b1) * gi;
            Vv[i] = b2 * Vv[i] + (1 - b2) * gi * gi;
            double mh = M[i] / (1 - pow(b1, step)), vh = Vv[i] / (1 - pow(b2, step));
            P[i] -= lr * mh / (sqrt(vh) + eps);
            double gq = gs * g[i] + wd * Q[i];
            MOM[i] = 0.9 * MOM[i] + gq;
            Q[i] -= lr * MOM[i];
        }
    }
    tu_assert_close("adam", p, P, N, 1e-6, 1e-5, seed);
    tu_assert_close("sgd momentum", q, Q, N, 1e-6, 1e-5, seed);
    be->ops->free(be);
}

/* topk against a full sort by (value descending, column ascending) with NaN removed: ties,
 * -inf, NaN and rows with fewer values than k. */
static int cmp_vi(const void *a, const void *b)
{
    const float *x = a, *y = b; /* [value, column] pairs */
    if (x[0] != y[0])
        return x[0] > y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

Test(ops_cpu, topk_matches_sort)
{
    s2s_backend *be = cpu();
    uint64_t seed = tu_seed(), s = seed;
    enum { R = 6, C = 300 };
    static float x[R * C], pairs[C][2], vals[R * 40];
    static int32_t idx[R * 40];
    for (int i = 0; i < R * C; i++)
        x[i] = (float)(tu_next(&s) % 20) - 10.0f;
    for (int c = 0; c < C; c++) {
        x[1 * C + c] = -INFINITY;
        x[2 * C + c] = c % 11 == 0 ? NAN : x[2 * C + c];
        x[3 * C + c] = c < 7 ? (float)c : NAN;
    }
    int ks[3] = {1, 13, 40};
    for (int j = 0; j < 3; j++) {
        int k = ks[j];
        cr_assert_eq(be->ops->topk(be, vals, idx, x, R, C, k), S2S_OK, "%s", s2s_last_error());
        for (int r = 0; r < R; r++) {
            int n = 0;
            for (int c = 0; c < C; c++)
                if (!isnan(x[r * C + c]))
                    pairs[n][0] = x[r * C + c], pairs[n][1] = (float)c, n++;
            qsort(pairs, (size_t)n, sizeof pairs[0], cmp_vi);
            for (int i = 0; i < k; i++) {
                float wv = i < n ? pairs[i][0] : -INFINITY;
                int wi = i < n ? (int)pairs[i][1] : -1;
                cr_assert(vals[r * k + i] == wv && idx[r * k + i] == wi,
                          "k %d row %d slot %d: (%g, %d) vs (%g, %d) (seed %llu)", k, r, i, vals[r * k + i],
                          idx[r * k + i], wv, wi, (unsigned long long)seed);
            }
        }
    }
    cr_assert_neq(be->ops->topk(be, vals, idx, x, R, C, 0), S2S_OK);
    be->ops->free(be);
}
