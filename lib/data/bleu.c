/* bleu.c - corpus BLEU exactly as sacreBLEU 2.x computes it with its defaults
 * (BLEU(): tokenize='13a', lowercase=False, smooth_method='exp', effective_order=False,
 * max_ngram_order=4), one reference per hypothesis. tests/test_bleu.c holds it to sacreBLEU
 * 2.6.0 on committed cases (tests/bleu/) and, where Python has sacrebleu, on fresh ones.
 *
 * Per segment, as sacreBLEU's BLEU._preprocess_segment and Tokenizer13a do:
 *   1. rstrip() Python whitespace (Unicode: U+00A0, U+202F, U+3000 ... as well as ASCII);
 *   2. remove "<skipped>" and "-\n", turn "\n" into " "; if there is a '&', unescape
 *      &quot; &amp; &lt; &gt; in that order (each a whole-string replace, like str.replace);
 *   3. pad with a space on each side and apply the mteval-v13a regexes in order, each a
 *      left-to-right, non-overlapping substitution (re.sub):
 *        R1 ([{-~[-` -&(-+:-@/])  -> " \1 "     (ASCII punctuation except ' , - .)
 *        R2 ([^0-9])([.,])        -> "\1 \2 "   (period/comma not after a digit)
 *        R3 ([.,])([^0-9])        -> " \1 \2"   (period/comma not before a digit)
 *        R4 ([0-9])(-)            -> "\1 \2 "   (dash after a digit)
 *   4. split on Python whitespace (str.split()).
 * Working on UTF-8 bytes gives the same tokens as Python on code points: every character
 * the rules look at is ASCII, [^0-9] matches any byte of a multi-byte character just as it
 * matches the character, and no rule can split a multi-byte sequence. Non-ASCII characters
 * stay inside tokens. Bytes that are not valid UTF-8 are kept as they are (never spaces).
 *
 * Corpus statistics: hypothesis and reference lengths in tokens and, for n = 1..4, the
 * hypothesis n-gram count and the clipped matches (min of hypothesis and reference counts
 * per distinct n-gram). Score as BLEU.compute_bleu: brevity penalty exp(1 - r/c) when c < r
 * (0 when c = 0); 0 when nothing matches; precision 100 m/t, or 100 / (2^k t) for the k-th
 * order with no match ("exp" smoothing); an order with no n-grams at all stops the loop and
 * leaves precision 0, whose log is floored to -9999999999, so the score is 0; the score is
 * bp * exp(mean of the 4 logs).
 */
#include "internal.h"
#include "data.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ORDER 4

/* ---- Python's notion of whitespace ----------------------------------------------------------- */

/* Byte length of the whitespace character at s (n bytes left), or 0: exactly the code points
 * for which Python's str.isspace() is true. */
static size_t py_space_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20))
        return 1;
    if (c == 0xC2 && n >= 2 && (s[1] == 0x85 || s[1] == 0xA0))
        return 2;
    if (n < 3)
        return 0;
    if (c == 0xE1 && s[1] == 0x9A && s[2] == 0x80) /* U+1680 */
        return 3;
    if (c == 0xE2 && s[1] == 0x80 &&
        ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
        return 3; /* U+2000-200A, U+2028, U+2029, U+202F */
    if (c == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) /* U+205F */
        return 3;
    if (c == 0xE3 && s[1] == 0x80 && s[2] == 0x80) /* U+3000 */
        return 3;
    return 0;
}

/* Length of s without its trailing whitespace (str.rstrip()). */
static size_t rstrip_len(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t end = 0;
    for (size_t i = 0; i < n;) {
        size_t w = py_space_len(u + i, n - i);
        i += w ? w : 1;
        if (!w)
            end = i;
    }
    return end;
}

/* ---- the 13a tokenizer ----------------------------------------------------------------------- */

/* str.replace(from, to) in place; to is never longer than from. */
static void replace_all(s2s_strbuf *b, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), w = 0;
    for (size_t r = 0; r < b->len;) {
        if (r + fl <= b->len && memcmp(b->p + r, from, fl) == 0) {
            memcpy(b->p + w, to, tl);
            w += tl;
            r += fl;
        } else {
            b->p[w++] = b->p[r++];
        }
    }
    b->len = w;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_period_comma(char c) { return c == '.' || c == ','; }

/* R1's class: { | } ~  [ \ ] ^ _ `  space ! " # $ % &  ( ) * +  : ; < = > ? @  / */
static int is_r1(char c)
{
    unsigned u = (unsigned char)c;
    return (u >= 0x7B && u <= 0x7E) || (u >= 0x5B && u <= 0x60) || (u >= 0x20 && u <= 0x26) ||
           (u >= 0x28 && u <= 0x2B) || (u >= 0x3A && u <= 0x40) || u == 0x2F;
}

