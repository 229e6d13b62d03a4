/* corpus.c - parallel corpora: sentence pairs read from two aligned files or one TSV file,
 * plain or gzip, checked line by line and kept in one arena.
 *
 * Each line (each of the two lines of an aligned pair, source first) goes through the same
 * steps, and the first that fails decides why the pair is skipped (one count per pair):
 *   too long (raw bytes without LF/CR > max_line_bytes) -> invalid UTF-8 (strict, over the
 *   whole line, unused TSV columns included; NUL counts) -> fewer TSV columns than needed (an
 *   empty TSV line counts as empty instead) -> a side empty after normalisation.
 * Every skip is logged as "FILE:LINE: what; skipped" (the first 20 per kind, then a count),
 * and one INFO summary ends each read. Content is not judged: Multi30k's "@@" lines are kept.
 * Tolerated and counted: a UTF-8 BOM at the start of a file (per file), lines ending in CR LF
 * (per physical line, so aligned CRLF files count two per pair).
 * Normalisation (normalize_spaces = 1) maps every Unicode White_Space character (ASCII
 * whitespace incl. TAB, NEL, NBSP, U+1680, U+2000-U+200A, U+2028/9, U+202F, U+205F, U+3000)
 * to a space, deletes U+200B and U+FEFF, collapses runs and trims the ends. Nothing else is
 * touched: no case folding, no Unicode normalisation, no quote or apostrophe mapping. The
 * UTF-8 check and the normalisation are in text.c (s2s_text_utf8_check, s2s_text_normalize).
 * The reader keeps at most max_line_bytes + 1 bytes of a line, so an arbitrarily long line
 * costs no memory: it is drained and skipped.
 *
 * Storage: pair i is "src\0tgt\0" at text + off[2i] (tgt at off[2i+1]). */
#include "internal.h"
#include "sha256.h"
#include "text.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

struct s2s_corpus {
    char *text;        /* the arena: "src\0tgt\0" per pair */
    size_t text_len, text_cap;
    size_t *off;       /* [2 * n]: offsets of src and tgt in text */
    size_t n, cap;     /* pairs, and entries allocated in off */
    s2s_corpus_stats stats;
};

S2S_API s2s_corpus_options s2s_corpus_options_default(void)
{
    s2s_corpus_options o;
    memset(&o, 0, sizeof o);
    o.max_line_bytes = 4096;
    o.normalize_spaces = 1;
    o.tsv_src_column = 0;
    o.tsv_tgt_column = 1;
    return o;
}

S2S_API s2s_status s2s_corpus_create(s2s_corpus **out)
{
    if (!out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_corpus_create: out is NULL");
    *out = s2s_host_calloc(1, sizeof **out, "a corpus");
    return *out ? S2S_OK : S2S_ERR_OUT_OF_MEMORY;
}

S2S_API void s2s_corpus_free(s2s_corpus *c)
{
    if (!c)
        return;
    free(c->text);
    free(c->off);
    free(c);
}

S2S_API size_t s2s_corpus_size(const s2s_corpus *c) { return c ? c->n : 0; }

S2S_API s2s_corpus_stats s2s_corpus_get_stats(const s2s_corpus *c)
{
    s2s_corpus_stats s;
    memset(&s, 0, sizeof s);
    return c ? c->stats : s;
}

S2S_API s2s_status s2s_corpus_get(const s2s_corpus *c, size_t i, const char **src, const char **tgt)
{
    if (!c)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_corpus_get: corpus is NULL");
    if (i >= c->n)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_corpus_get: pair %zu out of range; the corpus has %zu pairs", i,
                        c->n);
    if (src)
        *src = c->text + c->off[2 * i];
    if (tgt)
        *tgt = c->text + c->off[2 * i + 1];
    return S2S_OK;
}

