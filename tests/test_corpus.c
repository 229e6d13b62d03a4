/* test_corpus.c - the corpus reader (lib/data/corpus.c) quirk by quirk, SHA-256 (lib/data/sha256.c)
 * against the FIPS 180-2 example vectors, and the real corpora in ../shared/data where present.
 *
 * Each test writes its inputs into its own mkdtemp directory (removed by the suite's .fini).
 * The real-data tests read ../shared/data (else data/, as scripts/fetch-data.sh fills it) and skip
 * with a reason where neither has the corpus; CI has it.
 * Their pinned SHA-256 values were computed independently (a Python reimplementation of the
 * documented normalisation) from the files listed in ../shared/data/README.md.
 * Run: ./build/tests/test_suite --filter 'corpus/[a-z]*' */
#include "sha256.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "seq2seq.h"

#include "scratch.h"

TestSuite(corpus, .init = scratch_setup, .fini = scratch_teardown);


static s2s_corpus *tsv(const char *path, const s2s_corpus_options *o)
{
    s2s_corpus *c = NULL;
    cr_assert_eq(s2s_corpus_read_tsv(path, o, &c), S2S_OK, "%s", s2s_last_error());
    return c;
}

static s2s_corpus *aligned(const char *a, const char *b, const s2s_corpus_options *o)
{
    s2s_corpus *c = NULL;
    cr_assert_eq(s2s_corpus_read_aligned(a, b, o, &c), S2S_OK, "%s", s2s_last_error());
    return c;
}

static void expect_error(s2s_status got, s2s_status want, const char *needle)
{
    cr_assert_eq(got, want, "status %s, want %s: %s", s2s_status_string(got), s2s_status_string(want),
                 s2s_last_error());
    cr_assert(strstr(s2s_last_error(), needle), "'%s' not in: %s", needle, s2s_last_error());
    cr_assert(strstr(s2s_last_error(), "corpus.c:") || strstr(s2s_last_error(), "files.c:"), /* opening: files.c */
              "no file:line in: %s", s2s_last_error());
}

/* ---- tolerated quirks: BOM, CRLF --------------------------------------------------------- */

Test(corpus, options_default)
{
    s2s_corpus_options o = s2s_corpus_options_default();
    cr_assert_eq(o.max_line_bytes, 4096);
    cr_assert_eq(o.normalize_spaces, 1);
    cr_assert_eq(o.tsv_src_column, 0);
    cr_assert_eq(o.tsv_tgt_column, 1);
    cr_assert_null(o.log);
}

Test(corpus, bom_is_stripped_and_counted)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = tsv(put("bom.tsv", "\xEF\xBB\xBFGo.\tVa !\nHi.\tSalut !\n", -1), &o);
    cr_assert_eq(s2s_corpus_size(c), 2);
    expect_pair(c, 0, "Go.", "Va !");
    cr_assert_eq(s2s_corpus_get_stats(c).bom, 1);
    s2s_corpus_free(c);

    c = aligned(put("a.en", "\xEF\xBB\xBFone\ntwo\n", -1), put("a.de", "\xEF\xBB\xBF" "eins\nzwei\n", -1), &o);
    expect_pair(c, 0, "one", "eins");
    cr_assert_eq(s2s_corpus_get_stats(c).bom, 2, "one per file");
    s2s_corpus_free(c);

    o.normalize_spaces = 0; /* a BOM that is not at the start of the file is text, not a BOM */
    c = tsv(put("mid.tsv", "a\tb\n\xEF\xBB\xBFx\ty\n", -1), &o);
    expect_pair(c, 1, "\xEF\xBB\xBFx", "y");
    cr_assert_eq(s2s_corpus_get_stats(c).bom, 0);
    s2s_corpus_free(c);
}

Test(corpus, crlf_is_stripped_and_counted)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    o.normalize_spaces = 0; /* the CR must go even without normalisation */
    s2s_corpus *c = tsv(put("crlf.tsv", "a\tb\r\nc\td\r\ne\tf\ng\th\r", -1), &o);
    cr_assert_eq(s2s_corpus_size(c), 4);
    expect_pair(c, 0, "a", "b");
    expect_pair(c, 1, "c", "d");
    expect_pair(c, 3, "g", "h");
    cr_assert_eq(s2s_corpus_get_stats(c).crlf, 3, "two CR LF lines and a last line ending in CR");
    s2s_corpus_free(c);

    c = aligned(put("c.en", "one\r\ntwo\r\n", -1), put("c.de", "eins\nzwei\r\n", -1), &o);
    expect_pair(c, 0, "one", "eins");
    expect_pair(c, 1, "two", "zwei");
    cr_assert_eq(s2s_corpus_get_stats(c).crlf, 3, "counted per physical line");
    s2s_corpus_free(c);
}

