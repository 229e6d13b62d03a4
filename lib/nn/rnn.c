/* rnn.c - one direction of one recurrent layer (LSTM, GRU, tanh RNN), forward and backward,
 * over a whole sequence or one step at a time.
 *
 * Schedule (Appleyard et al. 2016): the input projection of all steps is one GEMM; each step
 * is one GEMM for the recurrent term plus one fused pointwise op; in backward each step is the
 * pointwise op plus one GEMM for dh, and the weight gradients are one large GEMM each after
 * the time loop. Buffers are indexed by time t; a reverse direction walks t downwards. */
#include "nn.h"
#include <string.h>

int s2s_cell_gates(s2s_cell cell) { return cell == S2S_CELL_LSTM ? 4 : cell == S2S_CELL_GRU ? 3 : 1; }

#define GH(w) ((w)->G * (w)->H)
#define ROW(p, t, B, D) ((p) + (size_t)(t) * (size_t)(B) * (size_t)(D))

s2s_status s2s_rnn_run_init(s2s_arena *ar, const s2s_rnn_w *w, int T, int B, int reverse, const int32_t *len,
                            const float *h0, const float *c0, int save, s2s_rnn_run *r)
{
    size_t tb = (size_t)T * B, H = (size_t)w->H;
    r->T = T;
    r->B = B;
    r->H = w->H;
    r->reverse = reverse;
    r->len = len;
    r->h0_zero = h0 == NULL;
    r->xp = r->hp = r->act = r->cs = NULL;
    r->len_host = NULL;
    r->lib_state = NULL;
    r->lib_y = NULL;
    S2S_TRY(s2s_arena_floats(ar, tb * GH(w), &r->xp));
    if (w->cell == S2S_CELL_GRU)
        S2S_TRY(s2s_arena_floats(ar, tb * GH(w), &r->hp));
    if (save && w->cell != S2S_CELL_RNN_TANH)
        S2S_TRY(s2s_arena_floats(ar, tb * 4 * H, &r->act));
    S2S_TRY(s2s_arena_floats(ar, tb * H, &r->hs));
    if (w->cell == S2S_CELL_LSTM)
        S2S_TRY(s2s_arena_floats(ar, tb * H, &r->cs));
    S2S_TRY(s2s_arena_floats(ar, tb * H, &r->y));
    if (!h0 || (w->cell == S2S_CELL_LSTM && !c0)) {
        float *z;
        S2S_TRY(s2s_arena_zeros(ar, (size_t)B * H, &z));
        h0 = h0 ? h0 : z;
        c0 = c0 ? c0 : z;
    }
    r->h0 = h0;
    r->c0 = c0;
    return S2S_OK;
}

s2s_status s2s_rnn_bias_steps(s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *r, int t0, int nt)
{
    /* LSTM and RNN accumulate the recurrent GEMM onto xp, so both biases go in here; GRU
     * keeps b_hh apart because r multiplies (W_hn h + b_hn). */
    const float *b2 = w->cell == S2S_CELL_GRU ? NULL : w->b_hh.w;
    return be->ops->bias_rows(be, ROW(r->xp, t0, r->B, GH(w)), nt * r->B, GH(w), GH(w), w->b_ih.w, b2);
}

s2s_status s2s_rnn_bias(s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *r)
{
    return s2s_rnn_bias_steps(be, w, r, 0, r->T);
}

s2s_status s2s_rnn_project(s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *r, const float *x, int ldx, int col0,
                           int ncols, int t0, int nt)
{
    s2s_packed *pk = NULL;
    for (int i = 0; i < 2; i++)
        if (w->pk_ih[i] && w->pk_col[i] == col0)
            pk = w->pk_ih[i];
    return s2s_linear(be, pk, nt * r->B, GH(w), ncols, x, ldx, w->w_ih.w + col0, w->in, 0, 1.0f,
                      ROW(r->xp, t0, r->B, GH(w)), GH(w));
}

static int first_step(const s2s_rnn_run *r, int t) { return r->reverse ? t == r->T - 1 : t == 0; }

const float *s2s_rnn_h_prev(const s2s_rnn_w *w, const s2s_rnn_run *r, int t)
{
    if (first_step(r, t))
        return r->h0;
    return ROW(r->hs, r->reverse ? t + 1 : t - 1, r->B, w->H);
}

