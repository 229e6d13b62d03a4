/* tagger.c - a recurrent stack with a label per position: one-hot (or embedded) inputs, L
 * unidirectional layers, a linear output and cross-entropy, trained with plain SGD. The
 * smallest thing the library can learn; apps/hello_rnn.c uses it. */
#include "nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXL 8

struct s2s_tagger {
    s2s_context *ctx;
    s2s_backend *be;
    s2s_tagger_config cfg;
    int in;             /* input width: vocab_in (one-hot) or embed */
    s2s_params params;
    s2s_pview emb, out_w, out_b;
    s2s_rnn_w rnn[MAXL];
    float *onehot;      /* [vocab_in, vocab_in] identity, not a parameter */
    s2s_arena arena;
};

S2S_API s2s_tagger_config s2s_tagger_config_default(void)
{
    s2s_tagger_config c;
    memset(&c, 0, sizeof c);
    c.cell = S2S_CELL_RNN_TANH;
    c.layers = 1;
    c.hidden = 16;
    return c;
}

static s2s_status tagger_build(s2s_tagger *tg)
{
    const s2s_tagger_config *c = &tg->cfg;
    int G = s2s_cell_gates(c->cell), H = c->hidden, idx[MAXL][4], ie = -2;
    if (c->embed > 0)
        ie = s2s_params_add(&tg->params, "embedding.weight", c->vocab_in, c->embed, 2);
    for (int l = 0; l < c->layers; l++) {
        char name[S2S_PARAM_NAME];
        static const char *fmt[4] = {"rnn.weight_ih_l%d", "rnn.weight_hh_l%d", "rnn.bias_ih_l%d", "rnn.bias_hh_l%d"};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, fmt[k], l);
            idx[l][k] = s2s_params_add(&tg->params, name, G * H, k == 0 ? (l ? H : tg->in) : k == 1 ? H : 1,
                                       k < 2 ? 2 : 1);
            if (idx[l][k] < 0)
                return S2S_ERR_INTERNAL;
        }
    }
    int iw = s2s_params_add(&tg->params, "out.weight", c->vocab_out, H, 2);
    int ib = s2s_params_add(&tg->params, "out.bias", c->vocab_out, 1, 1);
    if (ie == -1 || iw < 0 || ib < 0)
        return S2S_ERR_INTERNAL;
    S2S_TRY(s2s_params_alloc(&tg->params));
    if (ie >= 0)
        tg->emb = s2s_params_view(&tg->params, ie);
    tg->out_w = s2s_params_view(&tg->params, iw);
    tg->out_b = s2s_params_view(&tg->params, ib);
    s2s_init_kind kind[S2S_MAX_PARAMS];
    float bound[S2S_MAX_PARAMS];
    for (int i = 0; i < tg->params.count; i++) {
        kind[i] = i == ie ? S2S_INIT_NORMAL_PAD0 : S2S_INIT_UNIFORM;
        bound[i] = 1.0f / sqrtf((float)H);
    }
    for (int l = 0; l < c->layers; l++) {
        s2s_rnn_w *w = &tg->rnn[l];
        w->cell = c->cell;
        w->in = l ? H : tg->in;
        w->H = H;
        w->G = G;
        w->w_ih = s2s_params_view(&tg->params, idx[l][0]);
        w->w_hh = s2s_params_view(&tg->params, idx[l][1]);
        w->b_ih = s2s_params_view(&tg->params, idx[l][2]);
        w->b_hh = s2s_params_view(&tg->params, idx[l][3]);
    }
    S2S_TRY(s2s_params_init_values(&tg->params, tg->ctx->opts.seed, kind, bound));
    if (c->embed > 0)
        return S2S_OK;
    size_t V = (size_t)c->vocab_in;
    float *eye = s2s_host_calloc(V * V, sizeof(float), "one-hot table");
    if (!eye)
        return S2S_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < V; i++)
        eye[i * V + i] = 1.0f;
    void *p;
    s2s_status st = tg->be->ops->alloc(tg->be, V * V * sizeof(float), &p);
    if (st == S2S_OK) {
        tg->onehot = p;
        st = tg->be->ops->to_device(tg->be, p, eye, V * V * sizeof(float));
    }
    free(eye);
    return st;
}

