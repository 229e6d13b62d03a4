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

static s2s_status check_side(const char *side, const int32_t *ids, const int32_t *len, int B, int max_len,
                             int min_len, int vocab, int *longest)
{
    *longest = 0;
    for (int b = 0; b < B; b++) {
        if (len[b] < min_len || len[b] > max_len)
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "batch: %s length of row %d is %d; it must be in %d..%d", side, b,
                            len[b], min_len, max_len);
        for (int i = 0; i < len[b]; i++) {
            int v = ids[(size_t)b * max_len + i];
            if (v < 0 || v >= vocab || v == S2S_PAD_ID)
                return S2S_FAIL(S2S_ERR_INVALID_ARG,
                                "batch: %s token %d of row %d is id %d; ids must be in 1..%d (0 is padding)", side, i,
                                b, v, vocab - 1);
        }
        if (len[b] > *longest)
            *longest = len[b];
    }
    return S2S_OK;
}

s2s_status s2s_batch_upload(s2s_model *m, const s2s_batch *bt, int need_tgt, s2s_dev_batch *db)
{
    if (!bt || !bt->src || !bt->src_len || bt->batch < 1 || bt->src_max_len < 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "batch: src, src_len must be set, batch >= 1 and src_max_len >= 1");
    if (need_tgt && (!bt->tgt || !bt->tgt_len || bt->tgt_max_len < 0))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "batch: training needs tgt and tgt_len");
    int B = bt->batch, S, Tm = 0;
    S2S_TRY(check_side("source", bt->src, bt->src_len, B, bt->src_max_len, 1, m->cfg.src_vocab, &S));
    if (need_tgt)
        S2S_TRY(check_side("target", bt->tgt, bt->tgt_len, B, bt->tgt_max_len, 0, m->cfg.tgt_vocab, &Tm));
    memset(db, 0, sizeof *db);
    db->B = B;
    db->S = S;
    db->T = Tm + 1;
    size_t nsrc = (size_t)S * B, ntgt = need_tgt ? (size_t)db->T * B : 0;
    size_t nhost = nsrc + B + 2 * ntgt;
    int32_t *h = s2s_host_calloc(nhost, sizeof(int32_t), "batch token ids");
    if (!h)
        return S2S_ERR_OUT_OF_MEMORY;
    /* time-major: row t*B + b */
    for (int b = 0; b < B; b++) {
        for (int s = 0; s < bt->src_len[b]; s++)
            h[(size_t)s * B + b] = bt->src[(size_t)b * bt->src_max_len + s];
        h[nsrc + b] = bt->src_len[b];
    }
    int ntok = 0;
    if (need_tgt) {
        int32_t *tin = h + nsrc + B, *tout = tin + ntgt;
        for (int b = 0; b < B; b++) {
            int n = bt->tgt_len[b];
            const int32_t *y = bt->tgt + (size_t)b * bt->tgt_max_len;
            tin[b] = S2S_BOS_ID;
            for (int t = 0; t < n; t++) {
                tin[(size_t)(t + 1) * B + b] = y[t];
                tout[(size_t)t * B + b] = y[t];
            }
            tout[(size_t)n * B + b] = S2S_EOS_ID;
            ntok += n + 1;
        }
    }
    db->ntokens = ntok;
    int32_t *d;
    s2s_status st = s2s_arena_ints(&m->arena, nhost, &d);
    if (st == S2S_OK)
        st = m->be->ops->to_device(m->be, d, h, nhost * sizeof(int32_t));
    free(h);
    S2S_TRY(st);
    db->src = d;
    db->src_len = d + nsrc;
    db->src_len_host = bt->src_len;
    if (need_tgt) {
        db->tgt_in = d + nsrc + B;
        db->tgt_out = db->tgt_in + ntgt;
    }
    return S2S_OK;
}

static s2s_status run_batch(s2s_model *m, const s2s_batch *batch, const s2s_loss_options *o, int grad, float *loss,
                            int *ntokens)
{
    s2s_dev_batch db;
    s2s_enc_state es;
    s2s_dec_state ds;
    /* train: activations kept for backward; dropout only where o->train asks for it */
    int train = grad;
    m->dropout_off = !o->train;
    int H = m->cfg.hidden;
    S2S_TRY(s2s_batch_upload(m, batch, 1, &db));
    if (s2s_dropout_on(m, train)) /* the recorded decoder loops read their masks' step from here */
        S2S_TRY(m->be->ops->to_device(m->be, m->step_dev, &o->step, sizeof(uint64_t)));
    S2S_TRY(s2s_encoder_fwd(m, &db, train, o->step, &es));
    S2S_TRY(s2s_decoder_fwd(m, &db, &es, &ds, train, o->step));
    size_t N = (size_t)db.T * db.B;
    float *dht = NULL;
    if (grad)
        S2S_TRY(s2s_arena_floats(&m->arena, N * H, &dht));
    double sum = 0.0;
    S2S_TRY(s2s_generator_loss(m, ds.ht, db.tgt_out, (int)N, db.ntokens, o->label_smoothing, train, o->step, grad,
                               &sum, dht));
    if (loss)
        *loss = (float)(sum / (db.ntokens > 0 ? db.ntokens : 1));
    if (ntokens)
        *ntokens = db.ntokens;
    if (!grad)
        return S2S_OK;
    float *dkeys = NULL, *dout = NULL, *dh0[S2S_MAX_LAYERS], *dc0[S2S_MAX_LAYERS];
    size_t SBH = (size_t)db.S * db.B * H;
    if (m->feed) {
        S2S_TRY(s2s_arena_zeros(&m->arena, SBH, &dout));
        dkeys = dout;
        if (m->cfg.attention == S2S_ATTN_GENERAL)
            S2S_TRY(s2s_arena_zeros(&m->arena, SBH, &dkeys));
    }
    S2S_TRY(s2s_decoder_bwd(m, &db, &es, &ds, dht, dkeys, dout, dh0, dc0, train, o->step));
    return s2s_encoder_bwd(m, &db, &es, dkeys, dout, dh0, dc0, train, o->step);
}

S2S_API s2s_status s2s_model_forward_backward(s2s_model *m, const s2s_batch *batch, const s2s_loss_options *opts,
                                              float *loss, int *ntokens)
{
    if (!m || !batch)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_forward_backward: model and batch must not be NULL");
    s2s_loss_options o = opts ? *opts : s2s_loss_options_default();
    if (!(o.label_smoothing >= 0.0f && o.label_smoothing < 1.0f))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "label_smoothing = %g; use 0 <= eps < 1", o.label_smoothing);
    S2S_TRY(m->be->ops->fill(m->be, m->params.grad, m->params.total, 0.0f));
    s2s_status st = run_batch(m, batch, &o, 1, loss, ntokens);
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
    int longest; /* the whole batch checked first, so that a message names the caller's row */
    S2S_TRY(check_side("source", batch->src, batch->src_len, batch->batch, batch->src_max_len, 1, m->cfg.src_vocab,
                       &longest));
    S2S_TRY(check_side("target", batch->tgt, batch->tgt_len, batch->batch, batch->tgt_max_len, 0, m->cfg.tgt_vocab,
                       &longest));
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
