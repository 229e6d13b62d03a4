/* test_bleu.c - s2s_bleu_corpus against hand-computed cases, the 13a tokenisation rules, and
 * sacreBLEU 2.x itself: the committed cases in tests/bleu/ (made by make_bleu_cases.py with
 * sacreBLEU 2.6.0) and, where Python has sacrebleu, fresh random cases scored live.
 * Agreement required: score and precisions within 0.01 (BLEU points / percent), brevity
 * penalty within 1e-4, lengths exact. Run from the repository root. */
#include "seq2seq.h"
#include "test_util.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLEU_DIR "tests/bleu/"
#define SCORE_TOL 0.01
#define BP_TOL 1e-4

static s2s_bleu bleu_ok(const char *const *hyps, const char *const *refs, size_t n)
{
    s2s_bleu b;
    s2s_status st = s2s_bleu_corpus(hyps, refs, n, &b);
    cr_assert_eq(st, S2S_OK, "%s", s2s_last_error());
    return b;
}

static s2s_bleu bleu1(const char *hyp, const char *ref) { return bleu_ok(&hyp, &ref, 1); }

/* hyp and ref must give the same n tokens under 13a (checked through BLEU: 100 and lengths). */
static void assert_same_tokens(const char *hyp, const char *ref, long n)
{
    s2s_bleu b = bleu1(hyp, ref);
    cr_assert_eq(b.hyp_len, n, "'%s' gives %ld tokens, expected %ld", hyp, b.hyp_len, n);
    cr_assert_eq(b.ref_len, n, "'%s' gives %ld tokens, expected %ld", ref, b.ref_len, n);
    cr_assert_float_eq(b.score, 100.0, 1e-9, "'%s' vs '%s': %.6f, expected 100", hyp, ref, b.score);
}

Test(bleu, identical_corpus_is_100)
{
    const char *s[] = {"The cat sat on the mat.", "Il pleut beaucoup aujourd'hui\u202f!", "Zwei Männer spielen Fußball."};
    s2s_bleu b = bleu_ok(s, s, 3);
    cr_assert_float_eq(b.score, 100.0, 1e-9);
    for (int k = 0; k < 4; k++)
        cr_assert_float_eq(b.precisions[k], 100.0, 1e-9);
    cr_assert_float_eq(b.brevity_penalty, 1.0, 0.0);
    cr_assert_eq(b.hyp_len, 7 + 5 + 5);
    cr_assert_eq(b.ref_len, b.hyp_len);
}

Test(bleu, no_overlap_is_0)
{
    const char *h[] = {"un deux trois quatre", "cinq six"}, *r[] = {"one two three four", "five sechs"};
    s2s_bleu b = bleu_ok(h, r, 2);
    cr_assert_float_eq(b.score, 0.0, 0.0);
    for (int k = 0; k < 4; k++)
        cr_assert_float_eq(b.precisions[k], 0.0, 0.0, "precision %d: %g", k + 1, b.precisions[k]);
    cr_assert_float_eq(b.brevity_penalty, 1.0, 0.0);
}

Test(bleu, brevity_penalty)
{
    /* 5 of 7 reference tokens, all matching: every precision 100, BP = exp(1 - 7/5). */
    s2s_bleu b = bleu1("the cat sat on the", "the cat sat on the mat today");
    for (int k = 0; k < 4; k++)
        cr_assert_float_eq(b.precisions[k], 100.0, 1e-9);
    cr_assert_float_eq(b.brevity_penalty, exp(-0.4), 1e-12);
    cr_assert_float_eq(b.score, 100.0 * exp(-0.4), 1e-9, "%.10f", b.score);
    /* a longer hypothesis has no penalty */
    cr_assert_float_eq(bleu1("the cat sat on the mat today", "the cat sat on the").brevity_penalty, 1.0, 0.0);
}