/* ---- skipped lines ------------------------------------------------------------------------ */

Test(corpus, invalid_utf8_of_every_kind_is_skipped)
{
    static const char *bad[] = {
        "stray \x80 continuation",   "overlong \xC0\xAF slash",   "overlong \xE0\x80\xAF three",
        "overlong \xF0\x80\x80\xAF", "surrogate \xED\xA0\x80",    "above max \xF4\x90\x80\x80",
        "byte \xF5\x80\x80\x80",     "byte \xFF",                 "truncated at end \xE2\x82",
        "truncated \xE2\x82 mid",    "latin-1 caf\xE9",           "four cut \xF0\x9F\x98",
    };
    const char *good = "ok \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \xED\x9F\xBF \xEE\x80\x80 \xC2\x80";
    char text[2048] = "";
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s\tx\ny\t%s\n", bad[i], bad[i]);
    snprintf(text + strlen(text), sizeof text - strlen(text), "%s\t%s\n", good, good);
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = tsv(put("bad.tsv", text, -1), &o);
    s2s_corpus_stats s = s2s_corpus_get_stats(c);
    cr_assert_eq(s.invalid_utf8, 24, "got %ld", s.invalid_utf8);
    cr_assert_eq(s.kept, 1);
    expect_pair(c, 0, good, good);
    cr_assert(strstr(lc.text, "bad.tsv:1: invalid UTF-8 at byte 7 (0x80: unexpected continuation byte); skipped"),
              "%s", lc.text);
    cr_assert(strstr(lc.text, "bad.tsv:3: invalid UTF-8 at byte 10 (0xC0: overlong encoding)"), "%s", lc.text);
    cr_assert(strstr(lc.text, "bad.tsv:9: invalid UTF-8 at byte 11 (0xED: UTF-16 surrogate)"), "%s", lc.text);
    cr_assert(strstr(lc.text, "bad.tsv:11: invalid UTF-8 at byte 11 (0xF4: code point above U+10FFFF)"), "%s",
              lc.text);
    cr_assert(strstr(lc.text, "bad.tsv:19: invalid UTF-8 at byte 11 (0xE2: truncated sequence)"), "%s", lc.text);
    s2s_corpus_free(c);
}

Test(corpus, nul_byte_is_invalid)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = aligned(put("n.en", "one\ntw\0o\nthree\n", 15), put("n.de", "eins\nzwei\ndrei\n", -1), &o);
    cr_assert_eq(s2s_corpus_size(c), 2);
    expect_pair(c, 1, "three", "drei");
    cr_assert_eq(s2s_corpus_get_stats(c).invalid_utf8, 1);
    cr_assert(strstr(lc.text, "n.en:2: invalid UTF-8 at byte 3 (0x00: NUL byte); skipped"), "%s", lc.text);
    s2s_corpus_free(c);
}

/* A 10 MB line is skipped whole (not split into pieces that would shift later lines). */
Test(corpus, ten_megabyte_line_is_skipped_and_counted)
{
    size_t big = 10u << 20;
    char *text = malloc(big + 64);
    strcpy(text, "first\tpremier\n");
    size_t n = strlen(text);
    memset(text + n, 'x', big);
    n += big;
    n += (size_t)sprintf(text + n, "\tlong\nthird\ttroisi\xC3\xA8me\n\xFF\tbad\n");
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    const char *p = put("big.tsv", text, (long)n);
    s2s_corpus *c = tsv(p, &o);
    s2s_corpus_stats s = s2s_corpus_get_stats(c);
    cr_assert_eq(s.lines, 4);
    cr_assert_eq(s.too_long, 1);
    cr_assert_eq(s.invalid_utf8, 1);
    expect_pair(c, 0, "first", "premier");
    expect_pair(c, 1, "third", "troisi\xC3\xA8me");
    cr_assert(strstr(lc.text, "big.tsv:2: line of 10485765 bytes is longer than max_line_bytes = 4096; skipped"),
              "%s", lc.text);
    cr_assert(strstr(lc.text, "big.tsv:4: invalid UTF-8"), "line numbers after the long line: %s", lc.text);
    s2s_corpus_free(c);

    o.max_line_bytes = SIZE_MAX; /* no limit: the line is kept, whole */
    c = tsv(p, &o);
    cr_assert_eq(s2s_corpus_size(c), 3);
    const char *src = NULL;
    s2s_corpus_get(c, 1, &src, NULL);
    cr_assert_eq(strlen(src), big);
    s2s_corpus_free(c);
    free(text);
}

