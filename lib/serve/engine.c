/* engine.c - the serving engine (seq2seq.h, "serving engine"): continuous batching of requests
 * over the decoder's search step (decoder.c) and one host search per request (search.c).
 *
 * Rows. The active requests hold rows 0..R-1 in order, request r rows row0 .. row0+K-1. Their
 * decoder state between steps lives in engine buffers: per layer h and c [R, H], the attentional
 * state ht [R, H] (input feeding), the encoder memory keys and vals [S, R, H] (time-major, S the
 * longest active source; shorter ones are masked by their lengths) and the lengths [R].
 *
 * A step: (1) take cancellations and admit queued requests that fit the budget; (2) when the set
 * changed, remap the state: kept rows are gathered from the engine buffers, new requests' rows
 * from their encoder's outputs (run on all newcomers as one batch), through one table and one
 * row gather per tensor; (3) one decoder step on all R rows with the state as initial state
 * (T = 1: h0, c0, ht0 are the engine buffers); (4) each request's search chooses its rows' next
 * tokens and parents on the host, greedy and sampled requests stream their new text, finished
 * ones report and leave; (5) the step's outputs are gathered back into the engine buffers by
 * parent, the finished requests' rows left out.
 *
 * Every result equals s2s_translate's for the line alone: the same encoder, step and search,
 * with sampling keyed as a batch's first sentence. */
#include "decode.h"
#include "model.h"
#include "search.h"
#include "text.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPS (e->m->be->ops)

typedef struct request {
    uint64_t id;
    s2s_decode_options o;
    s2s_engine_token_fn on_token;
    s2s_engine_result_fn on_result;
    void *user;
    int32_t *src; /* [src_len] host */
    int src_len, K, top_m;
    long cost;
    double t_submit, t_admit;
    int cancelled;        /* asked for (under the lock while queued) */
    s2s_search search;    /* engine thread */
    int row0;             /* first row in the active batch */
    size_t streamed;      /* bytes of text streamed so far */
    struct request *next; /* queue */
} request;

struct s2s_engine {
    s2s_model *m;
    const s2s_tokenizer *st, *tt;
    s2s_engine_options o;
    int L, H, V, feed, lstm;
    /* shared: under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    request *qhead, *qtail;
    long queued;
    uint64_t next_id;
    uint64_t *cancels;
    int ncancel, cap_cancel;
    int stopping, drain;
    s2s_engine_stats stats;
    /* the engine thread's */
    request **act;
    int nact, R, S;
    long cost;
    float *h[S2S_MAX_LAYERS], *c[S2S_MAX_LAYERS], *ht; /* [max_rows, H] */
    float *keys, *vals;                                 /* [S * R, H] */
    size_t mem_cap;                                     /* floats in each of keys, vals */
    int32_t *len_dev, *ids_dev, *pos_dev, *top_i_dev, *map_dev;
    size_t map_cap;
    float *top_v_dev;
    int32_t *tok, *parent, *pos, *top_i, *len_host, *map; /* host */
    size_t map_host_cap;
    float *lp, *top_v;
    void *scratch;
};

S2S_API s2s_engine_options s2s_engine_options_default(void)
{
    s2s_engine_options o;
    memset(&o, 0, sizeof o);
    o.max_rows = 256;
    o.token_budget = 16384;
    o.queue_max = 1024;
    o.max_src_tokens = 250;
    o.replace_unk = 1;
    return o;
}

static double now_ms(void) { return s2s_now_ms(); }

/* ---- creation ------------------------------------------------------------------------------ */

static s2s_status dev_alloc(s2s_engine *e, size_t bytes, void **p)
{
    *p = NULL;
    return OPS->alloc(e->m->be, bytes, p);
}

static s2s_status engine_buffers(s2s_engine *e)
{
    size_t R = (size_t)e->o.max_rows, H = (size_t)e->H, V = (size_t)e->V, M = S2S_TOPK_MAX;
    for (int l = 0; l < e->L; l++) {
        S2S_TRY(dev_alloc(e, R * H * sizeof(float), (void **)&e->h[l]));
        if (e->lstm)
            S2S_TRY(dev_alloc(e, R * H * sizeof(float), (void **)&e->c[l]));
    }
    S2S_TRY(dev_alloc(e, R * H * sizeof(float), (void **)&e->ht));
    S2S_TRY(dev_alloc(e, R * sizeof(int32_t), (void **)&e->len_dev));
    S2S_TRY(dev_alloc(e, R * sizeof(int32_t), (void **)&e->ids_dev));
    S2S_TRY(dev_alloc(e, R * sizeof(int32_t), (void **)&e->pos_dev));
    S2S_TRY(dev_alloc(e, R * M * sizeof(int32_t), (void **)&e->top_i_dev));
    S2S_TRY(dev_alloc(e, R * M * sizeof(float), (void **)&e->top_v_dev));
    e->act = s2s_host_calloc(R, sizeof(request *), "active requests");
    e->tok = s2s_host_calloc(R, sizeof(int32_t), "tokens");
    e->parent = s2s_host_calloc(R, sizeof(int32_t), "parents");
    e->pos = s2s_host_calloc(R, sizeof(int32_t), "attended positions");
    e->len_host = s2s_host_calloc(R, sizeof(int32_t), "source lengths");
    e->top_i = s2s_host_alloc(R * M * sizeof(int32_t), "candidate tokens");
    e->top_v = s2s_host_alloc(R * M * sizeof(float), "candidate scores");
    e->lp = s2s_host_alloc(R * V * sizeof(float), "log-probabilities");
    e->scratch = s2s_host_alloc(s2s_search_scratch_bytes(e->V, 64), "candidates");
    if (!e->act || !e->tok || !e->parent || !e->pos || !e->len_host || !e->top_i || !e->top_v || !e->lp || !e->scratch)
        return S2S_ERR_OUT_OF_MEMORY;
    return S2S_OK;
}