S2S_API s2s_status s2s_tagger_create(s2s_context *ctx, const s2s_tagger_config *cfg, s2s_tagger **out)
{
    if (!ctx || !cfg || !out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tagger_create: ctx, cfg and out must not be NULL");
    *out = NULL;
    if (cfg->layers < 1 || cfg->layers > MAXL || cfg->hidden < 1 || cfg->vocab_in < 1 || cfg->vocab_out < 1 ||
        cfg->embed < 0 || (cfg->cell != S2S_CELL_LSTM && cfg->cell != S2S_CELL_GRU && cfg->cell != S2S_CELL_RNN_TANH))
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "tagger config: layers %d (1..%d), hidden %d, vocab_in %d, vocab_out %d must be >= 1, "
                        "embed %d >= 0, cell %d known",
                        cfg->layers, MAXL, cfg->hidden, cfg->vocab_in, cfg->vocab_out, cfg->embed, (int)cfg->cell);
    s2s_tagger *tg = s2s_host_calloc(1, sizeof *tg, "the tagger");
    if (!tg)
        return S2S_ERR_OUT_OF_MEMORY;
    tg->ctx = ctx;
    tg->be = ctx->be;
    tg->cfg = *cfg;
    tg->in = cfg->embed > 0 ? cfg->embed : cfg->vocab_in;
    s2s_params_init(&tg->params, tg->be);
    s2s_arena_init(&tg->arena, tg->be);
    s2s_status st = tagger_build(tg);
    if (st != S2S_OK) {
        s2s_tagger_free(tg);
        return st;
    }
    *out = tg;
    return S2S_OK;
}

S2S_API void s2s_tagger_free(s2s_tagger *tg)
{
    if (!tg)
        return;
    s2s_arena_free(&tg->arena);
    s2s_params_free(&tg->params);
    tg->be->ops->release(tg->be, tg->onehot);
    free(tg);
}

/* Uploads [B, T] ids time-major, checking their range. */
static s2s_status upload_ids(s2s_tagger *tg, const int32_t *ids, int B, int T, int vocab, const char *what,
                             int32_t **out)
{
    int32_t *h = s2s_host_alloc(sizeof(int32_t) * (size_t)B * T, what);
    if (!h)
        return S2S_ERR_OUT_OF_MEMORY;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int v = ids[(size_t)b * T + t];
            if (v < 0 || v >= vocab) {
                free(h);
                return S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: id %d at row %d, position %d is outside 0..%d", what, v, b,
                                t, vocab - 1);
            }
            h[(size_t)t * B + b] = v;
        }
    s2s_status st = s2s_arena_ints(&tg->arena, (size_t)B * T, out);
    if (st == S2S_OK)
        st = tg->be->ops->to_device(tg->be, *out, h, sizeof(int32_t) * (size_t)B * T);
    free(h);
    return st;
}

/* Forward: inputs -> logits [T*B, vocab_out]; x[l] and runs kept for backward. */
static s2s_status tagger_fwd(s2s_tagger *tg, const int32_t *ids, int B, int T, int save, float **x, s2s_rnn_run *run,
                             float **logits)
{
    s2s_backend *be = tg->be;
    int TB = T * B, H = tg->cfg.hidden, V = tg->cfg.vocab_out;
    const float *table = tg->cfg.embed > 0 ? tg->emb.w : tg->onehot;
    S2S_TRY(s2s_arena_floats(&tg->arena, (size_t)TB * tg->in, &x[0]));
    S2S_TRY(be->ops->gather_rows(be, x[0], tg->in, table, ids, TB, tg->in));
    for (int l = 0; l < tg->cfg.layers; l++) {
        S2S_TRY(s2s_rnn_run_init(&tg->arena, &tg->rnn[l], T, B, 0, NULL, NULL, NULL, save, &run[l]));
        S2S_TRY(s2s_rnn_bias(be, &tg->rnn[l], &run[l]));
        S2S_TRY(s2s_rnn_project(be, &tg->rnn[l], &run[l], x[l], tg->rnn[l].in, 0, tg->rnn[l].in, 0, T));
        S2S_TRY(s2s_rnn_seq_fwd(be, &tg->rnn[l], &run[l]));
        x[l + 1] = run[l].y;
    }
    S2S_TRY(s2s_arena_floats(&tg->arena, (size_t)TB * V, logits));
    S2S_TRY(be->ops->bias_rows(be, *logits, TB, V, V, tg->out_b.w, NULL));
    return be->ops->gemm(be, 0, 1, TB, V, H, 1.0f, x[tg->cfg.layers], H, tg->out_w.w, H, 1.0f, *logits, V);
}