Test(corpus, long_line_on_one_side_of_aligned_files)
{
    char en[6000] = "short\n";
    memset(en + 6, 'y', 5000);
    strcpy(en + 5006, "\r\nlast\n");
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    o.max_line_bytes = 5000; /* exactly 5000 bytes (CR not counted) is allowed */
    s2s_corpus *c = aligned(put("l.en", en, -1), put("l.de", "kurz\nlang\nletzte\n", -1), &o);
    cr_assert_eq(s2s_corpus_size(c), 3);
    o.max_line_bytes = 4999;
    s2s_corpus_free(c);
    c = aligned(put("l.en", en, -1), put("l.de", "kurz\nlang\nletzte\n", -1), &o);
    cr_assert_eq(s2s_corpus_size(c), 2);
    expect_pair(c, 1, "last", "letzte");
    cr_assert(strstr(lc.text, "l.en:2: line of 5000 bytes is longer than max_line_bytes = 4999"), "%s", lc.text);
    s2s_corpus_free(c);
}

Test(corpus, empty_side_is_skipped)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = aligned(put("e.en", "one\n\nthree\nfour\n", -1),
                            put("e.de", "eins\nzwei\n \xC2\xA0\t\xE2\x80\x8B\ndrei\n", -1), &o);
    cr_assert_eq(s2s_corpus_size(c), 2);
    expect_pair(c, 1, "four", "drei");
    cr_assert_eq(s2s_corpus_get_stats(c).empty, 2);
    cr_assert(strstr(lc.text, "e.en:2: source side empty after normalising spaces; skipped"), "%s", lc.text);
    cr_assert(strstr(lc.text, "e.de:3: target side empty after normalising spaces; skipped"), "%s", lc.text);
    s2s_corpus_free(c);

    c = tsv(put("e.tsv", "a\tb\n\n\tx\ny\t \n", -1), &o);
    cr_assert_eq(s2s_corpus_size(c), 1);
    cr_assert_eq(s2s_corpus_get_stats(c).empty, 3, "an empty line, an empty source, a blank target");
    s2s_corpus_free(c);
}

/* Regression: an empty first line once left the line buffer unallocated (a crash). */
Test(corpus, empty_first_line_is_skipped_not_a_crash)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = aligned(put("f.en", "\nb\n", -1), put("f.de", "x\ny\n", -1), &o);
    cr_assert_eq(s2s_corpus_size(c), 1);
    expect_pair(c, 0, "b", "y");
    cr_assert_eq(s2s_corpus_get_stats(c).empty, 1);
    s2s_corpus_free(c);
    c = tsv(put("f.tsv", "\na\tb\n", -1), &o);
    cr_assert_eq(s2s_corpus_size(c), 1);
    s2s_corpus_free(c);
}

Test(corpus, tsv_line_without_tab_is_skipped)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = tsv(put("m.tsv", "Go.\tVa !\nno tab here\nRun!\tCours !\n", -1), &o);
    cr_assert_eq(s2s_corpus_size(c), 2);
    expect_pair(c, 1, "Run!", "Cours !");
    cr_assert_eq(s2s_corpus_get_stats(c).bad_columns, 1);
    cr_assert(strstr(lc.text, "m.tsv:2: 1 TAB-separated column, need 2 (source column 0, target column 1); skipped"),
              "%s", lc.text);
    s2s_corpus_free(c);
}

Test(corpus, tsv_extra_columns_and_chosen_columns)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    const char *p = put("x.tsv", "Go.\tVa !\tCC-BY 2.0 (France) #1\nshort\tline\n", -1);
    s2s_corpus *c = tsv(p, &o);
    cr_assert_eq(s2s_corpus_size(c), 2, "extra columns are ignored");
    expect_pair(c, 0, "Go.", "Va !");
    s2s_corpus_free(c);

    o.tsv_src_column = 2;
    o.tsv_tgt_column = 0;
    c = tsv(p, &o);
    cr_assert_eq(s2s_corpus_size(c), 1);
    expect_pair(c, 0, "CC-BY 2.0 (France) #1", "Go.");
    cr_assert(strstr(lc.text, "x.tsv:2: 2 TAB-separated columns, need 3 (source column 2, target column 0)"), "%s",
              lc.text);
    s2s_corpus_free(c);

    o.tsv_src_column = o.tsv_tgt_column = 1; /* the same column on both sides: a copy task */
    c = tsv(p, &o);
    expect_pair(c, 0, "Va !", "Va !");
    s2s_corpus_free(c);

    o.tsv_src_column = -1;
    c = NULL;
    expect_error(s2s_corpus_read_tsv(p, &o, &c), S2S_ERR_INVALID_ARG, "0-based");
    cr_assert_null(c);
}

