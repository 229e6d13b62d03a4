/* dailydialog.c - DailyDialog text files as (utterance, reply) pairs of adjacent turns, appended
 * to an s2s_corpus through s2s_corpus_add. Also defines the reading session that chatterbot.c
 * shares (dialogue_reader.h: warnings, turns, pairs, the exclusion set).
 * The quirks handled here are listed in shared/data/README.md, section 4.
 * Tests: ./build/tests/test_suite --filter 'dialogue/dd_*'
 *
 * DailyDialog decisions (dialogues_*.txt: one dialogue a line, turns ended by "__eou__"):
 * - Lines are read with getline, so there is no line limit; max_line_bytes applies per turn.
 * - DEL (U+007F, one in train line 3987) is deleted. Then spaces are normalised as corpus.c
 *   does when normalize_spaces = 1 (s2s_text_normalize in text.h: every White_Space character
 *   a space, U+200B and U+FEFF deleted, runs collapsed, ends trimmed); with 0 each turn only
 *   loses the spaces at its ends.
 * - Every U+2019 becomes an ASCII '. A ’ between spaces is glued to the word before it when
 *   that word ends in a letter or digit ("parents ’ house" -> "parents' house"), and also to the
 *   word after it when that word is an English clitic (s t m d ll re ve: "I ’ m" -> "I'm",
 *   "can ’ t.because" -> "can't.because") or the word before is one letter or "ma" ("O ’ Connell",
 *   "C ’ mon", "ma ’ am"). A clitic in title case ("I ’ Ve", 540 train lines) is lower-cased
 *   ("I've"); one-letter clitics keep their case ("DON ’ T" -> "DON'T"). The ’ used as a quote
 *   ("‘ green ’ option", "? ’") becomes ' and keeps the space after it.
 * - The README says the ASCII ' is attached, but 416 lines (train 345, validation 39, test 32)
 *   have it spaced before a clitic too ("It ' s" 113 times in train, "I ' Ve"). As it also opens
 *   and closes quotes ("says ' No smoking '"), a spaced ASCII ' is rejoined only between a letter
 *   or digit and a clitic ("It's", "1960's"); the clitic's case is fixed as above.
 * - Other ASCII quotes, backslashes ("I \ ' d") and glued sentences ("right.But") are left alone.
 * - exclude's pairs are compared as stored, so exclude should have been read the same way. */
#include "internal.h"
#include "dialogue_reader.h"
#include "text.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_alpha(int ch) { return (ch | 32) >= 'a' && (ch | 32) <= 'z'; }
static int is_upper(int ch) { return ch >= 'A' && ch <= 'Z'; }
static int is_alnum(int ch) { return is_alpha(ch) || (ch >= '0' && ch <= '9'); }

/* Whether the n letters at s are an English clitic ('s 't 'm 'd 'll 're 've), in any case. */
static int is_clitic(const char *s, size_t n)
{
    static const char *const clitic[] = {"s", "t", "m", "d", "ll", "re", "ve"};
    for (size_t k = 0; k < sizeof clitic / sizeof *clitic; k++) {
        size_t i = 0;
        while (i < n && clitic[k][i] && (s[i] | 32) == clitic[k][i])
            i++;
        if (i == n && !clitic[k][i])
            return 1;
    }
    return 0;
}

/* ---- a reading session: options, counts, warnings (shared: dialogue_reader.h) ------------- */

enum { SHOW_WARNINGS = 20 }; /* problems logged one by one per file; the rest are counted */

void s2s_dialogue_say(const reader *rd, s2s_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s2s_vlog_to(rd->o.log, rd->o.log_user, level, fmt, ap);
    va_end(ap);
}