static s2s_status tagger_step(s2s_tagger *tg, const int32_t *in, const int32_t *labels, int B, int T, float lr,
                              float *loss)
{
    s2s_backend *be = tg->be;
    int TB = T * B, H = tg->cfg.hidden, V = tg->cfg.vocab_out, L = tg->cfg.layers;
    int32_t *ids, *tgt;
    float *x[MAXL + 1], *logits, *row_loss, *dy;
    s2s_rnn_run run[MAXL];
    S2S_TRY(upload_ids(tg, in, B, T, tg->cfg.vocab_in, "tagger input", &ids));
    S2S_TRY(upload_ids(tg, labels, B, T, V, "tagger labels", &tgt));
    S2S_TRY(tagger_fwd(tg, ids, B, T, 1, x, run, &logits));
    S2S_TRY(be->ops->fill(be, tg->params.grad, tg->params.total, 0.0f));
    S2S_TRY(s2s_arena_floats(&tg->arena, (size_t)TB, &row_loss));
    S2S_TRY(be->ops->xent(be, logits, tgt, TB, V, -1, 0.0f, 1.0f / (float)TB, row_loss));
    double sum;
    S2S_TRY(be->ops->sum(be, row_loss, (size_t)TB, &sum));
    if (loss)
        *loss = (float)(sum / TB);
    S2S_TRY(be->ops->gemm(be, 1, 0, V, H, TB, 1.0f, logits, V, x[L], H, 1.0f, tg->out_w.g, H));
    S2S_TRY(be->ops->colsum(be, tg->out_b.g, logits, TB, V, V));
    S2S_TRY(s2s_arena_floats(&tg->arena, (size_t)TB * H, &dy));
    S2S_TRY(be->ops->gemm(be, 0, 0, TB, H, V, 1.0f, logits, V, tg->out_w.w, H, 0.0f, dy, H));
    for (int l = L - 1; l >= 0; l--) {
        s2s_rnn_grad g;
        const s2s_rnn_w *w = &tg->rnn[l];
        S2S_TRY(s2s_rnn_grad_init(&tg->arena, be, w, &run[l], NULL, NULL, &g));
        S2S_TRY(s2s_rnn_seq_bwd(be, w, &run[l], &g, dy));
        S2S_TRY(s2s_rnn_weight_grads(be, w, &run[l], &g, x[l], w->in, 0, w->in));
        if (l > 0 || tg->cfg.embed > 0) {
            S2S_TRY(s2s_arena_floats(&tg->arena, (size_t)TB * w->in, &dy));
            S2S_TRY(s2s_rnn_input_grad(be, w, &run[l], &g, dy, w->in, 0, w->in, 0.0f));
        }
    }
    if (tg->cfg.embed > 0)
        S2S_TRY(be->ops->embed_bwd(be, tg->emb.g, dy, tg->in, ids, TB, tg->in, tg->cfg.vocab_in, -1));
    return be->ops->sgd(be, tg->params.data, tg->params.grad, NULL, tg->params.total, lr, 0.0f, 0.0f, 1.0f);
}

S2S_API s2s_status s2s_tagger_train_step(s2s_tagger *tg, const int32_t *in, const int32_t *labels, int batch, int len,
                                         float lr, float *loss)
{
    if (!tg || !in || !labels || batch < 1 || len < 1 || !(lr > 0.0f))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tagger_train_step: need tagger, in, labels, batch >= 1, len >= 1, "
                                             "lr > 0");
    s2s_status st = tagger_step(tg, in, labels, batch, len, lr, loss);
    s2s_arena_reset(&tg->arena);
    return st;
}

static s2s_status tagger_predict(s2s_tagger *tg, const int32_t *in, int B, int T, float *probs)
{
    int32_t *ids;
    float *x[MAXL + 1], *logits;
    s2s_rnn_run run[MAXL];
    int V = tg->cfg.vocab_out;
    S2S_TRY(upload_ids(tg, in, B, T, tg->cfg.vocab_in, "tagger input", &ids));
    S2S_TRY(tagger_fwd(tg, ids, B, T, 0, x, run, &logits));
    S2S_TRY(tg->be->ops->log_softmax(tg->be, logits, logits, T * B, V));
    float *h = s2s_host_alloc(sizeof(float) * (size_t)T * B * V, "tagger probabilities");
    if (!h)
        return S2S_ERR_OUT_OF_MEMORY;
    s2s_status st = tg->be->ops->to_host(tg->be, h, logits, sizeof(float) * (size_t)T * B * V);
    for (int b = 0; b < B && st == S2S_OK; b++)
        for (int t = 0; t < T; t++)
            for (int v = 0; v < V; v++)
                probs[((size_t)b * T + t) * V + v] = expf(h[((size_t)t * B + b) * V + v]);
    free(h);
    return st;
}

S2S_API s2s_status s2s_tagger_predict(s2s_tagger *tg, const int32_t *in, int batch, int len, float *probs)
{
    if (!tg || !in || !probs || batch < 1 || len < 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tagger_predict: need tagger, in, probs, batch >= 1, len >= 1");
    s2s_status st = tagger_predict(tg, in, batch, len, probs);
    s2s_arena_reset(&tg->arena);
    return st;
}
