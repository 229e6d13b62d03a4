/* fuzz_corpus.c - libFuzzer target for the parallel-corpus readers: s2s_corpus_read_tsv and
 * s2s_corpus_read_aligned (plain or gzip, any bytes).
 *
 * Input: byte 0 picks the options (normalize_spaces, the TSV columns, max_line_bytes); the rest
 * is read as one TSV file, and, split at its first 0xFF byte (never in UTF-8; the middle when
 * there is none), as the two files of an aligned corpus.
 * Checked on every input besides memory safety: each kept pair is two non-empty valid UTF-8
 * strings; every line read is either kept or counted under exactly one skip reason.
 *
 *   make fuzz SECONDS=60        (all targets; scripts/fuzz.sh runs them)
 *   build-fuzz/fuzz_corpus -max_len=4096 tests/fuzz/seeds/corpus */
#include "fuzz_util.h"

static const size_t max_line_choice[8] = {4096, 1, 3, 8, 64, 200, 4096, SIZE_MAX};

static void check_corpus(const s2s_corpus *c, const char *what)
{
    s2s_corpus_stats s = s2s_corpus_get_stats(c);
    size_t n = s2s_corpus_size(c);
    FZ_CHECK(s.kept == (long)n, "%s: kept %ld, size %zu", what, s.kept, n);
    FZ_CHECK(s.lines == s.kept + s.empty + s.invalid_utf8 + s.too_long + s.bad_columns,
             "%s: %ld lines != %ld kept + %ld empty + %ld utf8 + %ld long + %ld columns", what, s.lines, s.kept,
             s.empty, s.invalid_utf8, s.too_long, s.bad_columns);
    for (size_t i = 0; i < n; i++) {
        const char *src = NULL, *tgt = NULL;
        FZ_CHECK(s2s_corpus_get(c, i, &src, &tgt) == S2S_OK, "%s: get %zu", what, i);
        FZ_CHECK(*src && *tgt, "%s: pair %zu has an empty side", what, i);
        /* s2s_corpus_add accepts only non-empty valid UTF-8: a kept pair must pass it. */
        s2s_corpus *copy = NULL;
        FZ_CHECK(s2s_corpus_create(&copy) == S2S_OK, "create");
        FZ_CHECK(s2s_corpus_add(copy, src, tgt) == S2S_OK, "%s: pair %zu refused by s2s_corpus_add: %s", what, i,
                 s2s_last_error());
        s2s_corpus_free(copy);
    }
    char hex[65];
    FZ_CHECK(s2s_corpus_sha256(c, hex) == S2S_OK && strlen(hex) == 64, "sha256");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t logged = 0;
    s2s_corpus_options o = s2s_corpus_options_default();
    o.normalize_spaces = data[0] & 1;
    o.tsv_src_column = (data[0] >> 1) & 1 ? 1 : 0; /* mostly 0/1; sometimes the same column */
    o.tsv_tgt_column = (data[0] >> 2) & 1 ? 0 : 1;
    o.max_line_bytes = max_line_choice[data[0] >> 5];
    o.log = fz_log, o.log_user = &logged;
    if ((data[0] & 0x18) == 0x18)
        o.tsv_tgt_column = 2;
    data++, size--;

    char p0[300], p1[300], p2[300];
    s2s_corpus *c = NULL;
    s2s_status st = s2s_corpus_read_tsv(fz_write(p0, sizeof p0, "all.tsv", data, size), &o, &c);
    FZ_CHECK((st == S2S_OK) == (c != NULL), "tsv: status %d with corpus %p", (int)st, (void *)c);
    if (c)
        check_corpus(c, "tsv");
    s2s_corpus_free(c);

    const uint8_t *cut = memchr(data, 0xFF, size);
    size_t at = cut ? (size_t)(cut - data) : size / 2, rest = cut ? at + 1 : at;
    fz_write(p1, sizeof p1, "src.txt", data, at);
    fz_write(p2, sizeof p2, "tgt.txt", data + rest, size - rest);
    c = NULL;
    st = s2s_corpus_read_aligned(p1, p2, &o, &c);
    FZ_CHECK((st == S2S_OK) == (c != NULL), "aligned: status %d with corpus %p", (int)st, (void *)c);
    if (c)
        check_corpus(c, "aligned");
    s2s_corpus_free(c);
    return 0;
}
