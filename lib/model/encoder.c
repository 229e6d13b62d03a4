/* encoder.c - the encoder stack: embedding, stacked (bi)directional recurrent layers, final
 * states for the decoder and attention keys; forward and backward. */
#include "model.h"

#define OPS (m->be->ops)

/* y = dropout(x) when training with p > 0; else y aliases x (no copy). */
static s2s_status maybe_dropout(s2s_model *m, int train, const float *x, size_t n, int B, int width, uint64_t step,
                                int site, int index, float **y)
{
    if (!s2s_dropout_on(m, train)) {
        *y = (float *)x;
        return S2S_OK;
    }
    S2S_TRY(s2s_arena_floats(&m->arena, n, y));
    return OPS->dropout(m->be, *y, x, n, m->cfg.dropout, m->ctx->opts.seed, s2s_dropout_stream(step, site, index),
                        S2S_DROP_ROWS(m, B, width));
}

/* Dropout between unidirectional layers, one stream per time step (nn.h). */
static s2s_rnn_drop layer_drop(const s2s_model *m, int train, uint64_t step)
{
    s2s_rnn_drop d = {s2s_dropout_on(m, train) ? m->cfg.dropout : 0.0f, m->ctx->opts.seed, step, SITE_ENC_LAYER,
                      m->shard_rows, m->shard_row0};
    return d;
}

s2s_status s2s_encoder_fwd(s2s_model *m, const s2s_dev_batch *db, int train, uint64_t step, s2s_enc_state *es)
{
    int S = db->S, B = db->B, E = m->cfg.embed, H = m->cfg.hidden, L = m->cfg.layers;
    size_t SB = (size_t)S * B;
    es->S = S;
    es->B = B;
    float *emb;
    S2S_TRY(s2s_arena_floats(&m->arena, SB * E, &emb));
    S2S_TRY(OPS->gather_rows(m->be, emb, E, m->src_emb.w, db->src, (int)SB, E));
    S2S_TRY(maybe_dropout(m, train, emb, SB * E, B, E, step, SITE_ENC_EMB, 0, &es->in[0]));
    if (m->dirs == 1) { /* the layers as one wavefront */
        const s2s_rnn_w *w[S2S_MAX_LAYERS];
        s2s_rnn_run *run[S2S_MAX_LAYERS];
        const float *in[S2S_MAX_LAYERS];
        for (int l = 0; l < L; l++)
            w[l] = &m->enc[l][0], run[l] = &es->run[l][0];
        in[0] = es->in[0];
        s2s_rnn_drop drop = layer_drop(m, train, step);
        S2S_TRY(s2s_rnn_stack_fwd(&m->arena, m->be, L, w, run, S, B, db->src_len, db->src_len_host, train, &drop, in));
        for (int l = 0; l < L; l++) {
            es->in[l] = (float *)in[l];
            es->out[l] = run[l]->y;
            es->hfin[l] = s2s_rnn_h_final(run[l]);
            es->cfin[l] = s2s_rnn_c_final(run[l]);
        }
    }
    for (int l = 0; m->dirs == 2 && l < L; l++) {
        int in = l == 0 ? E : H;
        s2s_rnn_run *r = es->run[l];
        S2S_TRY(s2s_rnn_bidir_fwd(&m->arena, m->be, m->enc[l], r, S, B, db->src_len, db->src_len_host, train, es->in[l],
                                  in));
        S2S_TRY(s2s_concat_dirs(&m->arena, m->be, m->Hd, r[0].y, r[1].y, (int)SB, &es->out[l]));
        S2S_TRY(s2s_concat_dirs(&m->arena, m->be, m->Hd, s2s_rnn_h_final(&r[0]), s2s_rnn_h_final(&r[1]), B, &es->hfin[l]));
        es->cfin[l] = NULL;
        if (m->cfg.cell == S2S_CELL_LSTM)
            S2S_TRY(s2s_concat_dirs(&m->arena, m->be, m->Hd, s2s_rnn_c_final(&r[0]), s2s_rnn_c_final(&r[1]), B,
                                    &es->cfin[l]));
        if (l + 1 < L)
            S2S_TRY(maybe_dropout(m, train, es->out[l], SB * H, B, H, step, SITE_ENC_LAYER + l, 0, &es->in[l + 1]));
    }
    es->keys = es->out[L - 1];
    if (m->cfg.attention == S2S_ATTN_GENERAL) {
        /* keys[s] = h_s W_a, so that q . keys[s] = (W_a q) . h_s (OpenNMT's linear_in). */
        S2S_TRY(s2s_arena_floats(&m->arena, SB * H, &es->keys));
        S2S_TRY(s2s_linear(m->be, m->pk_attn_in, (int)SB, H, H, es->out[L - 1], H, m->attn_in.w, H, 1, 0.0f, es->keys,
                           H));
    }
    return S2S_OK;
}

