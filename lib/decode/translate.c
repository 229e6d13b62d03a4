/* translate.c - text in, text out: tokenize, sort by length, decode in batches, detokenize
 * (replacing unknown words from the source), restore the input order. */
#include "internal.h"
#include "decode.h"
#include "model.h"
#include "text.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
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
    o.strict = 0;
    o.first_line = 1;
    return o;
}

S2S_API void s2s_strings_free(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free(s[i]);
        s[i] = NULL;
    }
}

/* The lines to decode as segments: one per line, or (a line over the token limit, without
 * strict) several pieces of one line, decoded as if they were lines and joined again. */
typedef struct encoded {
    int32_t *ids;     /* every segment's ids, back to back */
    size_t *off;      /* [nseg] */
    int *len;         /* [nseg]; 0: an empty line, or one that is not translated */
    size_t *first;    /* [n + 1]: line i is segments first[i] .. first[i+1] - 1 */
    size_t *order;    /* the non-empty segments by length */
    size_t nseg, nonempty, cap_seg, cap_ids;
} encoded;

/* How lines that cannot be decoded as they are get handled, and where messages go. */
typedef struct line_policy {
    int max_src, strict;
    size_t first_line;    /* the number of lines[0] in messages */
    const s2s_context *log; /* warnings; NULL: none */
    long warned[2];       /* per kind: 0 split, 1 not UTF-8 */
} line_policy;

#define WARN_MAX 20 /* warnings per kind and call, then a count */

typedef struct len_idx { int len; size_t idx; } len_idx;

static int cmp_len_idx(const void *a, const void *b)
{
    const len_idx *x = a, *y = b;
    return x->len != y->len ? (x->len > y->len) - (x->len < y->len) : (x->idx > y->idx) - (x->idx < y->idx);
}

static void encoded_free(encoded *e)
{
    free(e->ids), free(e->off), free(e->len), free(e->first), free(e->order);
    memset(e, 0, sizeof *e);
}

/* Room for one more segment and for n more ids after the first used. */
static s2s_status reserve(encoded *e, size_t used, size_t n)
{
    if (e->nseg + 1 > e->cap_seg) {
        size_t c = e->cap_seg ? 2 * e->cap_seg : 64;
        size_t *off = realloc(e->off, c * sizeof *off);
        e->off = off ? off : e->off;
        int *len = realloc(e->len, c * sizeof *len);
        e->len = len ? len : e->len;
        size_t *order = realloc(e->order, c * sizeof *order);
        e->order = order ? order : e->order;
        if (!off || !len || !order)
            return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "%zu segments of the lines to translate", c);
        e->cap_seg = c;
    }
    if (used + n > e->cap_ids) {
        size_t c = e->cap_ids ? e->cap_ids : 1024;
        while (c < used + n)
            c *= 2;
        int32_t *ids = realloc(e->ids, c * sizeof *ids);
        if (!ids)
            return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "%zu token ids of the lines to translate", c);
        e->ids = ids, e->cap_ids = c;
    }
    return S2S_OK;
}

static int piece_is(const s2s_tokenizer *t, int32_t id, int sentence_end)
{
    char p[PIECE_MAX];
    if (s2s_tokenizer_piece(t, id, p, sizeof p) != S2S_OK)
        return 0;
    if (!sentence_end) /* starts a word: SentencePiece's marker U+2581 */
        return (unsigned char)p[0] == 0xE2 && (unsigned char)p[1] == 0x96 && (unsigned char)p[2] == 0x81;
    size_t n = strlen(p);
    return n && strchr(".!?;", p[n - 1]);
}

/* Where the piece that starts at ids[a] ends (exclusive), at most max ids on: after the last
 * sentence end in its second half, else before the last word start, else at max. */
static int cut_at(const s2s_tokenizer *t, const int32_t *ids, int a, int n, int max)
{
    if (n - a <= max)
        return n;
    int w = a + max;
    for (int p = w; p > a + max / 2; p--)
        if (piece_is(t, ids[p - 1], 1) && piece_is(t, ids[p], 0))
            return p;
    for (int p = w; p > a; p--)
        if (piece_is(t, ids[p], 0))
            return p;
    return w;
}

