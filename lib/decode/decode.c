/* decode.c - beam search and sampling over the decoder's search step (decoder.c).
 *
 * The encoder runs once over the B sentences; its outputs, final states and lengths are then
 * gathered into B*K rows (K beams per sentence) and the decoder steps on all rows at once.
 * After each step the log-probabilities come to the host (beam search: only each row's best
 * few, picked on the device), with each row's most attended source position (an arg-max on the
 * device; the whole attention rows only when asked for). There each sentence picks its next K
 * beams (or samples), finished hypotheses are set aside per sentence, and the decoder states
 * are gathered by the chosen parents (s2s_decoder_reorder). */
#include "model.h"
#include "search.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

S2S_API s2s_decode_options s2s_decode_options_default(void)
{
    s2s_decode_options o;
    memset(&o, 0, sizeof o);
    o.mode = S2S_DECODE_BEAM;
    o.beam_size = 5;
    o.nbest = 1;
    o.length_penalty = 0.6f;
    o.max_len_a = 2.0f;
    o.max_len_b = 10;
    o.min_len = 1;
    o.temperature = 1.0f;
    o.top_p = 1.0f;
    o.seed = 1;
    return o;
}

/* The search of B sentences: one s2s_search each (search.h), and the host side of a step. */
typedef struct search {
    const s2s_decode_options *o;
    int B, K, S, T, V;
    s2s_search *sent;  /* [B] */
    float *lp_host;    /* [BK, V] (unless top-M) */
    float *alpha_host; /* [BK, S] when attention is asked for, else NULL */
    int32_t *pos_host; /* [BK]: each row's most attended source position at this step */
    int M;             /* s2s_search_top_m: each row's M best leave the device (0: every token) */
    float *top_v;      /* [BK, M] */
    int32_t *top_i;    /* [BK, M] */
    int32_t *tok_host, *parent; /* [BK] */
    void *scratch;
} search;

static s2s_status search_alloc(search *s, const s2s_batch *bt)
{
    size_t BK = (size_t)s->B * s->K, S = (size_t)s->S;
    s->sent = s2s_host_calloc((size_t)s->B, sizeof(s2s_search), "sentences");
    s->lp_host = s2s_host_alloc(BK * (size_t)(s->M ? s->M : s->V) * sizeof(float), "log-probabilities");
    if (s->M) {
        s->top_v = s->lp_host;
        s->top_i = s2s_host_alloc(BK * (size_t)s->M * sizeof(int32_t), "candidate tokens");
    }
    /* zeros stay where the model has no attention to copy (attention_to_host) */
    s->alpha_host = s->o->attention ? s2s_host_calloc(BK * S, sizeof(float), "attention") : NULL;
    s->pos_host = s2s_host_calloc(BK, sizeof(int32_t), "attended positions");
    s->tok_host = s2s_host_alloc(BK * sizeof(int32_t), "tokens");
    s->parent = s2s_host_alloc(BK * sizeof(int32_t), "beam parents");
    s->scratch = s2s_host_alloc(s2s_search_scratch_bytes(s->V, s->K), "candidates");
    if (!s->sent || !s->lp_host || !s->pos_host || (s->o->attention && !s->alpha_host) || (s->M && !s->top_i) ||
        !s->tok_host || !s->parent || !s->scratch)
        return S2S_ERR_OUT_OF_MEMORY;
    for (int b = 0; b < s->B; b++)
        S2S_TRY(s2s_search_init(&s->sent[b], s->o, bt->src_len[b], s->S, s->V, b));
    return S2S_OK;
}

static void search_free(search *s)
{
    for (int b = 0; s->sent && b < s->B; b++)
        s2s_search_free(&s->sent[b]);
    free(s->sent), free(s->lp_host), free(s->alpha_host), free(s->pos_host), free(s->tok_host), free(s->parent);
    free(s->top_i), free(s->scratch);
}

/* ---- device side ---------------------------------------------------------------------------- */

typedef struct dev {
    s2s_dev_batch xb;  /* K-fold batch */
    s2s_enc_state xs;  /* K-fold encoder outputs and states */
    s2s_dec_state ds;
    int32_t *ids, *parent, *pos, *top_i; /* [BK], [BK], [BK], [BK, M] */
    float *top_v;                        /* [BK, M] */
} dev;

