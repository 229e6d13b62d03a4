/* chatterbot.c - the ChatterBot YAML corpus as (utterance, reply) pairs of adjacent turns,
 * appended to an s2s_corpus through s2s_corpus_add (the reading session, shared with
 * dailydialog.c, is in dialogue_reader.h).
 * The quirks handled here are listed in shared/data/README.md, section 3.
 * Tests: ./build/tests/test_suite --filter 'dialogue/cb_*'
 *
 * ChatterBot decisions (a hand-written reader for the YAML subset of these files):
 * - Top-level keys: "conversations:" is read, "categories:" is ignored, any other key is
 *   reported and its lines ignored. "---" is ignored. Comments and blank lines are skipped.
 * - A conversation is "- " at the list's column holding a list of turns: "- - first" then
 *   "  - next" at the column of the inner '-' (or "-" alone, the turns on the following lines).
 * - Scalars: plain (a "#" after a space starts a comment; continuation lines indented more than
 *   the turn's '-' fold with a space, a blank line between them gives "\n"), 'single' ('' is '),
 *   "double" (the YAML escapes; a line ending in \ joins without a space), both of which may
 *   span lines and fold the same way (their continuation lines too must be indented more than
 *   the '-', as the YAML spec asks; PyYAML takes any indentation there, but then one missing
 *   quote would swallow the rest of the file), and literal blocks "|" with the chomping (- +) and
 *   indentation (1-9) indicators. "#" inside a block is text. A plain scalar is always text:
 *   no YAML 1.1 typing ("yes", "22" and "~" stay as written).
 * - Refused, reported, and the conversation skipped: folded blocks ">", flow collections,
 *   anchors, aliases, tags, a mapping ("key: value" in a plain scalar), a list inside a turn,
 *   a bad escape (including \0, which a C string cannot hold), an unterminated quote, text after
 *   a closing quote, a line at an unexpected column, invalid UTF-8, and a conversation that is
 *   not a list. The conversation ends at the next line at or left of its '-'.
 * - trivia.yml line 35 ("- In a game of bingo ..." with no second "- ") is read as a conforming
 *   parser reads it: one plain scalar that folds in the next line ("... ducks\"? - '22'"). It is
 *   a conversation that is a string, not a list, so it is reported and skipped: 0 pairs, as the
 *   README's count of 2,306 pairs (2,026 conversations) implies.
 * - With normalize_spaces = 1 the newlines of a turn are kept, and so is the indentation at
 *   the start of its lines (code in coding.yml); within a line spaces are normalised as corpus.c
 *   does (s2s_text_normalize in text.h, keep_lines = 1), and the spaces at line ends and the
 *   blank lines at both ends of the turn are dropped (so the final newline that "|" keeps
 *   goes). With 0 every turn is the YAML value, byte for byte.
 * - A directory means every regular file "*.yml" in it (not starting with '.'), in strcmp order. */
#include "internal.h"
#include "dialogue_reader.h"
#include "text.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- text helpers ------------------------------------------------------------------------ */

/* Appends cp as UTF-8; 0 for NUL, surrogates and anything above U+10FFFF. */
static int utf8_put(s2s_strbuf *b, unsigned long cp)
{
    char u[4];
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t k = n - 1; k > 0; k--, cp >>= 6)
        u[k] = (char)(0x80 | (cp & 0x3F));
    u[0] = (char)(lead[n] | cp);
    s2s_strbuf_put(b, u, n);
    return 1;
}

/* ---- ChatterBot: the YAML line reader -------------------------------------------------------- */

typedef struct yreader {
    reader *rd;
    FILE *f;
    char *line;  /* the current line, without LF or CR LF */
    size_t cap, len;
    long no;     /* its 1-based number */
    int held;    /* the current line was given back: y_next returns it again */
    int lf;      /* the current line ended in LF (the last line of a file may not) */
    int line_bad; /* the current line was not valid UTF-8 (reported, cut at the bad byte) */
    long bad_lines; /* such lines so far */
    int err;     /* a read failed (errno kept in err_no) */
    int err_no;
    int oom;
    turns t;     /* the turns of the current conversation (owned) */
} yreader;