S2S_API s2s_status s2s_engine_create(s2s_model *m, const s2s_tokenizer *src_tok, const s2s_tokenizer *tgt_tok,
                                     const s2s_engine_options *opts, s2s_engine **out)
{
    if (!m || !src_tok || !tgt_tok || !out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_engine_create: model, tokenizers and out are needed");
    *out = NULL;
    s2s_engine_options o = opts ? *opts : s2s_engine_options_default();
    if (o.max_rows < 1 || o.max_rows > 65536 || o.token_budget < 2 || o.queue_max < 0 || o.max_src_tokens < 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "engine options out of range: max_rows %d in 1..65536, token_budget %ld "
                        ">= 2, queue_max %d >= 0, max_src_tokens %d >= 1", o.max_rows, o.token_budget, o.queue_max,
                        o.max_src_tokens);
    if (s2s_tokenizer_vocab_size(src_tok) > m->cfg.src_vocab || s2s_tokenizer_vocab_size(tgt_tok) > m->cfg.tgt_vocab)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "the tokenizers' vocabularies (%d, %d) exceed the model's (%d, %d)",
                        s2s_tokenizer_vocab_size(src_tok), s2s_tokenizer_vocab_size(tgt_tok), m->cfg.src_vocab,
                        m->cfg.tgt_vocab);
    if (o.precision != S2S_PRECISION_FP32 && o.precision != S2S_PRECISION_BF16 && o.precision != S2S_PRECISION_INT8)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "engine precision %d: use fp32, bf16 or int8", (int)o.precision);
    S2S_TRY(s2s_model_prepare_decoding(m, o.precision, NULL, NULL, 0)); /* the weights' copies, now */
    s2s_engine *e = s2s_host_calloc(1, sizeof *e, "the engine");
    if (!e)
        return S2S_ERR_OUT_OF_MEMORY;
    e->m = m, e->st = src_tok, e->tt = tgt_tok, e->o = o;
    e->L = m->cfg.layers, e->H = m->cfg.hidden, e->V = m->cfg.tgt_vocab, e->feed = m->feed;
    e->lstm = m->cfg.cell == S2S_CELL_LSTM;
    e->next_id = 1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    s2s_status st = engine_buffers(e);
    if (st != S2S_OK) {
        s2s_engine_free(e);
        return st;
    }
    *out = e;
    return S2S_OK;
}

/* ---- submission ------------------------------------------------------------------------------ */

static s2s_status check_decode(const s2s_decode_options *o)
{
    if (o->mode != S2S_DECODE_GREEDY && o->mode != S2S_DECODE_BEAM && o->mode != S2S_DECODE_SAMPLE)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "unknown decoding mode %d", (int)o->mode);
    if (o->beam_size < 1 || o->beam_size > 64 || o->nbest < 1 || o->nbest > o->beam_size || o->max_len_a < 0 ||
        o->max_len_b < 0 || o->no_repeat_ngram < 0 || o->min_len < 0 || !(o->temperature > 0) || o->top_k < 0 ||
        !(o->top_p > 0 && o->top_p <= 1) || !(o->length_penalty >= 0))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "decoding options out of range: beam_size %d in 1..64, nbest %d in "
                        "1..beam_size, max_len a %g b %d >= 0, no_repeat_ngram %d >= 0, temperature %g > 0, top_k %d "
                        ">= 0, top_p %g in (0, 1], length_penalty %g >= 0", o->beam_size, o->nbest, o->max_len_a,
                        o->max_len_b, o->no_repeat_ngram, o->temperature, o->top_k, o->top_p, o->length_penalty);
    return S2S_OK;
}

static void request_free(request *r)
{
    if (!r)
        return;
    s2s_search_free(&r->search);
    free(r->src);
    free(r);
}

