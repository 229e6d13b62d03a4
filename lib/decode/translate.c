/* translate.c - text in, text out: tokenize, sort by length, decode in batches, detokenize
 * (replacing unknown words from the source), restore the input order. */
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PIECE_MAX 256
#define S2S_RERANK_MAX_TOKENS 4096 /* longer outputs to rerank are an error */

S2S_API s2s_translate_options s2s_translate_options_default(void)
{
    s2s_translate_options o;
    memset(&o, 0, sizeof o);
    o.decode = s2s_decode_options_default();
    o.batch_size = 64;
    o.replace_unk = 1;
    o.max_src_tokens = 250;
    return o;
}

S2S_API void s2s_strings_free(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free(s[i]);
        s[i] = NULL;
    }
}

typedef struct encoded {
    int32_t *ids; /* all lines' ids */
    size_t *off;
    int *len;
    size_t *order; /* non-empty lines by length */
    size_t nonempty;
} encoded;

typedef struct len_idx { int len; size_t idx; } len_idx;

static int cmp_len_idx(const void *a, const void *b)
{
    const len_idx *x = a, *y = b;
    return x->len != y->len ? (x->len > y->len) - (x->len < y->len) : (x->idx > y->idx) - (x->idx < y->idx);
}

static void encoded_free(encoded *e)
{
    free(e->ids), free(e->off), free(e->len), free(e->order);
    memset(e, 0, sizeof *e);
}

/* Encodes every line; lines longer than max_src tokens are an error naming the line. */
static s2s_status encode_all(const s2s_tokenizer *t, const char *const *lines, size_t n, int max_src, encoded *e)
{
    size_t cap = n * 16 + 64, used = 0;
    e->ids = malloc(cap * sizeof(int32_t));
    e->off = malloc((n + 1) * sizeof(size_t));
    e->len = malloc((n + 1) * sizeof(int));
    e->order = malloc((n + 1) * sizeof(size_t));
    len_idx *li = malloc((n + 1) * sizeof(len_idx));
    s2s_status st = e->ids && e->off && e->len && e->order && li ? S2S_OK
                                                                 : S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "%zu lines", n);
    for (size_t i = 0; i < n && st == S2S_OK; i++) {
        if (cap - used < (size_t)max_src + 1) {
            while (cap - used < (size_t)max_src + 1) /* room for the longest line allowed */
                cap *= 2;
            int32_t *p = realloc(e->ids, cap * sizeof(int32_t));
            if (!p) {
                st = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "token ids of %zu lines", n);
                break;
            }
            e->ids = p;
        }
        int len = 0;
        st = s2s_tokenizer_encode(t, lines[i] ? lines[i] : "", e->ids + used, max_src + 1, &len);
        if (st == S2S_OK && len > max_src)
            st = S2S_FAIL(S2S_ERR_INVALID_ARG, "line %zu has %d tokens; the limit is %d (max_src_tokens): split it",
                          i + 1, len, max_src);
        e->off[i] = used;
        e->len[i] = len;
        used += (size_t)len;
        if (len > 0)
            li[e->nonempty++] = (len_idx){len, i};
    }
    if (st == S2S_OK) {
        qsort(li, e->nonempty, sizeof *li, cmp_len_idx);
        for (size_t k = 0; k < e->nonempty; k++)
            e->order[k] = li[k].idx;
    }
    free(li);
    return st;
}

/* Appends a piece to buf, turning SentencePiece's word marker U+2581 into a space. */
static int append_piece(char *buf, size_t cap, size_t *used, const char *piece)
{
    for (const char *p = piece; *p; p++) {
        if ((unsigned char)p[0] == 0xE2 && (unsigned char)p[1] == 0x96 && (unsigned char)p[2] == 0x81) {
            if (*used + 1 >= cap)
                return 0;
            buf[(*used)++] = ' ';
            p += 2;
            continue;
        }
        if (*used + 1 >= cap)
            return 0;
        buf[(*used)++] = *p;
    }
    buf[*used] = '\0';
    return 1;
}

/* Output text of a hypothesis with each <unk> replaced by the source piece it attends to. */
static s2s_status detok_replace(const s2s_tokenizer *st, const s2s_tokenizer *tt, const s2s_hypothesis *h,
                                const int32_t *src, char *buf, size_t cap)
{
    size_t used = 0;
    char piece[PIECE_MAX];
    buf[0] = '\0';
    for (int i = 0; i < h->len; i++) {
        if (h->ids[i] == S2S_UNK_ID)
            S2S_TRY(s2s_tokenizer_piece(st, src[h->src_pos[i]], piece, sizeof piece));
        else
            S2S_TRY(s2s_tokenizer_piece(tt, h->ids[i], piece, sizeof piece));
        if (!append_piece(buf, cap, &used, piece))
            return S2S_FAIL(S2S_ERR_INTERNAL, "a translation longer than %zu bytes", cap);
    }
    size_t lead = strspn(buf, " ");
    memmove(buf, buf + lead, used - lead + 1);
    return S2S_OK;
}