/* Repeats each sentence's encoder outputs, final states and length K times. */
static s2s_status expand(s2s_model *m, const s2s_batch *bt, const s2s_dev_batch *db, const s2s_enc_state *es, int K,
                         dev *d)
{
    s2s_backend *be = m->be;
    int B = db->B, S = db->S, BK = B * K, H = m->cfg.hidden, L = m->cfg.layers;
    size_t rows = (size_t)S * BK;
    int32_t *h = s2s_host_alloc(sizeof(int32_t) * (rows + 2 * (size_t)BK), "beam indices"), *idx;
    if (!h)
        return S2S_ERR_OUT_OF_MEMORY;
    for (size_t r = 0; r < rows; r++)
        h[r] = (int32_t)((r / BK) * B + (r % BK) / K);
    for (int r = 0; r < BK; r++)
        h[rows + r] = r / K, h[rows + BK + r] = bt->src_len[r / K];
    s2s_status st = s2s_arena_ints(&m->arena, rows + 2 * (size_t)BK, &idx);
    if (st == S2S_OK)
        st = be->ops->to_device(be, idx, h, sizeof(int32_t) * (rows + 2 * (size_t)BK));
    free(h);
    S2S_TRY(st);
    d->xb = *db;
    d->xb.B = BK;
    d->xb.src_len = idx + rows + BK;
    memset(&d->xs, 0, sizeof d->xs);
    d->xs.S = S, d->xs.B = BK;
    S2S_TRY(s2s_arena_floats(&m->arena, rows * H, &d->xs.out[L - 1]));
    S2S_TRY(be->ops->gather_rows(be, d->xs.out[L - 1], H, es->out[L - 1], idx, (int)rows, H));
    d->xs.keys = d->xs.out[L - 1];
    if (es->keys != es->out[L - 1]) {
        S2S_TRY(s2s_arena_floats(&m->arena, rows * H, &d->xs.keys));
        S2S_TRY(be->ops->gather_rows(be, d->xs.keys, H, es->keys, idx, (int)rows, H));
    }
    for (int l = 0; l < L; l++) {
        float **dst[2] = {&d->xs.hfin[l], &d->xs.cfin[l]};
        const float *src[2] = {es->hfin[l], es->cfin[l]};
        for (int k = 0; k < 2; k++) {
            *dst[k] = NULL;
            if (!src[k])
                continue;
            S2S_TRY(s2s_arena_floats(&m->arena, (size_t)BK * H, dst[k]));
            S2S_TRY(be->ops->gather_rows(be, *dst[k], H, src[k], idx + rows, BK, H));
        }
    }
    return S2S_OK;
}

/* Step t's attention to the host: each row's most attended source position (0 without
 * attention), and the whole rows when asked for. */
static s2s_status attention_to_host(s2s_model *m, search *s, dev *d, int t)
{
    s2s_backend *be = m->be;
    int BK = s->B * s->K;
    if (!d->ds.alpha)
        return S2S_OK; /* pos_host stays 0 (calloc); no attention was asked for or is possible */
    const float *alpha = d->ds.alpha + (size_t)t * BK * s->S;
    S2S_TRY(be->ops->argmax(be, d->pos, alpha, BK, s->S));
    S2S_TRY(be->ops->to_host(be, s->pos_host, d->pos, sizeof(int32_t) * (size_t)BK));
    if (!s->alpha_host)
        return S2S_OK;
    return be->ops->to_host(be, s->alpha_host, alpha, sizeof(float) * (size_t)BK * s->S);
}

/* Decoder step t on all rows: log-probabilities (and attention) to the host. An ensemble's
 * member i > 0 (lp_out set) gives its whole rows to lp_out; the first gives the attention. */
static s2s_status device_step(s2s_model *m, search *s, dev *d, int t, float *lp_out)
{
    s2s_backend *be = m->be;
    int BK = s->B * s->K, V = s->V;
    float *lp = d->ds.logits;
    S2S_TRY(be->ops->to_device(be, d->ids, s->tok_host, sizeof(int32_t) * (size_t)BK));
    S2S_TRY(s2s_decoder_search_step(m, &d->xb, &d->xs, &d->ds, d->ids, t));
    if (!lp_out)
        S2S_TRY(attention_to_host(m, s, d, t));
    if (s->M) { /* only each row's M best leave the device (the whole log-softmax is not needed) */
        S2S_TRY(be->ops->log_softmax_topk(be, d->top_v, d->top_i, lp, BK, V, s->M));
        S2S_TRY(be->ops->to_host(be, s->top_i, d->top_i, sizeof(int32_t) * (size_t)BK * s->M));
        return be->ops->to_host(be, s->top_v, d->top_v, sizeof(float) * (size_t)BK * s->M);
    }
    S2S_TRY(be->ops->log_softmax(be, lp, lp, BK, V));
    return be->ops->to_host(be, lp_out ? lp_out : s->lp_host, lp, sizeof(float) * (size_t)BK * V);
}

/* Gives each row the decoder state of its chosen parent. */
static s2s_status reorder(s2s_model *m, search *s, dev *d, int t)
{
    S2S_TRY(m->be->ops->to_device(m->be, d->parent, s->parent, sizeof(int32_t) * (size_t)s->B * s->K));
    return s2s_decoder_reorder(m, &d->ds, t, d->parent);
}

