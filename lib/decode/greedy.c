/* greedy.c - greedy decoding: the decoder's search step (decoder.c), fed its own argmax.
 *
 * Steps run in chunks of S2S_DECODE_CHUNK with the token ids kept on the device, so the host
 * looks at the output once per chunk. Where the backend records graphs (CUDA), each chunk's
 * fixed sequence of kernels is recorded per (batch, source length, steps, chunk) and replayed
 * afterwards (graphs.c). */
#include "model.h"
#include <float.h>
#include <stdlib.h>

typedef struct greedy_bufs {
    int32_t *ids;  /* [T+1, B] device: BOS, then each step's argmax */
    float *banned; /* [2]: -FLT_MAX for the padding and BOS columns */
} greedy_bufs;

/* Decoder step t fed ids[t], writing ids[t+1]. */
static s2s_status greedy_step(s2s_model *m, const s2s_dev_batch *db, const s2s_enc_state *es, s2s_dec_state *ds,
                              const greedy_bufs *g, int t)
{
    s2s_backend *be = m->be;
    int V = m->cfg.tgt_vocab, B = db->B;
    S2S_TRY(s2s_decoder_search_step(m, db, es, ds, g->ids + (size_t)t * B, t));
    S2S_TRY(be->ops->bias_rows(be, ds->logits, B, 2, V, g->banned, NULL));
    return be->ops->argmax(be, g->ids + (size_t)(t + 1) * B, ds->logits, B, V);
}

typedef struct chunk_args {
    const s2s_dev_batch *db;
    const s2s_enc_state *es;
    s2s_dec_state *ds;
    const greedy_bufs *g;
    int t0, t1;
} chunk_args;

static s2s_status run_chunk(s2s_model *m, void *arg)
{
    chunk_args *a = arg;
    for (int t = a->t0; t < a->t1; t++)
        S2S_TRY(greedy_step(m, a->db, a->es, a->ds, a->g, t));
    return S2S_OK;
}

/* Steps [t0, t1), replayed from a graph where one is recorded for this shape and chunk. */
static s2s_status chunk(s2s_model *m, const s2s_dev_batch *db, const s2s_enc_state *es, s2s_dec_state *ds,
                        const greedy_bufs *g, int t0, int t1)
{
    chunk_args a = {db, es, ds, g, t0, t1};
    const int key[S2S_GRAPH_KEY] = {S2S_GRAPH_GREEDY, db->B, db->S, db->T, t0 / S2S_DECODE_CHUNK, 0};
    return s2s_graph_run(m, key, run_chunk, &a);
}

/* Copies the tokens of steps [t0, t1) out of host ids [.., B], stopping rows at EOS or
 * max_len; returns the number of rows finished so far. */
static int collect(const int32_t *host, int B, int t0, int t1, int max_len, int32_t *out, int32_t *out_len,
                   char *done, int finished)
{
    for (int t = t0; t < t1; t++)
        for (int b = 0; b < B; b++) {
            if (done[b])
                continue;
            int32_t tok = host[(size_t)(t + 1) * B + b];
            if (tok == S2S_EOS_ID || out_len[b] == max_len) {
                done[b] = 1;
                finished++;
            } else {
                out[(size_t)b * max_len + out_len[b]++] = tok;
            }
        }
    return finished;
}

static s2s_status greedy(s2s_model *m, const s2s_batch *batch, int max_len, int32_t *out, int32_t *out_len)
{
    s2s_backend *be = m->be;
    s2s_dev_batch db;
    s2s_enc_state es;
    s2s_dec_state ds;
    greedy_bufs g;
    S2S_TRY(s2s_batch_upload(m, batch, 0, NULL, &db));
    int B = db.B, T = max_len + 1; /* max_len tokens, then room for EOS */
    db.T = T;
    S2S_TRY(s2s_encoder_infer(m, &db, &es));
    S2S_TRY(s2s_decoder_search_init(m, &es, T, B, &ds));
    S2S_TRY(s2s_arena_ints(&m->arena, (size_t)(T + 1) * B, &g.ids));
    S2S_TRY(s2s_arena_floats(&m->arena, 2, &g.banned));
    S2S_TRY(be->ops->fill(be, g.banned, 2, -FLT_MAX));
    int32_t *host = s2s_host_alloc(sizeof(int32_t) * (size_t)(T + 1) * B, "decoded ids");
    char *done = s2s_host_calloc((size_t)B, 1, "decoding flags");
    s2s_status st = host && done ? S2S_OK : S2S_ERR_OUT_OF_MEMORY;
    for (int b = 0; b < B && st == S2S_OK; b++) {
        host[b] = S2S_BOS_ID;
        out_len[b] = 0;
    }
    if (st == S2S_OK)
        st = be->ops->to_device(be, g.ids, host, sizeof(int32_t) * (size_t)B);
    int finished = 0;
    for (int t0 = 0; t0 < T && st == S2S_OK && finished < B; t0 += S2S_DECODE_CHUNK) {
        int t1 = t0 + S2S_DECODE_CHUNK < T ? t0 + S2S_DECODE_CHUNK : T;
        st = chunk(m, &db, &es, &ds, &g, t0, t1);
        if (st == S2S_OK)
            st = be->ops->to_host(be, host + (size_t)(t0 + 1) * B, g.ids + (size_t)(t0 + 1) * B,
                                  sizeof(int32_t) * (size_t)(t1 - t0) * B);
        if (st == S2S_OK)
            finished = collect(host, B, t0, t1, max_len, out, out_len, done, finished);
    }
    free(host);
    free(done);
    return st;
}

S2S_API s2s_status s2s_model_greedy_decode(s2s_model *m, const s2s_batch *batch, int max_len, int32_t *out,
                                           int32_t *out_len)
{
    if (!m || !batch || !out || !out_len || max_len < 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_greedy_decode: model, batch, out, out_len must be set and "
                                             "max_len >= 1");
    s2s_status st = s2s_model_precision_begin(m, S2S_PRECISION_FP32);
    if (st == S2S_OK) {
        st = greedy(m, batch, max_len, out, out_len);
        s2s_model_precision_end(m);
    }
    s2s_arena_reset(&m->arena);
    return st;
}
