/* model.c - model creation, configuration checks, parameter registry and access. */
#include "model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

S2S_API s2s_model_config s2s_model_config_default(void)
{
    s2s_model_config c;
    memset(&c, 0, sizeof c);
    c.cell = S2S_CELL_LSTM;
    c.layers = 1;
    c.hidden = 256;
    c.embed = 256;
    c.bidirectional = 0;
    c.attention = S2S_ATTN_GENERAL;
    c.dropout = 0.2f;
    return c;
}

static s2s_status check_config(const s2s_model_config *c)
{
    if (c->cell != S2S_CELL_LSTM && c->cell != S2S_CELL_GRU && c->cell != S2S_CELL_RNN_TANH)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "config: unknown cell %d (use S2S_CELL_LSTM, _GRU or _RNN_TANH)",
                        (int)c->cell);
    if (c->layers < 1 || c->layers > S2S_MAX_LAYERS)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "config: layers = %d; use 1..%d", c->layers, S2S_MAX_LAYERS);
    if (c->hidden < 1 || c->hidden > 65536 || c->embed < 1 || c->embed > 65536)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "config: hidden = %d, embed = %d; each must be in 1..65536", c->hidden,
                        c->embed);
    if (c->bidirectional && c->hidden % 2)
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "config: a bidirectional encoder splits hidden = %d into two halves; use an even size",
                        c->hidden);
    if (c->attention != S2S_ATTN_NONE && c->attention != S2S_ATTN_DOT && c->attention != S2S_ATTN_GENERAL)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "config: unknown attention %d", (int)c->attention);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "config: dropout = %g; use 0 <= p < 1", c->dropout);
    if (c->tie_embeddings < S2S_TIE_NONE || c->tie_embeddings > S2S_TIE_ALL)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "config: unknown tie_embeddings %d (use S2S_TIE_NONE, _DECODER or _ALL)",
                        (int)c->tie_embeddings);
    if (c->tie_embeddings && c->embed != c->hidden)
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "config: tied embeddings share one matrix between the embedding (embed = %d) and the output "
                        "projection (hidden = %d); make them equal",
                        c->embed, c->hidden);
    if (c->tie_embeddings == S2S_TIE_ALL && c->src_vocab != c->tgt_vocab)
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "config: tying the source embedding too needs one vocabulary for both sides (src_vocab = %d, "
                        "tgt_vocab = %d; train one tokenizer for both)",
                        c->src_vocab, c->tgt_vocab);
    if (c->src_vocab <= S2S_UNK_ID || c->tgt_vocab <= S2S_UNK_ID)
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "config: src_vocab = %d, tgt_vocab = %d; each must exceed %d (ids 0-3 are pad, bos, eos, unk)",
                        c->src_vocab, c->tgt_vocab, S2S_UNK_ID);
    return S2S_OK;
}

/* Registers a recurrent stack's tensors under prefix (PyTorch nn.LSTM order). */
static s2s_status add_rnn(s2s_model *m, const char *prefix, int layer, int dir, int in, int hidden, int *idx)
{
    static const char *fmt[4] = {"%s.weight_ih_l%d%s", "%s.weight_hh_l%d%s", "%s.bias_ih_l%d%s", "%s.bias_hh_l%d%s"};
    const char *suffix = dir ? "_reverse" : "";
    int G = m->G;
    char name[S2S_PARAM_NAME];
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, fmt[k], prefix, layer, suffix);
        int rows = G * hidden, cols = k == 0 ? in : k == 1 ? hidden : 1;
        idx[k] = s2s_params_add(&m->params, name, rows, cols, k < 2 ? 2 : 1);
        if (idx[k] < 0)
            return S2S_ERR_INTERNAL;
    }
    return S2S_OK;
}

static void bind_rnn(s2s_model *m, s2s_rnn_w *w, const int *idx, int in, int hidden)
{
    w->cell = m->cfg.cell;
    w->in = in;
    w->H = hidden;
    w->G = m->G;
    w->w_ih = s2s_params_view(&m->params, idx[0]);
    w->w_hh = s2s_params_view(&m->params, idx[1]);
    w->b_ih = s2s_params_view(&m->params, idx[2]);
    w->b_hh = s2s_params_view(&m->params, idx[3]);
}

static int add1(s2s_model *m, const char *name, int rows, int cols, int ndim)
{
    return s2s_params_add(&m->params, name, rows, cols, ndim);
}

