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
#include "philox.h"
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

/* One hypothesis under construction (host). */
typedef struct hyp {
    int32_t *tok, *pos;
    float *att;
    int len;
    double logp;
} hyp;

typedef struct sentence {
    int src_len, max_len, done, nfin;
    hyp *fin;     /* [K] finished, kept as copies */
    float *fin_score;
} sentence;

typedef struct search {
    s2s_model *m;
    const s2s_decode_options *o;
    int B, K, S, T, V;
    hyp *live, *next; /* [B*K] each */
    sentence *sent;
    float *lp_host;    /* [BK, V] (unless top-M) */
    float *alpha_host; /* [BK, S] when attention is asked for, else NULL */
    int32_t *pos_host; /* [BK]: each row's most attended source position at this step */
    /* Beam search without n-gram blocking sees only each row's M = 2K + 3 best tokens (found
     * on the device): the 2K candidates a sentence keeps are among them, even when PAD, BOS
     * and EOS (the only tokens it may refuse) are too. NaN log-probabilities are never
     * candidates there (the full scan could keep one). */
    int M;
    float *top_v;   /* [BK, M] */
    int32_t *top_i; /* [BK, M] */
    int32_t *tok_host, *parent;  /* [BK] */
    void *pool;                  /* all host arrays of the hyps */
} search;

static double length_norm(const search *s, int len)
{
    return s->o->length_penalty > 0 ? pow((5.0 + len) / 6.0, s->o->length_penalty) : 1.0;
}

/* ---- host bookkeeping ------------------------------------------------------------------------ */

static s2s_status search_alloc(search *s)
{
    size_t BK = (size_t)s->B * s->K, T = (size_t)s->T, S = (size_t)s->S;
    size_t att = s->o->attention ? T * S : 0;
    size_t per = T * 2 * sizeof(int32_t) + att * sizeof(float);
    size_t nh = 2 * BK + BK; /* live, next, finished (K per sentence) */
    s->pool = s2s_host_calloc(nh, per + 16, "beam hypotheses");
    s->live = s2s_host_calloc(BK, sizeof(hyp), "beams");
    s->next = s2s_host_calloc(BK, sizeof(hyp), "beams");
    s->sent = s2s_host_calloc((size_t)s->B, sizeof(sentence), "sentences");
    hyp *fin = s2s_host_calloc(BK, sizeof(hyp), "finished hypotheses");
    float *fs = s2s_host_calloc(BK, sizeof(float), "scores");
    s->lp_host = s2s_host_alloc(BK * (size_t)(s->M ? s->M : s->V) * sizeof(float), "log-probabilities");
    if (s->M) {
        s->top_v = s->lp_host;
        s->top_i = s2s_host_alloc(BK * (size_t)s->M * sizeof(int32_t), "candidate tokens");
    }
    /* zeros stay where the model has no attention to copy (attention_to_host) */
    s->alpha_host = att ? s2s_host_calloc(BK * S, sizeof(float), "attention") : NULL;
    s->pos_host = s2s_host_calloc(BK, sizeof(int32_t), "attended positions");
    s->tok_host = s2s_host_alloc(BK * sizeof(int32_t), "tokens");
    s->parent = s2s_host_alloc(BK * sizeof(int32_t), "beam parents");
    if (!s->pool || !s->live || !s->next || !s->sent || !fin || !fs || !s->lp_host || !s->pos_host ||
        (att && !s->alpha_host) || (s->M && !s->top_i) || !s->tok_host || !s->parent) {
        free(fin), free(fs);
        return S2S_ERR_OUT_OF_MEMORY;
    }
    char *p = s->pool;
    hyp *all[3] = {s->live, s->next, fin};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < BK; i++) {
            all[k][i].tok = (int32_t *)p;
            all[k][i].pos = all[k][i].tok + T;
            all[k][i].att = att ? (float *)(all[k][i].pos + T) : NULL;
            p += per + 16;
        }
    for (int b = 0; b < s->B; b++) {
        s->sent[b].fin = fin + (size_t)b * s->K;
        s->sent[b].fin_score = fs + (size_t)b * s->K;
    }
    return S2S_OK;
}

static void search_free(search *s)
{
    if (s->sent) {
        free(s->sent[0].fin);
        free(s->sent[0].fin_score);
    }
    free(s->pool), free(s->live), free(s->next), free(s->sent), free(s->lp_host), free(s->alpha_host);
    free(s->pos_host), free(s->tok_host), free(s->parent), free(s->top_i);
}

