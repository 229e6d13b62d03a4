/* decoder.c - the attention decoder with input feeding, one step at a time, the generator
 * with its fused loss, and backward through all of it.
 *
 * The teacher-forced time loop, forward and backward, is one fixed op sequence per (batch,
 * source length, target length): graphs.c records it and replays it. Its dropout masks read
 * the training step from m->step_dev (the caller stores it there), so one recording serves
 * every step. */
#include "model.h"

#define OPS (m->be->ops)
#define ROWS(p, t, B, D) ((p) + (size_t)(t) * (size_t)(B) * (size_t)(D))

s2s_status s2s_decoder_init(s2s_model *m, const s2s_enc_state *es, int T, int B, int train, s2s_dec_state *ds)
{
    int H = m->cfg.hidden, L = m->cfg.layers;
    size_t TB = (size_t)T * B;
    ds->T = T;
    ds->B = B;
    ds->emb = NULL;
    for (int l = 0; l < L; l++) {
        /* The decoder is not masked: positions past a target's end are cut off by the loss. */
        S2S_TRY(s2s_rnn_run_init(&m->arena, &m->dec[l], T, B, 0, NULL, es->hfin[l], es->cfin[l], train, &ds->run[l]));
        ds->xin[l] = NULL;
        if (l > 0)
            ds->xin[l] = ds->run[l - 1].y;
        if (l > 0 && s2s_dropout_on(m, train))
            S2S_TRY(s2s_arena_floats(&m->arena, TB * H, &ds->xin[l]));
    }
    ds->ctx = ds->alpha = NULL;
    if (m->feed) {
        S2S_TRY(s2s_arena_floats(&m->arena, TB * H, &ds->ctx));
        S2S_TRY(s2s_arena_floats(&m->arena, TB * (size_t)es->S, &ds->alpha));
        S2S_TRY(s2s_arena_floats(&m->arena, TB * H, &ds->ht));
    } else {
        ds->ht = ds->run[L - 1].y;
    }
    ds->step_emb = ds->logits = ds->row_tmp = NULL;
    ds->ht0 = NULL;
    return S2S_OK;
}

s2s_status s2s_decoder_step_fwd(s2s_model *m, const s2s_dev_batch *db, const s2s_enc_state *es, s2s_dec_state *ds,
                                int t, int train)
{
    int H = m->cfg.hidden, E = m->cfg.embed, L = m->cfg.layers, B = ds->B, S = es->S;
    size_t BH = (size_t)B * H;
    const float *fed = t > 0 ? ROWS(ds->ht, t - 1, B, H) : ds->ht0;
    if (m->feed && fed) /* input feeding: xp0[t] += ht[t-1] W_ih0[:, E:E+H]^T */
        S2S_TRY(s2s_rnn_project(m->be, &m->dec[0], &ds->run[0], fed, H, E, H, t, 1));
    for (int l = 0; l < L; l++) {
        if (l > 0) {
            float *x = ROWS(ds->xin[l], t, B, H);
            if (s2s_dropout_on(m, train))
                S2S_TRY(OPS->dropout_at(m->be, x, ROWS(ds->run[l - 1].y, t, B, H), BH, m->cfg.dropout,
                                        m->ctx->opts.seed, s2s_dropout_stream(0, SITE_DEC_LAYER + l, t), m->step_dev,
                                        S2S_DROP_ROWS(m, B, H)));
            S2S_TRY(s2s_rnn_project(m->be, &m->dec[l], &ds->run[l], x, H, 0, H, t, 1));
        }
        S2S_TRY(s2s_rnn_step_fwd(m->be, &m->dec[l], &ds->run[l], t));
    }
    if (!m->feed)
        return S2S_OK;
    const float *h = ROWS(ds->run[L - 1].y, t, B, H);
    float *ctx = ROWS(ds->ctx, t, B, H), *ht = ROWS(ds->ht, t, B, H);
    S2S_TRY(OPS->attn_fwd(m->be, S, B, H, es->keys, es->out[L - 1], h, db->src_len, ROWS(ds->alpha, t, B, S), ctx));
    /* ht = tanh(W_c [ctx ; h]) as two GEMMs on the column blocks of W_c [H, 2H] */
    S2S_TRY(s2s_linear(m->be, m->pk_attn_out[0], B, H, H, ctx, H, m->attn_out.w, 2 * H, 0, 0.0f, ht, H));
    S2S_TRY(s2s_linear(m->be, m->pk_attn_out[1], B, H, H, h, H, m->attn_out.w + H, 2 * H, 0, 1.0f, ht, H));
    return OPS->tanh_fwd(m->be, ht, ht, BH);
}