/* Multi30k's train.de line 7366 has a TAB inside the sentence: in aligned files it is text. */
Test(corpus, tab_inside_aligned_side_becomes_space)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    const char *en = put("t.en", "Two people play in a fountain.\n", -1);
    const char *de = put("t.de", "Zwei spielen in einer \tWasserfont\xC3\xA4ne.\n", -1);
    s2s_corpus *c = aligned(en, de, &o);
    expect_pair(c, 0, "Two people play in a fountain.", "Zwei spielen in einer Wasserfont\xC3\xA4ne.");
    s2s_corpus_free(c);
    o.normalize_spaces = 0;
    c = aligned(en, de, &o);
    expect_pair(c, 0, "Two people play in a fountain.", "Zwei spielen in einer \tWasserfont\xC3\xA4ne.");
    s2s_corpus_free(c);
}

/* ---- normalisation ------------------------------------------------------------------------ */

static const struct { const char *utf8, *name; } spaces[] = {
    {"\xC2\xA0", "U+00A0 no-break space"},     {"\xE2\x80\xAF", "U+202F narrow no-break space"},
    {"\xE2\x80\x89", "U+2009 thin space"},     {"\xE3\x80\x80", "U+3000 ideographic space"},
    {"\xE2\x80\x80", "U+2000 en quad"},        {"\xE2\x80\x83", "U+2003 em space"},
    {"\xE2\x80\x8A", "U+200A hair space"},     {"\xE1\x9A\x80", "U+1680 ogham space mark"},
    {"\xE2\x81\x9F", "U+205F math space"},     {"\xE2\x80\xA8", "U+2028 line separator"},
    {"\xE2\x80\xA9", "U+2029 paragraph sep."}, {"\xC2\x85", "U+0085 next line"},
    {"\t", "TAB"},                             {"\v", "VT"},
    {"\f", "FF"},                              {"\r", "CR inside a line"},
};

/* Aligned files, so that TAB is inside a side rather than a column separator. */
Test(corpus, each_space_separator_becomes_one_space)
{
    char src[256] = "", tgt[4096] = "";
    size_t n = sizeof spaces / sizeof *spaces;
    for (size_t i = 0; i < n; i++) { /* "<sp>a<sp>b<sp><sp> <sp>c<sp>" -> "a b c" */
        snprintf(src + strlen(src), sizeof src - strlen(src), "%zu\n", i);
        snprintf(tgt + strlen(tgt), sizeof tgt - strlen(tgt), "%sa%sb%s%s %sc%s\n", spaces[i].utf8, spaces[i].utf8,
                 spaces[i].utf8, spaces[i].utf8, spaces[i].utf8, spaces[i].utf8);
    }
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = aligned(put("sp.src", src, -1), put("sp.tgt", tgt, -1), &o);
    cr_assert_eq(s2s_corpus_size(c), n);
    for (size_t i = 0; i < n; i++) {
        const char *t = NULL;
        s2s_corpus_get(c, i, NULL, &t);
        cr_assert_str_eq(t, "a b c", "%s", spaces[i].name);
    }
    s2s_corpus_free(c);
}

Test(corpus, zero_width_space_and_inner_bom_are_removed)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = tsv(put("zw.tsv", "sur \xE2\x80\x8B\xE2\x80\x8Bla musique\tx\xEF\xBB\xBFy \xE2\x80\x8B z\n", -1),
                        &o);
    expect_pair(c, 0, "sur la musique", "xy z");
    s2s_corpus_free(c);
}

Test(corpus, nothing_else_is_changed)
{
    /* case, both apostrophes, guillemets, soft hyphen, ZWJ, Cyrillic homoglyph, DEL, NFD accents */
    const char *keep = "\xD0\xA1\xE2\x80\x99" "est l'\xC3\xA9t\xC3\xA9 \xC2\xAB OK \xC2\xBB sink\xC2\xAD. "
                       "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB \x7F e\xCC\x81 MiXeD";
    char line[512];
    snprintf(line, sizeof line, "%s\t%s\n", keep, keep);
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = tsv(put("keep.tsv", line, -1), &o);
    expect_pair(c, 0, keep, keep);
    s2s_corpus_free(c);

    o.normalize_spaces = 0;
    c = tsv(put("raw.tsv", "  a\xC2\xA0\xC2\xA0 b \xE2\x80\x8B\t c  \n", -1), &o);
    expect_pair(c, 0, "  a\xC2\xA0\xC2\xA0 b \xE2\x80\x8B", " c  ");
    s2s_corpus_free(c);
}

/* ---- errors -------------------------------------------------------------------------------- */