static void hyp_copy(const search *s, hyp *dst, const hyp *src)
{
    memcpy(dst->tok, src->tok, sizeof(int32_t) * (size_t)src->len);
    memcpy(dst->pos, src->pos, sizeof(int32_t) * (size_t)src->len);
    if (dst->att)
        memcpy(dst->att, src->att, sizeof(float) * (size_t)src->len * s->S);
    dst->len = src->len;
    dst->logp = src->logp;
}

/* Appends token v of step t (attention of beam row r) to h. */
static void hyp_push(const search *s, hyp *h, int r, int32_t v, double logp)
{
    h->tok[h->len] = v;
    h->pos[h->len] = s->pos_host[r];
    if (h->att)
        memcpy(h->att + (size_t)h->len * s->S, s->alpha_host + (size_t)r * s->S, sizeof(float) * (size_t)s->S);
    h->len++;
    h->logp = logp;
}

/* Keeps the K best finished hypotheses of a sentence by normalised score. */
static void finish(const search *s, sentence *se, const hyp *h)
{
    float score = (float)(h->logp / length_norm(s, h->len));
    int slot = se->nfin < s->K ? se->nfin++ : -1;
    if (slot < 0) {
        int worst = 0;
        for (int i = 1; i < s->K; i++)
            worst = se->fin_score[i] < se->fin_score[worst] ? i : worst;
        if (score <= se->fin_score[worst])
            return;
        slot = worst;
    }
    hyp_copy(s, &se->fin[slot], h);
    se->fin_score[slot] = score;
}

/* ---- choosing the next tokens ------------------------------------------------------------------ */

/* n-gram blocking: would appending v to h repeat an n-gram h already has? */
static int repeats(const hyp *h, int32_t v, int n)
{
    if (n <= 0 || h->len < n - 1)
        return 0;
    const int32_t *tail = h->tok + h->len - (n - 1);
    for (int i = 0; i + n - 1 < h->len; i++) {
        int same = h->tok[i + n - 1] == v;
        for (int j = 0; same && j < n - 1; j++)
            same = h->tok[i + j] == tail[j];
        if (same)
            return 1;
    }
    return 0;
}

typedef struct cand { double score; int beam; int32_t tok; } cand;

/* Inserts c into the descending list top[0..*n) of capacity cap. */
static void keep_top(cand *top, int *n, int cap, cand c)
{
    if (*n == cap && c.score <= top[cap - 1].score)
        return;
    int i = *n < cap ? (*n)++ : cap - 1;
    while (i > 0 && top[i - 1].score < c.score) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = c;
}

static int allowed(const search *s, const hyp *h, int32_t v)
{
    if (v == S2S_EOS_ID && h->len < s->o->min_len)
        return 0;
    return v != S2S_PAD_ID && v != S2S_BOS_ID && !repeats(h, v, s->o->no_repeat_ngram);
}

/* Beam step for sentence b at step t: fills next[b*K ..] and parents; finished go aside. */
static void beam_sentence(search *s, int b, int t, cand *top)
{
    sentence *se = &s->sent[b];
    int K = s->K, V = s->V, n = 0, beams = t == 0 ? 1 : K; /* at t = 0 all beams are equal */
    for (int k = 0; k < beams; k++) {
        const hyp *h = &s->live[b * K + k];
        if (h->logp == -INFINITY)
            continue;
        if (s->M) {
            const float *tv = s->top_v + (size_t)(b * K + k) * s->M;
            const int32_t *ti = s->top_i + (size_t)(b * K + k) * s->M;
            for (int j = 0; j < s->M && ti[j] >= 0; j++)
                if (allowed(s, h, ti[j]))
                    keep_top(top, &n, 2 * K, (cand){h->logp + tv[j], k, ti[j]});
            continue;
        }
        const float *lp = s->lp_host + (size_t)(b * K + k) * V;
        for (int32_t v = 0; v < V; v++)
            if (allowed(s, h, v))
                keep_top(top, &n, 2 * K, (cand){h->logp + lp[v], k, v});
    }
    int filled = 0;
    for (int i = 0; i < n && filled < K; i++) {
        const hyp *h = &s->live[b * K + top[i].beam];
        hyp *nh = &s->next[b * K + filled];
        hyp_copy(s, nh, h);
        if (top[i].tok == S2S_EOS_ID) {
            nh->logp = top[i].score;
            finish(s, se, nh);
            continue;
        }
        hyp_push(s, nh, b * K + top[i].beam, top[i].tok, top[i].score);
        s->parent[b * K + filled] = b * K + top[i].beam;
        s->tok_host[b * K + filled] = top[i].tok;
        if (nh->len >= se->max_len)
            finish(s, se, nh), nh->logp = -INFINITY;
        filled++;
    }
    for (; filled < K; filled++) { /* no candidate left: a dead beam */
        s->next[b * K + filled].logp = -INFINITY;
        s->next[b * K + filled].len = 0;
        s->parent[b * K + filled] = b * K;
        s->tok_host[b * K + filled] = S2S_EOS_ID;
    }
}

