/* search.c - one sentence's search on the host (search.h): beam search with GNMT length
 * normalisation, n-gram blocking and a minimum length; greedy decoding; sampling with
 * temperature, top-k and top-p. */
#include "search.h"
#include "philox.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    double score;
    int beam;
    int32_t tok;
} cand;

static double length_norm(const s2s_search *s, int len)
{
    return s->o.length_penalty > 0 ? pow((5.0 + len) / 6.0, s->o.length_penalty) : 1.0;
}

int s2s_search_top_m(const s2s_decode_options *o, int V)
{
    /* 2K+3 holds K allowed tokens even when PAD, BOS and EOS (before min_len) are not allowed;
     * n-gram blocking can ban any token, sampling draws from all: those need whole rows */
    int K = o->mode == S2S_DECODE_BEAM ? o->beam_size : o->mode == S2S_DECODE_GREEDY ? 1 : 0;
    return K > 0 && o->no_repeat_ngram <= 0 && 2 * K + 3 < V ? 2 * K + 3 : 0;
}

size_t s2s_search_scratch_bytes(int V, int K) { return sizeof(cand) * ((size_t)V + 2 * (size_t)K); }

s2s_status s2s_search_init(s2s_search *s, const s2s_decode_options *o, int src_len, int S, int V, int key)
{
    memset(s, 0, sizeof *s);
    s->o = *o;
    s->K = o->mode == S2S_DECODE_BEAM ? o->beam_size : 1;
    s->S = S, s->V = V, s->key = key, s->src_len = src_len;
    int ml = (int)(o->max_len_a * src_len) + o->max_len_b;
    s->max_len = ml < 1 ? 1 : ml;
    size_t K = (size_t)s->K, T = (size_t)s->max_len, att = o->attention ? T * (size_t)S : 0;
    size_t per = T * 2 * sizeof(int32_t) + att * sizeof(float) + 16; /* one hypothesis' arrays */
    size_t heads = 3 * K * sizeof(s2s_hyp) + K * sizeof(float) + T * sizeof(int32_t);
    char *p = s->pool = s2s_host_calloc(1, heads + 3 * K * per, "beam hypotheses");
    if (!p)
        return S2S_ERR_OUT_OF_MEMORY;
    s->live = (s2s_hyp *)p, s->next = s->live + K, s->fin = s->next + K;
    s->fin_score = (float *)(s->fin + K);
    s->banned = (int32_t *)(s->fin_score + K);
    p += heads;
    for (size_t i = 0; i < 3 * K; i++, p += per) { /* live, next, fin are consecutive */
        s2s_hyp *h = &s->live[i];
        h->tok = (int32_t *)p;
        h->pos = h->tok + T;
        h->att = att ? (float *)(h->pos + T) : NULL;
    }
    return S2S_OK;
}

void s2s_search_free(s2s_search *s)
{
    free(s->pool);
    memset(s, 0, sizeof *s);
}

/* ---- hypotheses ------------------------------------------------------------------------------ */

static void hyp_copy(const s2s_search *s, s2s_hyp *dst, const s2s_hyp *src)
{
    memcpy(dst->tok, src->tok, sizeof(int32_t) * (size_t)src->len);
    memcpy(dst->pos, src->pos, sizeof(int32_t) * (size_t)src->len);
    if (dst->att)
        memcpy(dst->att, src->att, sizeof(float) * (size_t)src->len * s->S);
    dst->len = src->len;
    dst->logp = src->logp;
}

/* Appends token v (chosen from row k of r) to h. */
static void hyp_push(const s2s_search *s, s2s_hyp *h, const s2s_step_rows *r, int k, int32_t v, double logp)
{
    h->tok[h->len] = v;
    h->pos[h->len] = r->pos ? r->pos[k] : 0;
    if (h->att && r->alpha)
        memcpy(h->att + (size_t)h->len * s->S, r->alpha + (size_t)k * s->S, sizeof(float) * (size_t)s->S);
    else if (h->att) /* a model without attention: zero rows */
        memset(h->att + (size_t)h->len * s->S, 0, sizeof(float) * (size_t)s->S);
    h->len++;
    h->logp = logp;
}

/* Keeps the K best finished hypotheses by normalised score. */
static void finish(s2s_search *s, const s2s_hyp *h)
{
    float score = (float)(h->logp / length_norm(s, h->len));
    int slot = s->nfin < s->K ? s->nfin++ : -1;
    if (slot < 0) {
        int worst = 0;
        for (int i = 1; i < s->K; i++)
            worst = s->fin_score[i] < s->fin_score[worst] ? i : worst;
        if (score <= s->fin_score[worst])
            return;
        slot = worst;
    }
    hyp_copy(s, &s->fin[slot], h);
    s->fin_score[slot] = score;
}

/* ---- choosing the next tokens ------------------------------------------------------------------ */

/* n-gram blocking: would appending v to h repeat an n-gram h already has? */
static int repeats(const s2s_hyp *h, int32_t v, int n)
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