/* Moves to the next line (the held one first); 0 at the end of the file or on a read error. */
static int y_next(yreader *y)
{
    if (y->held)
        return y->held = 0, 1;
    errno = 0;
    ssize_t n = getline(&y->line, &y->cap, y->f);
    if (n < 0) {
        if (ferror(y->f))
            y->err = 1, y->err_no = errno;
        return 0;
    }
    y->no++;
    y->lf = n > 0 && y->line[n - 1] == '\n';
    while (n > 0 && (y->line[n - 1] == '\n' || y->line[n - 1] == '\r'))
        y->line[--n] = '\0';
    if (y->no == 1 && n >= 3 && !memcmp(y->line, "\xEF\xBB\xBF", 3))
        memmove(y->line, y->line + 3, (size_t)(n -= 3) + 1);
    y->len = (size_t)n;
    size_t bad = s2s_text_utf8_check((const unsigned char *)y->line, y->len, NULL);
    y->line_bad = bad < y->len;
    if (y->line_bad) {
        y->bad_lines++;
        s2s_dialogue_warn(y->rd, y->no, "invalid UTF-8 at byte %zu (0x%02X); the line and its conversation are "
                                        "skipped", bad + 1, (unsigned char)y->line[bad]);
        y->line[bad] = '\0', y->len = bad; /* what follows is never read, so it cannot mislead */
    }
    return 1;
}

/* Reports a malformed construct at a line and returns 1 (the conversation is skipped). */
#define Y_BAD(y, line, ...) (s2s_dialogue_warn((y)->rd, (line), __VA_ARGS__), 1)

static size_t indent_of(const char *s) { return strspn(s, " "); }
static int blank(const char *s) { return s[strspn(s, " \t")] == '\0'; }
static int comment_line(const char *s) { return s[strspn(s, " \t")] == '#'; }
/* A block sequence entry: '-' then a space, a TAB or the end of the line. */
static int is_entry(const char *s) { return s[0] == '-' && (s[1] == ' ' || s[1] == '\t' || s[1] == '\0'); }

/* ---- ChatterBot: scalars --------------------------------------------------------------------- */

/* Cuts a plain-scalar line at a comment and its trailing spaces (*len); 1 if it is a mapping
 * ("key: value" or "key:"), which a turn must not be. */
static int plain_piece(const char *s, size_t *len)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if (s[i] == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t'))
            n = i;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *len = n;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ':' && (i + 1 == n || s[i + 1] == ' ' || s[i + 1] == '\t'))
            return 1;
    return 0;
}

/* A plain scalar starting at column col; continuation lines are indented more than parent. */
static int y_plain(yreader *y, size_t col, size_t parent, s2s_strbuf *out)
{
    size_t n, blanks = 0;
    const char *mapping = "\"key: value\" makes a mapping, not text (quote the turn)";
    if (plain_piece(y->line + col, &n))
        return Y_BAD(y, y->no, "%s; conversation skipped", mapping);
    s2s_strbuf_put(out, y->line + col, n);
    while (y_next(y)) {
        if (blank(y->line)) {
            blanks++;
            continue;
        }
        size_t ind = indent_of(y->line);
        if (ind <= parent || comment_line(y->line)) {
            y->held = 1;
            break;
        }
        const char *s = y->line + ind + strspn(y->line + ind, " \t");
        if (plain_piece(s, &n))
            return Y_BAD(y, y->no, "%s; conversation skipped", mapping);
        if (out->len)
            s2s_strbuf_putc(out, blanks ? '\n' : ' ', blanks ? blanks : 1);
        s2s_strbuf_put(out, s, n);
        blanks = 0;
    }
    return 0;
}

/* Appends what the double-quoted escape at s (after its backslash) stands for; returns the bytes
 * it used, 0 if it is not a YAML escape or stands for NUL. */