static void warn(line_policy *lp, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void warn(line_policy *lp, int kind, const char *fmt, ...)
{
    if (!lp->log || lp->warned[kind]++ >= WARN_MAX)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s2s_log(lp->log, S2S_LOG_WARN, "%s", msg);
}

/* Encodes line i into one or more segments: one of length 0 when it is empty or left out. */
static s2s_status encode_line(const s2s_tokenizer *t, const char *line, size_t i, line_policy *lp, encoded *e,
                              size_t *used)
{
    size_t nbytes = strlen(line), lno = lp->first_line + i;
    const char *why = NULL;
    size_t bad = s2s_text_utf8_check((const unsigned char *)line, nbytes, &why);
    int len = 0;
    S2S_TRY(reserve(e, *used, (size_t)lp->max_src + 1));
    if (bad < nbytes) {
        if (lp->strict)
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "line %zu is not valid UTF-8 at byte %zu (0x%02X: %s); convert the "
                            "text to UTF-8", lno, bad + 1, (unsigned char)line[bad], why);
        warn(lp, 1, "line %zu is not valid UTF-8 at byte %zu (0x%02X: %s): not translated (an empty line stands in "
             "its place)", lno, bad + 1, (unsigned char)line[bad], why);
        e->off[e->nseg] = *used, e->len[e->nseg++] = 0;
        return S2S_OK;
    }
    S2S_TRY(s2s_tokenizer_encode(t, line, e->ids + *used, lp->max_src + 1, &len));
    if (len > lp->max_src) {
        if (lp->strict)
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "line %zu has %d tokens; the limit is %d (max_src_tokens): split it",
                            lno, len, lp->max_src);
        S2S_TRY(reserve(e, *used, (size_t)len));
        int again = 0;
        S2S_TRY(s2s_tokenizer_encode(t, line, e->ids + *used, len, &again));
    }
    int pieces = 0;
    if (len == 0)
        e->off[e->nseg] = *used, e->len[e->nseg++] = 0;
    for (int a = 0; a < len; pieces++) {
        int b = cut_at(t, e->ids + *used, a, len, lp->max_src);
        S2S_TRY(reserve(e, *used, (size_t)len)); /* a segment entry; the ids are in place */
        e->off[e->nseg] = *used + (size_t)a;
        e->len[e->nseg++] = b - a;
        a = b;
    }
    if (pieces > 1)
        warn(lp, 0, "line %zu has %d tokens, more than max_src_tokens %d: translated in %d pieces, joined", lno, len,
             lp->max_src, pieces);
    *used += (size_t)len;
    return S2S_OK;
}

/* Encodes every line into segments; with strict, a line over max_src tokens or not valid UTF-8
 * is an error naming it; otherwise the first is cut into pieces and the second left out, each
 * with a warning (the first WARN_MAX of each kind, then a count). */
static s2s_status encode_all(const s2s_tokenizer *t, const char *const *lines, size_t n, line_policy *lp, encoded *e)
{
    size_t used = 0;
    memset(e, 0, sizeof *e);
    e->first = malloc((n + 1) * sizeof(size_t));
    s2s_status st = e->first ? S2S_OK : S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "%zu lines", n);
    for (size_t i = 0; i < n && st == S2S_OK; i++) {
        e->first[i] = e->nseg;
        st = encode_line(t, lines[i] ? lines[i] : "", i, lp, e, &used);
    }
    if (st == S2S_OK)
        e->first[n] = e->nseg;
    for (int k = 0; k < 2 && lp->log; k++)
        if (lp->warned[k] > WARN_MAX)
            s2s_log(lp->log, S2S_LOG_WARN, "... and %ld more lines %s", lp->warned[k] - WARN_MAX,
                    k ? "not valid UTF-8 (not translated)" : "over max_src_tokens (translated in pieces)");
    len_idx *li = st == S2S_OK ? malloc((e->nseg + 1) * sizeof(len_idx)) : NULL;
    if (st == S2S_OK && !li)
        st = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "%zu lines", n);
    for (size_t k = 0; st == S2S_OK && k < e->nseg; k++)
        if (e->len[k] > 0)
            li[e->nonempty++] = (len_idx){e->len[k], k};
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

s2s_status s2s_hyp_text(const s2s_tokenizer *st, const s2s_tokenizer *tt, const s2s_hypothesis *h,
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
    s2s_model *ms[S2S_ENSEMBLE_MAX] = {m};
    for (int i = 0; i < o->ensemble_n; i++)
        ms[1 + i] = o->ensemble[i];
    if (s == S2S_OK)
        s = o->ensemble_n ? s2s_ensemble_decode(ms, 1 + o->ensemble_n, &bt, &o->decode, &h)
                          : s2s_model_decode(m, &bt, &o->decode, &h);
    for (int b = 0; b < B && s == S2S_OK; b++)
        for (int j = 0; j < nbest && s == S2S_OK; j++) { /* out, scores: per segment */
            size_t at = rows[b] * (size_t)nbest + (size_t)j;
            s = s2s_hyp_text(st, tt, &h[(size_t)b * nbest + j], e->ids + e->off[rows[b]], o->replace_unk, &out[at]);
            if (scores)
                scores[at] = h[(size_t)b * nbest + j].score;
        }
    s2s_hypotheses_free(h, (size_t)B * nbest);
    free(src), free(len);
    return s;
}