typedef struct fwd_args {
    const s2s_dev_batch *db;
    const s2s_enc_state *es;
    s2s_dec_state *ds;
    int train;
} fwd_args;

static s2s_status fwd_loop(s2s_model *m, void *arg)
{
    fwd_args *a = arg;
    for (int t = 0; t < a->ds->T; t++)
        S2S_TRY(s2s_decoder_step_fwd(m, a->db, a->es, a->ds, t, a->train));
    return S2S_OK;
}

s2s_status s2s_decoder_fwd(s2s_model *m, const s2s_dev_batch *db, const s2s_enc_state *es, s2s_dec_state *ds,
                           int train, uint64_t step)
{
    int E = m->cfg.embed, T = db->T, B = db->B;
    size_t TB = (size_t)T * B;
    S2S_TRY(s2s_decoder_init(m, es, T, B, train, ds));
    for (int l = 0; l < m->cfg.layers; l++)
        S2S_TRY(s2s_rnn_bias(m->be, &m->dec[l], &ds->run[l]));
    float *emb;
    S2S_TRY(s2s_arena_floats(&m->arena, TB * E, &emb));
    S2S_TRY(OPS->gather_rows(m->be, emb, E, m->tgt_emb.w, db->tgt_in, (int)TB, E));
    if (s2s_dropout_on(m, train))
        S2S_TRY(OPS->dropout(m->be, emb, emb, TB * E, m->cfg.dropout, m->ctx->opts.seed,
                             s2s_dropout_stream(step, SITE_DEC_EMB, 0), S2S_DROP_ROWS(m, B, E)));
    ds->emb = emb;
    /* The embedding half of layer 0's input projection, for all steps in one GEMM. */
    S2S_TRY(s2s_rnn_project(m->be, &m->dec[0], &ds->run[0], emb, E, 0, E, 0, T));
    fwd_args a = {db, es, ds, train};
    const int key[S2S_GRAPH_KEY] = {S2S_GRAPH_DEC_FWD, B, db->S, T, train, s2s_dropout_on(m, train), m->shard_rows,
                                    m->shard_row0};
    return s2s_graph_run(m, key, fwd_loop, &a);
}

/* ---- the decoder step of every search ----------------------------------------------------- */

s2s_status s2s_decoder_search_init(s2s_model *m, const s2s_enc_state *es, int T, int B, s2s_dec_state *ds)
{
    S2S_TRY(s2s_decoder_init(m, es, T, B, 0, ds));
    S2S_TRY(s2s_arena_floats(&m->arena, (size_t)B * m->cfg.embed, &ds->step_emb));
    S2S_TRY(s2s_arena_floats(&m->arena, (size_t)B * m->cfg.tgt_vocab, &ds->logits));
    return s2s_arena_floats(&m->arena, (size_t)B * m->cfg.hidden, &ds->row_tmp);
}

s2s_status s2s_decoder_search_step(s2s_model *m, const s2s_dev_batch *db, const s2s_enc_state *es, s2s_dec_state *ds,
                                   const int32_t *ids, int t)
{
    int E = m->cfg.embed, H = m->cfg.hidden, B = ds->B, GH = m->G * H;
    /* each layer's biases for this step only (a search's T is its longest possible length) */
    for (int l = m->emb_proj ? 1 : 0; l < m->cfg.layers; l++)
        S2S_TRY(s2s_rnn_bias_steps(m->be, &m->dec[l], &ds->run[l], t, 1));
    if (m->emb_proj) { /* bias + emb W_ih0[:, :E]^T, looked up (precision.c) */
        S2S_TRY(OPS->gather_rows(m->be, ds->run[0].xp + (size_t)t * B * GH, GH, m->emb_proj, ids, B, GH));
    } else {
        S2S_TRY(OPS->gather_rows(m->be, ds->step_emb, E, m->tgt_emb.w, ids, B, E));
        S2S_TRY(s2s_rnn_project(m->be, &m->dec[0], &ds->run[0], ds->step_emb, E, 0, E, t, 1));
    }
    S2S_TRY(s2s_decoder_step_fwd(m, db, es, ds, t, 0));
    return s2s_generator_logits(m, ROWS(ds->ht, t, B, H), B, ds->logits);
}