/* Encodes text into a new request (caller's thread: the tokenizer is read-only). */
static s2s_status make_request(s2s_engine *e, const char *text, const s2s_decode_options *o, request **out)
{
    *out = NULL;
    size_t nbytes = strlen(text);
    const char *why = NULL;
    size_t bad = s2s_text_utf8_check((const unsigned char *)text, nbytes, &why);
    if (bad < nbytes)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "the text is not valid UTF-8 at byte %zu (0x%02X: %s)", bad + 1,
                        (unsigned char)text[bad], why);
    request *r = s2s_host_calloc(1, sizeof *r, "a request");
    if (!r)
        return S2S_ERR_OUT_OF_MEMORY;
    r->o = *o;
    r->o.attention = 0;
    int cap = e->o.max_src_tokens + 1, n = 0;
    s2s_status st = (r->src = malloc(sizeof(int32_t) * (size_t)cap)) ? S2S_OK
                                                                      : S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "a request");
    if (st == S2S_OK)
        st = s2s_tokenizer_encode(e->st, text, r->src, cap, &n);
    if (st == S2S_OK && n > e->o.max_src_tokens)
        st = S2S_FAIL(S2S_ERR_INVALID_ARG, "the text has %d tokens; the limit is %d (max_src_tokens): split it", n,
                      e->o.max_src_tokens);
    r->src_len = n;
    r->K = o->mode == S2S_DECODE_BEAM ? o->beam_size : 1;
    r->top_m = s2s_search_top_m(&r->o, e->V);
    r->cost = (long)r->K * (n + 1);
    if (st == S2S_OK && (r->cost > e->o.token_budget || r->K > e->o.max_rows))
        st = S2S_FAIL(S2S_ERR_INVALID_ARG, "a request of %d tokens with %d rows costs %ld of the engine's budget of "
                      "%ld (token_budget) and %d rows (max_rows): it can never run", n, r->K, r->cost,
                      e->o.token_budget, e->o.max_rows);
    if (st == S2S_OK)
        st = s2s_search_init(&r->search, &r->o, n > 0 ? n : 1, n > 0 ? n : 1, e->V, 0);
    if (st != S2S_OK) {
        request_free(r);
        return st;
    }
    *out = r;
    return S2S_OK;
}

