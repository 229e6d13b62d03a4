/* data.c - tokenizing a corpus once, and length-bucketed batches in a seeded order whose
 * position can be saved and restored (the order is a function of the seed and the epoch). */
#include "data.h"
#include "philox.h"
#include <stdlib.h>
#include <string.h>

#define POOL 8192 /* pairs sorted together: batches of similar lengths, order still random */

static s2s_status grow_ids(s2s_tokdata *d, size_t need)
{
    if (d->nids + need <= d->cap)
        return S2S_OK;
    size_t cap = d->cap ? d->cap : 1 << 16;
    while (cap < d->nids + need)
        cap *= 2;
    int32_t *p = realloc(d->ids, cap * sizeof(int32_t));
    if (!p)
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "could not grow token storage to %zu ids", cap);
    d->ids = p;
    d->cap = cap;
    return S2S_OK;
}

/* Encodes text at the end of d->ids; *len gets the count (may exceed max_len: then nothing is
 * kept, the caller skips the pair). */
static s2s_status encode_side(s2s_tokdata *d, const s2s_tokenizer *t, const char *text, int max_len, int *len)
{
    S2S_TRY(grow_ids(d, (size_t)max_len + 1));
    int n = 0;
    S2S_TRY(s2s_tokenizer_encode(t, text, d->ids + d->nids, max_len + 1, &n));
    *len = n;
    if (n <= max_len) {
        for (int i = 0; i < n; i++)
            d->unk_tokens += d->ids[d->nids + i] == S2S_UNK_ID;
        d->nids += (size_t)n;
    }
    return S2S_OK;
}

s2s_status s2s_tokdata_build(const s2s_corpus *c, const s2s_tokenizer *src, const s2s_tokenizer *tgt, int max_len,
                             size_t limit, s2s_tokdata *d)
{
    memset(d, 0, sizeof *d);
    size_t n = s2s_corpus_size(c);
    if (limit && limit < n)
        n = limit;
    d->src_off = s2s_host_alloc(n * sizeof(size_t) + 1, "token offsets");
    d->tgt_off = s2s_host_alloc(n * sizeof(size_t) + 1, "token offsets");
    d->corpus_index = s2s_host_alloc(n * sizeof(size_t) + 1, "pair indices");
    d->src_len = s2s_host_alloc(n * sizeof(int32_t) + 1, "lengths");
    d->tgt_len = s2s_host_alloc(n * sizeof(int32_t) + 1, "lengths");
    if (!d->src_off || !d->tgt_off || !d->corpus_index || !d->src_len || !d->tgt_len) {
        s2s_tokdata_free(d);
        return S2S_ERR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s, *t;
        int ls, lt;
        size_t mark = d->nids;
        s2s_status st = s2s_corpus_get(c, i, &s, &t);
        if (st == S2S_OK)
            st = encode_side(d, src, s, max_len, &ls);
        if (st == S2S_OK && ls <= max_len && ls > 0)
            st = encode_side(d, tgt, t, max_len, &lt);
        if (st != S2S_OK) {
            s2s_tokdata_free(d);
            return st;
        }
        if (ls == 0 || ls > max_len || lt > max_len) {
            d->nids = mark;
            d->skipped_long += ls > 0;
            d->skipped_empty += ls == 0;
            continue;
        }
        d->src_off[d->n] = mark;
        d->src_len[d->n] = ls;
        d->tgt_off[d->n] = mark + (size_t)ls;
        d->tgt_len[d->n] = lt;
        d->corpus_index[d->n] = i;
        d->n++;
    }
    return S2S_OK;
}

void s2s_tokdata_free(s2s_tokdata *d)
{
    free(d->src_off), free(d->tgt_off), free(d->corpus_index), free(d->src_len), free(d->tgt_len), free(d->ids);
    memset(d, 0, sizeof *d);
}

/* Uniform integer in [0, n) from the Philox stream (seed, stream) at counter e. */
static size_t draw(uint64_t seed, uint64_t stream, uint64_t e, size_t n)
{
    uint64_t q = e;
    s2s_philox4 r = s2s_philox4x32_10((uint32_t)q, (uint32_t)(q >> 32), (uint32_t)stream, (uint32_t)(stream >> 32),
                                      (uint32_t)seed, (uint32_t)(seed >> 32));
    uint64_t x = ((uint64_t)r.v[0] << 32) | r.v[1];
    return (size_t)(x % n);
}

static void shuffle(size_t *a, size_t n, uint64_t seed, uint64_t stream)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = draw(seed, stream, i, i), t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* qsort has no context argument: the lengths travel through a file-scope-free struct by
 * sorting (key, index) records instead. */
typedef struct keyed { uint64_t key; size_t idx; } keyed;

static int cmp_keyed(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : (x->idx > y->idx) - (x->idx < y->idx);
}

static void sort_by_length(const s2s_tokdata *d, size_t *idx, size_t n, keyed *tmp)
{
    for (size_t i = 0; i < n; i++)
        tmp[i] = (keyed){((uint64_t)d->tgt_len[idx[i]] << 32) | (uint32_t)d->src_len[idx[i]], idx[i]};
    qsort(tmp, n, sizeof *tmp, cmp_keyed);
    for (size_t i = 0; i < n; i++)
        idx[i] = tmp[i].idx;
}