/* Line i's outputs from its segments' (line-major, nbest each): a line of one segment takes its
 * strings (an empty or left-out line: empty ones); a line cut in pieces joins the k-th best of
 * every piece with spaces, and its score is the sum of theirs. */
static s2s_status join_segments(const encoded *e, size_t n, int nbest, char **seg_out, const float *seg_score,
                                char **out, float *scores)
{
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < nbest; j++) {
            size_t a = e->first[i], b = e->first[i + 1], at = i * nbest + j, bytes = 1;
            float sc = 0.0f;
            if (b - a == 1) {
                out[at] = seg_out[a * nbest + j], seg_out[a * nbest + j] = NULL;
                sc = seg_score[a * nbest + j];
            } else {
                for (size_t k = a; k < b; k++)
                    bytes += strlen(seg_out[k * nbest + j]) + 1;
                if (!(out[at] = malloc(bytes)))
                    return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "output strings");
                out[at][0] = '\0';
                for (size_t k = a; k < b; k++) {
                    const char *piece = seg_out[k * nbest + j];
                    if (*piece && out[at][0])
                        strcat(out[at], " ");
                    strcat(out[at], piece);
                    sc += seg_score[k * nbest + j];
                }
            }
            if (scores)
                scores[at] = sc;
        }
    return S2S_OK;
}

S2S_API s2s_status s2s_translate(s2s_model *m, const s2s_tokenizer *src_tok, const s2s_tokenizer *tgt_tok,
                                 const char *const *lines, size_t n, const s2s_translate_options *opts, char **out,
                                 float *scores)
{
    if (!m || !src_tok || !tgt_tok || (n && (!lines || !out)))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_translate: model, tokenizers, lines and out are needed");
    s2s_translate_options o = opts ? *opts : s2s_translate_options_default();
    if (o.ensemble_n < 0 || o.ensemble_n >= S2S_ENSEMBLE_MAX || (o.ensemble_n && !o.ensemble))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_translate: ensemble_n %d must be in 0..%d, with the models",
                        o.ensemble_n, S2S_ENSEMBLE_MAX - 1);
    if (o.batch_size < 1 || o.max_src_tokens < 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "batch_size %d and max_src_tokens %d must be >= 1", o.batch_size,
                        o.max_src_tokens);
    int nbest = o.decode.mode == S2S_DECODE_BEAM ? o.decode.nbest : 1;
    for (size_t i = 0; i < n * nbest; i++)
        out[i] = NULL;
    line_policy lp = {o.max_src_tokens, o.strict, o.first_line ? o.first_line : 1, m->ctx, {0, 0}};
    encoded e;
    s2s_status s = encode_all(src_tok, lines, n, &lp, &e);
    size_t nso = e.nseg * (size_t)nbest;
    char **seg_out = s == S2S_OK ? calloc(nso + 1, sizeof(char *)) : NULL;
    float *seg_score = s == S2S_OK ? calloc(nso + 1, sizeof(float)) : NULL;
    if (s == S2S_OK && (!seg_out || !seg_score))
        s = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "outputs of %zu lines", n);
    /* the batches of the length order, the longest first: the workspace grows to its size once
     * instead of at every batch (fresh pages cost a tenth of beam search's time on the CPU) */
    size_t nbatch = (e.nonempty + (size_t)o.batch_size - 1) / (size_t)o.batch_size;
    for (size_t q = nbatch; q-- > 0 && s == S2S_OK;) {
        size_t k = q * (size_t)o.batch_size;
        int B = e.nonempty - k < (size_t)o.batch_size ? (int)(e.nonempty - k) : o.batch_size;
        s = translate_batch(m, src_tok, tgt_tok, &e, e.order + k, B, &o, nbest, seg_out, seg_score);
    }
    for (size_t i = 0; i < nso && s == S2S_OK; i++) /* nbest slots left empty */
        if (!seg_out[i] && !(seg_out[i] = strdup("")))
            s = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "output strings");
    if (s == S2S_OK)
        s = join_segments(&e, n, nbest, seg_out, seg_score, out, scores);
    if (s != S2S_OK)
        s2s_strings_free(out, n * nbest);
    if (seg_out)
        s2s_strings_free(seg_out, nso);
    free(seg_out), free(seg_score);
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
    line_policy strict_out = {S2S_RERANK_MAX_TOKENS, 1, 1, NULL, {0, 0}};
    line_policy strict_in = {s2s_translate_options_default().max_src_tokens, 1, 1, NULL, {0, 0}};
    s2s_status s = encode_all(rev_src_tok, (const char *const *)outs, (size_t)n, &strict_out, &e);
    if (s != S2S_OK)
        s = S2S_FAIL_WRAP(s, "s2s_rerank_reverse: the outputs (\"line\" k is output k - 1)");
    else if ((s = encode_all(rev_tgt_tok, &input, 1, &strict_in, &in)) != S2S_OK)
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