const float *s2s_rnn_c_prev(const s2s_rnn_w *w, const s2s_rnn_run *r, int t)
{
    if (first_step(r, t))
        return r->c0;
    return ROW(r->cs, r->reverse ? t + 1 : t - 1, r->B, w->H);
}

s2s_status s2s_rnn_step_fwd(s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *r, int t)
{
    int B = r->B, H = w->H;
    const float *hprev = s2s_rnn_h_prev(w, r, t);
    int skip_gemm = r->h0_zero && first_step(r, t);
    float *xp = ROW(r->xp, t, B, GH(w));
    float *hs = ROW(r->hs, t, B, H), *y = ROW(r->y, t, B, H);
    float *act = r->act ? ROW(r->act, t, B, 4 * H) : NULL;
    switch (w->cell) {
    case S2S_CELL_LSTM:
        if (!skip_gemm)
            S2S_TRY(s2s_linear(be, w->pk_hh, B, GH(w), H, hprev, H, w->w_hh.w, H, 0, 1.0f, xp, GH(w)));
        return be->ops->lstm_fwd(be, B, H, xp, hprev, s2s_rnn_c_prev(w, r, t), r->len, t, hs, ROW(r->cs, t, B, H), y,
                                 act);
    case S2S_CELL_GRU: {
        float *hp = ROW(r->hp, t, B, GH(w));
        if (skip_gemm)
            S2S_TRY(be->ops->fill(be, hp, (size_t)B * GH(w), 0.0f));
        else
            S2S_TRY(s2s_linear(be, w->pk_hh, B, GH(w), H, hprev, H, w->w_hh.w, H, 0, 0.0f, hp, GH(w)));
        return be->ops->gru_fwd(be, B, H, xp, hp, w->b_hh.w, hprev, r->len, t, hs, y, act);
    }
    case S2S_CELL_RNN_TANH:
        if (!skip_gemm)
            S2S_TRY(s2s_linear(be, w->pk_hh, B, H, H, hprev, H, w->w_hh.w, H, 0, 1.0f, xp, H));
        return be->ops->rnn_fwd(be, B, H, xp, hprev, r->len, t, hs, y);
    }
    return S2S_FAIL(S2S_ERR_INVALID_ARG, "unknown cell type %d", (int)w->cell);
}

s2s_status s2s_rnn_seq_fwd(s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *r)
{
    for (int s = 0; s < r->T; s++)
        S2S_TRY(s2s_rnn_step_fwd(be, w, r, r->reverse ? r->T - 1 - s : s));
    return S2S_OK;
}

float *s2s_rnn_h_final(const s2s_rnn_run *r) { return r->reverse ? r->hs : ROW(r->hs, r->T - 1, r->B, r->H); }

float *s2s_rnn_c_final(const s2s_rnn_run *r)
{
    if (!r->cs)
        return NULL;
    return r->reverse ? r->cs : ROW(r->cs, r->T - 1, r->B, r->H);
}

s2s_status s2s_rnn_grad_init(s2s_arena *ar, s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *r,
                             const float *dhT, const float *dcT, s2s_rnn_grad *g)
{
    size_t tb = (size_t)r->T * r->B, bh = (size_t)r->B * w->H;
    g->dhp = NULL;
    g->dc = NULL;
    S2S_TRY(s2s_arena_floats(ar, tb * GH(w), &g->dpre));
    if (w->cell == S2S_CELL_GRU)
        S2S_TRY(s2s_arena_floats(ar, tb * GH(w), &g->dhp));
    S2S_TRY(s2s_arena_floats(ar, bh, &g->dh));
    if (dhT)
        S2S_TRY(be->ops->copy(be, g->dh, dhT, bh * sizeof(float)));
    else
        S2S_TRY(be->ops->fill(be, g->dh, bh, 0.0f));
    if (w->cell == S2S_CELL_LSTM) {
        S2S_TRY(s2s_arena_floats(ar, bh, &g->dc));
        if (dcT)
            S2S_TRY(be->ops->copy(be, g->dc, dcT, bh * sizeof(float)));
        else
            S2S_TRY(be->ops->fill(be, g->dc, bh, 0.0f));
    }
    return S2S_OK;
}