S2S_API s2s_status s2s_corpus_sha256(const s2s_corpus *c, char hex[65])
{
    if (!c || !hex)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_corpus_sha256: %s is NULL", c ? "hex" : "corpus");
    s2s_sha256 s;
    s2s_sha256_init(&s);
    for (size_t i = 0; i < c->n; i++) { /* "src\ttgt\n" per pair, in order */
        const char *src = c->text + c->off[2 * i], *tgt = c->text + c->off[2 * i + 1];
        s2s_sha256_update(&s, src, strlen(src));
        s2s_sha256_update(&s, "\t", 1);
        s2s_sha256_update(&s, tgt, strlen(tgt));
        s2s_sha256_update(&s, "\n", 1);
    }
    uint8_t d[32];
    s2s_sha256_final(&s, d);
    s2s_sha256_hex(d, hex);
    return S2S_OK;
}

/* ---- the arena ------------------------------------------------------------------------ */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 1;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n = n > SIZE_MAX / 4 ? need : n * 2;
    if (n > SIZE_MAX / elem)
        return 0;
    void *q = realloc(*p, n * elem);
    if (!q)
        return 0;
    *p = q;
    *cap = n;
    return 1;
}

/* Appends a pair; both sides are copied and NUL-terminated. */
static s2s_status push_pair(s2s_corpus *c, const char *src, size_t slen, const char *tgt, size_t tlen)
{
    size_t need = c->text_len + slen + tlen + 2;
    if (need < c->text_len || !grow((void **)&c->text, &c->text_cap, need, 1))
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "could not grow the corpus text to %zu bytes (%zu pairs so far)",
                        need, c->n);
    if (!grow((void **)&c->off, &c->cap, 2 * (c->n + 1), sizeof *c->off))
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "could not grow the corpus index to %zu pairs", c->n + 1);
    c->off[2 * c->n] = c->text_len;
    memcpy(c->text + c->text_len, src, slen);
    c->text[c->text_len + slen] = '\0';
    c->off[2 * c->n + 1] = c->text_len + slen + 1;
    memcpy(c->text + c->text_len + slen + 1, tgt, tlen);
    c->text[need - 1] = '\0';
    c->text_len = need;
    c->n++;
    return S2S_OK;
}

/* ---- the line reader: plain or gzip through zlib, any line length ----------------------- */

enum { CHUNK = 1 << 16 };

typedef struct line_reader {
    const char *path;
    gzFile gz;
    int gzip;          /* the file starts with the gzip magic 1f 8b */
    unsigned char *chunk;
    size_t pos, len;   /* unread bytes chunk[pos..len) */
    int eof;
    char *line;        /* the current line without LF/CR, at most keep bytes stored */
    size_t line_len, line_cap, keep;
    size_t raw_len;    /* the line's full length, also when longer than keep */
    long lineno;       /* 1-based number of the current line */
    long crlf;         /* lines that ended in CR LF */
    int bom, started;  /* a BOM was skipped; the first chunk was read */
    unsigned char last; /* the last byte of the current line so far */
} line_reader;

static s2s_status lr_open(line_reader *r, const char *path, size_t max_line_bytes)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->keep = max_line_bytes < SIZE_MAX ? max_line_bytes + 1 : SIZE_MAX; /* +1: over the limit */
    int fd;
    S2S_TRY(s2s_open_input(path, "corpus file", &fd)); /* scripts/fetch-data.sh fetches the demo corpora */
    unsigned char magic[2];
    r->gzip = pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    r->gz = gzdopen(fd, "rb");
    r->chunk = malloc(CHUNK);
    if (!r->gz || !r->chunk) {
        if (r->gz)
            gzclose(r->gz);
        else
            close(fd);
        free(r->chunk);
        r->gz = NULL, r->chunk = NULL;
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "could not allocate the reader for '%s'", path);
    }
    gzbuffer(r->gz, CHUNK);
    return S2S_OK;
}

static void lr_close(line_reader *r)
{
    if (r->gz)
        gzclose(r->gz);
    free(r->chunk);
    free(r->line);
    memset(r, 0, sizeof *r);
}

