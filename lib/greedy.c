/* greedy.c - greedy decoding: the training decoder's step, fed its own argmax. */
#include "model.h"
#include <float.h>
#include <stdlib.h>

static s2s_status greedy(s2s_model *m, const s2s_batch *batch, int max_len, int32_t *out, int32_t *out_len)
{
    s2s_backend *be = m->be;
    int E = m->cfg.embed, H = m->cfg.hidden, V = m->cfg.tgt_vocab;
    s2s_dev_batch db;
    s2s_enc_state es;
    s2s_dec_state ds;
    S2S_TRY(s2s_batch_upload(m, batch, 0, &db));
    int B = db.B, T = max_len + 1; /* max_len tokens, then room for EOS */
    db.T = T;
    S2S_TRY(s2s_encoder_fwd(m, &db, 0, 0, &es));
    S2S_TRY(s2s_decoder_init(m, &es, T, B, 0, &ds));
    int32_t *ids, *host = s2s_host_alloc(sizeof(int32_t) * (size_t)B * 2, "decoded ids");
    if (!host)
        return S2S_ERR_OUT_OF_MEMORY;
    int32_t *done = host + B;
    float *emb, *logits, *banned;
    s2s_status st = s2s_arena_ints(&m->arena, (size_t)B, &ids);
    /* padding and BOS are never produced: their logits are overwritten with -FLT_MAX */
    if (st == S2S_OK)
        st = s2s_arena_floats(&m->arena, 2, &banned);
    if (st == S2S_OK)
        st = be->ops->fill(be, banned, 2, -FLT_MAX);
    if (st == S2S_OK)
        st = s2s_arena_floats(&m->arena, (size_t)B * E, &emb);
    if (st == S2S_OK)
        st = s2s_arena_floats(&m->arena, (size_t)B * V, &logits);
    for (int b = 0; b < B; b++) {
        host[b] = S2S_BOS_ID;
        done[b] = 0;
        out_len[b] = 0;
    }
    if (st == S2S_OK)
        st = be->ops->to_device(be, ids, host, sizeof(int32_t) * (size_t)B);
    int finished = 0;
    for (int t = 0; t < T && st == S2S_OK && finished < B; t++) {
        st = be->ops->embed_fwd(be, emb, E, m->tgt_emb.w, ids, B, E);
        if (st == S2S_OK)
            st = s2s_rnn_project(be, &m->dec[0], &ds.run[0], emb, E, 0, E, t, 1);
        if (st == S2S_OK)
            st = s2s_decoder_step_fwd(m, &db, &es, &ds, t, 0, 0);
        if (st == S2S_OK)
            st = be->ops->bias_rows(be, logits, B, V, V, m->gen_b.w, NULL);
        if (st == S2S_OK)
            st = be->ops->gemm(be, 0, 1, B, V, H, 1.0f, ds.ht + (size_t)t * B * H, H, m->gen_w.w, H, 1.0f, logits, V);
        if (st == S2S_OK)
            st = be->ops->bias_rows(be, logits, B, 2, V, banned, NULL);
        if (st == S2S_OK)
            st = be->ops->argmax(be, ids, logits, B, V);
        if (st == S2S_OK)
            st = be->ops->to_host(be, host, ids, sizeof(int32_t) * (size_t)B);
        for (int b = 0; b < B && st == S2S_OK; b++) {
            if (done[b])
                continue;
            if (host[b] == S2S_EOS_ID || out_len[b] == max_len) {
                done[b] = 1;
                finished++;
            } else {
                out[(size_t)b * max_len + out_len[b]++] = host[b];
            }
        }
    }
    free(host);
    return st;
}

S2S_API s2s_status s2s_model_greedy_decode(s2s_model *m, const s2s_batch *batch, int max_len, int32_t *out,
                                           int32_t *out_len)
{
    if (!m || !batch || !out || !out_len || max_len < 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_greedy_decode: model, batch, out, out_len must be set and "
                                             "max_len >= 1");
    s2s_status st = greedy(m, batch, max_len, out, out_len);
    s2s_arena_reset(&m->arena);
    return st;
}