s2s_status s2s_rnn_step_bwd(s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *r, s2s_rnn_grad *g,
                            const float *dy_t, int t)
{
    int B = r->B, H = w->H, G = GH(w);
    float *dpre = ROW(g->dpre, t, B, G);
    const float *drec = dpre; /* gradient of the recurrent pre-activation h W_hh^T */
    switch (w->cell) {
    case S2S_CELL_LSTM:
        S2S_TRY(be->ops->lstm_bwd(be, B, H, ROW(r->act, t, B, 4 * H), ROW(r->cs, t, B, H), s2s_rnn_c_prev(w, r, t),
                                  dy_t, g->dh, g->dc, r->len, t, dpre, g->dh, g->dc));
        break;
    case S2S_CELL_GRU:
        S2S_TRY(be->ops->gru_bwd(be, B, H, ROW(r->act, t, B, 4 * H), s2s_rnn_h_prev(w, r, t), dy_t, g->dh, r->len, t,
                                 dpre, ROW(g->dhp, t, B, G), g->dh));
        drec = ROW(g->dhp, t, B, G);
        break;
    case S2S_CELL_RNN_TANH:
        S2S_TRY(be->ops->rnn_bwd(be, B, H, ROW(r->hs, t, B, H), dy_t, g->dh, r->len, t, dpre, g->dh));
        break;
    }
    if (r->h0_zero && first_step(r, t))
        return S2S_OK; /* the state before the first step is a constant zero */
    /* dh_prev += drec W_hh: [B, G] x [G, H] */
    return be->ops->gemm(be, 0, 0, B, H, G, 1.0f, drec, G, w->w_hh.w, H, 1.0f, g->dh, H);
}

s2s_status s2s_rnn_seq_bwd(s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *r, s2s_rnn_grad *g,
                           const float *dy)
{
    for (int s = r->T - 1; s >= 0; s--) {
        int t = r->reverse ? r->T - 1 - s : s;
        S2S_TRY(s2s_rnn_step_bwd(be, w, r, g, dy ? ROW(dy, t, r->B, w->H) : NULL, t));
    }
    return S2S_OK;
}

s2s_status s2s_rnn_weight_grads(s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *r, const s2s_rnn_grad *g,
                                const float *x, int ldx, int col0, int ncols)
{
    int B = r->B, H = w->H, G = GH(w), T = r->T, TB = T * B;
    const float *drec = w->cell == S2S_CELL_GRU ? g->dhp : g->dpre;
    /* dW_hh += sum_t drec[t]^T h_prev(t): the steps whose previous state is another step's
     * output form one GEMM over (T-1)*B rows; the first step pairs with h0. */
    if (T > 1) {
        const float *d = r->reverse ? drec : ROW(drec, 1, B, G);
        const float *h = r->reverse ? ROW(r->hs, 1, B, H) : r->hs;
        S2S_TRY(be->ops->gemm(be, 1, 0, G, H, (T - 1) * B, 1.0f, d, G, h, H, 1.0f, w->w_hh.g, H));
    }
    if (!r->h0_zero) {
        int t0 = r->reverse ? T - 1 : 0;
        S2S_TRY(be->ops->gemm(be, 1, 0, G, H, B, 1.0f, ROW(drec, t0, B, G), G, r->h0, H, 1.0f, w->w_hh.g, H));
    }
    S2S_TRY(be->ops->colsum(be, w->b_hh.g, drec, TB, G, G));
    S2S_TRY(be->ops->colsum(be, w->b_ih.g, g->dpre, TB, G, G));
    if (x)
        S2S_TRY(be->ops->gemm(be, 1, 0, G, ncols, TB, 1.0f, g->dpre, G, x, ldx, 1.0f, w->w_ih.g + col0, w->in));
    return S2S_OK;
}

s2s_status s2s_rnn_input_grad(s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *r, const s2s_rnn_grad *g,
                              float *dx, int ldx, int col0, int ncols, float beta)
{
    return be->ops->gemm(be, 0, 0, r->T * r->B, ncols, GH(w), 1.0f, g->dpre, GH(w), w->w_ih.w + col0, w->in, beta,
                         dx + col0, ldx);
}

s2s_status s2s_concat_dirs(s2s_arena *ar, s2s_backend *be, int Hd, const float *a, const float *b, int rows,
                           float **out)
{
    S2S_TRY(s2s_arena_floats(ar, (size_t)rows * 2 * Hd, out));
    S2S_TRY(be->ops->axpby2d(be, *out, 2 * Hd, a, Hd, rows, Hd, 1.0f, 0.0f));
    return be->ops->axpby2d(be, *out + Hd, 2 * Hd, b, Hd, rows, Hd, 1.0f, 0.0f);
}