Test(corpus, mismatched_line_counts)
{
    const char *en = put("m.en", "a\nb\nc\n", -1), *de = put("m.de", "1\n2\n3\n4\n5\n", -1);
    s2s_corpus *c = (s2s_corpus *)(uintptr_t)1; /* must come back NULL */
    expect_error(s2s_corpus_read_aligned(en, de, NULL, &c), S2S_ERR_FORMAT, "has 5 lines");
    cr_assert_null(c);
    const char *msg = s2s_last_error();
    cr_assert(strstr(msg, en) && strstr(msg, de), "%s", msg);
    cr_assert(strstr(msg, "has 3 lines"), "%s", msg);
    cr_assert(strstr(msg, "m.en' ends after line 3"), "%s", msg);
    expect_error(s2s_corpus_read_aligned(de, en, NULL, &c), S2S_ERR_FORMAT, "m.en' ends after line 3");
}

static void write_gzip(const char *path, const char *text)
{
    gzFile g = gzopen(path, "wb9");
    cr_assert_not_null(g);
    cr_assert_eq(gzwrite(g, text, (unsigned)strlen(text)), (int)strlen(text));
    gzclose(g);
}

static const char *const sample_tsv = "\xEF\xBB\xBFGo.\tVa !\r\nRun!\tCours\xE2\x80\xAF!\r\n\xC3\t?\nbad line\n"
                                      "Who?\tQui ?\n";

Test(corpus, gzip_input_equals_plain_input)
{
    char gz[200], h1[65], h2[65];
    snprintf(gz, sizeof gz, "%s/s.tsv.gz", dir);
    write_gzip(gz, sample_tsv);
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *a = tsv(put("s.tsv", sample_tsv, -1), &o), *b = tsv(gz, &o);
    cr_assert_eq(s2s_corpus_size(a), 3);
    cr_assert_eq(s2s_corpus_size(b), 3);
    cr_assert_eq(s2s_corpus_sha256(a, h1), S2S_OK);
    cr_assert_eq(s2s_corpus_sha256(b, h2), S2S_OK);
    cr_assert_str_eq(h1, h2);
    s2s_corpus_stats sa = s2s_corpus_get_stats(a), sb = s2s_corpus_get_stats(b);
    cr_assert(sa.bom == 1 && sb.bom == 1 && sa.crlf == 2 && sb.crlf == 2);
    cr_assert(sa.invalid_utf8 == 1 && sb.invalid_utf8 == 1 && sa.bad_columns == 1 && sb.bad_columns == 1);
    s2s_corpus_free(a);
    s2s_corpus_free(b);
}

static size_t gzip_bytes(const char *text, char *out, size_t cap)
{
    char p[200];
    snprintf(p, sizeof p, "%s/tmp.gz", dir);
    write_gzip(p, text);
    FILE *f = fopen(p, "rb");
    size_t n = fread(out, 1, cap, f);
    fclose(f);
    remove(p);
    return n;
}

Test(corpus, corrupt_gzip_is_a_format_error)
{
    char text[8192] = "", gz[8192];
    for (int i = 0; i < 200; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "sentence %d\tSatz %d\n", i, i * 7919 % 1000);
    size_t n = gzip_bytes(text, gz, sizeof gz);
    s2s_corpus *c = NULL;
    const char *cut = put("cut.tsv.gz", gz, (long)(n / 2)); /* truncated */
    expect_error(s2s_corpus_read_tsv(cut, NULL, &c), S2S_ERR_FORMAT, "corrupt gzip stream in");
    cr_assert(strstr(s2s_last_error(), cut), "%s", s2s_last_error());
    cr_assert_null(c);
    for (size_t i = 20; i < n - 8; i += 7) /* damaged in the middle */
        gz[i] ^= 0x5A;
    expect_error(s2s_corpus_read_tsv(put("bad.tsv.gz", gz, (long)n), NULL, &c), S2S_ERR_FORMAT, "zlib:");
    gz[3] = 0; /* only the magic */
    gz[2] = 99;
    expect_error(s2s_corpus_read_tsv(put("hdr.tsv.gz", gz, 40), NULL, &c), S2S_ERR_FORMAT, "gzip -t");
}

