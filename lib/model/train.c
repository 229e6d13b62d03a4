/* train.c - one batch through the whole model: checks, upload, forward, loss, backward. */
#include "model.h"
#include <stdlib.h>
#include <string.h>

S2S_API s2s_loss_options s2s_loss_options_default(void)
{
    s2s_loss_options o;
    memset(&o, 0, sizeof o);
    o.label_smoothing = 0.0f;
    o.train = 1;
    o.step = 0;
    return o;
}

/* Offset of a tensor's gradient in the block; `size_t` -1 when the model has no such tensor. */
static size_t goff(const s2s_model *m, const s2s_pview *v) { return v->g ? (size_t)(v->g - m->params.grad) : (size_t)-1; }

s2s_status s2s_grad_phase(s2s_model *m, int phase)
{
    if (!m->grad_ready)
        return S2S_OK;
    /* the block's order: source embedding, encoder layers, target embedding, decoder layers,
     * attention in, attention out, generator (model.c's build); attention in's gradient is
     * written by the encoder's backward (the keys are the encoder's). Tied embeddings: the one
     * tensor sits in the first place of its roles, reduced after backward's last use of it */
    size_t total = m->params.total, gen = m->gen_start, tgt = m->dec_start;
    size_t ain = goff(m, &m->attn_in), aout = goff(m, &m->attn_out);
    size_t ain_end = aout != (size_t)-1 ? aout : gen, dec_end = ain != (size_t)-1 ? ain : gen;
    float *g = m->params.grad;
    if (phase == 0)
        return m->grad_ready(m->grad_ready_user, g + gen, total - gen);
    if (phase == 1) {
        S2S_TRY(m->grad_ready(m->grad_ready_user, g + tgt, dec_end - tgt));
        if (ain != (size_t)-1 && aout != (size_t)-1)
            S2S_TRY(m->grad_ready(m->grad_ready_user, g + aout, gen - aout));
        return S2S_OK;
    }
    S2S_TRY(m->grad_ready(m->grad_ready_user, g, tgt));
    if (ain != (size_t)-1)
        S2S_TRY(m->grad_ready(m->grad_ready_user, g + ain, ain_end - ain));
    return S2S_OK;
}

static s2s_status run_batch_ro(s2s_model *m, const s2s_batch *batch, const s2s_loss_options *o, int grad,
                               float *loss, int *ntokens)
{
    s2s_dev_batch db;
    s2s_enc_state es;
    s2s_dec_state ds;
    /* train: activations kept for backward; dropout only where o->train asks for it */
    int train = grad;
    m->dropout_off = !o->train;
    m->shard_rows = o->shard_rows, m->shard_row0 = o->shard_row0;
    int H = m->cfg.hidden;
    s2s_word_drop wd = {train && o->train ? o->word_dropout : 0.0f, o->step};
    S2S_TRY(s2s_batch_upload(m, batch, 1, &wd, &db));
    if (s2s_dropout_on(m, train)) /* the recorded decoder loops read their masks' step from here */
        S2S_TRY(m->be->ops->to_device(m->be, m->step_dev, &o->step, sizeof(uint64_t)));
    S2S_TRY(s2s_encoder_fwd(m, &db, train, o->step, &es));
    S2S_TRY(s2s_decoder_fwd(m, &db, &es, &ds, train, o->step));
    size_t N = (size_t)db.T * db.B;
    float *dht = NULL;
    if (grad)
        S2S_TRY(s2s_arena_floats(&m->arena, N * H, &dht));
    double sum = 0.0;
    int norm = o->norm_tokens > 0 ? o->norm_tokens : db.ntokens;
    S2S_TRY(s2s_generator_loss(m, ds.ht, db.tgt_out, (int)N, db.B, norm, o->label_smoothing, train, o->step, grad,
                               &sum, dht));
    if (loss)
        *loss = (float)(sum / (db.ntokens > 0 ? db.ntokens : 1));
    if (ntokens)
        *ntokens = db.ntokens;
    if (!grad)
        return S2S_OK;
    S2S_TRY(s2s_grad_phase(m, 0));
    float *dkeys = NULL, *dout = NULL, *dh0[S2S_MAX_LAYERS], *dc0[S2S_MAX_LAYERS];
    size_t SBH = (size_t)db.S * db.B * H;
    if (m->feed) {
        S2S_TRY(s2s_arena_zeros(&m->arena, SBH, &dout));
        dkeys = dout;
        if (m->cfg.attention == S2S_ATTN_GENERAL)
            S2S_TRY(s2s_arena_zeros(&m->arena, SBH, &dkeys));
    }
    S2S_TRY(s2s_decoder_bwd(m, &db, &es, &ds, dht, dkeys, dout, dh0, dc0, train, o->step));
    S2S_TRY(s2s_grad_phase(m, 1));
    S2S_TRY(s2s_encoder_bwd(m, &db, &es, dkeys, dout, dh0, dc0, train, o->step));
    return s2s_grad_phase(m, 2);
}