s2s_status s2s_split_dirs(s2s_arena *ar, s2s_backend *be, int Hd, const float *x, int rows, float **a, float **b)
{
    if (!x) {
        *a = *b = NULL;
        return S2S_OK;
    }
    S2S_TRY(s2s_arena_floats(ar, (size_t)rows * Hd, a));
    S2S_TRY(s2s_arena_floats(ar, (size_t)rows * Hd, b));
    S2S_TRY(be->ops->axpby2d(be, *a, Hd, x, 2 * Hd, rows, Hd, 1.0f, 0.0f));
    return be->ops->axpby2d(be, *b, Hd, x + Hd, 2 * Hd, rows, Hd, 1.0f, 0.0f);
}

/* ---- stacks of layers across lanes ------------------------------------------------------ */

/* Event slots: the fork from lane 0, each layer's latest finished chunk, each layer done. */
enum { EV_FORK = 0, EV_CHUNK = 1, EV_DONE = 1 + S2S_MAX_STACK };

static int lane_count(const s2s_backend *be, int want)
{
    int n = be->lanes < 1 ? 1 : be->lanes;
    return n < want ? n : want;
}

/* Lanes 1.. wait for everything lane 0 has issued so far. */
static s2s_status lanes_fork(s2s_backend *be, int lanes)
{
    if (lanes < 2)
        return S2S_OK;
    S2S_TRY(be->ops->lane_mark(be, EV_FORK));
    for (int i = 1; i < lanes; i++) {
        S2S_TRY(be->ops->lane(be, i));
        S2S_TRY(be->ops->lane_wait(be, EV_FORK));
    }
    return be->ops->lane(be, 0);
}

/* Per-step dropout of rows [t0, t0+nt) of a [T*B, D] tensor: y = dropout(x). */
static s2s_status drop_steps(s2s_backend *be, const s2s_rnn_drop *drop, int site, float *y, const float *x, int t0,
                             int nt, int B, int D)
{
    size_t n = (size_t)B * D;
    for (int t = t0; t < t0 + nt; t++)
        S2S_TRY(be->ops->dropout(be, y + (size_t)t * n, x + (size_t)t * n, n, drop->p, drop->seed,
                                 s2s_dropout_stream(drop->step, site, t),
                                 &(s2s_drop_rows){D, B, drop->rows_global > 0 ? drop->rows_global : B, drop->row0}));
    return S2S_OK;
}

static int drop_on(const s2s_rnn_drop *drop) { return drop && drop->p > 0.0f; }

static int chunk_len(const s2s_backend *be, int T) { return be->wave_chunk > 0 && be->wave_chunk < T ? be->wave_chunk : T; }

/* ---- whole layers through the backend's library (cuDNN) --------------------------------- */

/* The run of one direction as the library path keeps it: y, and hs/cs whose final rows get
 * the final states. */
static s2s_status lib_run_init(s2s_arena *ar, const s2s_rnn_w *w, int T, int B, int reverse, const int32_t *len,
                               const int32_t *len_host, s2s_rnn_run *r)
{
    size_t tbh = (size_t)T * B * w->H;
    memset(r, 0, sizeof *r);
    r->T = T, r->B = B, r->H = w->H, r->reverse = reverse, r->len = len, r->len_host = len_host, r->h0_zero = 1;
    S2S_TRY(s2s_arena_floats(ar, tbh, &r->y));
    S2S_TRY(s2s_arena_floats(ar, tbh, &r->hs));
    if (w->cell == S2S_CELL_LSTM)
        S2S_TRY(s2s_arena_floats(ar, tbh, &r->cs));
    return S2S_OK;
}

static s2s_status lib_state(s2s_arena *ar, s2s_backend *be, const s2s_rnn_w *w, int dirs, int T, int B, int save,
                            void **state)
{
    size_t bytes;
    float *p;
    S2S_TRY(be->ops->layer_bytes(be, w, dirs, T, B, save, &bytes));
    S2S_TRY(s2s_arena_floats(ar, (bytes + sizeof(float) - 1) / sizeof(float), &p));
    *state = p;
    return S2S_OK;
}