/* The tokens that would repeat an n-gram of h (those that followed an earlier occurrence of its
 * last n - 1 tokens), into s->banned: what repeats() says of every token, found once per row in
 * O(len n) instead of O(V len). Returns their number, or -1 when they do not fit (then
 * repeats() is asked token by token). */
static int find_banned(s2s_search *s, const s2s_hyp *h)
{
    int n = s->o.no_repeat_ngram, nb = 0;
    if (n <= 0 || h->len < n - 1)
        return 0;
    const int32_t *tail = h->tok + h->len - (n - 1);
    for (int i = 0; i + n - 1 < h->len; i++) {
        int same = 1;
        for (int j = 0; same && j < n - 1; j++)
            same = h->tok[i + j] == tail[j];
        if (same) {
            if (nb == s->max_len)
                return -1;
            s->banned[nb++] = h->tok[i + n - 1];
        }
    }
    return nb;
}

/* Whether v may follow h; nb: find_banned's answer for h. */
static int allowed_nb(const s2s_search *s, const s2s_hyp *h, int32_t v, int nb)
{
    if (v == S2S_PAD_ID || v == S2S_BOS_ID || (v == S2S_EOS_ID && h->len < s->o.min_len))
        return 0;
    if (nb < 0)
        return !repeats(h, v, s->o.no_repeat_ngram);
    for (int i = 0; i < nb; i++)
        if (s->banned[i] == v)
            return 0;
    return 1;
}

static int allowed(const s2s_search *s, const s2s_hyp *h, int32_t v)
{
    if (v == S2S_EOS_ID && h->len < s->o.min_len)
        return 0;
    return v != S2S_PAD_ID && v != S2S_BOS_ID && !repeats(h, v, s->o.no_repeat_ngram);
}

/* A beam step: fills next[] and the rows' tokens and parents; finished hypotheses go aside. */
static void beam_step(s2s_search *s, const s2s_step_rows *r, int32_t *tok, int32_t *parent, cand *top)
{
    int K = s->K, V = s->V, n = 0, beams = s->t == 0 ? 1 : K; /* at the first step all beams are equal */
    for (int k = 0; k < beams; k++) {
        const s2s_hyp *h = &s->live[k];
        if (h->logp == -INFINITY)
            continue;
        if (r->M) {
            const float *tv = r->top_v + (size_t)k * r->M;
            const int32_t *ti = r->top_i + (size_t)k * r->M;
            int m = s2s_search_top_m(&s->o, V); /* this sentence's share of the rows' M best */
            m = m > 0 && m < r->M ? m : r->M;
            for (int j = 0; j < m && ti[j] >= 0; j++)
                if (allowed(s, h, ti[j]))
                    keep_top(top, &n, 2 * K, (cand){h->logp + tv[j], k, ti[j]});
            continue;
        }
        const float *lp = r->lp + (size_t)k * V;
        int nb = find_banned(s, h);
        for (int32_t v = 0; v < V; v++)
            if (allowed_nb(s, h, v, nb))
                keep_top(top, &n, 2 * K, (cand){h->logp + lp[v], k, v});
    }
    int filled = 0;
    for (int i = 0; i < n && filled < K; i++) {
        const s2s_hyp *h = &s->live[top[i].beam];
        s2s_hyp *nh = &s->next[filled];
        hyp_copy(s, nh, h);
        if (top[i].tok == S2S_EOS_ID) {
            nh->logp = top[i].score;
            finish(s, nh);
            continue;
        }
        hyp_push(s, nh, r, top[i].beam, top[i].tok, top[i].score);
        parent[filled] = top[i].beam;
        tok[filled] = top[i].tok;
        if (nh->len >= s->max_len)
            finish(s, nh), nh->logp = -INFINITY;
        filled++;
    }
    for (; filled < K; filled++) { /* no candidate left: a dead beam */
        s->next[filled].logp = -INFINITY;
        s->next[filled].len = 0;
        parent[filled] = 0;
        tok[filled] = S2S_EOS_ID;
    }
}

static int cmp_cand_desc(const void *a, const void *b)
{
    double x = ((const cand *)a)->score, y = ((const cand *)b)->score;
    return (x < y) - (x > y);
}

/* Draws from softmax(lp / temperature) over the allowed tokens, restricted to the top_k most
 * likely and to the smallest set holding top_p of the mass; Philox keyed by (seed, key, step). */
static int32_t sample_token(s2s_search *s, const float *lp, const s2s_hyp *h, cand *c)
{
    const s2s_decode_options *o = &s->o;
    int n = 0, nb = find_banned(s, h);
    for (int32_t v = 0; v < s->V; v++)
        if (allowed_nb(s, h, v, nb))
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
    double u = s2s_philox_uniform(o->seed, ((uint64_t)(unsigned)s->key << 32) | (unsigned)s->t, 0) * zk, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += exp(c[i].score - c[0].score);
        if (u < acc)
            return c[i].tok;
    }
    return c[keep - 1].tok;
}