static size_t y_escape(const char *s, s2s_strbuf *out)
{
    static const char key[] = "abtnvfre \"/\\\t", val[] = "\a\b\t\n\v\f\r\x1b \"/\\\t";
    const char *k = *s ? strchr(key, *s) : NULL;
    if (k) {
        s2s_strbuf_put(out, &val[k - key], 1);
        return 1;
    }
    static const char named[] = "N_LP";
    static const unsigned long named_cp[] = {0x85, 0xA0, 0x2028, 0x2029};
    const char *m = *s ? strchr(named, *s) : NULL;
    size_t len = *s == 'x' ? 3 : *s == 'u' ? 5 : *s == 'U' ? 9 : 1;
    unsigned long cp = m ? named_cp[m - named] : 0;
    if (!m && len == 1)
        return 0;
    for (size_t i = 1; i < len; i++) {
        char h = s[i];
        int v = h >= '0' && h <= '9' ? h - '0' : (h | 32) >= 'a' && (h | 32) <= 'f' ? (h | 32) - 'a' + 10 : -1;
        if (v < 0)
            return 0;
        cp = cp * 16 + (unsigned long)v;
    }
    return utf8_put(out, cp) ? len : 0;
}

/* Copies quoted text from *sp up to the closing quote q (returns 1, *sp after it) or the end of
 * the line (returns 0; *esc_break when the line ends in a backslash). *keep: the length that
 * trailing-space folding must not cut (the end of the last escape). -1 after a bad escape. */
static int quoted_piece(yreader *y, const char **sp, char q, s2s_strbuf *out, size_t *keep, int *esc_break)
{
    const char *s = *sp;
    for (*esc_break = 0; *s; s++) {
        if (*s == q && q == '\'' && s[1] == '\'')
            s2s_strbuf_put(out, s++, 1);
        else if (*s == q) {
            *sp = s + 1;
            return 1;
        } else if (q == '"' && *s == '\\') {
            size_t used = s[1] ? y_escape(s + 1, out) : 0;
            if (!s[1])
                return *esc_break = 1, 0;
            if (!used) {
                s2s_dialogue_warn(y->rd, y->no, "bad escape '\\%c' in a double-quoted turn (YAML escapes only; \\0 "
                                                "cannot be stored); conversation skipped", s[1]);
                return -1;
            }
            s += used, *keep = out->len;
        } else
            s2s_strbuf_put(out, s, 1);
    }
    *sp = s;
    return 0;
}

/* A 'single' or "double" quoted scalar at column col, folded over lines like a plain one. */
static int y_quoted(yreader *y, size_t col, size_t parent, s2s_strbuf *out)
{
    const char q = y->line[col], *s = y->line + col + 1;
    long first = y->no;
    for (;;) {
        size_t keep = out->len, blanks = 0;
        int esc_break, r = quoted_piece(y, &s, q, out, &keep, &esc_break);
        if (r < 0)
            return 1;
        if (r == 1) {
            s += strspn(s, " \t");
            if (*s && *s != '#')
                return Y_BAD(y, y->no, "text after the closing quote: \"%.40s\"; conversation skipped", s);
            return 0;
        }
        while (!esc_break && out->len > keep && (out->p[out->len - 1] == ' ' || out->p[out->len - 1] == '\t'))
            out->p[--out->len] = '\0';
        int more;
        while ((more = y_next(y)) && blank(y->line))
            blanks++;
        if (!more || indent_of(y->line) <= parent) {
            y->held = more;
            return Y_BAD(y, first, "the %s-quoted turn that starts here is not closed; conversation skipped",
                         q == '"' ? "double" : "single");
        }
        s = y->line + strspn(y->line, " \t");
        if (blanks || !esc_break)
            s2s_strbuf_putc(out, blanks ? '\n' : ' ', blanks ? blanks : 1);
    }
}

/* A literal block scalar; h points after its '|'. Content lines are indented more than parent
 * (by the indicator's count, else as much as the first non-empty line). */