s2s_status s2s_decoder_reorder(s2s_model *m, s2s_dec_state *ds, int t, const int32_t *parent)
{
    int H = m->cfg.hidden, B = ds->B;
    float *rows[2 * S2S_MAX_LAYERS + 1];
    int n = 0;
    for (int l = 0; l < m->cfg.layers; l++) {
        rows[n++] = ROWS(ds->run[l].hs, t, B, H);
        if (ds->run[l].cs)
            rows[n++] = ROWS(ds->run[l].cs, t, B, H);
    }
    if (m->feed) /* without attention ht is the top layer's y, which the next step does not read */
        rows[n++] = ROWS(ds->ht, t, B, H);
    for (int i = 0; i < n; i++) {
        S2S_TRY(OPS->gather_rows(m->be, ds->row_tmp, H, rows[i], parent, B, H));
        S2S_TRY(OPS->copy(m->be, rows[i], ds->row_tmp, sizeof(float) * (size_t)B * H));
    }
    return S2S_OK;
}

s2s_status s2s_generator_logits(s2s_model *m, const float *x, int N, float *logits)
{
    int H = m->cfg.hidden, V = m->cfg.tgt_vocab;
    return s2s_linear_bias(m->be, m->pk_gen, N, V, H, x, H, m->gen_w.w, H, m->gen_b.w, logits, V);
}

s2s_status s2s_generator_loss(s2s_model *m, const float *ht, const int32_t *tgt, int N, int B, int ntokens, float smoothing,
                              int train, uint64_t step, int grad, double *loss_sum, float *dht)
{
    int H = m->cfg.hidden, V = m->cfg.tgt_vocab;
    const float *x = ht;
    float *xd = NULL, *logits, *row_loss;
    if (s2s_dropout_on(m, train)) {
        S2S_TRY(s2s_arena_floats(&m->arena, (size_t)N * H, &xd));
        S2S_TRY(OPS->dropout(m->be, xd, ht, (size_t)N * H, m->cfg.dropout, m->ctx->opts.seed,
                             s2s_dropout_stream(step, SITE_GEN, 0), S2S_DROP_ROWS(m, B, H)));
        x = xd;
    }
    S2S_TRY(s2s_arena_floats(&m->arena, (size_t)N * V, &logits));
    S2S_TRY(s2s_arena_floats(&m->arena, (size_t)N, &row_loss));
    S2S_TRY(s2s_generator_logits(m, x, N, logits));
    float scale = grad ? 1.0f / (float)(ntokens > 0 ? ntokens : 1) : 0.0f;
    S2S_TRY(OPS->xent(m->be, logits, tgt, N, V, S2S_PAD_ID, smoothing, scale, row_loss));
    S2S_TRY(OPS->sum(m->be, row_loss, (size_t)N, loss_sum));
    if (!grad)
        return S2S_OK;
    /* logits now hold dlogits: dW_g += dlogits^T x; db_g += colsum; dx = dlogits W_g */
    S2S_TRY(OPS->gemm(m->be, 1, 0, V, H, N, 1.0f, logits, V, x, H, 1.0f, m->gen_w.g, H));
    S2S_TRY(OPS->colsum(m->be, m->gen_b.g, logits, N, V, V));
    S2S_TRY(OPS->gemm(m->be, 0, 0, N, H, V, 1.0f, logits, V, m->gen_w.w, H, 0.0f, dht, H));
    if (xd)
        S2S_TRY(OPS->dropout(m->be, dht, dht, (size_t)N * H, m->cfg.dropout, m->ctx->opts.seed,
                             s2s_dropout_stream(step, SITE_GEN, 0), S2S_DROP_ROWS(m, B, H)));
    return S2S_OK;
}