/* One model's device side of a search: its batch, encoder, K-fold state and step buffers. */
static s2s_status dev_init(s2s_model *m, const s2s_batch *bt, search *s, dev *d)
{
    s2s_dev_batch db;
    s2s_enc_state es;
    int BK = s->B * s->K;
    S2S_TRY(s2s_batch_upload(m, bt, 0, NULL, &db));
    db.T = s->T;
    S2S_TRY(s2s_encoder_infer(m, &db, &es));
    S2S_TRY(expand(m, bt, &db, &es, s->K, d));
    S2S_TRY(s2s_decoder_search_init(m, &d->xs, s->T, BK, &d->ds));
    S2S_TRY(s2s_arena_ints(&m->arena, (size_t)BK, &d->ids));
    S2S_TRY(s2s_arena_ints(&m->arena, (size_t)BK, &d->parent));
    S2S_TRY(s2s_arena_ints(&m->arena, (size_t)BK, &d->pos));
    if (!s->M)
        return S2S_OK;
    S2S_TRY(s2s_arena_floats(&m->arena, (size_t)BK * s->M, &d->top_v));
    return s2s_arena_ints(&m->arena, (size_t)BK * s->M, &d->top_i);
}

/* ---- the search ------------------------------------------------------------------------------ */

/* Picks every sentence's next tokens; returns 1 when all sentences are done. */
static int choose(search *s)
{
    int all = 1, K = s->K;
    for (int b = 0; b < s->B; b++) {
        size_t r0 = (size_t)b * K;
        s2s_step_rows rows = {s->M ? NULL : s->lp_host + r0 * s->V, s->M ? s->top_v + r0 * s->M : NULL,
                              s->M ? s->top_i + r0 * s->M : NULL, s->M, s->pos_host + r0,
                              s->alpha_host ? s->alpha_host + r0 * s->S : NULL};
        all &= s2s_search_step(&s->sent[b], &rows, s->tok_host + r0, s->parent + r0, s->scratch);
        for (int k = 0; k < K; k++) /* the sentence's rows are b*K .. b*K + K-1 */
            s->parent[r0 + k] += (int32_t)r0;
    }
    return all;
}

static s2s_status collect(search *s, int nbest, s2s_hypothesis *out)
{
    for (int b = 0; b < s->B; b++)
        S2S_TRY(s2s_search_collect(&s->sent[b], out + (size_t)b * nbest));
    return S2S_OK;
}

/* The search of n models together (n = 1: one model): each step's log-probabilities are the
 * mean of the models' (summed in model order, then divided by n; whole rows when n > 1). */
static s2s_status run_search(s2s_model *const *ms, int n, const s2s_batch *bt, const s2s_decode_options *o,
                             s2s_hypothesis *out)
{
    dev d[S2S_ENSEMBLE_MAX];
    search s;
    int S, Tm;
    S2S_TRY(s2s_batch_check(ms[0], bt, 0, &S, &Tm));
    memset(&s, 0, sizeof s);
    s.o = o, s.B = bt->batch, s.S = S, s.V = ms[0]->cfg.tgt_vocab;
    s.K = o->mode == S2S_DECODE_BEAM ? o->beam_size : 1;
    s.M = n == 1 ? s2s_search_top_m(o, s.V) : 0;
    int longest = 0;
    for (int b = 0; b < s.B; b++) {
        int ml = (int)(o->max_len_a * bt->src_len[b]) + o->max_len_b;
        longest = ml > longest ? ml : longest;
    }
    s.T = longest > 0 ? longest : 1;
    s2s_status st = search_alloc(&s, bt);
    int BK = s.B * s.K;
    size_t rows = (size_t)BK * s.V;
    float *lp_i = n > 1 && st == S2S_OK ? s2s_host_alloc(sizeof(float) * rows, "an ensemble member's rows") : NULL;
    if (n > 1 && st == S2S_OK && !lp_i)
        st = S2S_ERR_OUT_OF_MEMORY;
    for (int r = 0; r < BK && st == S2S_OK; r++)
        s.tok_host[r] = S2S_BOS_ID;
    for (int i = 0; i < n && st == S2S_OK; i++)
        st = dev_init(ms[i], bt, &s, &d[i]);
    for (int t = 0; t < s.T && st == S2S_OK; t++) {
        st = device_step(ms[0], &s, &d[0], t, NULL);
        for (int i = 1; i < n && st == S2S_OK; i++) {
            st = device_step(ms[i], &s, &d[i], t, lp_i);
            for (size_t k = 0; k < rows && st == S2S_OK; k++)
                s.lp_host[k] += lp_i[k];
        }
        for (size_t k = 0; n > 1 && k < rows && st == S2S_OK; k++)
            s.lp_host[k] /= (float)n;
        if (st != S2S_OK || choose(&s))
            break;
        for (int i = 0; i < n && st == S2S_OK; i++)
            st = reorder(ms[i], &s, &d[i], t);
    }
    if (st == S2S_OK)
        st = collect(&s, o->mode == S2S_DECODE_BEAM ? o->nbest : 1, out);
    free(lp_i);
    search_free(&s);
    return st;
}