static s2s_status build(s2s_model *m)
{
    const s2s_model_config *c = &m->cfg;
    int H = c->hidden, E = c->embed, L = c->layers;
    int enc_idx[S2S_MAX_LAYERS][2][4], dec_idx[S2S_MAX_LAYERS][4];
    /* a tied tensor sits where its last gradient is written, so that its bucket of the
     * gradient block is reduced only once backward has added every role's part (train.c:
     * s2s_grad_phase): the source embedding's place (the encoder's backward comes last) for
     * ALL, the target embedding's for DECODER */
    int i_src = add1(m, "encoder.embedding.weight", c->src_vocab, E, 2);
    for (int l = 0; l < L; l++)
        for (int d = 0; d < m->dirs; d++)
            S2S_TRY(add_rnn(m, "encoder.rnn", l, d, l == 0 ? E : H, m->Hd, enc_idx[l][d]));
    int i_tgt = c->tie_embeddings == S2S_TIE_ALL ? i_src : add1(m, "decoder.embedding.weight", c->tgt_vocab, E, 2);
    for (int l = 0; l < L; l++)
        S2S_TRY(add_rnn(m, "decoder.rnn", l, 0, l == 0 ? E + (m->feed ? H : 0) : H, H, dec_idx[l]));
    int i_ain = c->attention == S2S_ATTN_GENERAL ? add1(m, "decoder.attn.linear_in.weight", H, H, 2) : -2;
    int i_aout = m->feed ? add1(m, "decoder.attn.linear_out.weight", H, 2 * H, 2) : -2;
    int i_gw = c->tie_embeddings ? i_tgt : add1(m, "generator.weight", c->tgt_vocab, H, 2);
    int i_gb = add1(m, "generator.bias", c->tgt_vocab, 1, 1);
    if (i_src < 0 || i_tgt < 0 || i_ain == -1 || i_aout == -1 || i_gw < 0 || i_gb < 0)
        return S2S_ERR_INTERNAL;
    S2S_TRY(s2s_params_alloc(&m->params));

    m->src_emb = s2s_params_view(&m->params, i_src);
    m->tgt_emb = s2s_params_view(&m->params, i_tgt);
    if (i_ain >= 0)
        m->attn_in = s2s_params_view(&m->params, i_ain);
    if (i_aout >= 0)
        m->attn_out = s2s_params_view(&m->params, i_aout);
    m->gen_w = s2s_params_view(&m->params, i_gw);
    m->gen_b = s2s_params_view(&m->params, i_gb);
    /* the decoder's part starts at its embedding, or (ALL: that is the source's) its first layer */
    m->dec_start = (size_t)((c->tie_embeddings == S2S_TIE_ALL ? s2s_params_view(&m->params, dec_idx[0][0]).g
                                                               : m->tgt_emb.g) -
                            m->params.grad);
    m->gen_start = (size_t)((c->tie_embeddings ? m->gen_b.g : m->gen_w.g) - m->params.grad);
    for (int l = 0; l < L; l++) {
        for (int d = 0; d < m->dirs; d++)
            bind_rnn(m, &m->enc[l][d], enc_idx[l][d], l == 0 ? E : H, m->Hd);
        bind_rnn(m, &m->dec[l], dec_idx[l], l == 0 ? E + (m->feed ? H : 0) : H, H);
    }
    return S2S_OK;
}

/* PyTorch's default initialisation, by tensor name. */
static s2s_status init_weights(s2s_model *m, uint64_t seed)
{
    s2s_init_kind kind[S2S_MAX_PARAMS];
    float bound[S2S_MAX_PARAMS];
    for (int i = 0; i < m->params.count; i++) {
        const char *n = m->params.t[i].name;
        kind[i] = S2S_INIT_UNIFORM;
        /* the tied tensor (an untied encoder embedding beside it keeps the embedding init) */
        if (m->cfg.tie_embeddings && m->params.grad + m->params.t[i].offset == m->gen_w.g) { /* as the output */
            bound[i] = 1.0f / sqrtf((float)m->cfg.hidden);
        } else if (strstr(n, "embedding")) {
            kind[i] = S2S_INIT_NORMAL_PAD0;
            bound[i] = 0.0f;
        } else if (strncmp(n, "encoder.rnn", 11) == 0) {
            bound[i] = 1.0f / sqrtf((float)m->Hd);
        } else if (strncmp(n, "decoder.rnn", 11) == 0 || strncmp(n, "generator", 9) == 0 ||
                   strstr(n, "linear_in")) {
            bound[i] = 1.0f / sqrtf((float)m->cfg.hidden);
        } else {
            bound[i] = 1.0f / sqrtf((float)(2 * m->cfg.hidden)); /* linear_out: fan_in 2H */
        }
    }
    return s2s_params_init_values(&m->params, seed, kind, bound);
}

S2S_API s2s_status s2s_model_init_uniform(s2s_model *m, float a)
{
    if (!m)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_init_uniform: model must not be NULL");
    if (!(a > 0.0f) || !isfinite(a))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_init_uniform: bound %g; use a finite value > 0 (0.1 is usual)",
                        (double)a);
    s2s_init_kind kind[S2S_MAX_PARAMS];
    float bound[S2S_MAX_PARAMS];
    for (int i = 0; i < m->params.count; i++) {
        kind[i] = strstr(m->params.t[i].name, "embedding") ? S2S_INIT_UNIFORM_PAD0 : S2S_INIT_UNIFORM;
        bound[i] = a;
    }
    return s2s_params_init_values(&m->params, m->ctx->opts.seed, kind, bound);
}