/* Backward through step t's attention: from dht[t] to the top layer's output gradient dtop,
 * keeping step t's dctx and dscore for the keys' and values' gradients (attn_bwd_kv, after
 * the time loop). */
static s2s_status attn_step_bwd(s2s_model *m, const s2s_dev_batch *db, const s2s_enc_state *es, s2s_dec_state *ds,
                                float *dht_all, float *dpre_c, int t, float *dctx_all, float *dscore_all, float *dtop)
{
    int H = m->cfg.hidden, L = m->cfg.layers, B = ds->B, S = es->S;
    float *dp = ROWS(dpre_c, t, B, H), *dctx = ROWS(dctx_all, t, B, H);
    S2S_TRY(OPS->tanh_bwd(m->be, dp, ROWS(ds->ht, t, B, H), ROWS(dht_all, t, B, H), (size_t)B * H));
    S2S_TRY(OPS->gemm(m->be, 0, 0, B, H, H, 1.0f, dp, H, m->attn_out.w, 2 * H, 0.0f, dctx, H));
    S2S_TRY(OPS->gemm(m->be, 0, 0, B, H, H, 1.0f, dp, H, m->attn_out.w + H, 2 * H, 0.0f, dtop, H));
    return OPS->attn_bwd(m->be, S, B, H, es->keys, es->out[L - 1], ROWS(ds->alpha, t, B, S), dctx, db->src_len, dtop,
                         ROWS(dscore_all, t, B, S));
}

typedef struct bwd_args {
    const s2s_dev_batch *db;
    const s2s_enc_state *es;
    s2s_dec_state *ds;
    s2s_rnn_grad *g;
    float *dht, *dpre_c, *dctx, *dscore, *dtop, *dx;
    int train;
} bwd_args;

/* The time loop of the decoder's backward, last step first. */
static s2s_status bwd_loop(s2s_model *m, void *arg)
{
    bwd_args *a = arg;
    s2s_dec_state *ds = a->ds;
    s2s_rnn_grad *g = a->g;
    int H = m->cfg.hidden, E = m->cfg.embed, L = m->cfg.layers, B = ds->B, G = m->G;
    size_t BH = (size_t)B * H;
    for (int t = ds->T - 1; t >= 0; t--) {
        const float *dy = ROWS(a->dht, t, B, H);
        if (m->feed) {
            S2S_TRY(attn_step_bwd(m, a->db, a->es, ds, a->dht, a->dpre_c, t, a->dctx, a->dscore, a->dtop));
            dy = a->dtop;
        }
        for (int l = L - 1; l >= 0; l--) {
            S2S_TRY(s2s_rnn_step_bwd(m->be, &m->dec[l], &ds->run[l], &g[l], dy, t));
            if (l == 0)
                break;
            /* gradient at this layer's input x_t = dropout(h_{l-1,t}): dpre_t W_ih */
            S2S_TRY(OPS->gemm(m->be, 0, 0, B, H, G * H, 1.0f, ROWS(g[l].dpre, t, B, G * H), G * H, m->dec[l].w_ih.w,
                              H, 0.0f, a->dx, H));
            if (s2s_dropout_on(m, a->train))
                S2S_TRY(OPS->dropout_at(m->be, a->dx, a->dx, BH, m->cfg.dropout, m->ctx->opts.seed,
                                        s2s_dropout_stream(0, SITE_DEC_LAYER + l, t), m->step_dev,
                                        S2S_DROP_ROWS(m, B, H)));
            dy = a->dx;
        }
        if (m->feed && t > 0) /* input feeding: dht[t-1] += dpre0_t W_ih0[:, E:] */
            S2S_TRY(OPS->gemm(m->be, 0, 0, B, H, G * H, 1.0f, ROWS(g[0].dpre, t, B, G * H), G * H,
                              m->dec[0].w_ih.w + E, E + H, 1.0f, ROWS(a->dht, t - 1, B, H), H));
    }
    return S2S_OK;
}