Test(bleu, exp_smoothing_and_clipping)
{
    /* ( a ) 1,000.5 dollars .  against  ( a ) 1,000 dollars .  (13a keeps "1,000.5" whole):
     * 5/6 unigrams, 3/5 bigrams, 1/4 trigrams, 0/3 4-grams -> smoothed to 100 / (2 * 3). */
    s2s_bleu b = bleu1("(a) 1,000.5 dollars.", "(a) 1,000 dollars.");
    double p[4] = {500.0 / 6, 60.0, 25.0, 100.0 / 6};
    for (int k = 0; k < 4; k++)
        cr_assert_float_eq(b.precisions[k], p[k], 1e-9, "p%d %.10f want %.10f", k + 1, b.precisions[k], p[k]);
    double want = exp((log(p[0]) + log(p[1]) + log(p[2]) + log(p[3])) / 4);
    cr_assert_float_eq(b.score, want, 1e-9, "%.10f want %.10f", b.score, want);
    /* clipping: "the the the the" against a reference with one "the" */
    b = bleu1("the the the the", "the cat is here");
    cr_assert_float_eq(b.precisions[0], 25.0, 1e-12);
}

Test(bleu, order_without_ngrams_gives_0)
{
    /* 3 tokens: no 4-grams at all. sacreBLEU (effective_order=False) then scores 0. */
    s2s_bleu b = bleu1("Hello, world", "Hello, world");
    cr_assert_eq(b.hyp_len, 3);
    cr_assert_float_eq(b.precisions[2], 100.0, 1e-12);
    cr_assert_float_eq(b.precisions[3], 0.0, 0.0);
    cr_assert_float_eq(b.score, 0.0, 0.0);
}

Test(bleu, empty_hypotheses)
{
    const char *h[] = {"", " \u00a0"}, *r[] = {"a b c d", "e"};
    s2s_bleu b = bleu_ok(h, r, 2);
    cr_assert_eq(b.hyp_len, 0);
    cr_assert_eq(b.ref_len, 5);
    cr_assert_float_eq(b.brevity_penalty, 0.0, 0.0);
    cr_assert_float_eq(b.score, 0.0, 0.0);
}

Test(bleu, tokenisation_13a)
{
    assert_same_tokens("Hello, world!", "Hello , world !", 4);
    assert_same_tokens("(a) 1,000.5 dollars.", "( a ) 1,000.5 dollars .", 6);
    /* period and comma split unless between digits; dash split after a digit only */
    assert_same_tokens("x.y, 3-4 e-mail 5.-6 .5", "x . y , 3 - 4 e-mail 5 . -6 . 5", 13);
    /* entities unescaped, <skipped> removed, then split as punctuation */
    assert_same_tokens("&quot;Oui&quot; &amp; non &lt;b&gt;<skipped>", "\" Oui \" & non < b >", 8);
    assert_same_tokens("&amp;quot; &amp;lt;", "& quot ; <", 4);
    /* apostrophes stay; Python's Unicode spaces (NBSP, U+202F, U+3000) separate tokens;
     * other non-ASCII characters stay inside tokens; trailing spaces are stripped */
    assert_same_tokens("« Bonjour\u00a0»\u202f! C'est l'été…\u3000fin.\u00a0 ", "« Bonjour » ! C'est l'été… fin .", 8);
    assert_same_tokens("zero\u200bwidth [1] $5 50% a/b", "zero\u200bwidth [ 1 ] $ 5 50 % a / b", 11);
}

Test(bleu, invalid_arguments)
{
    const char *h[] = {"a", NULL}, *r[] = {"a", "b"};
    s2s_bleu b;
    cr_assert_eq(s2s_bleu_corpus(NULL, r, 1, &b), S2S_ERR_INVALID_ARG);
    cr_assert_eq(s2s_bleu_corpus(h, r, 1, NULL), S2S_ERR_INVALID_ARG);
    cr_assert_eq(s2s_bleu_corpus(h, r, 0, &b), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "empty") != NULL, "%s", s2s_last_error());
    cr_assert_eq(s2s_bleu_corpus(h, r, 2, &b), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "hypothesis 1") != NULL, "%s", s2s_last_error());
}