/* Counts a problem and logs "FILE:LINE: what" for the first few in a file. */
void s2s_dialogue_warn(reader *rd, long line, const char *fmt, ...)
{
    rd->skipped++;
    if (rd->warned++ >= SHOW_WARNINGS || !rd->o.log)
        return;
    char what[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    s2s_dialogue_say(rd, S2S_LOG_WARN, "%s:%ld: %s", rd->path, line, what);
}

void s2s_dialogue_warned_more(const reader *rd)
{
    if (rd->warned > SHOW_WARNINGS)
        s2s_dialogue_say(rd, S2S_LOG_WARN, "... and %ld more problems in %s (skipped)", rd->warned - SHOW_WARNINGS,
                         rd->path);
}

s2s_status s2s_dialogue_start(reader *rd, s2s_corpus *c, const char *path, const s2s_corpus_options *o, const char *fn)
{
    memset(rd, 0, sizeof *rd);
    if (!c || !path)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: %s is NULL", fn, !c ? "corpus" : "path");
    rd->c = c;
    rd->path = path;
    rd->o = o ? *o : s2s_corpus_options_default();
    if (rd->o.max_line_bytes == 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: max_line_bytes = 0 would skip every turn; use SIZE_MAX for no "
                                             "limit", fn);
    return S2S_OK;
}

/* An empty result is an error (a wrong or truncated file), unless every pair was excluded. */
s2s_status s2s_dialogue_nothing_read(const reader *rd, const char *what)
{
    return S2S_FAIL(S2S_ERR_FORMAT, "no (utterance, reply) pairs in '%s' (%s; %ld problems skipped, each logged "
                                    "with file:line): check the path and the file format",
                    rd->path, what, rd->skipped);
}

/* ---- the exclusion set: indices of exclude's pairs, hashed by content ---------------------- */

struct pairset {
    const s2s_corpus *c; /* indices, not pointers: c may be the corpus being filled */
    size_t *slot;        /* pair index + 1; 0 = empty */
    size_t mask;
};

static uint64_t pair_hash(const char *src, const char *tgt)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over src, 0xFF (never in UTF-8), tgt */
    for (const unsigned char *p = (const unsigned char *)src; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    h = (h ^ 0xFF) * 1099511628211ull;
    for (const unsigned char *p = (const unsigned char *)tgt; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

/* Finds the slot of (src, tgt): the one holding it, or the empty one where it would go. */
static size_t *pairset_find(const pairset *ps, const char *src, const char *tgt)
{
    for (size_t i = pair_hash(src, tgt) & ps->mask;; i = (i + 1) & ps->mask) {
        const char *s, *t;
        if (!ps->slot[i] || (s2s_corpus_get(ps->c, ps->slot[i] - 1, &s, &t) == S2S_OK && !strcmp(s, src) &&
                             !strcmp(t, tgt)))
            return &ps->slot[i];
    }
}

static s2s_status pairset_build(pairset *ps, const s2s_corpus *c)
{
    size_t n = s2s_corpus_size(c), cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ps->c = c;
    ps->mask = cap - 1;
    ps->slot = s2s_host_calloc(cap, sizeof *ps->slot, "the set of pairs to exclude");
    if (!ps->slot)
        return S2S_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < n; i++) {
        const char *s, *t;
        S2S_TRY(s2s_corpus_get(c, i, &s, &t));
        size_t *slot = pairset_find(ps, s, t);
        if (!*slot)
            *slot = i + 1;
    }
    return S2S_OK;
}

/* ---- turns and their pairs (shared: dialogue_reader.h) -------------------------------------- */

int s2s_dialogue_turns_push(turns *t, char *s, long line)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        char **ns = realloc(t->s, cap * sizeof *ns);
        if (ns)
            t->s = ns;
        long *nl = ns ? realloc(t->line, cap * sizeof *nl) : NULL;
        if (!nl)
            return 0;
        t->line = nl, t->cap = cap;
    }
    t->s[t->n] = s;
    t->line[t->n++] = line;
    return 1;
}