S2S_API s2s_status s2s_engine_submit(s2s_engine *e, const char *text, const s2s_decode_options *opts,
                                     s2s_engine_token_fn on_token, s2s_engine_result_fn on_result, void *user,
                                     uint64_t *id)
{
    if (!e || !text)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_engine_submit: engine and text are needed");
    s2s_decode_options o = opts ? *opts : s2s_decode_options_default();
    S2S_TRY(check_decode(&o));
    request *r;
    S2S_TRY(make_request(e, text, &o, &r));
    r->on_token = on_token, r->on_result = on_result, r->user = user;
    r->t_submit = now_ms();
    pthread_mutex_lock(&e->mu);
    s2s_status st = S2S_OK;
    if (e->stopping)
        st = S2S_FAIL(S2S_ERR_CANCELLED, "the engine is stopping: no new requests");
    else if (e->queued >= e->o.queue_max)
        st = S2S_FAIL(S2S_ERR_BUSY, "the queue holds %ld requests (queue_max): try again later", e->queued);
    if (st == S2S_OK) {
        r->id = e->next_id++;
        if (e->qtail)
            e->qtail->next = r;
        else
            e->qhead = r;
        e->qtail = r;
        e->queued++;
        e->stats.requests_queued = e->queued;
        if (id)
            *id = r->id;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    if (st != S2S_OK)
        request_free(r);
    return st;
}

S2S_API void s2s_engine_cancel(s2s_engine *e, uint64_t id)
{
    if (!e || !id)
        return;
    pthread_mutex_lock(&e->mu);
    if (e->ncancel == e->cap_cancel) {
        int cap = e->cap_cancel ? 2 * e->cap_cancel : 16;
        uint64_t *c = realloc(e->cancels, sizeof *c * (size_t)cap);
        if (c)
            e->cancels = c, e->cap_cancel = cap;
    }
    if (e->ncancel < e->cap_cancel) /* without memory the cancellation is dropped: the request ends as usual */
        e->cancels[e->ncancel++] = id;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

S2S_API void s2s_engine_stop(s2s_engine *e, int drain)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    e->drain = drain;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

S2S_API void s2s_engine_stats_get(s2s_engine *e, s2s_engine_stats *st)
{
    if (!e || !st)
        return;
    pthread_mutex_lock(&e->mu);
    *st = e->stats;
    pthread_mutex_unlock(&e->mu);
}

/* ---- results --------------------------------------------------------------------------------- */

/* Reports a request that ends without outputs (cancelled or failed) and frees it. */
static void end_without(s2s_engine *e, request *r, s2s_status st, const char *why)
{
    if (r->on_result) {
        s2s_engine_result res;
        memset(&res, 0, sizeof res);
        res.id = r->id, res.status = st, res.error = why, res.src_tokens = r->src_len;
        res.queue_ms = (r->t_admit > 0 ? r->t_admit : now_ms()) - r->t_submit;
        res.total_ms = now_ms() - r->t_submit;
        r->on_result(&res, r->user);
    }
    request_free(r);
}

/* The text of hypothesis h of request r (*out malloc'd). */
static s2s_status text_of(const s2s_engine *e, const request *r, const s2s_hypothesis *h, char **out)
{
    if (h->len == 0 || !h->ids) {
        *out = strdup("");
        return *out ? S2S_OK : S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "a result");
    }
    return s2s_hyp_text(e->st, e->tt, h, r->src, e->o.replace_unk, out);
}

/* Streams what the best live hypothesis added since the last piece (greedy and sampling). */
static void stream(s2s_engine *e, request *r, const s2s_hyp *live)
{
    if (!r->on_token || r->K != 1 || live->len == 0 || live->logp == -INFINITY)
        return;
    s2s_hypothesis h = {live->tok, live->len, (float)live->logp, live->pos, NULL, r->src_len};
    char *text = NULL;
    if (text_of(e, r, &h, &text) != S2S_OK)
        return;
    size_t n = strlen(text);
    /* a piece that joins the previous one (or an <unk> now replaced) can change the text's
     * tail: stream only what extends what was sent */
    if (n > r->streamed)
        r->on_token(r->id, text + r->streamed, r->user), r->streamed = n;
    free(text);
}

/* A finished request: its outputs, the rest of its stream, its result. */
static void finish_request(s2s_engine *e, request *r)
{
    int nbest = s2s_search_nbest(&r->search);
    s2s_hypothesis hyps[64];
    char *texts[64] = {NULL};
    float scores[64];
    s2s_status st = S2S_OK;
    memset(hyps, 0, sizeof hyps); /* collect fills them one by one: a failure leaves the rest NULL */
    if (r->src_len > 0) {
        st = s2s_search_collect(&r->search, hyps);
    }
    for (int j = 0; j < nbest && st == S2S_OK; j++) {
        st = text_of(e, r, &hyps[j], &texts[j]);
        scores[j] = hyps[j].len || r->src_len == 0 ? hyps[j].score : 0.0f;
    }
    if (st != S2S_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", s2s_last_error());
        for (int j = 0; j < nbest; j++)
            free(texts[j]);
        for (int j = 0; r->src_len && j < nbest; j++)
            free(hyps[j].ids), free(hyps[j].src_pos), free(hyps[j].attention);
        end_without(e, r, st, why);
        return;
    }
    if (r->on_token && r->K == 1 && strlen(texts[0]) > r->streamed)
        r->on_token(r->id, texts[0] + r->streamed, r->user);
    if (r->on_result) {
        s2s_engine_result res;
        memset(&res, 0, sizeof res);
        res.id = r->id, res.status = S2S_OK, res.error = "", res.n = nbest;
        res.texts = (const char *const *)texts, res.scores = scores;
        res.src_tokens = r->src_len, res.out_tokens = hyps[0].len;
        res.queue_ms = r->t_admit - r->t_submit, res.total_ms = now_ms() - r->t_submit;
        r->on_result(&res, r->user);
    }
    pthread_mutex_lock(&e->mu);
    e->stats.requests_done++;
    e->stats.tokens_in += r->src_len;
    e->stats.tokens_out += hyps[0].len;
    pthread_mutex_unlock(&e->mu);
    for (int j = 0; j < nbest; j++) {
        free(texts[j]);
        if (r->src_len)
            free(hyps[j].ids), free(hyps[j].src_pos), free(hyps[j].attention);
    }
    request_free(r);
}

/* ---- remapping rows ---------------------------------------------------------------------------- */

/* dst [n, H] = rows of [a (na rows) ; b (nb rows) ; one zero row] picked by map (host [n]):
 * through a table in the model's arena, so dst may be a or b. */
static s2s_status remap(s2s_engine *e, float *dst, const float *a, int na, const float *b, int nb, const int32_t *map,
                        int n, int H)
{
    if (n == 0)
        return S2S_OK;
    float *table;
    size_t row = (size_t)H * sizeof(float);
    S2S_TRY(s2s_arena_floats(&e->m->arena, (size_t)(na + nb + 1) * H, &table));
    if (na)
        S2S_TRY(OPS->copy(e->m->be, table, a, (size_t)na * row));
    if (nb)
        S2S_TRY(OPS->copy(e->m->be, table + (size_t)na * H, b, (size_t)nb * row));
    S2S_TRY(OPS->fill(e->m->be, table + (size_t)(na + nb) * H, (size_t)H, 0.0f));
    int32_t *map_dev;
    S2S_TRY(s2s_arena_ints(&e->m->arena, (size_t)n, &map_dev));
    S2S_TRY(OPS->to_device(e->m->be, map_dev, map, sizeof(int32_t) * (size_t)n));
    return OPS->gather_rows(e->m->be, dst, H, table, map_dev, n, H);
}

static s2s_status map_room(s2s_engine *e, size_t n)
{
    if (n <= e->map_host_cap)
        return S2S_OK;
    int32_t *p = realloc(e->map, sizeof(int32_t) * n);
    if (!p)
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "a row map of %zu entries", n);
    e->map = p, e->map_host_cap = n;
    return S2S_OK;
}