static s2s_status lib_stack_fwd(s2s_arena *ar, s2s_backend *be, int L, const s2s_rnn_w *const w[],
                                s2s_rnn_run *const run[], int T, int B, const int32_t *len, const int32_t *len_host,
                                int save, const s2s_rnn_drop *drop, const float *in[])
{
    for (int l = 0; l < L; l++) {
        s2s_rnn_run *r = run[l];
        S2S_TRY(lib_run_init(ar, w[l], T, B, 0, len, len_host, r));
        S2S_TRY(lib_state(ar, be, w[l], 1, T, B, save, &r->lib_state));
        S2S_TRY(be->ops->layer_fwd(be, w[l], 1, T, B, len, len_host, in[l], r->y, s2s_rnn_h_final(r),
                                   s2s_rnn_c_final(r), save, r->lib_state));
        if (l + 1 < L) {
            if (drop_on(drop)) {
                float *buf;
                S2S_TRY(s2s_arena_floats(ar, (size_t)T * B * w[l]->H, &buf));
                S2S_TRY(drop_steps(be, drop, drop->site0 + l, buf, r->y, 0, T, B, w[l]->H));
                in[l + 1] = buf;
            } else {
                in[l + 1] = r->y;
            }
        }
    }
    return S2S_OK;
}

static s2s_status lib_stack_bwd(s2s_arena *ar, s2s_backend *be, int L, const s2s_rnn_w *const w[],
                                const s2s_rnn_run *const run[], const float *const in[], const float *const dhT[],
                                const float *const dcT[], const float *dy, const s2s_rnn_drop *drop, float *dx0)
{
    int T = run[0]->T, B = run[0]->B;
    for (int l = L - 1; l >= 0; l--) {
        const s2s_rnn_run *r = run[l];
        float *dx = dx0;
        if (l > 0)
            S2S_TRY(s2s_arena_floats(ar, (size_t)T * B * w[l]->in, &dx));
        S2S_TRY(be->ops->layer_bwd(be, w[l], 1, T, B, r->len, r->len_host, in[l], r->y, dy, dhT ? dhT[l] : NULL,
                                   dcT ? dcT[l] : NULL, dx, r->lib_state));
        if (l > 0 && drop_on(drop))
            S2S_TRY(drop_steps(be, drop, drop->site0 + l - 1, dx, dx, 0, T, B, w[l]->in));
        dy = dx;
    }
    return S2S_OK;
}

/* Both directions' [B, H] blocks side by side as [2, B, H] (NULL: zeros), or back. */
static s2s_status pack2(s2s_arena *ar, s2s_backend *be, size_t n, const float *a, const float *b, float **out)
{
    S2S_TRY(s2s_arena_floats(ar, 2 * n, out));
    if (a)
        S2S_TRY(be->ops->copy(be, *out, a, n * sizeof(float)));
    else
        S2S_TRY(be->ops->fill(be, *out, n, 0.0f));
    if (b)
        return be->ops->copy(be, *out + n, b, n * sizeof(float));
    return be->ops->fill(be, *out + n, n, 0.0f);
}

static s2s_status lib_bidir_fwd(s2s_arena *ar, s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *run, int T, int B,
                                const int32_t *len, const int32_t *len_host, int save, const float *x)
{
    int H = w[0].H, TB = T * B;
    size_t bh = (size_t)B * H;
    float *hy, *cy = NULL;
    for (int d = 0; d < 2; d++)
        S2S_TRY(lib_run_init(ar, &w[d], T, B, d, len, len_host, &run[d]));
    S2S_TRY(lib_state(ar, be, w, 2, T, B, save, &run[0].lib_state));
    S2S_TRY(s2s_arena_floats(ar, (size_t)TB * 2 * H, &run[0].lib_y));
    S2S_TRY(s2s_arena_floats(ar, 2 * bh, &hy));
    if (w[0].cell == S2S_CELL_LSTM)
        S2S_TRY(s2s_arena_floats(ar, 2 * bh, &cy));
    S2S_TRY(be->ops->layer_fwd(be, w, 2, T, B, len, len_host, x, run[0].lib_y, hy, cy, save, run[0].lib_state));
    for (int d = 0; d < 2; d++) {
        S2S_TRY(be->ops->axpby2d(be, run[d].y, H, run[0].lib_y + d * H, 2 * H, TB, H, 1.0f, 0.0f));
        S2S_TRY(be->ops->copy(be, s2s_rnn_h_final(&run[d]), hy + d * bh, bh * sizeof(float)));
        if (cy)
            S2S_TRY(be->ops->copy(be, s2s_rnn_c_final(&run[d]), cy + d * bh, bh * sizeof(float)));
    }
    return S2S_OK;
}