s2s_status s2s_decoder_bwd(s2s_model *m, const s2s_dev_batch *db, const s2s_enc_state *es, s2s_dec_state *ds,
                           const float *dht_in, float *dkeys, float *dout, float **dh0, float **dc0, int train,
                           uint64_t step)
{
    int H = m->cfg.hidden, E = m->cfg.embed, L = m->cfg.layers, T = ds->T, B = ds->B, G = m->G;
    size_t TB = (size_t)T * B, BH = (size_t)B * H;
    s2s_rnn_grad g[S2S_MAX_LAYERS];
    float *dht = (float *)dht_in, *dpre_c = NULL, *dctx = NULL, *dscore = NULL, *dtop = NULL, *dx;
    for (int l = 0; l < L; l++)
        S2S_TRY(s2s_rnn_grad_init(&m->arena, m->be, &m->dec[l], &ds->run[l], NULL, NULL, &g[l]));
    if (m->feed) {
        S2S_TRY(s2s_arena_floats(&m->arena, TB * H, &dpre_c));
        S2S_TRY(s2s_arena_floats(&m->arena, TB * H, &dctx));
        S2S_TRY(s2s_arena_floats(&m->arena, TB * (size_t)es->S, &dscore));
        S2S_TRY(s2s_arena_floats(&m->arena, BH, &dtop));
    }
    S2S_TRY(s2s_arena_floats(&m->arena, BH, &dx));
    bwd_args a = {db, es, ds, g, dht, dpre_c, dctx, dscore, dtop, dx, train};
    const int key[S2S_GRAPH_KEY] = {S2S_GRAPH_DEC_BWD, B, db->S, T, train, s2s_dropout_on(m, train), m->shard_rows,
                                    m->shard_row0};
    S2S_TRY(s2s_graph_run(m, key, bwd_loop, &a));
    if (m->feed) { /* the keys' and values' gradients of every step in one pass */
        S2S_TRY(OPS->attn_bwd_kv(m->be, es->S, T, B, H, ds->run[L - 1].y, ds->alpha, dscore, dctx, db->src_len, dkeys,
                                 dout));
        /* dW_c: [ctx ; h] blocks, all steps in two GEMMs */
        S2S_TRY(OPS->gemm(m->be, 1, 0, H, H, (int)TB, 1.0f, dpre_c, H, ds->ctx, H, 1.0f, m->attn_out.g, 2 * H));
        S2S_TRY(OPS->gemm(m->be, 1, 0, H, H, (int)TB, 1.0f, dpre_c, H, ds->run[L - 1].y, H, 1.0f, m->attn_out.g + H,
                          2 * H));
    }
    for (int l = 0; l < L; l++) {
        const float *x = l == 0 ? ds->emb : ds->xin[l];
        S2S_TRY(s2s_rnn_weight_grads(m->be, &m->dec[l], &ds->run[l], &g[l], x, l == 0 ? E : H, 0, l == 0 ? E : H));
        dh0[l] = g[l].dh;
        dc0[l] = g[l].dc;
    }
    if (m->feed && T > 1) /* the fed block of W_ih0: steps 1..T-1 paired with ht of 0..T-2 */
        S2S_TRY(OPS->gemm(m->be, 1, 0, G * H, H, (int)((T - 1) * B), 1.0f, ROWS(g[0].dpre, 1, B, G * H), G * H,
                          ds->ht, H, 1.0f, m->dec[0].w_ih.g + E, E + H));
    float *demb;
    S2S_TRY(s2s_arena_floats(&m->arena, TB * E, &demb));
    S2S_TRY(s2s_rnn_input_grad(m->be, &m->dec[0], &ds->run[0], &g[0], demb, E, 0, E, 0.0f));
    if (s2s_dropout_on(m, train))
        S2S_TRY(OPS->dropout(m->be, demb, demb, TB * E, m->cfg.dropout, m->ctx->opts.seed,
                             s2s_dropout_stream(step, SITE_DEC_EMB, 0), S2S_DROP_ROWS(m, B, E)));
    return OPS->embed_bwd(m->be, m->tgt_emb.g, demb, E, db->tgt_in, (int)TB, E, m->cfg.tgt_vocab, S2S_PAD_ID);
}