S2S_API s2s_status s2s_model_create(s2s_context *ctx, const s2s_model_config *cfg, s2s_model **out)
{
    return s2s_model_create_as(ctx, cfg, 1, out);
}

s2s_status s2s_model_create_as(s2s_context *ctx, const s2s_model_config *cfg, int init, s2s_model **out)
{
    if (!ctx || !cfg || !out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_create: ctx, cfg and out must not be NULL");
    *out = NULL;
    S2S_TRY(check_config(cfg));
    s2s_model *m = s2s_host_calloc(1, sizeof *m, "the model");
    if (!m)
        return S2S_ERR_OUT_OF_MEMORY;
    m->ctx = ctx;
    m->be = ctx->be;
    m->cfg = *cfg;
    m->dirs = cfg->bidirectional ? 2 : 1;
    m->Hd = cfg->hidden / m->dirs;
    m->G = s2s_cell_gates(cfg->cell);
    m->feed = cfg->attention != S2S_ATTN_NONE;
    s2s_params_init(&m->params, m->be);
    s2s_arena_init(&m->arena, m->be);
    m->use_graphs = 1;
    m->use_emb_proj = 1;
    s2s_status st = build(m);
    if (st == S2S_OK && init)
        st = init_weights(m, ctx->opts.seed);
    if (st == S2S_OK)
        st = m->be->ops->alloc(m->be, sizeof(uint64_t), (void **)&m->step_dev);
    if (st != S2S_OK) {
        s2s_model_free(m);
        return st;
    }
    *out = m;
    return S2S_OK;
}

S2S_API void s2s_model_free(s2s_model *m)
{
    if (!m)
        return;
    s2s_model_graphs_free(m);
    s2s_model_precision_free(m);
    m->be->ops->release(m->be, m->step_dev);
    s2s_arena_free(&m->arena);
    s2s_params_free(&m->params);
    free(m);
}

S2S_API s2s_model_config s2s_model_get_config(const s2s_model *m) { return m->cfg; }

S2S_API int s2s_model_param_count(const s2s_model *m) { return m ? m->params.count : 0; }

S2S_API size_t s2s_model_param_numel(const s2s_model *m)
{
    size_t n = 0;
    for (int i = 0; m && i < m->params.count; i++)
        n += m->params.t[i].numel;
    return n;
}

S2S_API s2s_status s2s_model_param_info_at(const s2s_model *m, int i, s2s_param_info *info)
{
    if (!m || !info)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_param_info_at: model and info must not be NULL");
    if (i < 0 || i >= m->params.count)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "parameter index %d out of range 0..%d", i, m->params.count - 1);
    info->name = m->params.t[i].name;
    info->ndim = m->params.t[i].ndim;
    info->shape[0] = m->params.t[i].shape[0];
    info->shape[1] = m->params.t[i].shape[1];
    info->numel = m->params.t[i].numel;
    return S2S_OK;
}

static s2s_status lookup(const s2s_model *m, const char *name, size_t numel, const void *data, int *idx)
{
    if (!m || !name || !data)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "model, name and data must not be NULL");
    *idx = s2s_params_find(&m->params, name);
    /* tied embeddings: every role's PyTorch name reaches the one tensor */
    if (*idx < 0 && m->cfg.tie_embeddings &&
        (!strcmp(name, "generator.weight") ||
         (m->cfg.tie_embeddings == S2S_TIE_ALL && !strcmp(name, "decoder.embedding.weight"))))
        *idx = s2s_params_find(&m->params, m->cfg.tie_embeddings == S2S_TIE_ALL ? "encoder.embedding.weight"
                                                                                 : "decoder.embedding.weight");
    if (*idx < 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "no parameter named '%s' in this model (see s2s_model_param_info_at)",
                        name);
    if (m->params.t[*idx].numel != numel)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "parameter '%s' has %zu elements, not %zu", name,
                        m->params.t[*idx].numel, numel);
    return S2S_OK;
}

S2S_API s2s_status s2s_model_param_get(const s2s_model *m, const char *name, float *data, size_t numel)
{
    int i;
    S2S_TRY(lookup(m, name, numel, data, &i));
    return m->be->ops->to_host(m->be, data, m->params.data + m->params.t[i].offset, numel * sizeof(float));
}

S2S_API s2s_status s2s_model_grad_get(const s2s_model *m, const char *name, float *data, size_t numel)
{
    int i;
    S2S_TRY(lookup(m, name, numel, data, &i));
    return m->be->ops->to_host(m->be, data, m->params.grad + m->params.t[i].offset, numel * sizeof(float));
}

S2S_API s2s_status s2s_model_param_set(s2s_model *m, const char *name, const float *data, size_t numel)
{
    int i;
    S2S_TRY(lookup(m, name, numel, data, &i));
    for (size_t e = 0; e < numel; e++)
        if (!isfinite(data[e]))
            return S2S_FAIL(S2S_ERR_NUMERIC, "parameter '%s': element %zu is not finite", name, e);
    s2s_model_weights_changed(m);
    return m->be->ops->to_device(m->be, m->params.data + m->params.t[i].offset, data, numel * sizeof(float));
}