static s2s_status lib_bidir_bwd(s2s_arena *ar, s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *run,
                                const float *const dy[2], const float *const dhT[2], const float *const dcT[2],
                                const float *x, float *dx)
{
    int H = w[0].H, T = run[0].T, B = run[0].B, TB = T * B;
    size_t bh = (size_t)B * H;
    float *dy2, *dhy, *dcy = NULL;
    S2S_TRY(s2s_arena_floats(ar, (size_t)TB * 2 * H, &dy2));
    if (!dy[0] || !dy[1]) /* a missing half is zeros (not 0 times whatever the arena held) */
        S2S_TRY(be->ops->fill(be, dy2, (size_t)TB * 2 * H, 0.0f));
    for (int d = 0; d < 2; d++)
        if (dy[d])
            S2S_TRY(be->ops->axpby2d(be, dy2 + d * H, 2 * H, dy[d], H, TB, H, 1.0f, 0.0f));
    S2S_TRY(pack2(ar, be, bh, dhT[0], dhT[1], &dhy));
    if (w[0].cell == S2S_CELL_LSTM)
        S2S_TRY(pack2(ar, be, bh, dcT[0], dcT[1], &dcy));
    return be->ops->layer_bwd(be, w, 2, T, B, run[0].len, run[0].len_host, x, run[0].lib_y, dy2, dhy, dcy, dx,
                              run[0].lib_state);
}

static s2s_status rnn_stack_fwd_lanes(s2s_arena *ar, s2s_backend *be, int L, const s2s_rnn_w *const w[], s2s_rnn_run *const run[],
                             int T, int B, const int32_t *len, const int32_t *len_host, int save,
                             const s2s_rnn_drop *drop, const float *in[])
{
    if (L < 1 || L > S2S_MAX_STACK)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "a stack of %d layers (1..%d)", L, S2S_MAX_STACK);
    if (be->ops->layer_fwd)
        return lib_stack_fwd(ar, be, L, w, run, T, B, len, len_host, save, drop, in);
    int C = chunk_len(be, T), K = (T + C - 1) / C, lanes = lane_count(be, L);
    for (int l = 0; l < L; l++) {
        S2S_TRY(s2s_rnn_run_init(ar, w[l], T, B, 0, len, NULL, NULL, save, run[l]));
        S2S_TRY(s2s_rnn_bias(be, w[l], run[l]));
        if (l + 1 < L) {
            if (drop_on(drop)) {
                float *buf;
                S2S_TRY(s2s_arena_floats(ar, (size_t)T * B * w[l]->H, &buf));
                in[l + 1] = buf;
            } else {
                in[l + 1] = run[l]->y;
            }
        }
    }
    S2S_TRY(lanes_fork(be, lanes));
    for (int d = 0; d < K + L - 1; d++)
        for (int l = L - 1; l >= 0; l--) { /* upper layers first: they wait on the previous diagonal */
            int k = d - l;
            if (k < 0 || k >= K)
                continue;
            int t0 = k * C, nt = T - t0 < C ? T - t0 : C, lane = l % lanes;
            S2S_TRY(be->ops->lane(be, lane));
            if (l > 0 && (l - 1) % lanes != lane)
                S2S_TRY(be->ops->lane_wait(be, EV_CHUNK + l - 1));
            const s2s_rnn_w *wl = w[l];
            S2S_TRY(s2s_rnn_project(be, wl, run[l], ROW(in[l], t0, B, wl->in), wl->in, 0, wl->in, t0, nt));
            for (int t = t0; t < t0 + nt; t++)
                S2S_TRY(s2s_rnn_step_fwd(be, wl, run[l], t));
            if (l + 1 < L && drop_on(drop))
                S2S_TRY(drop_steps(be, drop, drop->site0 + l, (float *)in[l + 1], run[l]->y, t0, nt, B, wl->H));
            if (lanes > 1)
                S2S_TRY(be->ops->lane_mark(be, EV_CHUNK + l));
        }
    S2S_TRY(be->ops->lane(be, 0));
    for (int l = 0; l < L; l++)
        if (l % lanes)
            S2S_TRY(be->ops->lane_wait(be, EV_CHUNK + l));
    return S2S_OK;
}

/* dx rows [t0, t0+nt) = dpre W_ih over those rows. */
static s2s_status input_grad_rows(s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *r, const s2s_rnn_grad *g,
                                  float *dx, int t0, int nt)
{
    return be->ops->gemm(be, 0, 0, nt * r->B, w->in, GH(w), 1.0f, ROW(g->dpre, t0, r->B, GH(w)), GH(w), w->w_ih.w,
                         w->in, 0.0f, ROW(dx, t0, r->B, w->in), w->in);
}