/* Refills the chunk; a read error or a corrupt gzip stream fails with where it happened. */
static s2s_status lr_fill(line_reader *r)
{
    int n = gzread(r->gz, r->chunk, CHUNK);
    int err = Z_OK;
    const char *msg = n <= 0 ? gzerror(r->gz, &err) : "";
    if (!strncmp(msg, "<fd:", 4) && strstr(msg, ": ")) /* gzdopen names the stream "<fd:N>" */
        msg = strstr(msg, ": ") + 2;
    if (n < 0 || (n == 0 && err != Z_OK)) {
        if (err == Z_ERRNO)
            return S2S_FAIL(S2S_ERR_IO, "reading '%s' failed after line %ld: %s", r->path, r->lineno,
                            strerror(errno));
        if (r->gzip)
            return S2S_FAIL(S2S_ERR_FORMAT, "corrupt gzip stream in '%s' after line %ld (zlib: %s); the file is "
                                            "damaged or truncated: check it with `gzip -t` and fetch it again",
                            r->path, r->lineno, msg);
        return S2S_FAIL(S2S_ERR_IO, "reading '%s' failed after line %ld: %s", r->path, r->lineno, msg);
    }
    r->pos = 0;
    r->len = (size_t)n;
    r->eof = n == 0;
    return S2S_OK;
}

/* Stores up to r->keep bytes of the line; counts the rest. */
static int lr_append(line_reader *r, const unsigned char *p, size_t n)
{
    r->raw_len += n;
    if (n)
        r->last = p[n - 1];
    size_t room = r->keep - r->line_len;
    size_t take = n < room ? n : room;
    if (!take)
        return 1;
    if (!grow((void **)&r->line, &r->line_cap, r->line_len + take + 1, 1))
        return 0;
    memcpy(r->line + r->line_len, p, take);
    r->line_len += take;
    return 1;
}

/* Reads the next line into r->line (*got = 0 at the end of the file). Strips the LF, a CR before
 * it (counted) and a BOM at the start of the file (noted). */
static s2s_status lr_next(line_reader *r, int *got)
{
    r->line_len = r->raw_len = 0;
    r->last = 0;
    *got = 0;
    int any = 0;
    /* the line buffer always exists, so that an empty line (even the first) is "" */
    if (!r->line && !grow((void **)&r->line, &r->line_cap, 1, 1))
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "no memory for a line of '%s'", r->path);
    for (;;) {
        if (r->pos == r->len) {
            if (r->eof)
                break;
            S2S_TRY(lr_fill(r));
            if (!r->started && r->len >= 3 && !memcmp(r->chunk, "\xEF\xBB\xBF", 3))
                r->pos = 3, r->bom = 1;
            r->started = 1;
            continue;
        }
        any = 1;
        unsigned char *start = r->chunk + r->pos, *nl = memchr(start, '\n', r->len - r->pos);
        size_t n = nl ? (size_t)(nl - start) : r->len - r->pos;
        if (!lr_append(r, start, n))
            return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "no memory for line %ld of '%s' (%zu bytes)", r->lineno + 1,
                            r->path, r->raw_len);
        r->pos += n + (nl != NULL);
        if (nl)
            break;
    }
    if (!any)
        return S2S_OK;
    r->lineno++;
    if (r->raw_len > 0 && r->last == '\r') {
        r->raw_len--, r->crlf++;
        if (r->line_len > r->raw_len) /* the CR was stored */
            r->line_len = r->raw_len;
    }
    r->line[r->line_len] = '\0';
    *got = 1;
    return S2S_OK;
}

/* ---- reading: checks, skips and the summary ------------------------------------------- */

enum skip_kind { SKIP_EMPTY, SKIP_UTF8, SKIP_LONG, SKIP_COLUMNS, SKIP_KINDS };
enum { SHOW_PER_KIND = 20 }; /* warnings logged one by one per kind; the rest are summed up */