static int cmp_cand_desc(const void *a, const void *b)
{
    double x = ((const cand *)a)->score, y = ((const cand *)b)->score;
    return (x < y) - (x > y);
}

/* Draws from softmax(lp / temperature) over the allowed tokens, restricted to the top_k most
 * likely and to the smallest set holding top_p of the mass; Philox keyed by (seed, b, t). */
static int32_t sample_token(const search *s, const float *lp, const hyp *h, int b, int t, cand *c)
{
    const s2s_decode_options *o = s->o;
    int n = 0;
    for (int32_t v = 0; v < s->V; v++)
        if (allowed(s, h, v))
            c[n++] = (cand){lp[v] / (o->temperature > 0 ? o->temperature : 1.0f), 0, v};
    if (n == 0)
        return S2S_EOS_ID;
    qsort(c, (size_t)n, sizeof *c, cmp_cand_desc);
    if (o->top_k > 0 && o->top_k < n)
        n = o->top_k;
    double z = 0, mass = 0;
    for (int i = 0; i < n; i++)
        z += exp(c[i].score - c[0].score);
    int keep = n;
    for (int i = 0; i < n && o->top_p < 1.0f; i++) {
        mass += exp(c[i].score - c[0].score) / z;
        if (mass >= o->top_p) {
            keep = i + 1;
            break;
        }
    }
    double zk = 0;
    for (int i = 0; i < keep; i++)
        zk += exp(c[i].score - c[0].score);
    double u = s2s_philox_uniform(o->seed, ((uint64_t)(unsigned)b << 32) | (unsigned)t, 0) * zk, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += exp(c[i].score - c[0].score);
        if (u < acc)
            return c[i].tok;
    }
    return c[keep - 1].tok;
}

/* Greedy or sampling (K = 1) for sentence b. */
static void single_sentence(search *s, int b, int t, cand *scratch)
{
    const hyp *h = &s->live[b];
    hyp *nh = &s->next[b];
    const float *lp = s->lp_host + (size_t)b * s->V;
    int32_t pick = S2S_EOS_ID;
    s->parent[b] = b;
    s->tok_host[b] = S2S_EOS_ID;
    if (h->logp == -INFINITY) {
        nh->logp = -INFINITY;
        return;
    }
    if (s->o->mode == S2S_DECODE_SAMPLE) {
        pick = sample_token(s, lp, h, b, t, scratch);
    } else {
        int32_t best = -1;
        for (int32_t v = 0; v < s->V; v++)
            if (allowed(s, h, v) && (best < 0 || lp[v] > lp[best]))
                best = v;
        pick = best < 0 ? S2S_EOS_ID : best;
    }
    hyp_copy(s, nh, h);
    if (pick == S2S_EOS_ID) {
        nh->logp = h->logp + lp[pick];
        finish(s, &s->sent[b], nh);
        nh->logp = -INFINITY;
        return;
    }
    s->tok_host[b] = pick;
    hyp_push(s, nh, b, pick, h->logp + lp[pick]);
    if (nh->len >= s->sent[b].max_len)
        finish(s, &s->sent[b], nh), nh->logp = -INFINITY;
}

/* Whether sentence b can stop: every beam dead, or (beam search) K finished, or no live beam
 * can still beat the nbest-th finished score even at the longest length. */