/* The memory of the new layout: [S_new, R_new] rows from the old memory [S_old, R_old] (rows
 * `from_old[i]` >= 0) or from the newcomers' encoder outputs [S_enc, B_new] (sentence
 * `from_new[i]` >= 0). */
static s2s_status remap_memory(s2s_engine *e, const int *from_old, const int *from_new, int R_new, int S_new,
                               const s2s_enc_state *enc, int S_enc, int B_new)
{
    if (!e->feed)
        return S2S_OK;
    int H = e->H, L = e->L, R_old = e->R, S_old = e->S;
    size_t n = (size_t)S_new * R_new, na = (size_t)S_old * R_old, nb = (size_t)S_enc * B_new;
    S2S_TRY(map_room(e, n));
    for (int s = 0; s < S_new; s++)
        for (int i = 0; i < R_new; i++) {
            int32_t src = (int32_t)(na + nb); /* the zero row */
            if (from_old[i] >= 0 && s < S_old)
                src = (int32_t)((size_t)s * R_old + from_old[i]);
            else if (from_new[i] >= 0 && s < S_enc)
                src = (int32_t)(na + (size_t)s * B_new + from_new[i]);
            e->map[(size_t)s * R_new + i] = src;
        }
    const float *ek = enc ? enc->keys : NULL, *ev = enc ? enc->out[L - 1] : NULL;
    float *keys, *vals; /* the new memory, then it replaces the old */
    S2S_TRY(s2s_arena_floats(&e->m->arena, n * H, &keys));
    S2S_TRY(s2s_arena_floats(&e->m->arena, n * H, &vals));
    S2S_TRY(remap(e, keys, e->keys, (int)na, ek, (int)nb, e->map, (int)n, H));
    S2S_TRY(remap(e, vals, e->vals, (int)na, ev, (int)nb, e->map, (int)n, H));
    if (n > e->mem_cap) {
        OPS->release(e->m->be, e->keys), OPS->release(e->m->be, e->vals);
        e->keys = e->vals = NULL, e->mem_cap = 0;
        size_t cap = n + n / 2;
        S2S_TRY(dev_alloc(e, cap * H * sizeof(float), (void **)&e->keys));
        S2S_TRY(dev_alloc(e, cap * H * sizeof(float), (void **)&e->vals));
        e->mem_cap = cap;
    }
    S2S_TRY(OPS->copy(e->m->be, e->keys, keys, n * H * sizeof(float)));
    return OPS->copy(e->m->be, e->vals, vals, n * H * sizeof(float));
}

/* Moves the active set to the requests in keep[0..nk) (already active) followed by add[0..na)
 * (admitted now): their rows, state, memory and lengths. */
static s2s_status relayout(s2s_engine *e, request **keep, int nk, request **add, int nadd)
{
    int H = e->H, L = e->L, R_new = 0, S_new = 1, B_new = nadd;
    int *from_old = calloc((size_t)e->o.max_rows + 1, sizeof(int));
    int *from_new = calloc((size_t)e->o.max_rows + 1, sizeof(int));
    s2s_status st = from_old && from_new ? S2S_OK : S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "a row map");
    for (int i = 0; i < nk + nadd && st == S2S_OK; i++) {
        request *r = i < nk ? keep[i] : add[i - nk];
        for (int k = 0; k < r->K; k++) {
            from_old[R_new + k] = i < nk ? r->row0 + k : -1;
            from_new[R_new + k] = i < nk ? -1 : i - nk;
        }
        r->row0 = R_new;
        R_new += r->K;
        S_new = r->src_len > S_new ? r->src_len : S_new;
    }
    /* the newcomers' encoder, as one batch */
    s2s_enc_state enc;
    int S_enc = 1;
    int32_t *src = NULL, *len = NULL;
    if (st == S2S_OK && B_new) {
        for (int b = 0; b < B_new; b++)
            S_enc = add[b]->src_len > S_enc ? add[b]->src_len : S_enc;
        src = calloc((size_t)B_new * S_enc, sizeof(int32_t));
        len = malloc(sizeof(int32_t) * (size_t)B_new);
        if (!src || !len)
            st = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "a batch of %d sources", B_new);
        for (int b = 0; b < B_new && st == S2S_OK; b++) {
            memcpy(src + (size_t)b * S_enc, add[b]->src, sizeof(int32_t) * (size_t)add[b]->src_len);
            len[b] = add[b]->src_len;
        }
        s2s_batch bt = {B_new, S_enc, 0, src, len, NULL, NULL};
        s2s_dev_batch db;
        if (st == S2S_OK)
            st = s2s_batch_upload(e->m, &bt, 0, NULL, &db);
        if (st == S2S_OK)
            st = s2s_encoder_infer(e->m, &db, &enc);
    }
    /* state rows: kept ones from the engine buffers, new ones from the encoder's final states */
    if (st == S2S_OK)
        st = map_room(e, (size_t)R_new);
    for (int i = 0; i < R_new && st == S2S_OK; i++)
        e->map[i] = from_old[i] >= 0 ? from_old[i] : e->R + from_new[i];
    for (int l = 0; l < L && st == S2S_OK; l++) {
        st = remap(e, e->h[l], e->h[l], e->R, B_new ? enc.hfin[l] : NULL, B_new, e->map, R_new, H);
        if (st == S2S_OK && e->lstm)
            st = remap(e, e->c[l], e->c[l], e->R, B_new ? enc.cfin[l] : NULL, B_new, e->map, R_new, H);
    }
    for (int i = 0; i < R_new && st == S2S_OK; i++) /* a new sentence starts without input feeding */
        e->map[i] = from_old[i] >= 0 ? from_old[i] : e->R;
    if (st == S2S_OK && e->feed)
        st = remap(e, e->ht, e->ht, e->R, NULL, 0, e->map, R_new, H);
    if (st == S2S_OK)
        st = remap_memory(e, from_old, from_new, R_new, S_new, B_new ? &enc : NULL, S_enc, B_new);
    for (int i = 0; i < R_new && st == S2S_OK; i++) /* kept rows move down: their next tokens with them */
        if (from_old[i] >= 0)
            e->tok[i] = e->tok[from_old[i]]; /* in place: from_old[i] >= i */
    for (int i = 0; i < nk + nadd && st == S2S_OK; i++) {
        request *r = i < nk ? keep[i] : add[i - nk];
        for (int k = 0; k < r->K; k++)
            e->len_host[r->row0 + k] = r->src_len;
        if (i >= nk)
            for (int k = 0; k < r->K; k++)
                e->tok[r->row0 + k] = S2S_BOS_ID;
        e->act[i] = r;
    }
    if (st == S2S_OK && R_new)
        st = OPS->to_device(e->m->be, e->len_dev, e->len_host, sizeof(int32_t) * (size_t)R_new);
    if (st == S2S_OK)
        e->nact = nk + nadd, e->R = R_new, e->S = S_new;
    free(from_old), free(from_new), free(src), free(len);
    return st;
}