Test(corpus, empty_file_and_all_skipped_are_errors)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = NULL;
    const char *p = put("empty.tsv", "", 0);
    expect_error(s2s_corpus_read_tsv(p, &o, &c), S2S_ERR_FORMAT, "no usable pairs in");
    cr_assert(strstr(s2s_last_error(), p), "%s", s2s_last_error());
    cr_assert_null(c);
    expect_error(s2s_corpus_read_aligned(p, p, &o, &c), S2S_ERR_FORMAT, "the input is empty");
    expect_error(s2s_corpus_read_tsv(put("skip.tsv", "a\nb\n\n", -1), &o, &c), S2S_ERR_FORMAT,
                 "all 3 lines were skipped");
    char gz[200];
    snprintf(gz, sizeof gz, "%s/empty.gz", dir);
    write_gzip(gz, "");
    expect_error(s2s_corpus_read_tsv(gz, &o, &c), S2S_ERR_FORMAT, "no usable pairs");
}

Test(corpus, directory_and_missing_file_are_io_errors)
{
    s2s_corpus *c = NULL;
    expect_error(s2s_corpus_read_tsv(dir, NULL, &c), S2S_ERR_IO, dir);
    cr_assert(strstr(s2s_last_error(), "is a directory"), "%s", s2s_last_error());
    const char *ok = put("ok.en", "x\n", -1);
    expect_error(s2s_corpus_read_aligned(ok, dir, NULL, &c), S2S_ERR_IO, "is a directory");
    char missing[200];
    snprintf(missing, sizeof missing, "%s/no/such.tsv", dir);
    expect_error(s2s_corpus_read_tsv(missing, NULL, &c), S2S_ERR_IO, missing);
    cr_assert(strstr(s2s_last_error(), strerror(ENOENT)), "%s", s2s_last_error());
    expect_error(s2s_corpus_read_aligned(ok, missing, NULL, &c), S2S_ERR_IO, missing);
    cr_assert_null(c);
    expect_error(s2s_corpus_read_tsv(NULL, NULL, &c), S2S_ERR_INVALID_ARG, "path is NULL");
    s2s_corpus_options o = s2s_corpus_options_default();
    o.max_line_bytes = 0;
    expect_error(s2s_corpus_read_tsv(ok, &o, &c), S2S_ERR_INVALID_ARG, "SIZE_MAX");
}

/* ---- s2s_corpus_add, stats, the log ------------------------------------------------------- */

Test(corpus, add_checks_its_input)
{
    s2s_corpus *c = NULL;
    cr_assert_eq(s2s_corpus_create(&c), S2S_OK);
    cr_assert_eq(s2s_corpus_size(c), 0);
    cr_assert_eq(s2s_corpus_add(c, "How are you?", "Fine,\nthanks."), S2S_OK, "newlines are allowed (YAML blocks)");
    expect_error(s2s_corpus_add(c, "caf\xE9", "x"), S2S_ERR_INVALID_ARG, "source side of pair 1 is not valid UTF-8");
    expect_error(s2s_corpus_add(c, "x", "\xED\xA0\x80"), S2S_ERR_INVALID_ARG, "surrogate");
    expect_error(s2s_corpus_add(c, "", "x"), S2S_ERR_INVALID_ARG, "source side of pair 1 is empty");
    expect_error(s2s_corpus_add(c, "x", ""), S2S_ERR_INVALID_ARG, "target side of pair 1 is empty");
    expect_error(s2s_corpus_add(c, NULL, "x"), S2S_ERR_INVALID_ARG, "src is NULL");
    expect_error(s2s_corpus_add(NULL, "x", "y"), S2S_ERR_INVALID_ARG, "corpus is NULL");
    cr_assert_eq(s2s_corpus_size(c), 1);
    expect_pair(c, 0, "How are you?", "Fine,\nthanks.");
    expect_error(s2s_corpus_get(c, 1, NULL, NULL), S2S_ERR_INVALID_ARG, "out of range");
    s2s_corpus_stats s = s2s_corpus_get_stats(c);
    cr_assert(s.lines == 1 && s.kept == 1 && s.empty == 0 && s.invalid_utf8 == 0);
    s2s_corpus_free(c);
    s2s_corpus_free(NULL);
    cr_assert_eq(s2s_corpus_size(NULL), 0);
    cr_assert_eq(s2s_corpus_get_stats(NULL).kept, 0);
    expect_error(s2s_corpus_create(NULL), S2S_ERR_INVALID_ARG, "out is NULL");
}

Test(corpus, stats_and_summary_log_line)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = tsv(put("sum.tsv", sample_tsv, -1), &o);
    s2s_corpus_stats s = s2s_corpus_get_stats(c);
    cr_assert(s.lines == 5 && s.kept == 3 && s.empty == 0 && s.invalid_utf8 == 1 && s.too_long == 0 &&
              s.bad_columns == 1 && s.crlf == 2 && s.bom == 1);
    cr_assert_eq(lc.n[S2S_LOG_WARN], 2);
    cr_assert_eq(lc.n[S2S_LOG_INFO], 1);
    char want[512];
    snprintf(want, sizeof want, "read 5 pairs from '%s/sum.tsv': kept 3; skipped: 0 empty, 1 invalid UTF-8, 0 too "
             "long, 1 bad columns; tolerated: 2 CRLF lines, 1 BOM", dir);
    cr_assert_str_eq(lc.last, want);
    expect_pair(c, 1, "Run!", "Cours !");
    s2s_corpus_free(c);
}