/* One batch forward (and backward with grad), the weights declared read-only meanwhile: nothing
 * writes them until the optimizer runs, so the backend may keep converted copies (bf16 on the
 * CPU) for the whole batch instead of converting them at every product. */
static s2s_status run_batch(s2s_model *m, const s2s_batch *batch, const s2s_loss_options *o, int grad, float *loss,
                            int *ntokens)
{
    S2S_TRY(m->be->ops->read_only(m->be, m->params.data, m->params.total));
    s2s_status st = run_batch_ro(m, batch, o, grad, loss, ntokens);
    s2s_status st2 = m->be->ops->read_only(m->be, NULL, 0);
    return st != S2S_OK ? st : st2;
}

S2S_API s2s_status s2s_model_forward_backward(s2s_model *m, const s2s_batch *batch, const s2s_loss_options *opts,
                                              float *loss, int *ntokens)
{
    if (!m || !batch)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_forward_backward: model and batch must not be NULL");
    s2s_loss_options o = opts ? *opts : s2s_loss_options_default();
    if (!(o.label_smoothing >= 0.0f && o.label_smoothing < 1.0f))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "label_smoothing = %g; use 0 <= eps < 1", o.label_smoothing);
    if (!(o.word_dropout >= 0.0f && o.word_dropout < 1.0f))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "word_dropout = %g; use 0 <= p < 1", o.word_dropout);
    if (o.norm_tokens < 0 || o.shard_rows < 0 ||
        (o.shard_rows > 0 && (o.shard_row0 < 0 || o.shard_row0 + batch->batch > o.shard_rows)))
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "loss options: norm_tokens %d must be >= 0; a shard of %d rows at row %d does not fit a "
                        "batch of %d rows",
                        o.norm_tokens, batch->batch, o.shard_row0, o.shard_rows);
    S2S_TRY(m->be->ops->fill(m->be, m->params.grad, m->params.total, 0.0f));
    s2s_status st = run_batch(m, batch, &o, 1, loss, ntokens);
    m->shard_rows = m->shard_row0 = 0;
    s2s_arena_reset(&m->arena);
    return st;
}

S2S_API s2s_status s2s_model_evaluate(s2s_model *m, const s2s_batch *batch, float *loss, int *ntokens)
{
    if (!m || !batch)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_evaluate: model and batch must not be NULL");
    s2s_loss_options o = s2s_loss_options_default();
    o.train = 0;
    s2s_status st = run_batch(m, batch, &o, 0, loss, ntokens);
    s2s_arena_reset(&m->arena);
    return st;
}

S2S_API s2s_status s2s_model_score(s2s_model *m, const s2s_batch *batch, float *logp)
{
    if (!m || !batch || !logp || batch->batch < 1 || !batch->src || !batch->src_len || !batch->tgt || !batch->tgt_len)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_score: model, a batch with targets and logp are needed");
    int S, Tmax; /* the whole batch checked first, so that a message names the caller's row */
    S2S_TRY(s2s_batch_check(m, batch, 1, &S, &Tmax));
    s2s_loss_options o = s2s_loss_options_default();
    o.train = 0;
    s2s_status st = S2S_OK;
    for (int b = 0; b < batch->batch && st == S2S_OK; b++) {
        /* row b alone: its sums stay its own (the loss kernels add over the whole batch) */
        s2s_batch row = {1, batch->src_max_len, batch->tgt_max_len, batch->src + (size_t)b * batch->src_max_len,
                         batch->src_len + b, batch->tgt + (size_t)b * batch->tgt_max_len, batch->tgt_len + b};
        float loss = 0.0f;
        int n = 0;
        st = run_batch(m, &row, &o, 0, &loss, &n);
        s2s_arena_reset(&m->arena);
        if (st == S2S_OK)
            logp[b] = -loss * (float)n;
    }
    return st;
}