static int y_block(yreader *y, const char *h, size_t parent, s2s_strbuf *out)
{
    char chomp = ' ';
    size_t n = 0, blanks = 0; /* the content's indentation (0: not yet known); blank lines owed */
    for (; *h && *h != ' ' && *h != '\t' && *h != '#'; h++) {
        if ((*h == '-' || *h == '+') && chomp == ' ')
            chomp = *h;
        else if (*h >= '1' && *h <= '9' && !n)
            n = parent + (size_t)(*h - '0');
        else
            return Y_BAD(y, y->no, "bad block scalar header '|%s' (only '-', '+' and one digit 1-9 may follow "
                                   "'|'); conversation skipped", h);
    }
    if (!blank(h) && !comment_line(h))
        return Y_BAD(y, y->no, "text after a block scalar header: \"%.40s\"; conversation skipped", h);
    while (y_next(y)) {
        size_t ind = indent_of(y->line);
        if (y->line[ind] == '\0' && (!n || ind <= n)) {
            blanks++;
            continue;
        }
        if (!n && ind > parent)
            n = ind;
        if (ind < n || !n) {
            y->held = 1;
            break;
        }
        s2s_strbuf_putc(out, '\n', blanks);
        s2s_strbuf_put(out, y->line + n, y->len - n);
        s2s_strbuf_putc(out, '\n', y->lf); /* a file's unterminated last line has no line break to keep */
        blanks = 0;
    }
    if (chomp == '+')
        s2s_strbuf_putc(out, '\n', blanks);
    while (chomp == '-' && out->len && out->p[out->len - 1] == '\n')
        out->p[--out->len] = '\0';
    return 0;
}

/* The scalar at column col of the current line, in an entry whose '-' is at column parent.
 * Returns 0, or 1 when it is malformed or unsupported (reported). */
static int y_scalar(yreader *y, size_t col, size_t parent, s2s_strbuf *out)
{
    const char *s = y->line + col;
    if (*s == '|')
        return y_block(y, s + 1, parent, out);
    if (*s == '\'' || *s == '"')
        return y_quoted(y, col, parent, out);
    if (is_entry(s))
        return Y_BAD(y, y->no, "a list inside a turn (\"- - -\"); a turn must be text; conversation skipped");
    if (*s && strchr(">[]{}&*!@`%|", *s))
        return Y_BAD(y, y->no, "a turn starting with '%c' (folded blocks, flow collections, anchors, aliases, tags "
                               "and reserved indicators are not supported; quote the text); conversation skipped", *s);
    return y_plain(y, col, parent, out);
}

/* ---- ChatterBot: conversations and files ----------------------------------------------------- */

/* Parses the turn whose '-' is at column dash of the current line and keeps it. */
static int y_turn(yreader *y, size_t dash)
{
    long line = y->no;
    size_t col = dash + 1 + strspn(y->line + dash + 1, " \t");
    s2s_strbuf b = {0};
    int bad = y_scalar(y, col, dash, &b);
    if (!bad && !b.oom && !b.p)
        s2s_strbuf_put(&b, "", 0);
    if (!bad && !b.oom && !s2s_dialogue_turns_push(&y->t, b.p, line))
        b.oom = 1;
    if (bad || b.oom)
        free(b.p);
    y->oom |= b.oom;
    return bad || b.oom;
}

/* Skips the rest of a conversation: every line right of column i0. */
static void y_skip_deeper(yreader *y, size_t i0)
{
    while (y_next(y))
        if (!blank(y->line) && !comment_line(y->line) && indent_of(y->line) <= i0) {
            y->held = 1;
            return;
        }
}

/* The first line of a conversation, "- ..." at column i0: its first turn, if any (*inner gets
 * the column of the turns' '-'). A scalar in place of the list is reported; returns 1 then. */
static int y_conversation_head(yreader *y, size_t i0, size_t *inner)
{
    size_t col = i0 + 1 + strspn(y->line + i0 + 1, " \t");
    if (y->line[col] == '\0' || y->line[col] == '#')
        return 0; /* "-" alone (or with a comment): the turns follow */
    if (is_entry(y->line + col))
        return y_turn(y, *inner = col);
    long line = y->no;
    s2s_strbuf b = {0};
    if (!y_scalar(y, col, i0, &b)) /* read it whole, as a conforming parser does, so that its */
        s2s_dialogue_warn(y->rd, line,     /* continuation lines are not taken for turns */
                          "conversation is one string (\"%.60s%s\"), not a list of turns (a '- ' where '- - ' was "
                          "meant?); skipped", b.p ? b.p : "", b.len > 60 ? "..." : "");
    y->oom |= b.oom;
    free(b.p);
    return 1;
}