Test(corpus, warnings_are_capped_per_kind)
{
    char text[4096] = "";
    for (int i = 0; i < 25; i++)
        strcat(text, "no tab\n\xFF\tx\n");
    strcat(text, "a\tb\n");
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = tsv(put("many.tsv", text, -1), &o);
    cr_assert_eq(s2s_corpus_get_stats(c).bad_columns, 25);
    cr_assert_eq(s2s_corpus_get_stats(c).invalid_utf8, 25);
    cr_assert_eq(lc.n[S2S_LOG_WARN], 2 * 20 + 2, "%s", lc.text);
    cr_assert(strstr(lc.text, "many.tsv:39: 1 TAB-separated column"), "the 20th is shown: %s", lc.text);
    cr_assert_null(strstr(lc.text, "many.tsv:41:"), "the 21st is not: %s", lc.text);
    cr_assert(strstr(lc.text, "... and 5 more bad-column lines skipped in"), "%s", lc.text);
    cr_assert(strstr(lc.text, "... and 5 more invalid UTF-8 lines skipped in"), "%s", lc.text);
    cr_assert_eq(lc.n[S2S_LOG_INFO], 1);
    s2s_corpus_free(c);
}

/* ---- SHA-256 ------------------------------------------------------------------------------- */

static void hex_of(const void *data, size_t n, size_t step, char hex[65])
{
    s2s_sha256 s;
    uint8_t d[32];
    s2s_sha256_init(&s);
    for (size_t i = 0; i < n; i += step)
        s2s_sha256_update(&s, (const char *)data + i, n - i < step ? n - i : step);
    s2s_sha256_final(&s, d);
    s2s_sha256_hex(d, hex);
}

Test(corpus, sha256_standard_vectors)
{
    static const struct { const char *msg, *hex; } v[] = { /* FIPS 180-2 appendix B, and "" */
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char hex[65];
    for (size_t i = 0; i < 3; i++)
        for (size_t step = 1; step <= 64; step += 21) {
            hex_of(v[i].msg, strlen(v[i].msg), step, hex);
            cr_assert_str_eq(hex, v[i].hex, "'%s' in pieces of %zu", v[i].msg, step);
        }
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    hex_of(a, 1000000, 4099, hex);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "a million 'a'");
    static const struct { size_t n; const char *hex; } pad[] = { /* 'a' * n around the padding edges */
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
    };
    for (size_t i = 0; i < sizeof pad / sizeof *pad; i++)
        for (size_t step = 1; step <= 64; step += 9) {
            hex_of(a, pad[i].n, step, hex);
            cr_assert_str_eq(hex, pad[i].hex, "%zu x 'a' in pieces of %zu", pad[i].n, step);
        }
    free(a);
}

Test(corpus, corpus_sha256_is_over_the_kept_pairs)
{
    const char *text = "src one\ttgt one\n\xFF\tskipped\nsrc\xC2\xA0two\ttgt two \n";
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *a = tsv(put("h.tsv", text, -1), &o), *b = tsv(put("h2.tsv", text, -1), &o), *d = NULL;
    char ha[65], hb[65], hd[65], want[65];
    cr_assert_eq(s2s_corpus_sha256(a, ha), S2S_OK);
    cr_assert_eq(s2s_corpus_sha256(b, hb), S2S_OK);
    cr_assert_str_eq(ha, hb, "deterministic");
    const char *kept = "src one\ttgt one\nsrc two\ttgt two\n";
    hex_of(kept, strlen(kept), 64, want);
    cr_assert_str_eq(ha, want);
    cr_assert_eq(s2s_corpus_create(&d), S2S_OK);
    s2s_corpus_add(d, "src two", "tgt two");
    s2s_corpus_add(d, "src one", "tgt one");
    s2s_corpus_sha256(d, hd);
    cr_assert_str_neq(ha, hd, "the order matters");
    expect_error(s2s_corpus_sha256(NULL, hd), S2S_ERR_INVALID_ARG, "corpus is NULL");
    s2s_corpus_free(a);
    s2s_corpus_free(b);
    s2s_corpus_free(d);
}

/* ---- the real corpora (../shared/data; see its README.md) ------------------------------- */

/* The shared folder beside the checkout, else what scripts/fetch-data.sh put into data/; skips
 * the test with the reason when neither has the file. Returns the path (valid until the next call). */