/* Greedy decoding or sampling: one row. */
static void single_step(s2s_search *s, const s2s_step_rows *r, int32_t *tok, int32_t *parent, cand *scratch)
{
    const s2s_hyp *h = &s->live[0];
    s2s_hyp *nh = &s->next[0];
    const float *lp = r->lp;
    int32_t pick = S2S_EOS_ID;
    float v = -INFINITY; /* pick's log-probability */
    parent[0] = 0;
    tok[0] = S2S_EOS_ID;
    if (h->logp == -INFINITY) {
        nh->logp = -INFINITY;
        return;
    }
    if (r->M) { /* greedy from the row's best M, largest first, ties by column: the first allowed */
        int m = s2s_search_top_m(&s->o, s->V);
        m = m > 0 && m < r->M ? m : r->M;
        int nb = find_banned(s, h);
        for (int j = 0; j < m && r->top_i[j] >= 0; j++) {
            if (r->top_i[j] == S2S_EOS_ID)
                v = r->top_v[j]; /* EOS's value, should nothing be allowed */
            if (allowed_nb(s, h, r->top_i[j], nb)) {
                pick = r->top_i[j], v = r->top_v[j];
                break;
            }
        }
    } else if (s->o.mode == S2S_DECODE_SAMPLE) {
        pick = sample_token(s, lp, h, scratch);
        v = lp[pick];
    } else { /* the first of the largest allowed: the row's first largest when it is allowed */
        int nb = find_banned(s, h), nan = isnan(lp[0]);
        int32_t best = 0;
        for (int32_t c = 1; c < s->V; c++) {
            best = lp[c] > lp[best] ? c : best;
            nan |= isnan(lp[c]);
        }
        if (nan || !allowed_nb(s, h, best, nb)) { /* the full scan decides, as it always did */
            best = -1;
            for (int32_t c = 0; c < s->V; c++)
                if (allowed_nb(s, h, c, nb) && (best < 0 || lp[c] > lp[best]))
                    best = c;
        }
        pick = best < 0 ? S2S_EOS_ID : best;
        v = lp[pick];
    }
    hyp_copy(s, nh, h);
    if (pick == S2S_EOS_ID) {
        nh->logp = h->logp + v;
        finish(s, nh);
        nh->logp = -INFINITY;
        return;
    }
    tok[0] = pick;
    hyp_push(s, nh, r, 0, pick, h->logp + v);
    if (nh->len >= s->max_len)
        finish(s, nh), nh->logp = -INFINITY;
}

/* Whether the sentence can stop: every beam dead, or (beam search) K finished, or no live beam
 * can still beat the nbest-th finished score even at the longest length. */
static int search_done(const s2s_search *s)
{
    double best_live = -INFINITY;
    for (int k = 0; k < s->K; k++)
        best_live = s->live[k].logp > best_live ? s->live[k].logp : best_live;
    if (best_live == -INFINITY || s->nfin >= s->K)
        return 1;
    if (s->nfin < s2s_search_nbest(s))
        return 0;
    float worst_kept = INFINITY;
    for (int i = 0; i < s->nfin; i++)
        worst_kept = s->fin_score[i] < worst_kept ? s->fin_score[i] : worst_kept;
    return best_live / length_norm(s, s->max_len) < worst_kept;
}

int s2s_search_step(s2s_search *s, const s2s_step_rows *r, int32_t *tok, int32_t *parent, void *scratch)
{
    if (s->done) {
        for (int k = 0; k < s->K; k++)
            tok[k] = S2S_EOS_ID, parent[k] = k;
        return 1;
    }
    if (s->o.mode == S2S_DECODE_BEAM)
        beam_step(s, r, tok, parent, scratch);
    else
        single_step(s, r, tok, parent, scratch);
    s2s_hyp *tmp = s->live;
    s->live = s->next;
    s->next = tmp;
    s->t++;
    s->done = search_done(s);
    return s->done;
}

static int cmp_score_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

s2s_status s2s_search_collect(s2s_search *s, s2s_hypothesis *out)
{
    int nbest = s2s_search_nbest(s);
    for (int k = 0; k < s->K && s->nfin < nbest; k++) /* fill up with live beams */
        if (s->live[k].logp > -INFINITY)
            finish(s, &s->live[k]);
    struct {
        float score;
        int i;
    } order[64];
    int n = s->nfin < 64 ? s->nfin : 64;
    for (int i = 0; i < n; i++)
        order[i].score = s->fin_score[i], order[i].i = i;
    qsort(order, (size_t)n, sizeof order[0], cmp_score_desc);
    for (int j = 0; j < nbest; j++) {
        s2s_hypothesis *o = &out[j];
        memset(o, 0, sizeof *o);
        o->src_len = s->src_len;
        o->score = -INFINITY;
        if (j >= n)
            continue;
        const s2s_hyp *h = &s->fin[order[j].i];
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
            o->src_pos[i] = h->pos[i] < s->src_len ? h->pos[i] : s->src_len - 1;
        for (int i = 0; h->att && i < h->len; i++)
            memcpy(o->attention + (size_t)i * s->src_len, h->att + (size_t)i * s->S, sizeof(float) * (size_t)s->src_len);
    }
    return S2S_OK;
}