/* " " + R1(in) + " " into out. */
static s2s_status apply_r1(const s2s_strbuf *in, s2s_strbuf *out)
{
    S2S_TRY(s2s_strbuf_reserve(out, 3 * in->len + 2, "a tokenised BLEU segment"));
    char *o = out->p;
    *o++ = ' ';
    for (size_t i = 0; i < in->len; i++) {
        if (is_r1(in->p[i])) {
            *o++ = ' ';
            *o++ = in->p[i];
            *o++ = ' ';
        } else {
            *o++ = in->p[i];
        }
    }
    *o++ = ' ';
    out->len = (size_t)(o - out->p);
    return S2S_OK;
}

/* One of R2, R3, R4: a two-character pattern, replaced left to right without overlaps. */
typedef enum { RULE_R2, RULE_R3, RULE_R4 } pair_rule;

static s2s_status apply_pair_rule(const s2s_strbuf *in, s2s_strbuf *out, pair_rule rule)
{
    S2S_TRY(s2s_strbuf_reserve(out, 2 * in->len + 1, "a tokenised BLEU segment"));
    const char *s = in->p;
    char *o = out->p;
    size_t i = 0;
    for (; i + 1 < in->len; i++) {
        char a = s[i], b = s[i + 1];
        int hit = rule == RULE_R2   ? !is_digit(a) && is_period_comma(b)
                  : rule == RULE_R3 ? is_period_comma(a) && !is_digit(b)
                                    : is_digit(a) && b == '-';
        if (!hit) {
            *o++ = a;
            continue;
        }
        if (rule == RULE_R3) /* " \1 \2" */
            *o++ = ' ', *o++ = a, *o++ = ' ', *o++ = b;
        else /* "\1 \2 " */
            *o++ = a, *o++ = ' ', *o++ = b, *o++ = ' ';
        i++;
    }
    if (i < in->len)
        *o++ = s[i];
    out->len = (size_t)(o - out->p);
    return S2S_OK;
}

/* Runs steps 1-3 on line; the result is in a (b is scratch). */
static s2s_status tokenize_13a(const char *line, s2s_strbuf *a, s2s_strbuf *b)
{
    size_t n = rstrip_len(line, strlen(line));
    S2S_TRY(s2s_strbuf_reserve(a, n + 1, "a tokenised BLEU segment"));
    memcpy(a->p, line, n);
    a->len = n;
    replace_all(a, "<skipped>", "");
    replace_all(a, "-\n", "");
    replace_all(a, "\n", " ");
    if (memchr(a->p, '&', a->len)) {
        replace_all(a, "&quot;", "\"");
        replace_all(a, "&amp;", "&");
        replace_all(a, "&lt;", "<");
        replace_all(a, "&gt;", ">");
    }
    S2S_TRY(apply_r1(a, b));
    S2S_TRY(apply_pair_rule(b, a, RULE_R2));
    S2S_TRY(apply_pair_rule(a, b, RULE_R3));
    return apply_pair_rule(b, a, RULE_R4);
}

/* ---- token interning: each distinct token string gets a small integer id ---------------------- */

typedef struct {
    s2s_strbuf bytes;       /* all distinct tokens, back to back */
    size_t *off;      /* [count]: offset of token id in bytes */
    size_t *len;      /* [count] */
    int32_t *slot;    /* [nslots] open-addressing table of ids, -1 empty */
    size_t count, cap, nslots;
} vocab;

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static size_t find_slot(const vocab *v, const char *s, size_t n)
{
    size_t mask = v->nslots - 1, i = (size_t)fnv1a(s, n) & mask;
    for (;; i = (i + 1) & mask) {
        int32_t id = v->slot[i];
        if (id < 0 || (v->len[id] == n && memcmp(v->bytes.p + v->off[id], s, n) == 0))
            return i;
    }
}

static s2s_status vocab_grow(vocab *v)
{
    size_t cap = v->cap ? 2 * v->cap : 1024, nslots = 2 * cap;
    if (cap > (size_t)INT32_MAX)
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "BLEU: more than %d distinct tokens", INT32_MAX);
    size_t *off = realloc(v->off, cap * sizeof *off);
    if (off)
        v->off = off;
    size_t *len = off ? realloc(v->len, cap * sizeof *len) : NULL;
    if (len)
        v->len = len;
    int32_t *slot = len ? s2s_host_alloc(nslots * sizeof *slot, "BLEU token table") : NULL;
    if (!slot)
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "BLEU: could not grow the token table to %zu tokens", cap);
    memset(slot, 0xFF, nslots * sizeof *slot);
    free(v->slot);
    v->slot = slot;
    v->cap = cap;
    v->nslots = nslots;
    for (size_t id = 0; id < v->count; id++)
        v->slot[find_slot(v, v->bytes.p + v->off[id], v->len[id])] = (int32_t)id;
    return S2S_OK;
}