/* ---- a step ---------------------------------------------------------------------------------- */

/* Under the lock: marks cancelled requests, moves what fits from the queue into add[]; puts the
 * queued requests that were cancelled into gone[] (reported after the lock). */
static void intake(s2s_engine *e, request **add, int *nadd, request **gone, int *ngone, int gone_cap)
{
    *nadd = *ngone = 0;
    int all = e->stopping && !e->drain;
    for (int c = 0; c < e->ncancel; c++)
        for (int i = 0; i < e->nact; i++)
            if (e->act[i]->id == e->cancels[c])
                e->act[i]->cancelled = 1;
    for (request **p = &e->qhead; *p;) { /* cancelled while waiting */
        request *r = *p;
        int hit = all;
        for (int c = 0; c < e->ncancel && !hit; c++)
            hit = r->id == e->cancels[c];
        if (!hit || *ngone == gone_cap) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        gone[(*ngone)++] = r, e->queued--;
    }
    e->ncancel = 0;
    for (int i = 0; all && i < e->nact; i++)
        e->act[i]->cancelled = 1;
    long cost = 0;
    int rows = 0;
    for (int i = 0; i < e->nact; i++)
        if (!e->act[i]->cancelled)
            cost += e->act[i]->cost, rows += e->act[i]->K;
    while (e->qhead && cost + e->qhead->cost <= e->o.token_budget && rows + e->qhead->K <= e->o.max_rows &&
           e->nact + *nadd < e->o.max_rows) {
        request *r = e->qhead;
        e->qhead = r->next;
        r->next = NULL;
        cost += r->cost, rows += r->K;
        add[(*nadd)++] = r, e->queued--;
    }
    if (!e->qhead)
        e->qtail = NULL;
    else
        for (request *r = e->qhead; r; r = r->next)
            e->qtail = r;
    e->stats.requests_queued = e->queued;
}