static s2s_status rnn_stack_bwd_lanes(s2s_arena *ar, s2s_backend *be, int L, const s2s_rnn_w *const w[],
                             const s2s_rnn_run *const run[], const float *const in[], const float *const dhT[],
                             const float *const dcT[], const float *dy, const s2s_rnn_drop *drop, float *dx0)
{
    if (L < 1 || L > S2S_MAX_STACK)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "a stack of %d layers (1..%d)", L, S2S_MAX_STACK);
    if (be->ops->layer_bwd)
        return lib_stack_bwd(ar, be, L, w, run, in, dhT, dcT, dy, drop, dx0);
    int T = run[0]->T, B = run[0]->B, C = chunk_len(be, T), K = (T + C - 1) / C, lanes = lane_count(be, L);
    s2s_rnn_grad g[S2S_MAX_STACK];
    float *dx[S2S_MAX_STACK]; /* dx[l], l >= 1: gradient at in[l], then (dropout undone) at y[l-1] */
    dx[0] = dx0;
    for (int l = 0; l < L; l++) {
        S2S_TRY(s2s_rnn_grad_init(ar, be, w[l], run[l], dhT ? dhT[l] : NULL, dcT ? dcT[l] : NULL, &g[l]));
        if (l > 0)
            S2S_TRY(s2s_arena_floats(ar, (size_t)T * B * w[l]->in, &dx[l]));
    }
    S2S_TRY(lanes_fork(be, lanes));
    for (int d = 0; d < K + L - 1; d++)
        for (int l = 0; l < L; l++) { /* lower layers first: they wait on the previous diagonal */
            int k = K - 1 - (d - (L - 1 - l));
            if (k < 0 || k >= K)
                continue;
            int t0 = k * C, nt = T - t0 < C ? T - t0 : C, lane = l % lanes;
            S2S_TRY(be->ops->lane(be, lane));
            if (l + 1 < L && (l + 1) % lanes != lane)
                S2S_TRY(be->ops->lane_wait(be, EV_CHUNK + l + 1));
            const s2s_rnn_w *wl = w[l];
            const float *dyl = l + 1 < L ? dx[l + 1] : dy;
            for (int t = t0 + nt - 1; t >= t0; t--)
                S2S_TRY(s2s_rnn_step_bwd(be, wl, run[l], &g[l], dyl ? ROW(dyl, t, B, wl->H) : NULL, t));
            if (dx[l]) {
                S2S_TRY(input_grad_rows(be, wl, run[l], &g[l], dx[l], t0, nt));
                if (l > 0 && drop_on(drop))
                    S2S_TRY(drop_steps(be, drop, drop->site0 + l - 1, dx[l], dx[l], t0, nt, B, wl->in));
            }
            if (lanes > 1)
                S2S_TRY(be->ops->lane_mark(be, EV_CHUNK + l));
            if (k == 0) {
                S2S_TRY(s2s_rnn_weight_grads(be, wl, run[l], &g[l], in[l], wl->in, 0, wl->in));
                if (lanes > 1)
                    S2S_TRY(be->ops->lane_mark(be, EV_DONE + l));
            }
        }
    S2S_TRY(be->ops->lane(be, 0));
    for (int l = 0; l < L; l++)
        if (l % lanes)
            S2S_TRY(be->ops->lane_wait(be, EV_DONE + l));
    return S2S_OK;
}

static s2s_status rnn_bidir_fwd_lanes(s2s_arena *ar, s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *run, int T, int B,
                             const int32_t *len, const int32_t *len_host, int save, const float *x, int ldx)
{
    if (be->ops->layer_fwd)
        return lib_bidir_fwd(ar, be, w, run, T, B, len, len_host, save, x);
    int lanes = lane_count(be, 2);
    for (int d = 0; d < 2; d++) {
        S2S_TRY(s2s_rnn_run_init(ar, &w[d], T, B, d, len, NULL, NULL, save, &run[d]));
        S2S_TRY(s2s_rnn_bias(be, &w[d], &run[d]));
    }
    S2S_TRY(lanes_fork(be, lanes));
    for (int d = 0; d < 2; d++) {
        S2S_TRY(be->ops->lane(be, d % lanes));
        S2S_TRY(s2s_rnn_project(be, &w[d], &run[d], x, ldx, 0, w[d].in, 0, T));
        S2S_TRY(s2s_rnn_seq_fwd(be, &w[d], &run[d]));
    }
    if (lanes < 2)
        return S2S_OK;
    S2S_TRY(be->ops->lane_mark(be, EV_DONE));
    S2S_TRY(be->ops->lane(be, 0));
    return be->ops->lane_wait(be, EV_DONE);
}