s2s_status s2s_encoder_bwd(s2s_model *m, const s2s_dev_batch *db, s2s_enc_state *es, float *dkeys, float *dout,
                           float *const *dhfin, float *const *dcfin, int train, uint64_t step)
{
    int S = db->S, B = db->B, E = m->cfg.embed, H = m->cfg.hidden, L = m->cfg.layers;
    int SB = S * B;
    float *dy = dout;
    if (m->cfg.attention == S2S_ATTN_GENERAL && dkeys) {
        /* keys = out W_a: dW_a += out^T dkeys; dout += dkeys W_a^T */
        S2S_TRY(OPS->gemm(m->be, 1, 0, H, H, SB, 1.0f, es->out[L - 1], H, dkeys, H, 1.0f, m->attn_in.g, H));
        if (!dy)
            S2S_TRY(s2s_arena_zeros(&m->arena, (size_t)SB * H, &dy));
        S2S_TRY(OPS->gemm(m->be, 0, 1, SB, H, H, 1.0f, dkeys, H, m->attn_in.w, H, 1.0f, dy, H));
    } else if (dkeys && dkeys != dout) {
        return S2S_FAIL(S2S_ERR_INTERNAL, "dot attention: keys and outputs must share their gradient");
    }
    if (m->dirs == 1) {
        const s2s_rnn_w *w[S2S_MAX_LAYERS];
        const s2s_rnn_run *run[S2S_MAX_LAYERS];
        for (int l = 0; l < L; l++)
            w[l] = &m->enc[l][0], run[l] = &es->run[l][0];
        s2s_rnn_drop drop = layer_drop(m, train, step);
        float *dx;
        S2S_TRY(s2s_arena_floats(&m->arena, (size_t)SB * E, &dx));
        S2S_TRY(s2s_rnn_stack_bwd(&m->arena, m->be, L, w, run, (const float *const *)es->in,
                                  (const float *const *)dhfin, (const float *const *)dcfin, dy, &drop, dx));
        dy = dx;
    }
    for (int l = L - 1; m->dirs == 2 && l >= 0; l--) {
        int in = l == 0 ? E : H;
        float *dyd[2], *dhd[2], *dcd[2], *dx;
        S2S_TRY(s2s_split_dirs(&m->arena, m->be, m->Hd, dy, SB, &dyd[0], &dyd[1]));
        S2S_TRY(s2s_split_dirs(&m->arena, m->be, m->Hd, dhfin ? dhfin[l] : NULL, B, &dhd[0], &dhd[1]));
        S2S_TRY(s2s_split_dirs(&m->arena, m->be, m->Hd, dcfin ? dcfin[l] : NULL, B, &dcd[0], &dcd[1]));
        S2S_TRY(s2s_arena_floats(&m->arena, (size_t)SB * in, &dx));
        S2S_TRY(s2s_rnn_bidir_bwd(&m->arena, m->be, m->enc[l], es->run[l], (const float *const *)dyd,
                                  (const float *const *)dhd, (const float *const *)dcd, es->in[l], in, dx));
        if (l > 0 && s2s_dropout_on(m, train)) /* dx is the gradient at the layer input: undo its dropout */
            S2S_TRY(OPS->dropout(m->be, dx, dx, (size_t)SB * in, m->cfg.dropout, m->ctx->opts.seed,
                                 s2s_dropout_stream(step, SITE_ENC_LAYER + l - 1, 0), S2S_DROP_ROWS(m, B, in)));
        dy = dx;
    }
    if (s2s_dropout_on(m, train)) /* the embedding dropout */
        S2S_TRY(OPS->dropout(m->be, dy, dy, (size_t)SB * E, m->cfg.dropout, m->ctx->opts.seed,
                             s2s_dropout_stream(step, SITE_ENC_EMB, 0), S2S_DROP_ROWS(m, B, E)));
    return OPS->embed_bwd(m->be, m->src_emb.g, dy, E, db->src, SB, E, m->cfg.src_vocab, S2S_PAD_ID);
}

typedef struct infer_args {
    const s2s_dev_batch *db;
    s2s_enc_state *es;
} infer_args;

static s2s_status infer_run(s2s_model *m, void *arg)
{
    infer_args *a = arg;
    return s2s_encoder_fwd(m, a->db, 0, 0, a->es);
}

s2s_status s2s_encoder_infer(s2s_model *m, const s2s_dev_batch *db, s2s_enc_state *es)
{
    if (m->be->ops->layer_fwd) /* a library's layers: their host-side setup cannot be replayed */
        return s2s_encoder_fwd(m, db, 0, 0, es);
    infer_args a = {db, es};
    const int key[S2S_GRAPH_KEY] = {S2S_GRAPH_ENC, db->B, db->S, 0, 0, 0};
    S2S_TRY(s2s_graph_run_state(m, key, infer_run, &a, es, sizeof *es));
    for (int l = 0; l < m->cfg.layers; l++) /* host pointers are this call's, not the recording's */
        for (int d = 0; d < 2; d++)
            es->run[l][d].len_host = db->src_len_host;
    return S2S_OK;
}