/* One decoder step on the R active rows: log-probabilities and attended positions to the host. */
static s2s_status device_step(s2s_engine *e, s2s_dec_state *ds)
{
    s2s_model *m = e->m;
    int R = e->R, L = e->L, V = e->V;
    s2s_enc_state es;
    s2s_dev_batch db;
    memset(&es, 0, sizeof es), memset(&db, 0, sizeof db);
    es.S = e->S, es.B = R, es.out[L - 1] = e->vals, es.keys = e->keys;
    for (int l = 0; l < L; l++)
        es.hfin[l] = e->h[l], es.cfin[l] = e->lstm ? e->c[l] : NULL;
    db.B = R, db.S = e->S, db.T = 1, db.src_len = e->len_dev, db.src_len_host = e->len_host;
    S2S_TRY(s2s_decoder_search_init(m, &es, 1, R, ds));
    ds->ht0 = e->feed ? e->ht : NULL;
    S2S_TRY(OPS->to_device(m->be, e->ids_dev, e->tok, sizeof(int32_t) * (size_t)R));
    S2S_TRY(s2s_decoder_search_step(m, &db, &es, ds, e->ids_dev, 0));
    int M = 0, whole = 0;
    for (int i = 0; i < e->nact; i++) {
        M = e->act[i]->top_m > M ? e->act[i]->top_m : M;
        whole |= !e->act[i]->top_m;
    }
    if (whole) /* log_softmax_topk gives the same candidates, without rows for the host */
        S2S_TRY(OPS->log_softmax(m->be, ds->logits, ds->logits, R, V));
    if (ds->alpha) {
        S2S_TRY(OPS->argmax(m->be, e->pos_dev, ds->alpha, R, e->S));
        S2S_TRY(OPS->to_host(m->be, e->pos, e->pos_dev, sizeof(int32_t) * (size_t)R));
    } else {
        memset(e->pos, 0, sizeof(int32_t) * (size_t)R);
    }
    if (M) { /* beam search's candidates: every row's M best */
        if (whole)
            S2S_TRY(OPS->topk(m->be, e->top_v_dev, e->top_i_dev, ds->logits, R, V, M));
        else
            S2S_TRY(OPS->log_softmax_topk(m->be, e->top_v_dev, e->top_i_dev, ds->logits, R, V, M));
        S2S_TRY(OPS->to_host(m->be, e->top_i, e->top_i_dev, sizeof(int32_t) * (size_t)R * M));
        S2S_TRY(OPS->to_host(m->be, e->top_v, e->top_v_dev, sizeof(float) * (size_t)R * M));
    }
    for (int i = 0; i < e->nact; i++) { /* greedy, sampling, n-gram blocking: whole rows */
        const request *r = e->act[i];
        if (!r->top_m)
            S2S_TRY(OPS->to_host(m->be, e->lp + (size_t)r->row0 * V, ds->logits + (size_t)r->row0 * V,
                                 sizeof(float) * (size_t)r->K * V));
    }
    for (int i = 0; i < e->nact; i++)
        e->act[i]->top_m = e->act[i]->top_m ? M : 0; /* the rows' M for the host step */
    return S2S_OK;
}

/* Fails every active request (a step failed) and empties the active set. */
static void fail_active(s2s_engine *e, s2s_status st)
{
    char why[1024];
    snprintf(why, sizeof why, "%s", s2s_last_error());
    for (int i = 0; i < e->nact; i++)
        end_without(e, e->act[i], st, why);
    e->nact = 0, e->R = 0, e->S = 1;
}