/* Reads one conversation (the current line is its entry at column i0) and adds its pairs. */
static s2s_status y_conversation(yreader *y, size_t i0)
{
    long start = y->no, bad_lines0 = y->bad_lines - y->line_bad;
    size_t inner = 0; /* the column of the turns' '-' (never 0: it is right of i0) */
    y->t.n = 0;
    int bad = y_conversation_head(y, i0, &inner);
    while (!bad && y_next(y)) {
        const char *l = y->line;
        size_t ind = indent_of(l);
        if (blank(l) || comment_line(l))
            continue;
        if (ind <= i0) {
            y->held = 1;
            break;
        }
        if (!inner && is_entry(l + ind))
            inner = ind;
        if (ind != inner || !is_entry(l + ind))
            bad = Y_BAD(y, y->no, "unexpected line in the conversation of line %ld (turns are \"- \" entries at "
                                  "column %zu); conversation skipped", start, inner + 1);
        else
            bad = y_turn(y, inner);
    }
    if (bad)
        y_skip_deeper(y, i0);
    /* invalid lines in the conversation, not counting the held line that ends it */
    int tainted = y->bad_lines - bad_lines0 - (y->held && y->line_bad) > 0;
    s2s_status st = S2S_OK;
    if (y->oom)
        st = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "no memory for the conversation at %s:%ld", y->rd->path, start);
    else if (!bad && !tainted && y->t.n < 2)
        s2s_dialogue_warn(y->rd, start, "conversation with %s; skipped", y->t.n ? "only one turn" : "no turns");
    else if (!bad && !tainted) {
        for (size_t i = 0; y->rd->o.normalize_spaces && i < y->t.n; i++)
            s2s_text_normalize(y->t.s[i], strlen(y->t.s[i]), 1);
        st = s2s_dialogue_add_pairs(y->rd, &y->t, NULL);
    }
    for (size_t i = 0; i < y->t.n; i++)
        free(y->t.s[i]);
    y->t.n = 0;
    return st;
}

enum section { SEC_NONE, SEC_IGNORED, SEC_CONVERSATIONS };

/* A line at column 0 that is not a list entry: "key:", "---", or something unexpected. Returns
 * the section that follows. */
static enum section y_key(yreader *y, enum section now)
{
    const char *l = y->line, *colon = l;
    if (!strcmp(l, "---") || !strncmp(l, "--- ", 4))
        return SEC_NONE;
    while ((colon = strchr(colon, ':')) && colon[1] && colon[1] != ' ' && colon[1] != '\t')
        colon++;
    if (!colon) {
        s2s_dialogue_warn(y->rd, y->no, "unexpected line \"%.40s\" (not \"key:\" nor a \"- \" entry); skipped", l);
        return now;
    }
    int k = (int)(colon - l);
    while (k > 0 && (l[k - 1] == ' ' || l[k - 1] == '\t')) /* "key  :" is "key" */
        k--;
    int value = !blank(colon + 1) && !comment_line(colon + 1);
    if (k == 13 && !strncmp(l, "conversations", 13) && !value)
        return SEC_CONVERSATIONS;
    if (k == 13 && !strncmp(l, "conversations", 13))
        s2s_dialogue_warn(y->rd, y->no, "\"conversations:\" with a value on the same line (a block list must "
                                        "follow); skipped");
    else if (!(k == 10 && !strncmp(l, "categories", 10)))
        s2s_dialogue_warn(y->rd, y->no, "unknown key \"%.*s\"; it and its lines are skipped", k < 40 ? k : 40, l);
    return SEC_IGNORED;
}