static const char *data(const char *rel)
{
    static char path[2][256];
    static int k;
    const char *dirs[] = {"../shared/data/", "data/"};
    char *p = path[k++ % 2];
    for (int i = 0; i < 2; i++) {
        snprintf(p, 256, "%s%s", dirs[i], rel);
        FILE *f = fopen(p, "rb");
        if (f) {
            fclose(f);
            return p;
        }
    }
    cr_skip_test("../shared/data/%s not found (%s), nor data/%s: run from the repo root with ../shared/data "
                 "beside it, or run scripts/fetch-data.sh first", rel, strerror(errno), rel);
    return NULL;
}

static void expect_clean(const s2s_corpus *c, long lines)
{
    s2s_corpus_stats s = s2s_corpus_get_stats(c);
    cr_assert_eq(s.lines, lines);
    cr_assert_eq(s.kept, lines, "every line kept");
    cr_assert(s.empty == 0 && s.invalid_utf8 == 0 && s.too_long == 0 && s.bad_columns == 0);
    cr_assert(s.crlf == 0 && s.bom == 0, "the README: no CRLF, no BOM");
}

static void expect_hash(const s2s_corpus *c, const char *want)
{
    char hex[65];
    cr_assert_eq(s2s_corpus_sha256(c, hex), S2S_OK);
    cr_assert_str_eq(hex, want);
}

/* Multi30k: all 29000 train pairs are kept, including the two "@@" placeholder lines of train.de
 * (16510, 16664): the reader does not judge content; filtering them is the data pipeline's call. */
Test(corpus, multi30k_train)
{
    logcap lc;
    s2s_corpus_options o = opts_with(&lc);
    s2s_corpus *c = aligned(data("multi30k/train.en"), data("multi30k/train.de"), &o);
    expect_clean(c, 29000);
    expect_pair(c, 16509, "Front stroke swimming race roped off lap areas.", "@@");
    expect_pair(c, 16663, "Young girls weave corn stalks into elaborate designs.", "@@");
    const char *t = NULL;
    s2s_corpus_get(c, 7365, NULL, &t);
    cr_assert(strstr(t, "in einer Wasserfont\xC3\xA4ne.\""), "the TAB of line 7366: %s", t);
    s2s_corpus_get(c, 5168, NULL, &t);
    cr_assert(strstr(t, "Nummer 28."), "the NBSP of line 5169: %s", t);
    expect_hash(c, "2b93efb2a2575aee81ddef98979f2f0cb7a4a4f3eac09ac0bd94e73fa95aa942");
    cr_assert_eq(lc.n[S2S_LOG_WARN], 0, "%s", lc.text);
    s2s_corpus_free(c);
}

Test(corpus, multi30k_val_and_test)
{
    s2s_corpus *c = aligned(data("multi30k/val.en"), data("multi30k/val.de"), NULL);
    expect_clean(c, 1014);
    expect_hash(c, "994de411af5f2b249143f3a44eae97d018a95d4f79e0e64813884f1630c2d535");
    s2s_corpus_free(c);
    c = aligned(data("multi30k/test.en"), data("multi30k/test.de"), NULL);
    expect_clean(c, 1000);
    expect_hash(c, "5a087b0b6254fc8da010153b56c4450c369a2709abed12cce8b9ef6db260db35");
    s2s_corpus_free(c);
}

Test(corpus, tatoeba_eng_fra)
{
    s2s_corpus *c = tsv(data("tatoeba-eng-fra/eng-fra.tsv"), NULL);
    expect_clean(c, 135842);
    expect_pair(c, 0, "Go.", "Va !");
    expect_pair(c, 1, "Run!", "Cours !");                                          /* U+202F */
    expect_pair(c, 81504, "They were dancing to the music.", "Ils dansaient sur la musique."); /* 2x U+200B */
    const char *s = NULL, *t = NULL;
    s2s_corpus_get(c, 112331, NULL, &t);
    cr_assert(strstr(t, "cette langue ?"), "U+3000 U+202F -> one space: %s", t);
    s2s_corpus_get(c, 45095, NULL, &t);
    cr_assert(!strncmp(t, "\xD0\xA1\xE2\x80\x99" "est", 7), "the Cyrillic homoglyph is kept: %s", t);
    s2s_corpus_get(c, 103471, &s, NULL);
    cr_assert(strstr(s, "sink\xC2\xAD."), "the soft hyphen is kept: %s", s);
    expect_hash(c, "222f82b4749e549fa2668837e48982080d513c99e600cd753a840f9fcbc9f18a");
    s2s_corpus_free(c);
}