static s2s_status hyp_text(const s2s_tokenizer *st, const s2s_tokenizer *tt, const s2s_hypothesis *h,
                           const int32_t *src, int replace, char **out)
{
    size_t cap = 64 * (size_t)h->len + 64, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "translation text");
    int has_unk = 0;
    for (int i = 0; i < h->len; i++)
        has_unk |= h->ids[i] == S2S_UNK_ID;
    s2s_status s = replace && has_unk && h->src_pos ? detok_replace(st, tt, h, src, buf, cap)
                                                    : s2s_tokenizer_decode(tt, h->ids, h->len, buf, cap, &len);
    if (s == S2S_OK && len >= cap)
        s = S2S_FAIL(S2S_ERR_INTERNAL, "a translation of %zu bytes overflowed its buffer", len);
    if (s != S2S_OK) {
        free(buf);
        return s;
    }
    *out = buf;
    return S2S_OK;
}

static s2s_status translate_batch(s2s_model *m, const s2s_tokenizer *st, const s2s_tokenizer *tt, const encoded *e,
                                  const size_t *rows, int B, const s2s_translate_options *o, int nbest, char **out,
                                  float *scores)
{
    int S = 1;
    for (int b = 0; b < B; b++)
        S = e->len[rows[b]] > S ? e->len[rows[b]] : S;
    int32_t *src = calloc((size_t)B * S, sizeof(int32_t)), *len = malloc(sizeof(int32_t) * (size_t)B);
    s2s_hypothesis *h = NULL;
    s2s_status s = src && len ? S2S_OK : S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "a batch of %d sentences", B);
    for (int b = 0; b < B && s == S2S_OK; b++) {
        memcpy(src + (size_t)b * S, e->ids + e->off[rows[b]], sizeof(int32_t) * (size_t)e->len[rows[b]]);
        len[b] = e->len[rows[b]];
    }
    s2s_batch bt = {B, S, 0, src, len, NULL, NULL};
    if (s == S2S_OK)
        s = s2s_model_decode(m, &bt, &o->decode, &h);
    for (int b = 0; b < B && s == S2S_OK; b++)
        for (int j = 0; j < nbest && s == S2S_OK; j++) {
            size_t at = rows[b] * (size_t)nbest + (size_t)j;
            s = hyp_text(st, tt, &h[(size_t)b * nbest + j], e->ids + e->off[rows[b]], o->replace_unk, &out[at]);
            if (scores)
                scores[at] = h[(size_t)b * nbest + j].score;
        }
    s2s_hypotheses_free(h, (size_t)B * nbest);
    free(src), free(len);
    return s;
}

S2S_API s2s_status s2s_translate(s2s_model *m, const s2s_tokenizer *src_tok, const s2s_tokenizer *tgt_tok,
                                 const char *const *lines, size_t n, const s2s_translate_options *opts, char **out,
                                 float *scores)
{
    if (!m || !src_tok || !tgt_tok || (n && (!lines || !out)))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_translate: model, tokenizers, lines and out are needed");
    s2s_translate_options o = opts ? *opts : s2s_translate_options_default();
    if (o.batch_size < 1 || o.max_src_tokens < 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "batch_size %d and max_src_tokens %d must be >= 1", o.batch_size,
                        o.max_src_tokens);
    int nbest = o.decode.mode == S2S_DECODE_BEAM ? o.decode.nbest : 1;
    for (size_t i = 0; i < n * nbest; i++)
        out[i] = NULL;
    encoded e;
    memset(&e, 0, sizeof e);
    s2s_status s = encode_all(src_tok, lines, n, o.max_src_tokens, &e);
    for (size_t k = 0; k < e.nonempty && s == S2S_OK; k += (size_t)o.batch_size) {
        int B = e.nonempty - k < (size_t)o.batch_size ? (int)(e.nonempty - k) : o.batch_size;
        s = translate_batch(m, src_tok, tgt_tok, &e, e.order + k, B, &o, nbest, out, scores);
    }
    for (size_t i = 0; i < n * nbest && s == S2S_OK; i++) /* empty lines, and nbest slots left empty */
        if (!out[i] && !(out[i] = strdup("")))
            s = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "output strings");
    if (s != S2S_OK)
        s2s_strings_free(out, n * nbest);
    encoded_free(&e);
    return s;
}