static s2s_status decode_n(s2s_model *const *ms, int n, const s2s_batch *batch, const s2s_decode_options *opts,
                           s2s_hypothesis **out)
{
    *out = NULL;
    s2s_decode_options o = opts ? *opts : s2s_decode_options_default();
    if (o.mode != S2S_DECODE_GREEDY && o.mode != S2S_DECODE_BEAM && o.mode != S2S_DECODE_SAMPLE)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "unknown decoding mode %d", (int)o.mode);
    if (o.beam_size < 1 || o.beam_size > 64 || o.nbest < 1 || o.nbest > o.beam_size || o.max_len_a < 0 ||
        o.max_len_b < 0 || o.no_repeat_ngram < 0 || o.min_len < 0 || !(o.temperature > 0) || o.top_k < 0 ||
        !(o.top_p > 0 && o.top_p <= 1) || !(o.length_penalty >= 0))
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "decoding options out of range: beam_size %d in 1..64, nbest %d in 1..beam_size, max_len a %g "
                        "b %d >= 0, no_repeat_ngram %d >= 0, temperature %g > 0, top_k %d >= 0, top_p %g in (0, 1], "
                        "length_penalty %g >= 0",
                        o.beam_size, o.nbest, o.max_len_a, o.max_len_b, o.no_repeat_ngram, o.temperature, o.top_k,
                        o.top_p, o.length_penalty);
    int nbest = o.mode == S2S_DECODE_BEAM ? o.nbest : 1;
    s2s_hypothesis *h = s2s_host_calloc((size_t)batch->batch * nbest, sizeof *h, "hypotheses");
    if (!h)
        return S2S_ERR_OUT_OF_MEMORY;
    s2s_status st = batch->batch > 0 ? S2S_OK : S2S_FAIL(S2S_ERR_INVALID_ARG, "batch->batch must be >= 1");
    int begun = 0;
    for (; begun < n && st == S2S_OK; begun++)
        if ((st = s2s_model_precision_begin(ms[begun], o.precision)) != S2S_OK)
            break;
    if (st == S2S_OK)
        st = run_search(ms, n, batch, &o, h);
    for (int i = 0; i < n; i++) {
        if (i < begun)
            s2s_model_precision_end(ms[i]);
        s2s_arena_reset(&ms[i]->arena);
    }
    if (st != S2S_OK) {
        s2s_hypotheses_free(h, (size_t)batch->batch * nbest);
        return st;
    }
    *out = h;
    return S2S_OK;
}

S2S_API s2s_status s2s_model_decode(s2s_model *m, const s2s_batch *batch, const s2s_decode_options *opts,
                                    s2s_hypothesis **out)
{
    if (!m || !batch || !out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_decode: model, batch and out must not be NULL");
    return decode_n(&m, 1, batch, opts, out);
}

S2S_API s2s_status s2s_ensemble_decode(s2s_model *const *models, int n, const s2s_batch *batch,
                                       const s2s_decode_options *opts, s2s_hypothesis **out)
{
    if (!models || n < 1 || n > S2S_ENSEMBLE_MAX || !batch || !out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_ensemble_decode: 1 to %d models, a batch and out are needed (n = %d)",
                        S2S_ENSEMBLE_MAX, n);
    for (int i = 0; i < n; i++) {
        if (!models[i])
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_ensemble_decode: model %d is NULL", i);
        for (int j = 0; j < i; j++)
            if (models[j] == models[i]) /* one model's workspace cannot hold two searches */
                return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_ensemble_decode: models %d and %d are the same object: "
                                "load the file twice", j, i);
        if (models[i]->cfg.tgt_vocab != models[0]->cfg.tgt_vocab || models[i]->cfg.src_vocab != models[0]->cfg.src_vocab)
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_ensemble_decode: model %d's vocabularies (%d source, %d target) "
                            "differ from model 0's (%d, %d): an ensemble shares its vocabularies", i,
                            models[i]->cfg.src_vocab, models[i]->cfg.tgt_vocab, models[0]->cfg.src_vocab,
                            models[0]->cfg.tgt_vocab);
    }
    return decode_n(models, n, batch, opts, out);
}

S2S_API void s2s_hypotheses_free(s2s_hypothesis *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++)
        free(h[i].ids), free(h[i].src_pos), free(h[i].attention);
    free(h);
}