/* Cuts order[] into batches greedily; returns the number of batches. */
static size_t cut(const s2s_tokdata *d, const size_t *order, size_t n, int batch_tokens, size_t *start, int *count)
{
    size_t nb = 0, i = 0;
    while (i < n) {
        int longest = 0, k = 0;
        start[nb] = i;
        while (i + (size_t)k < n) {
            int l = d->tgt_len[order[i + k]] + 1;
            int lmax = l > longest ? l : longest;
            if (k > 0 && (long)(k + 1) * lmax > batch_tokens)
                break;
            longest = lmax;
            k++;
        }
        count[nb++] = k;
        i += (size_t)k;
    }
    return nb;
}

s2s_status s2s_batch_plan_make(const s2s_tokdata *d, int batch_tokens, uint64_t seed, int epoch, int shuffle_on,
                               s2s_batch_plan *p)
{
    memset(p, 0, sizeof *p);
    size_t n = d->n;
    p->order = s2s_host_alloc((n + 1) * sizeof(size_t), "batch order");
    p->start = s2s_host_alloc((n + 1) * sizeof(size_t), "batch starts");
    p->count = s2s_host_alloc((n + 1) * sizeof(int), "batch sizes");
    keyed *tmp = s2s_host_alloc((n + 1) * sizeof(keyed), "sort keys");
    size_t *perm = s2s_host_alloc((n + 1) * sizeof(size_t), "batch permutation");
    if (!p->order || !p->start || !p->count || !tmp || !perm) {
        free(tmp), free(perm);
        s2s_batch_plan_free(p);
        return S2S_ERR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < n; i++)
        p->order[i] = i;
    uint64_t stream = 0x5EED0000ull + (uint64_t)epoch * 2;
    if (shuffle_on)
        shuffle(p->order, n, seed, stream);
    for (size_t i = 0; i < n; i += shuffle_on ? POOL : n)
        sort_by_length(d, p->order + i, (shuffle_on && n - i > POOL) ? POOL : n - i, tmp);
    p->nbatches = cut(d, p->order, n, batch_tokens, p->start, p->count);
    if (shuffle_on) { /* visit the batches in a random order too */
        for (size_t i = 0; i < p->nbatches; i++)
            perm[i] = i;
        shuffle(perm, p->nbatches, seed, stream + 1);
        size_t *s2 = (size_t *)tmp;
        int *c2 = (int *)(s2 + p->nbatches);
        for (size_t i = 0; i < p->nbatches; i++)
            s2[i] = p->start[perm[i]], c2[i] = p->count[perm[i]];
        memcpy(p->start, s2, p->nbatches * sizeof(size_t));
        memcpy(p->count, c2, p->nbatches * sizeof(int));
    }
    free(tmp);
    free(perm);
    return S2S_OK;
}

void s2s_batch_plan_free(s2s_batch_plan *p)
{
    free(p->order), free(p->start), free(p->count);
    memset(p, 0, sizeof *p);
}

static s2s_status reserve(s2s_host_batch *hb, size_t rows, size_t ids)
{
    if (rows > hb->cap_rows) {
        int32_t *a = realloc(hb->src_len, rows * sizeof(int32_t)), *b = a ? realloc(hb->tgt_len, rows * 4) : NULL;
        if (a)
            hb->src_len = a;
        if (!a || !b)
            return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "batch of %zu rows", rows);
        hb->tgt_len = b;
        hb->cap_rows = rows;
    }
    if (ids > hb->cap_ids) {
        int32_t *a = realloc(hb->src, ids * sizeof(int32_t)), *b = a ? realloc(hb->tgt, ids * 4) : NULL;
        if (a)
            hb->src = a;
        if (!a || !b)
            return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "batch of %zu tokens", ids);
        hb->tgt = b;
        hb->cap_ids = ids;
    }
    return S2S_OK;
}

s2s_status s2s_host_batch_fill(const s2s_tokdata *d, const s2s_batch_plan *p, size_t i, s2s_host_batch *hb)
{
    const size_t *idx = p->order + p->start[i];
    int B = p->count[i], S = 1, T = 0;
    for (int b = 0; b < B; b++) {
        S = d->src_len[idx[b]] > S ? d->src_len[idx[b]] : S;
        T = d->tgt_len[idx[b]] > T ? d->tgt_len[idx[b]] : T;
    }
    size_t cols = (size_t)(S > T ? S : T);
    S2S_TRY(reserve(hb, (size_t)B, (size_t)B * (cols ? cols : 1)));
    memset(hb->src, 0, (size_t)B * S * sizeof(int32_t));
    memset(hb->tgt, 0, (size_t)B * (T ? T : 1) * sizeof(int32_t));
    hb->ntgt_tokens = 0;
    for (int b = 0; b < B; b++) {
        size_t k = idx[b];
        memcpy(hb->src + (size_t)b * S, d->ids + d->src_off[k], (size_t)d->src_len[k] * sizeof(int32_t));
        memcpy(hb->tgt + (size_t)b * T, d->ids + d->tgt_off[k], (size_t)d->tgt_len[k] * sizeof(int32_t));
        hb->src_len[b] = d->src_len[k];
        hb->tgt_len[b] = d->tgt_len[k];
        hb->ntgt_tokens += d->tgt_len[k] + 1;
    }
    hb->b = (s2s_batch){B, S, T, hb->src, hb->src_len, hb->tgt, hb->tgt_len};
    return S2S_OK;
}

void s2s_host_batch_free(s2s_host_batch *hb)
{
    free(hb->src), free(hb->src_len), free(hb->tgt), free(hb->tgt_len);
    memset(hb, 0, sizeof *hb);
}