static s2s_status vocab_id(vocab *v, const char *s, size_t n, int32_t *id)
{
    if (v->count == v->cap)
        S2S_TRY(vocab_grow(v));
    size_t i = find_slot(v, s, n);
    if (v->slot[i] >= 0) {
        *id = v->slot[i];
        return S2S_OK;
    }
    S2S_TRY(s2s_strbuf_reserve(&v->bytes, v->bytes.len + n, "the BLEU token table"));
    memcpy(v->bytes.p + v->bytes.len, s, n);
    v->off[v->count] = v->bytes.len;
    v->len[v->count] = n;
    v->bytes.len += n;
    *id = v->slot[i] = (int32_t)v->count++;
    return S2S_OK;
}

static void vocab_free(vocab *v)
{
    s2s_strbuf_free(&v->bytes);
    free(v->off);
    free(v->len);
    free(v->slot);
}

/* ---- n-gram statistics ----------------------------------------------------------------------- */

typedef struct {
    long hyp_len, ref_len;
    long correct[MAX_ORDER], total[MAX_ORDER];
} bleu_stats;

typedef struct {
    int32_t t[MAX_ORDER]; /* token ids; unused tail -1 */
} ngram;

typedef struct {
    s2s_strbuf a, b;           /* tokenizer buffers */
    vocab v;
    int32_t *hyp, *ref;  /* token ids of the current segment */
    ngram *hg, *rg;      /* its n-grams */
    size_t hyp_cap, ref_cap;
} bleu_work;

static int ngram_cmp(const void *x, const void *y)
{
    const ngram *a = x, *b = y;
    for (int k = 0; k < MAX_ORDER; k++)
        if (a->t[k] != b->t[k])
            return a->t[k] < b->t[k] ? -1 : 1;
    return 0;
}

/* Tokenises line into ids (*ids grown as needed); *n gets the token count. */
static s2s_status segment_ids(bleu_work *w, const char *line, int32_t **ids, size_t *cap, size_t *n)
{
    S2S_TRY(tokenize_13a(line, &w->a, &w->b));
    const unsigned char *s = (const unsigned char *)w->a.p;
    size_t len = w->a.len, count = 0;
    for (size_t i = 0; i < len;) {
        size_t sp = py_space_len(s + i, len - i);
        if (sp) {
            i += sp;
            continue;
        }
        size_t start = i;
        while (i < len && !py_space_len(s + i, len - i))
            i++;
        if (count == *cap) {
            size_t c2 = *cap ? 2 * *cap : 256;
            int32_t *p = realloc(*ids, c2 * sizeof *p);
            if (!p)
                return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "BLEU: could not allocate %zu token ids", c2);
            *ids = p;
            *cap = c2;
        }
        S2S_TRY(vocab_id(&w->v, w->a.p + start, i - start, &(*ids)[count]));
        count++;
    }
    *n = count;
    return S2S_OK;
}

/* The sorted n-grams of order n (1..4) of ids[len] into out; returns their count. */
static size_t sorted_ngrams(const int32_t *ids, size_t len, int n, ngram *out)
{
    if (len < (size_t)n)
        return 0;
    size_t count = len - (size_t)n + 1;
    for (size_t i = 0; i < count; i++) {
        for (int k = 0; k < MAX_ORDER; k++)
            out[i].t[k] = k < n ? ids[i + (size_t)k] : -1;
    }
    qsort(out, count, sizeof *out, ngram_cmp);
    return count;
}