/* Whether turn i may be paired; reports it when not. */
static int turn_ok(reader *rd, const turns *t, size_t i)
{
    size_t len = strlen(t->s[i]);
    const char *ws = rd->o.normalize_spaces ? " after normalising spaces" : "";
    if (len == 0)
        s2s_dialogue_warn(rd, t->line[i], "turn %zu is empty%s; its pairs are skipped", i + 1, ws);
    else if (len > rd->o.max_line_bytes)
        s2s_dialogue_warn(rd, t->line[i],
                          "turn %zu has %zu bytes, more than max_line_bytes = %zu; its pairs are skipped", i + 1, len,
                          rd->o.max_line_bytes);
    else if (s2s_text_utf8_check((const unsigned char *)t->s[i], len, NULL) < len)
        s2s_dialogue_warn(rd, t->line[i], "turn %zu is not valid UTF-8; its pairs are skipped", i + 1);
    else
        return 1;
    return 0;
}

/* Adds the adjacent pairs (t[i-1], t[i]) whose turns are both usable; pairs in ex (may be NULL)
 * are counted, not added. */
s2s_status s2s_dialogue_add_pairs(reader *rd, const turns *t, const pairset *ex)
{
    int prev_ok = 0;
    for (size_t i = 0; i < t->n; i++) {
        int ok = turn_ok(rd, t, i);
        if (ok && prev_ok) {
            if (ex && *pairset_find(ex, t->s[i - 1], t->s[i]))
                rd->excluded++;
            else {
                S2S_TRY(s2s_corpus_add(rd->c, t->s[i - 1], t->s[i]));
                rd->pairs++;
            }
        }
        prev_ok = ok;
    }
    return S2S_OK;
}

/* Opens a regular file for reading; a missing file or a directory is S2S_ERR_IO. */
s2s_status s2s_dialogue_open_file(const char *path, const char *what, FILE **f)
{
    int fd;
    *f = NULL;
    S2S_TRY(s2s_open_input(path, what, &fd)); /* shared/data/README.md lists the files */
    if (!(*f = fdopen(fd, "r"))) {
        close(fd);
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "cannot read %s '%s': %s", what, path, strerror(errno));
    }
    return S2S_OK;
}

/* ---- DailyDialog ---------------------------------------------------------------------------- */

/* Turns every U+2019 in s[0..n) (NUL-terminated) into ' and rejoins apostrophes with their
 * words, in place (the rules are at the top of the file); returns the new length. */
static size_t rejoin_apostrophes(char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int curly = n - i >= 3 && !memcmp(s + i, "\xE2\x80\x99", 3);
        if (!curly && s[i] != '\'') {
            s[o++] = s[i++];
            continue;
        }
        size_t after = i + (curly ? 3 : 1), k = 0; /* the byte after the mark; letters after its space */
        int spaced = o >= 2 && s[o - 1] == ' ' && is_alnum((unsigned char)s[o - 2]) && s[after] == ' ';
        while (spaced && is_alpha((unsigned char)s[after + 1 + k]))
            k++;
        int clitic = spaced && is_clitic(s + after + 1, k);
        if (!curly && !clitic) { /* an ASCII ' is only joined to a clitic: it is also a quote mark */
            s[o++] = s[i++];
            continue;
        }
        int left = o >= 2 && s[o - 1] == ' ' && is_alnum((unsigned char)s[o - 2]);
        size_t w = o -= left; /* the word before is s[w..o) */
        while (w > 0 && s[w - 1] != ' ')
            w--;
        size_t before = o - w;
        s[o++] = '\'';
        i = after;
        if (!clitic && !(spaced && k && (before == 1 || (before == 2 && (s[w] | 32) == 'm' && (s[w + 1] | 32) == 'a'))))
            continue;
        i++; /* the space after goes */
        if (clitic && k == 2 && is_upper((unsigned char)s[i]) && !is_upper((unsigned char)s[i + 1]))
            s[i] = (char)(s[i] | 32); /* "Ve" -> "ve" */
    }
    s[o] = '\0';
    return o;
}