/* Reads one YAML file of conversations. */
static s2s_status y_file(reader *rd, const char *path)
{
    yreader y = {.rd = rd};
    S2S_TRY(s2s_dialogue_open_file(path, "ChatterBot file", &y.f));
    long pairs0 = rd->pairs, skipped0 = rd->skipped, convs = 0;
    rd->path = path, rd->warned = 0;
    enum section sec = SEC_NONE;
    size_t i0 = SIZE_MAX; /* the column of the conversations' '-', once known */
    s2s_status st = S2S_OK;
    while (st == S2S_OK && y_next(&y)) {
        size_t ind = indent_of(y.line);
        if (blank(y.line) || comment_line(y.line))
            continue;
        if (ind == 0 && !is_entry(y.line)) {
            sec = y_key(&y, sec), i0 = SIZE_MAX;
            continue;
        }
        if (sec == SEC_IGNORED)
            continue;
        if (sec == SEC_CONVERSATIONS && i0 == SIZE_MAX && is_entry(y.line + ind))
            i0 = ind;
        if (sec == SEC_NONE || ind != i0 || !is_entry(y.line + ind)) {
            s2s_dialogue_warn(rd, y.no, "unexpected line \"%.40s\" %s; skipped", y.line + ind,
                              sec == SEC_NONE ? "before any key" : "between conversations");
            continue;
        }
        convs++;
        st = y_conversation(&y, i0);
    }
    if (st == S2S_OK && y.err)
        st = S2S_FAIL(S2S_ERR_IO, "reading '%s' failed after line %ld: %s", path, y.no, strerror(y.err_no));
    fclose(y.f);
    free(y.line);
    free(y.t.s);
    free(y.t.line);
    rd->convs += convs;
    if (st == S2S_OK) {
        s2s_dialogue_warned_more(rd);
        s2s_dialogue_say(rd, S2S_LOG_INFO, "read %ld conversations from %s: %ld pairs; %ld skipped", convs, path,
                         rd->pairs - pairs0, rd->skipped - skipped0);
    }
    return st;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The paths of the regular "*.yml" files in dir, sorted; *n of them. */
static s2s_status yml_files(const char *dir, char ***out, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return S2S_FAIL(S2S_ERR_IO, "cannot open directory '%s': %s", dir, strerror(errno));
    char **v = NULL;
    size_t cap = 0;
    s2s_status st = S2S_OK;
    *n = 0;
    for (struct dirent *e; st == S2S_OK && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        struct stat sb;
        char *p = malloc(strlen(dir) + len + 2);
        if (p)
            sprintf(p, "%s/%s", dir, e->d_name);
        if (p && (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".yml") || stat(p, &sb) ||
                  !S_ISREG(sb.st_mode))) {
            free(p);
            continue;
        }
        char **nv = p && *n == cap ? realloc(v, (cap = cap ? 2 * cap : 32) * sizeof *v) : v;
        if (!p || !nv) {
            free(p);
            st = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "no memory for the file list of '%s'", dir);
            break;
        }
        v = nv;
        v[(*n)++] = p;
    }
    closedir(d);
    if (st == S2S_OK && *n)
        qsort(v, *n, sizeof *v, by_name);
    *out = v;
    return st;
}

S2S_API s2s_status s2s_corpus_add_chatterbot(s2s_corpus *c, const char *path, const s2s_corpus_options *o)
{
    reader rd;
    S2S_TRY(s2s_dialogue_start(&rd, c, path, o, "s2s_corpus_add_chatterbot"));
    struct stat sb;
    if (stat(path, &sb) != 0)
        return S2S_FAIL(S2S_ERR_IO, "cannot open the ChatterBot corpus '%s': %s; give a .yml file or a directory "
                                    "of them (shared/data/chatterbot/english)", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        S2S_TRY(y_file(&rd, path));
        return rd.pairs ? S2S_OK
                        : s2s_dialogue_nothing_read(&rd, rd.convs ? "no conversation gave a pair" : "no conversations");
    }
    char **files = NULL;
    size_t n = 0;
    s2s_status st = yml_files(path, &files, &n);
    for (size_t i = 0; st == S2S_OK && i < n; i++)
        st = y_file(&rd, files[i]);
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
    S2S_TRY(st);
    if (n == 0)
        return S2S_FAIL(S2S_ERR_IO, "no *.yml files in the directory '%s'; give the ChatterBot folder (shared/data/"
                                    "chatterbot/english) or one .yml file", path);
    rd.path = path;
    s2s_dialogue_say(&rd, S2S_LOG_INFO, "read %zu files from %s: %ld conversations, %ld pairs; %ld skipped", n, path,
                     rd.convs, rd.pairs, rd.skipped);
    return rd.pairs ? S2S_OK : s2s_dialogue_nothing_read(&rd, "no conversation gave a pair");
}