/* Adds one segment's lengths, n-gram totals and clipped matches to st. */
static s2s_status segment_stats(bleu_work *w, const char *hyp, const char *ref, bleu_stats *st)
{
    size_t hl = 0, rl = 0;
    S2S_TRY(segment_ids(w, hyp, &w->hyp, &w->hyp_cap, &hl));
    S2S_TRY(segment_ids(w, ref, &w->ref, &w->ref_cap, &rl));
    st->hyp_len += (long)hl;
    st->ref_len += (long)rl;
    ngram *hg = realloc(w->hg, (hl + 1) * sizeof *hg);
    if (hg)
        w->hg = hg;
    ngram *rg = hg ? realloc(w->rg, (rl + 1) * sizeof *rg) : NULL;
    if (rg)
        w->rg = rg;
    if (!hg || !rg)
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "BLEU: could not allocate n-grams for segments of %zu and %zu tokens",
                        hl, rl);
    for (int n = 1; n <= MAX_ORDER; n++) {
        size_t nh = sorted_ngrams(w->hyp, hl, n, w->hg), nr = sorted_ngrams(w->ref, rl, n, w->rg);
        st->total[n - 1] += (long)nh;
        size_t i = 0, j = 0;
        while (i < nh) {
            size_t ch = 1;
            while (i + ch < nh && ngram_cmp(&w->hg[i], &w->hg[i + ch]) == 0)
                ch++;
            while (j < nr && ngram_cmp(&w->rg[j], &w->hg[i]) < 0)
                j++;
            size_t cr = 0;
            while (j + cr < nr && ngram_cmp(&w->rg[j + cr], &w->hg[i]) == 0)
                cr++;
            st->correct[n - 1] += (long)(ch < cr ? ch : cr);
            i += ch;
        }
    }
    return S2S_OK;
}

/* ---- the score ------------------------------------------------------------------------------- */

static double floored_log(double x) { return x == 0.0 ? -9999999999.0 : log(x); }

/* BLEU.compute_bleu with smooth_method='exp', effective_order=False. */
static void compute_bleu(const bleu_stats *st, s2s_bleu *out)
{
    memset(out, 0, sizeof *out);
    out->hyp_len = st->hyp_len;
    out->ref_len = st->ref_len;
    out->brevity_penalty = 1.0;
    if (st->hyp_len < st->ref_len)
        out->brevity_penalty = st->hyp_len > 0 ? exp(1.0 - (double)st->ref_len / (double)st->hyp_len) : 0.0;
    int any = 0;
    for (int n = 0; n < MAX_ORDER; n++)
        any |= st->correct[n] != 0;
    if (!any)
        return;
    double smooth = 1.0;
    for (int n = 0; n < MAX_ORDER; n++) {
        if (st->total[n] == 0)
            break;
        if (st->correct[n] == 0) {
            smooth *= 2;
            out->precisions[n] = 100.0 / (smooth * (double)st->total[n]);
        } else {
            out->precisions[n] = 100.0 * (double)st->correct[n] / (double)st->total[n];
        }
    }
    double sum = 0.0;
    for (int n = 0; n < MAX_ORDER; n++)
        sum += floored_log(out->precisions[n]);
    out->score = out->brevity_penalty * exp(sum / MAX_ORDER);
}

void s2s_bleu_from_stats(const double sums[S2S_BLEU_STATS], s2s_bleu *out)
{
    bleu_stats st;
    st.hyp_len = (long)sums[0], st.ref_len = (long)sums[1];
    for (int k = 0; k < MAX_ORDER; k++)
        st.correct[k] = (long)sums[2 + k], st.total[k] = (long)sums[2 + MAX_ORDER + k];
    compute_bleu(&st, out);
}

S2S_API s2s_status s2s_bleu_corpus(const char *const *hyps, const char *const *refs, size_t n, s2s_bleu *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!hyps || !refs || !out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_bleu_corpus: %s is NULL", !hyps ? "hyps" : !refs ? "refs" : "out");
    if (n == 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_bleu_corpus: the corpus is empty (n = 0); BLEU is undefined");
    for (size_t i = 0; i < n; i++)
        if (!hyps[i] || !refs[i])
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_bleu_corpus: %s %zu of %zu is NULL",
                            !hyps[i] ? "hypothesis" : "reference", i, n);
    double sums[S2S_BLEU_STATS];
    s2s_status rc = s2s_bleu_stats(hyps, refs, n, sums);
    if (rc == S2S_OK)
        s2s_bleu_from_stats(sums, out);
    return rc;
}

s2s_status s2s_bleu_stats(const char *const *hyps, const char *const *refs, size_t n, double sums[S2S_BLEU_STATS])
{
    bleu_work w;
    memset(&w, 0, sizeof w);
    bleu_stats st;
    memset(&st, 0, sizeof st);
    s2s_status rc = S2S_OK;
    for (size_t i = 0; i < n && rc == S2S_OK; i++)
        rc = segment_stats(&w, hyps[i], refs[i], &st);
    sums[0] = (double)st.hyp_len, sums[1] = (double)st.ref_len;
    for (int k = 0; k < MAX_ORDER; k++)
        sums[2 + k] = (double)st.correct[k], sums[2 + MAX_ORDER + k] = (double)st.total[k];
    s2s_strbuf_free(&w.a);
    s2s_strbuf_free(&w.b);
    vocab_free(&w.v);
    free(w.hyp);
    free(w.ref);
    free(w.hg);
    free(w.rg);
    return rc;
}