S2S_API s2s_status s2s_engine_step(s2s_engine *e, int *active)
{
    if (!e)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_engine_step: engine is NULL");
    int cap = e->o.max_rows, gcap = e->o.queue_max + 1; /* admitted, kept: rows; cancelled: the queue */
    request **add = malloc(sizeof(request *) * ((size_t)cap * 2 + (size_t)gcap)), **keep = add + cap,
            **gone = add + 2 * cap;
    if (!add)
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "a step's lists");
    int nadd, ngone, nkeep = 0;
    double t0 = now_ms();
    pthread_mutex_lock(&e->mu);
    intake(e, add, &nadd, gone, &ngone, gcap);
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < ngone; i++)
        end_without(e, gone[i], S2S_ERR_CANCELLED, "cancelled while queued");
    for (int i = 0; i < nadd; i++)
        add[i]->t_admit = now_ms();
    for (int i = 0; i < e->nact; i++) {
        if (e->act[i]->cancelled)
            end_without(e, e->act[i], S2S_ERR_CANCELLED, "cancelled");
        else
            keep[nkeep++] = e->act[i];
    }
    int changed = nkeep != e->nact;
    for (int i = 0; i < nkeep; i++) /* their rows keep their old places until relayout moves them */
        e->act[i] = keep[i];
    e->nact = nkeep;
    /* an empty text needs no decoding */
    int nreal = 0;
    for (int i = 0; i < nadd; i++) {
        if (add[i]->src_len == 0)
            finish_request(e, add[i]);
        else
            add[nreal++] = add[i];
    }
    s2s_arena_reset(&e->m->arena);
    s2s_status st = s2s_model_precision_begin(e->m, e->o.precision);
    int began = st == S2S_OK;
    if (st == S2S_OK && (nreal || changed))
        st = relayout(e, keep, nkeep, add, nreal);
    if (st != S2S_OK) { /* the newcomers were not made active: fail them with the rest */
        for (int i = 0; i < nreal; i++)
            e->act[e->nact++] = add[i];
        fail_active(e, st);
    }
    s2s_dec_state ds;
    if (st == S2S_OK && e->R > 0)
        st = device_step(e, &ds);
    if (began)
        s2s_model_precision_end(e->m);
    /* the host's choices; finished requests report and leave */
    nkeep = 0;
    for (int i = 0; i < e->nact && st == S2S_OK; i++) {
        request *r = e->act[i];
        size_t r0 = (size_t)r->row0;
        s2s_step_rows rows = {r->top_m ? NULL : e->lp + r0 * e->V, r->top_m ? e->top_v + r0 * r->top_m : NULL,
                              r->top_m ? e->top_i + r0 * r->top_m : NULL, r->top_m, e->pos + r0, NULL};
        int done = s2s_search_step(&r->search, &rows, e->tok + r0, e->parent + r0, e->scratch);
        r->top_m = s2s_search_top_m(&r->o, e->V);
        if (done) {
            finish_request(e, r);
            continue;
        }
        stream(e, r, &r->search.live[0]);
        for (int k = 0; k < r->K; k++)
            e->parent[r0 + k] += (int32_t)r0;
        keep[nkeep++] = r;
    }
    /* the step's outputs become the state of the rows that go on, by parent */
    int R_new = 0;
    if (st == S2S_OK && e->R > 0) {
        st = map_room(e, (size_t)e->R);
        for (int i = 0; i < nkeep && st == S2S_OK; i++)
            for (int k = 0; k < keep[i]->K; k++) {
                e->map[R_new] = e->parent[keep[i]->row0 + k];
                e->tok[R_new++] = e->tok[keep[i]->row0 + k];
            }
        for (int l = 0; l < e->L && st == S2S_OK; l++) {
            st = remap(e, e->h[l], ds.run[l].hs, e->R, NULL, 0, e->map, R_new, e->H);
            if (st == S2S_OK && e->lstm)
                st = remap(e, e->c[l], ds.run[l].cs, e->R, NULL, 0, e->map, R_new, e->H);
        }
        if (st == S2S_OK && e->feed)
            st = remap(e, e->ht, ds.ht, e->R, NULL, 0, e->map, R_new, e->H);
        if (st == S2S_OK && nkeep != e->nact) { /* requests left: their memory goes */
            int *from_old = calloc((size_t)R_new + 1, sizeof(int)), *from_new = NULL, S_new = 1, row = 0;
            from_new = calloc((size_t)R_new + 1, sizeof(int));
            if (!from_old || !from_new)
                st = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "a row map");
            for (int i = 0; i < nkeep && st == S2S_OK; i++) {
                for (int k = 0; k < keep[i]->K; k++)
                    from_old[row + k] = keep[i]->row0 + k, from_new[row + k] = -1;
                row += keep[i]->K;
                S_new = keep[i]->src_len > S_new ? keep[i]->src_len : S_new;
            }
            if (st == S2S_OK)
                st = remap_memory(e, from_old, from_new, R_new, S_new, NULL, 1, 0);
            if (st == S2S_OK) {
                e->S = S_new;
                for (int i = 0, rr = 0; i < nkeep; i++)
                    for (int k = 0; k < keep[i]->K; k++)
                        e->len_host[rr++] = keep[i]->src_len;
                if (R_new)
                    st = OPS->to_device(e->m->be, e->len_dev, e->len_host, sizeof(int32_t) * (size_t)R_new);
            }
            free(from_old), free(from_new);
        }
        for (int i = 0, row = 0; i < nkeep; i++) {
            keep[i]->row0 = row, row += keep[i]->K;
            e->act[i] = keep[i];
        }
    }
    if (st == S2S_OK)
        e->nact = nkeep, e->R = R_new;
    else
        fail_active(e, st);
    s2s_arena_reset(&e->m->arena);
    pthread_mutex_lock(&e->mu);
    e->stats.steps += e->R > 0 || nkeep > 0;
    e->stats.requests_active = e->nact;
    e->stats.rows_active = e->R;
    e->stats.last_step_ms = now_ms() - t0;
    if (active)
        *active = e->nact + (int)e->queued;
    pthread_mutex_unlock(&e->mu);
    free(add);
    return st;
}

S2S_API s2s_status s2s_engine_run(s2s_engine *e)
{
    if (!e)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_engine_run: engine is NULL");
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && !e->qhead && e->nact == 0 && e->ncancel == 0)
            pthread_cond_wait(&e->cv, &e->mu);
        int stop = e->stopping && (!e->drain || (!e->qhead && e->nact == 0));
        pthread_mutex_unlock(&e->mu);
        if (stop)
            break;
        s2s_engine_step(e, NULL); /* a failure has been reported to the requests it held */
    }
    if (e->nact || e->qhead) /* stopped without draining: what is left is cancelled */
        s2s_engine_step(e, NULL);
    return S2S_OK;
}

S2S_API void s2s_engine_free(s2s_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1, e->drain = 0;
    pthread_mutex_unlock(&e->mu);
    if (e->act && (e->nact || e->qhead))
        s2s_engine_step(e, NULL); /* cancels and reports what is left */
    s2s_backend *be = e->m->be;
    for (int l = 0; l < e->L; l++)
        be->ops->release(be, e->h[l]), be->ops->release(be, e->c[l]);
    void *dev[] = {e->ht, e->keys, e->vals, e->len_dev, e->ids_dev, e->pos_dev, e->top_i_dev, e->top_v_dev};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        be->ops->release(be, dev[i]);
    free(e->act), free(e->tok), free(e->parent), free(e->pos), free(e->len_host), free(e->top_i), free(e->top_v);
    free(e->lp), free(e->scratch), free(e->map), free(e->cancels);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