/* Cleans one turn s[0..n) in place (DEL, spaces, apostrophes); returns its length. */
static size_t clean_turn(char *s, size_t n, int normalize_spaces)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != 0x7F)
            s[o++] = s[i];
    if (normalize_spaces)
        n = s2s_text_normalize(s, o, 0);
    else {
        size_t a = 0;
        while (a < o && (s[a] == ' ' || s[a] == '\t'))
            a++;
        while (o > a && (s[o - 1] == ' ' || s[o - 1] == '\t'))
            o--;
        memmove(s, s + a, o - a);
        s[n = o - a] = '\0';
    }
    return rejoin_apostrophes(s, n);
}

/* Splits a dialogue line (NUL-terminated, valid UTF-8) at "__eou__" into cleaned turns that
 * point into it. An empty last field (after the final marker) is dropped; a non-empty one is a
 * turn without its marker. */
static s2s_status split_dialogue(reader *rd, char *line, long no, turns *t)
{
    t->n = 0;
    for (char *p = line; p;) {
        char *q = strstr(p, "__eou__"), *next = q ? q + 7 : NULL;
        size_t len = clean_turn(p, q ? (size_t)(q - p) : strlen(p), rd->o.normalize_spaces);
        if ((q || len) && !s2s_dialogue_turns_push(t, p, no))
            return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "no memory for the turns of %s line %ld", rd->path, no);
        p = next;
    }
    return S2S_OK;
}

static s2s_status read_dialogues(reader *rd, FILE *f, const pairset *ex, long *lines)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    turns t = {0};
    s2s_status st = S2S_OK;
    for (*lines = 0; st == S2S_OK && (len = getline(&line, &cap, f)) >= 0;) {
        long no = ++*lines;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        size_t bad = s2s_text_utf8_check((const unsigned char *)line, (size_t)len, NULL);
        if (bad < (size_t)len) {
            s2s_dialogue_warn(rd, no, "invalid UTF-8 at byte %zu (0x%02X); dialogue skipped", bad + 1,
                              (unsigned char)line[bad]);
            continue;
        }
        st = split_dialogue(rd, line, no, &t);
        if (st == S2S_OK && t.n < 2)
            s2s_dialogue_warn(rd, no, "dialogue with %s; skipped", t.n ? "only one turn" : "no turns");
        else if (st == S2S_OK)
            st = s2s_dialogue_add_pairs(rd, &t, ex);
    }
    if (st == S2S_OK && ferror(f))
        st = S2S_FAIL(S2S_ERR_IO, "reading '%s' failed after line %ld: %s", rd->path, *lines, strerror(errno));
    free(line);
    free(t.s);
    free(t.line);
    return st;
}

S2S_API s2s_status s2s_corpus_add_dailydialog(s2s_corpus *c, const char *path, const s2s_corpus *exclude,
                                              const s2s_corpus_options *o, long *excluded)
{
    if (excluded)
        *excluded = 0;
    reader rd;
    S2S_TRY(s2s_dialogue_start(&rd, c, path, o, "s2s_corpus_add_dailydialog"));
    FILE *f;
    S2S_TRY(s2s_dialogue_open_file(path, "DailyDialog file", &f));
    pairset ex = {0};
    long lines = 0;
    s2s_status st = exclude ? pairset_build(&ex, exclude) : S2S_OK;
    if (st == S2S_OK)
        st = read_dialogues(&rd, f, exclude ? &ex : NULL, &lines);
    fclose(f);
    free(ex.slot);
    if (excluded)
        *excluded = rd.excluded;
    if (st != S2S_OK)
        return st;
    s2s_dialogue_warned_more(&rd);
    s2s_dialogue_say(&rd, S2S_LOG_INFO, "read %ld dialogues from %s: %ld pairs; %ld excluded; %ld skipped", lines,
                     path, rd.pairs, rd.excluded, rd.skipped);
    if (rd.pairs == 0 && rd.excluded == 0)
        return s2s_dialogue_nothing_read(&rd, lines ? "no dialogue gave a pair" : "the file is empty");
    return S2S_OK;
}