static int sentence_done(const search *s, int b)
{
    const sentence *se = &s->sent[b];
    double best_live = -INFINITY;
    for (int k = 0; k < s->K; k++)
        best_live = s->live[b * s->K + k].logp > best_live ? s->live[b * s->K + k].logp : best_live;
    if (best_live == -INFINITY || se->nfin >= s->K)
        return 1;
    int need = s->o->mode == S2S_DECODE_BEAM ? s->o->nbest : 1;
    if (se->nfin < need)
        return 0;
    float worst_kept = INFINITY;
    for (int i = 0; i < se->nfin; i++)
        worst_kept = se->fin_score[i] < worst_kept ? se->fin_score[i] : worst_kept;
    return best_live / length_norm(s, se->max_len) < worst_kept;
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

/* Decoder step t on all rows: log-probabilities (and attention) to the host. */
static s2s_status device_step(s2s_model *m, search *s, dev *d, int t)
{
    s2s_backend *be = m->be;
    int BK = s->B * s->K, V = s->V;
    float *lp = d->ds.logits;
    S2S_TRY(be->ops->to_device(be, d->ids, s->tok_host, sizeof(int32_t) * (size_t)BK));
    S2S_TRY(s2s_decoder_search_step(m, &d->xb, &d->xs, &d->ds, d->ids, t));
    S2S_TRY(be->ops->log_softmax(be, lp, lp, BK, V));
    S2S_TRY(attention_to_host(m, s, d, t));
    if (s->M) { /* only each row's M best leave the device */
        S2S_TRY(be->ops->topk(be, d->top_v, d->top_i, lp, BK, V, s->M));
        S2S_TRY(be->ops->to_host(be, s->top_i, d->top_i, sizeof(int32_t) * (size_t)BK * s->M));
        return be->ops->to_host(be, s->top_v, d->top_v, sizeof(float) * (size_t)BK * s->M);
    }
    return be->ops->to_host(be, s->lp_host, lp, sizeof(float) * (size_t)BK * V);
}

/* Gives each row the decoder state of its chosen parent. */
static s2s_status reorder(s2s_model *m, search *s, dev *d, int t)
{
    S2S_TRY(m->be->ops->to_device(m->be, d->parent, s->parent, sizeof(int32_t) * (size_t)s->B * s->K));
    return s2s_decoder_reorder(m, &d->ds, t, d->parent);
}

/* ---- the search ------------------------------------------------------------------------------ */

/* Picks every sentence's next tokens; returns 1 when all sentences are done. */
static int choose(search *s, int t, cand *scratch)
{
    for (int b = 0; b < s->B; b++) {
        sentence *se = &s->sent[b];
        if (se->done) {
            for (int k = 0; k < s->K; k++) {
                int r = b * s->K + k;
                s->next[r].logp = -INFINITY, s->next[r].len = 0, s->parent[r] = r, s->tok_host[r] = S2S_EOS_ID;
            }
            continue;
        }
        if (s->o->mode == S2S_DECODE_BEAM)
            beam_sentence(s, b, t, scratch);
        else
            single_sentence(s, b, t, scratch);
    }
    hyp *tmp = s->live;
    s->live = s->next;
    s->next = tmp;
    int all = 1;
    for (int b = 0; b < s->B; b++) {
        s->sent[b].done = s->sent[b].done || sentence_done(s, b);
        all &= s->sent[b].done;
    }
    return all;
}

static int cmp_score_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* The nbest hypotheses of each sentence, best first, as malloc'd public structs. */
static s2s_status collect(search *s, int nbest, s2s_hypothesis *out)
{
    for (int b = 0; b < s->B; b++) {
        sentence *se = &s->sent[b];
        for (int k = 0; k < s->K && se->nfin < nbest; k++) /* fill up with live beams */
            if (s->live[b * s->K + k].logp > -INFINITY)
                finish(s, se, &s->live[b * s->K + k]);
        struct { float score; int i; } order[64];
        int n = se->nfin < 64 ? se->nfin : 64;
        for (int i = 0; i < n; i++)
            order[i].score = se->fin_score[i], order[i].i = i;
        qsort(order, (size_t)n, sizeof order[0], cmp_score_desc);
        for (int j = 0; j < nbest; j++) {
            s2s_hypothesis *o = &out[(size_t)b * nbest + j];
            memset(o, 0, sizeof *o);
            o->src_len = se->src_len;
            o->score = -INFINITY;
            if (j >= n)
                continue;
            const hyp *h = &se->fin[order[j].i];
            o->len = h->len;
            o->score = order[j].score;
            o->ids = malloc(sizeof(int32_t) * (size_t)(h->len + 1));
            o->src_pos = malloc(sizeof(int32_t) * (size_t)(h->len + 1));
            if (h->att)
                o->attention = malloc(sizeof(float) * ((size_t)h->len * s->S + 1));
            if (!o->ids || !o->src_pos || (h->att && !o->attention))
                return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "decoded hypotheses");
            memcpy(o->ids, h->tok, sizeof(int32_t) * (size_t)h->len);
            for (int i = 0; i < h->len; i++) /* attention over the padded source: clamp */
                o->src_pos[i] = h->pos[i] < se->src_len ? h->pos[i] : se->src_len - 1;
            for (int i = 0; h->att && i < h->len; i++)
                memcpy(o->attention + (size_t)i * se->src_len, h->att + (size_t)i * s->S,
                       sizeof(float) * (size_t)se->src_len);
        }
    }
    return S2S_OK;
}