typedef struct reading {
    s2s_corpus *c;
    s2s_corpus_options o;
    long seen[SKIP_KINDS]; /* skips per kind, to cap the warnings */
} reading;

static void say(const reading *rd, s2s_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(const reading *rd, s2s_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s2s_vlog_to(rd->o.log, rd->o.log_user, level, fmt, ap);
    va_end(ap);
}

/* Counts a skipped line and logs "FILE:LINE: what; skipped" for the first few of its kind. */
static void skip(reading *rd, int kind, const char *path, long line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void skip(reading *rd, int kind, const char *path, long line, const char *fmt, ...)
{
    s2s_corpus_stats *s = &rd->c->stats;
    long *count[SKIP_KINDS] = {&s->empty, &s->invalid_utf8, &s->too_long, &s->bad_columns};
    (*count[kind])++;
    if (rd->seen[kind]++ >= SHOW_PER_KIND || !rd->o.log)
        return;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    say(rd, S2S_LOG_WARN, "%s:%ld: %s; skipped", path, line, what);
}

static void summary(const reading *rd, const char *from)
{
    static const char *kind[SKIP_KINDS] = {"empty-side", "invalid UTF-8", "too long", "bad-column"};
    for (int k = 0; k < SKIP_KINDS; k++)
        if (rd->seen[k] > SHOW_PER_KIND)
            say(rd, S2S_LOG_WARN, "... and %ld more %s lines skipped in %s", rd->seen[k] - SHOW_PER_KIND, kind[k],
                from);
    const s2s_corpus_stats *s = &rd->c->stats;
    say(rd, S2S_LOG_INFO,
        "read %ld pairs from %s: kept %ld; skipped: %ld empty, %ld invalid UTF-8, %ld too long, %ld bad columns; "
        "tolerated: %ld CRLF lines, %d BOM",
        s->lines, from, s->kept, s->empty, s->invalid_utf8, s->too_long, s->bad_columns, s->crlf, s->bom);
}

/* Skips (and returns 1 for) a line that is too long or not valid UTF-8. */
static int bad_line(reading *rd, const line_reader *r)
{
    if (r->raw_len > rd->o.max_line_bytes) {
        skip(rd, SKIP_LONG, r->path, r->lineno, "line of %zu bytes is longer than max_line_bytes = %zu", r->raw_len,
             rd->o.max_line_bytes);
        return 1;
    }
    const char *why = "";
    size_t at = s2s_text_utf8_check((const unsigned char *)r->line, r->line_len, &why);
    if (at == r->line_len)
        return 0;
    skip(rd, SKIP_UTF8, r->path, r->lineno, "invalid UTF-8 at byte %zu (0x%02X: %s)", at + 1,
         (unsigned char)r->line[at], why);
    return 1;
}

/* One side's text, normalised in place when asked; returns its new length. */
static size_t side(const reading *rd, char *s, size_t n)
{
    if (rd->o.normalize_spaces)
        n = s2s_text_normalize(s, n, 0);
    s[n] = '\0';
    return n;
}

static const char *empty_why(const reading *rd)
{
    return rd->o.normalize_spaces ? " after normalising spaces" : "";
}

/* Drains the longer file to count its lines, then fails naming both files and both counts. */
static s2s_status mismatch(line_reader *shorter, line_reader *longer)
{
    int got = 1;
    while (got)
        S2S_TRY(lr_next(longer, &got));
    return S2S_FAIL(S2S_ERR_FORMAT,
                    "aligned files differ in length: '%s' has %ld lines but '%s' has %ld lines; '%s' ends after "
                    "line %ld, so pairs are not matched from there on: check that both files are the same split "
                    "and version",
                    longer->path, longer->lineno, shorter->path, shorter->lineno, shorter->path, shorter->lineno);
}

static s2s_status read_aligned_pairs(reading *rd, line_reader *a, line_reader *b)
{
    for (;;) {
        int ga, gb;
        S2S_TRY(lr_next(a, &ga));
        S2S_TRY(lr_next(b, &gb));
        if (!ga || !gb)
            return ga == gb ? S2S_OK : ga ? mismatch(b, a) : mismatch(a, b);
        rd->c->stats.lines++;
        if (bad_line(rd, a) || bad_line(rd, b))
            continue;
        size_t la = side(rd, a->line, a->line_len), lb = side(rd, b->line, b->line_len);
        if (!la || !lb) {
            const line_reader *e = la ? b : a;
            skip(rd, SKIP_EMPTY, e->path, e->lineno, "%s side empty%s", la ? "target" : "source", empty_why(rd));
            continue;
        }
        S2S_TRY(push_pair(rd->c, a->line, la, b->line, lb));
    }
}

/* Splits s[0..n) at TABs: returns the number of columns and finds columns want[0], want[1]. */
static int split_tsv(char *s, size_t n, const int want[2], char *col[2], size_t len[2])
{
    int k = 0;
    for (size_t i = 0;; k++) {
        char *tab = memchr(s + i, '\t', n - i);
        size_t end = tab ? (size_t)(tab - s) : n;
        for (int j = 0; j < 2; j++)
            if (want[j] == k)
                col[j] = s + i, len[j] = end - i;
        if (!tab)
            return k + 1;
        i = end + 1;
    }
}

static s2s_status read_tsv_pairs(reading *rd, line_reader *r)
{
    const int want[2] = {rd->o.tsv_src_column, rd->o.tsv_tgt_column};
    const int need = (want[0] > want[1] ? want[0] : want[1]) + 1;
    for (;;) {
        int got;
        S2S_TRY(lr_next(r, &got));
        if (!got)
            return S2S_OK;
        rd->c->stats.lines++;
        if (bad_line(rd, r))
            continue;
        if (r->line_len == 0) {
            skip(rd, SKIP_EMPTY, r->path, r->lineno, "empty line");
            continue;
        }
        char *col[2] = {NULL, NULL};
        size_t len[2] = {0, 0};
        int ncols = split_tsv(r->line, r->line_len, want, col, len);
        if (ncols < need) {
            skip(rd, SKIP_COLUMNS, r->path, r->lineno, "%d TAB-separated column%s, need %d (source column %d, target "
                 "column %d)", ncols, ncols == 1 ? "" : "s", need, want[0], want[1]);
            continue;
        }
        len[0] = side(rd, col[0], len[0]);
        len[1] = want[1] == want[0] ? len[0] : side(rd, col[1], len[1]);
        if (!len[0] || !len[1]) {
            skip(rd, SKIP_EMPTY, r->path, r->lineno, "%s side empty%s", len[0] ? "target" : "source", empty_why(rd));
            continue;
        }
        S2S_TRY(push_pair(rd->c, col[0], len[0], col[1], len[1]));
    }
}

/* Options as given (or the defaults), checked. */
static s2s_status start_reading(reading *rd, const s2s_corpus_options *o, const char *fn)
{
    memset(rd, 0, sizeof *rd);
    rd->o = o ? *o : s2s_corpus_options_default();
    if (rd->o.max_line_bytes == 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: max_line_bytes = 0 would skip every line; use SIZE_MAX for no "
                                             "limit", fn);
    if (rd->o.tsv_src_column < 0 || rd->o.tsv_tgt_column < 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "%s: TSV columns are 0-based and must be >= 0 (source %d, target %d)",
                        fn, rd->o.tsv_src_column, rd->o.tsv_tgt_column);
    return s2s_corpus_create(&rd->c);
}

/* Logs the summary and hands the corpus out, or frees it on failure or when nothing was kept. */
static s2s_status finish_reading(reading *rd, s2s_status st, const char *from, s2s_corpus **out)
{
    if (st == S2S_OK) {
        rd->c->stats.kept = (long)rd->c->n;
        summary(rd, from);
        if (rd->c->n == 0)
            st = rd->c->stats.lines == 0
                     ? S2S_FAIL(S2S_ERR_FORMAT, "no usable pairs in %s: the input is empty; check the path and that "
                                                "the download completed", from)
                     : S2S_FAIL(S2S_ERR_FORMAT, "no usable pairs in %s: all %ld lines were skipped (%ld empty, %ld "
                                                "invalid UTF-8, %ld too long, %ld bad columns; the log callback has "
                                                "file:line for each): check the format and the options", from,
                                rd->c->stats.lines, rd->c->stats.empty, rd->c->stats.invalid_utf8,
                                rd->c->stats.too_long, rd->c->stats.bad_columns);
    }
    if (st != S2S_OK) {
        s2s_corpus_free(rd->c);
        rd->c = NULL;
    }
    *out = rd->c;
    return st;
}

S2S_API s2s_status s2s_corpus_read_aligned(const char *src_path, const char *tgt_path, const s2s_corpus_options *o,
                                           s2s_corpus **out)
{
    if (!out || !src_path || !tgt_path)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_corpus_read_aligned: %s is NULL",
                        !out ? "out" : !src_path ? "src_path" : "tgt_path");
    *out = NULL;
    reading rd;
    S2S_TRY(start_reading(&rd, o, "s2s_corpus_read_aligned"));
    line_reader a, b;
    memset(&b, 0, sizeof b);
    s2s_status st = lr_open(&a, src_path, rd.o.max_line_bytes);
    if (st == S2S_OK)
        st = lr_open(&b, tgt_path, rd.o.max_line_bytes);
    if (st == S2S_OK)
        st = read_aligned_pairs(&rd, &a, &b);
    rd.c->stats.crlf = a.crlf + b.crlf;
    rd.c->stats.bom = a.bom + b.bom;
    lr_close(&a);
    lr_close(&b);
    char from[1024];
    snprintf(from, sizeof from, "'%s' and '%s'", src_path, tgt_path);
    return finish_reading(&rd, st, from, out);
}

S2S_API s2s_status s2s_corpus_read_tsv(const char *path, const s2s_corpus_options *o, s2s_corpus **out)
{
    if (!out || !path)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_corpus_read_tsv: %s is NULL", !out ? "out" : "path");
    *out = NULL;
    reading rd;
    S2S_TRY(start_reading(&rd, o, "s2s_corpus_read_tsv"));
    line_reader r;
    s2s_status st = lr_open(&r, path, rd.o.max_line_bytes);
    if (st == S2S_OK)
        st = read_tsv_pairs(&rd, &r);
    rd.c->stats.crlf = r.crlf;
    rd.c->stats.bom = r.bom;
    lr_close(&r);
    char from[1024];
    snprintf(from, sizeof from, "'%s'", path);
    return finish_reading(&rd, st, from, out);
}

S2S_API s2s_status s2s_corpus_add(s2s_corpus *c, const char *src, const char *tgt)
{
    if (!c || !src || !tgt)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_corpus_add: %s is NULL", !c ? "corpus" : !src ? "src" : "tgt");
    const char *text[2] = {src, tgt}, *name[2] = {"source", "target"};
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        len[k] = strlen(text[k]);
        const char *why = "";
        size_t at = s2s_text_utf8_check((const unsigned char *)text[k], len[k], &why);
        if (len[k] == 0)
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_corpus_add: the %s side of pair %zu is empty; leave such "
                                                 "pairs out", name[k], c->n);
        if (at < len[k])
            return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_corpus_add: the %s side of pair %zu is not valid UTF-8 at "
                                                 "byte %zu (0x%02X: %s); convert the text to UTF-8 first",
                            name[k], c->n, at + 1, (unsigned char)text[k][at], why);
    }
    S2S_TRY(push_pair(c, src, len[0], tgt, len[1]));
    c->stats.lines++;
    c->stats.kept++;
    return S2S_OK;
}