/* ---- comparison with sacreBLEU --------------------------------------------------------------- */

/* The lines of a file (split on '\n' only; every line ends in '\n'), in one malloc'd block
 * kept at lines[*n]: free(lines[*n]) and free(lines). NULL (and err set) on failure. */
static char **read_lines(const char *path, size_t *n, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errcap, "cannot open %s (run from the repository root)", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    size_t got = text ? fread(text, 1, (size_t)size, f) : 0;
    fclose(f);
    if (!text || got != (size_t)size || (size > 0 && text[size - 1] != '\n')) {
        snprintf(err, errcap, "cannot read %s, or it does not end in a newline", path);
        free(text);
        return NULL;
    }
    text[size] = '\0';
    size_t count = 0;
    for (long i = 0; i < size; i++)
        count += text[i] == '\n';
    char **lines = malloc((count + 1) * sizeof *lines);
    cr_assert(lines);
    char *p = text;
    for (size_t i = 0; i < count; i++) {
        char *nl = strchr(p, '\n');
        *nl = '\0';
        lines[i] = p;
        p = nl + 1;
    }
    lines[count] = text;
    *n = count;
    return lines;
}

typedef struct {
    char name[64];
    double score, p[4], bp;
    long hyp_len, ref_len;
} expected_row;

/* Compares s2s_bleu_corpus on dir/NAME.{hyp,ref} with row e; "" in err when they agree. */
static void check_case(const char *dir, const expected_row *e, double *worst_score, double *worst_prec, char *err,
                       size_t errcap)
{
    char path[600];
    size_t nh = 0, nr = 0;
    snprintf(path, sizeof path, "%s/%s.hyp", dir, e->name);
    char **h = read_lines(path, &nh, err, errcap);
    snprintf(path, sizeof path, "%s/%s.ref", dir, e->name);
    char **r = h ? read_lines(path, &nr, err, errcap) : NULL;
    s2s_bleu b;
    s2s_status st = S2S_OK;
    if (r && nh != nr)
        snprintf(err, errcap, "%s: %zu hypotheses, %zu references", e->name, nh, nr);
    else if (r && (st = s2s_bleu_corpus((const char *const *)h, (const char *const *)r, nh, &b)) != S2S_OK)
        snprintf(err, errcap, "%s: %s", e->name, s2s_last_error());
    else if (r && (b.hyp_len != e->hyp_len || b.ref_len != e->ref_len))
        snprintf(err, errcap, "%s: lengths %ld/%ld, sacreBLEU %ld/%ld", e->name, b.hyp_len, b.ref_len, e->hyp_len,
                 e->ref_len);
    else if (r && fabs(b.score - e->score) > SCORE_TOL)
        snprintf(err, errcap, "%s: BLEU %.6f, sacreBLEU %.6f", e->name, b.score, e->score);
    else if (r && fabs(b.brevity_penalty - e->bp) > BP_TOL)
        snprintf(err, errcap, "%s: BP %.8f, sacreBLEU %.8f", e->name, b.brevity_penalty, e->bp);
    for (int k = 0; r && !err[0] && k < 4; k++) {
        double dp = fabs(b.precisions[k] - e->p[k]);
        if (dp > SCORE_TOL)
            snprintf(err, errcap, "%s: %d-gram precision %.6f, sacreBLEU %.6f", e->name, k + 1, b.precisions[k],
                     e->p[k]);
        *worst_prec = fmax(*worst_prec, dp);
    }
    if (r && !err[0])
        *worst_score = fmax(*worst_score, fabs(b.score - e->score));
    if (h)
        free(h[nh]), free(h);
    if (r)
        free(r[nr]), free(r);
}