S2S_API s2s_status s2s_rerank_reverse(s2s_model *rev, const s2s_tokenizer *rev_src_tok,
                                      const s2s_tokenizer *rev_tgt_tok, const char *input, const char *const *outs,
                                      const float *scores, int n, float weight, float *combined, int *best)
{
    if (!rev || !rev_src_tok || !rev_tgt_tok || !input || !outs || !scores || n < 1 || !isfinite(weight))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_rerank_reverse: a model, tokenizers, input, n >= 1 outputs with "
                                             "scores and a finite weight are needed (n = %d, weight = %g)",
                        n, weight);
    encoded e, in;
    memset(&e, 0, sizeof e);
    memset(&in, 0, sizeof in);
    s2s_status s = encode_all(rev_src_tok, (const char *const *)outs, (size_t)n, S2S_RERANK_MAX_TOKENS, &e);
    if (s != S2S_OK)
        s = S2S_FAIL_WRAP(s, "s2s_rerank_reverse: the outputs (\"line\" k is output k - 1)");
    else if ((s = encode_all(rev_tgt_tok, &input, 1, s2s_translate_options_default().max_src_tokens, &in)) != S2S_OK)
        s = S2S_FAIL_WRAP(s, "s2s_rerank_reverse: the input");
    /* one row per non-empty output, in the outputs' order: output -> the input */
    int S = 1, T = s == S2S_OK ? in.len[0] : 0, B = s == S2S_OK ? (int)e.nonempty : 0;
    for (int i = 0; i < n && s == S2S_OK; i++)
        S = e.len[i] > S ? e.len[i] : S;
    int32_t *src = NULL, *tgt = NULL, *len = NULL;
    float *lp = NULL;
    if (s == S2S_OK && B > 0) {
        src = calloc((size_t)B * S, sizeof(int32_t));
        tgt = calloc((size_t)B * (T ? T : 1), sizeof(int32_t));
        len = malloc(sizeof(int32_t) * 2 * (size_t)B);
        lp = malloc(sizeof(float) * (size_t)B);
        if (!src || !tgt || !len || !lp)
            s = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "reranking %d outputs", n);
    }
    for (int i = 0, k = 0; i < n && s == S2S_OK; i++) {
        if (e.len[i] == 0)
            continue;
        memcpy(src + (size_t)k * S, e.ids + e.off[i], sizeof(int32_t) * (size_t)e.len[i]);
        memcpy(tgt + (size_t)k * T, in.ids, sizeof(int32_t) * (size_t)T);
        len[k] = e.len[i], len[B + k] = T;
        k++;
    }
    s2s_batch bt = {B, S, T, src, len, tgt, len + B};
    if (s == S2S_OK && B > 0)
        s = s2s_model_score(rev, &bt, lp);
    float top = -INFINITY;
    if (s == S2S_OK && best)
        *best = 0;
    for (int i = 0, k = 0; i < n && s == S2S_OK; i++) {
        float c = e.len[i] > 0 ? scores[i] + weight * lp[k++] / (float)(T + 1) : -INFINITY;
        if (combined)
            combined[i] = c;
        if (best && c > top)
            top = c, *best = i;
    }
    free(src), free(tgt), free(len), free(lp);
    encoded_free(&e);
    encoded_free(&in);
    return s;
}

S2S_API s2s_status s2s_tokenizer_unknown_words(const s2s_tokenizer *t, const char *text, char **words, int cap, int *n)
{
    if (!t || !text || !n || (cap > 0 && !words))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_tokenizer_unknown_words: tokenizer, text and n are needed");
    *n = 0;
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    int32_t *ids = malloc(sizeof(int32_t) * (len + 1));
    if (!copy || !ids) {
        free(copy), free(ids);
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "a line of %zu bytes", len);
    }
    memcpy(copy, text, len + 1);
    s2s_status s = S2S_OK;
    for (char *save = NULL, *w = strtok_r(copy, " \t", &save); w && s == S2S_OK; w = strtok_r(NULL, " \t", &save)) {
        int k = 0, unk = 0;
        s = s2s_tokenizer_encode(t, w, ids, (int)len + 1, &k);
        for (int i = 0; i < k && i <= (int)len; i++)
            unk |= ids[i] == S2S_UNK_ID;
        if (s == S2S_OK && unk && *n < cap && !(words[(*n)++] = strdup(w)))
            s = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "unknown words");
    }
    free(copy), free(ids);
    return s;
}