static s2s_status rnn_bidir_bwd_lanes(s2s_arena *ar, s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *run,
                             const float *const dy[2], const float *const dhT[2], const float *const dcT[2],
                             const float *x, int ldx, float *dx)
{
    if (be->ops->layer_bwd)
        return lib_bidir_bwd(ar, be, w, run, dy, dhT, dcT, x, dx);
    int lanes = lane_count(be, 2);
    s2s_rnn_grad g[2];
    for (int d = 0; d < 2; d++)
        S2S_TRY(s2s_rnn_grad_init(ar, be, &w[d], &run[d], dhT[d], dcT[d], &g[d]));
    S2S_TRY(lanes_fork(be, lanes));
    for (int d = 0; d < 2; d++) {
        S2S_TRY(be->ops->lane(be, d % lanes));
        S2S_TRY(s2s_rnn_seq_bwd(be, &w[d], &run[d], &g[d], dy[d]));
        S2S_TRY(s2s_rnn_weight_grads(be, &w[d], &run[d], &g[d], x, ldx, 0, w[d].in));
    }
    if (lanes > 1) {
        S2S_TRY(be->ops->lane_mark(be, EV_DONE));
        S2S_TRY(be->ops->lane(be, 0));
        S2S_TRY(be->ops->lane_wait(be, EV_DONE));
    }
    /* Both directions add into dx: in turn, on lane 0. */
    for (int d = 0; dx && d < 2; d++)
        S2S_TRY(s2s_rnn_input_grad(be, &w[d], &run[d], &g[d], dx, ldx, 0, w[d].in, d ? 1.0f : 0.0f));
    return S2S_OK;
}

/* ---- the public entries: on an error part-way through a lane program, the backend is put
 * back on lane 0 and every lane is drained, so that later ops (and the caller releasing the
 * workspace) find the state they expect. ---------------------------------------------------- */

static s2s_status lanes_recover(s2s_backend *be, s2s_status st)
{
    if (st != S2S_OK && be->lanes > 1) {
        (void)be->ops->lane(be, 0);
        (void)be->ops->sync(be); /* may fail too (a recording in progress): the first error stands */
    }
    return st;
}

s2s_status s2s_rnn_stack_fwd(s2s_arena *ar, s2s_backend *be, int L, const s2s_rnn_w *const w[], s2s_rnn_run *const run[],
                             int T, int B, const int32_t *len, const int32_t *len_host, int save,
                             const s2s_rnn_drop *drop, const float *in[])
{
    return lanes_recover(be, rnn_stack_fwd_lanes(ar, be, L, w, run, T, B, len, len_host, save, drop, in));
}

s2s_status s2s_rnn_stack_bwd(s2s_arena *ar, s2s_backend *be, int L, const s2s_rnn_w *const w[],
                             const s2s_rnn_run *const run[], const float *const in[], const float *const dhT[],
                             const float *const dcT[], const float *dy, const s2s_rnn_drop *drop, float *dx0)
{
    return lanes_recover(be, rnn_stack_bwd_lanes(ar, be, L, w, run, in, dhT, dcT, dy, drop, dx0));
}

s2s_status s2s_rnn_bidir_fwd(s2s_arena *ar, s2s_backend *be, const s2s_rnn_w *w, s2s_rnn_run *run, int T, int B,
                             const int32_t *len, const int32_t *len_host, int save, const float *x, int ldx)
{
    return lanes_recover(be, rnn_bidir_fwd_lanes(ar, be, w, run, T, B, len, len_host, save, x, ldx));
}

s2s_status s2s_rnn_bidir_bwd(s2s_arena *ar, s2s_backend *be, const s2s_rnn_w *w, const s2s_rnn_run *run,
                             const float *const dy[2], const float *const dhT[2], const float *const dcT[2],
                             const float *x, int ldx, float *dx)
{
    return lanes_recover(be, rnn_bidir_bwd_lanes(ar, be, w, run, dy, dhT, dcT, x, ldx, dx));
}