/* Checks every row of dir/expected.tsv; returns the number of cases, err "" when all agree. */
static int check_cases(const char *dir, double *worst_score, double *worst_prec, char *err, size_t errcap)
{
    char path[600], line[1024];
    snprintf(path, sizeof path, "%s/expected.tsv", dir);
    *worst_score = *worst_prec = 0;
    err[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errcap, "cannot open %s (run from the repository root)", path);
        return 0;
    }
    int cases = 0;
    while (!err[0] && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        expected_row e;
        if (sscanf(line, "%63s %lf %lf %lf %lf %lf %lf %ld %ld", e.name, &e.score, &e.p[0], &e.p[1], &e.p[2],
                   &e.p[3], &e.bp, &e.hyp_len, &e.ref_len) != 9) {
            snprintf(err, errcap, "%.300s: malformed row '%.300s'", path, line);
            break;
        }
        check_case(dir, &e, worst_score, worst_prec, err, errcap);
        cases++;
    }
    fclose(f);
    return cases;
}

Test(bleu, agrees_with_sacrebleu_committed_cases)
{
    double ws, wp;
    char err[1024];
    int cases = check_cases(BLEU_DIR, &ws, &wp, err, sizeof err);
    cr_assert(!err[0], "%s (regenerate with python3 " BLEU_DIR "make_bleu_cases.py only if sacreBLEU is right)", err);
    cr_assert_geq(cases, 10, "only %d cases in " BLEU_DIR "expected.tsv", cases);
    if (getenv("S2S_TEST_VERBOSE"))
        fprintf(stderr, "bleu: %d committed cases, worst |score diff| %.3g, worst |precision diff| %.3g\n", cases, ws,
                wp);
}

/* The first of python3, /usr/bin/python3 that can import sacrebleu, or NULL. */
static const char *python_with_sacrebleu(void)
{
    static const char *const cands[] = {"python3", "/usr/bin/python3"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s -c 'import sacrebleu' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0)
            return cands[i];
    }
    return NULL;
}

Test(bleu, agrees_with_live_sacrebleu, .timeout = 120)
{
    const char *py = python_with_sacrebleu();
    if (!py)
        cr_skip_test("neither python3 nor /usr/bin/python3 can import sacrebleu (pip install sacrebleu)");
    cr_assert(access(BLEU_DIR "make_bleu_cases.py", R_OK) == 0, "no " BLEU_DIR "make_bleu_cases.py "
                                                                 "(run from the repository root)");
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/s2s_bleu_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert(mkdtemp(dir), "mkdtemp %s failed", dir);
    uint64_t seed = tu_seed();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%.64s " BLEU_DIR "make_bleu_cases.py --live '%s' --seed %llu >'%s/log' 2>&1", py, dir,
             (unsigned long long)(seed % 1000000007ull), dir);
    int rc = system(cmd);
    double ws = 0, wp = 0;
    char err[1024] = "";
    int cases = 0;
    if (rc == 0) {
        cases = check_cases(dir, &ws, &wp, err, sizeof err);
    } else { /* keep the end of the script's output for the message */
        snprintf(cmd, sizeof cmd, "%s/log", dir);
        FILE *f = fopen(cmd, "r");
        size_t got = 0;
        if (f) {
            fseek(f, -(long)(sizeof err / 2), SEEK_END);
            got = fread(err, 1, sizeof err - 1, f);
            fclose(f);
        }
        err[got] = '\0';
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0, "could not remove %s", dir);
    cr_assert_eq(rc, 0, "make_bleu_cases.py --live failed (status %d, seed %llu): %s", rc, (unsigned long long)seed,
                 err);
    cr_assert(!err[0], "%s (seed %llu)", err, (unsigned long long)seed);
    cr_assert_geq(cases, 1);
    if (getenv("S2S_TEST_VERBOSE"))
        fprintf(stderr, "bleu: %d live cases (seed %llu), worst |score diff| %.3g, worst |precision diff| %.3g\n",
                cases, (unsigned long long)seed, ws, wp);
}