static s2s_status run_search(s2s_model *m, const s2s_batch *bt, const s2s_decode_options *o, s2s_hypothesis *out)
{
    s2s_dev_batch db;
    s2s_enc_state es;
    dev d;
    search s;
    memset(&s, 0, sizeof s);
    S2S_TRY(s2s_batch_upload(m, bt, 0, &db));
    s.m = m, s.o = o, s.B = db.B, s.S = db.S, s.V = m->cfg.tgt_vocab;
    s.K = o->mode == S2S_DECODE_BEAM ? o->beam_size : 1;
    if (o->mode == S2S_DECODE_BEAM && o->no_repeat_ngram <= 0 && 2 * s.K + 3 < s.V)
        s.M = 2 * s.K + 3;
    int longest = 0;
    for (int b = 0; b < s.B; b++) {
        int ml = (int)(o->max_len_a * bt->src_len[b]) + o->max_len_b;
        longest = ml > longest ? ml : longest;
    }
    s.T = longest > 0 ? longest : 1;
    s2s_status st = search_alloc(&s);
    int BK = s.B * s.K;
    cand *scratch = st == S2S_OK ? s2s_host_alloc(sizeof(cand) * ((size_t)s.V + 2 * s.K), "candidates") : NULL;
    if (st == S2S_OK && !scratch)
        st = S2S_ERR_OUT_OF_MEMORY;
    for (int b = 0; b < s.B && st == S2S_OK; b++) {
        int ml = (int)(o->max_len_a * bt->src_len[b]) + o->max_len_b;
        s.sent[b].src_len = bt->src_len[b];
        s.sent[b].max_len = ml < 1 ? 1 : ml;
    }
    for (int r = 0; r < BK && st == S2S_OK; r++)
        s.live[r].len = 0, s.live[r].logp = 0, s.tok_host[r] = S2S_BOS_ID;
    db.T = s.T;
    if (st == S2S_OK)
        st = s2s_encoder_infer(m, &db, &es);
    if (st == S2S_OK)
        st = expand(m, bt, &db, &es, s.K, &d);
    if (st == S2S_OK)
        st = s2s_decoder_search_init(m, &d.xs, s.T, BK, &d.ds);
    if (st == S2S_OK)
        st = s2s_arena_ints(&m->arena, (size_t)BK, &d.ids);
    if (st == S2S_OK)
        st = s2s_arena_ints(&m->arena, (size_t)BK, &d.parent);
    if (st == S2S_OK)
        st = s2s_arena_ints(&m->arena, (size_t)BK, &d.pos);
    if (st == S2S_OK && s.M)
        st = s2s_arena_floats(&m->arena, (size_t)BK * s.M, &d.top_v);
    if (st == S2S_OK && s.M)
        st = s2s_arena_ints(&m->arena, (size_t)BK * s.M, &d.top_i);
    for (int t = 0; t < s.T && st == S2S_OK; t++) {
        st = device_step(m, &s, &d, t);
        if (st != S2S_OK)
            break;
        if (choose(&s, t, scratch))
            break;
        st = reorder(m, &s, &d, t);
    }
    if (st == S2S_OK)
        st = collect(&s, o->mode == S2S_DECODE_BEAM ? o->nbest : 1, out);
    free(scratch);
    search_free(&s);
    return st;
}

S2S_API s2s_status s2s_model_decode(s2s_model *m, const s2s_batch *batch, const s2s_decode_options *opts,
                                    s2s_hypothesis **out)
{
    if (!m || !batch || !out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_model_decode: model, batch and out must not be NULL");
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
    s2s_status st = batch->batch > 0 ? run_search(m, batch, &o, h)
                                     : S2S_FAIL(S2S_ERR_INVALID_ARG, "batch->batch must be >= 1");
    s2s_arena_reset(&m->arena);
    if (st != S2S_OK) {
        s2s_hypotheses_free(h, (size_t)batch->batch * nbest);
        return st;
    }
    *out = h;
    return S2S_OK;
}

S2S_API void s2s_hypotheses_free(s2s_hypothesis *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++)
        free(h[i].ids), free(h[i].src_pos), free(h[i].attention);
    free(h);
}
