/* fuzz_chatterbot.c - libFuzzer target for the ChatterBot YAML reader,
 * s2s_corpus_add_chatterbot. The input is the .yml file, read twice: with normalize_spaces = 1
 * and 0, into a corpus that already holds a pair (the reader appends).
 * Checked besides memory safety: the first pair is untouched, every added pair has two
 * non-empty valid UTF-8 sides (s2s_corpus_add would refuse anything else, and the reader must
 * report, not fail, on bad input: only S2S_OK or S2S_ERR_FORMAT for an in-memory file).
 *
 *   build-fuzz/fuzz_chatterbot -max_len=8192 tests/fuzz/seeds/chatterbot */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[300];
    fz_write(path, sizeof path, "input.yml", data, size);
    for (int norm = 1; norm >= 0; norm--) {
        size_t logged = 0;
        s2s_corpus_options o = s2s_corpus_options_default();
        o.normalize_spaces = norm;
        o.log = fz_log, o.log_user = &logged;
        s2s_corpus *c = NULL;
        FZ_CHECK(s2s_corpus_create(&c) == S2S_OK, "create");
        FZ_CHECK(s2s_corpus_add(c, "first", "pair") == S2S_OK, "add");
        s2s_status st = s2s_corpus_add_chatterbot(c, path, &o);
        FZ_CHECK(st == S2S_OK || st == S2S_ERR_FORMAT, "status %d: %s", (int)st, s2s_last_error());
        size_t n = s2s_corpus_size(c);
        FZ_CHECK(st != S2S_OK || n > 1, "S2S_OK but no pair added");
        const char *a, *b;
        FZ_CHECK(s2s_corpus_get(c, 0, &a, &b) == S2S_OK && !strcmp(a, "first") && !strcmp(b, "pair"), "pair 0");
        for (size_t i = 1; i < n; i++) {
            FZ_CHECK(s2s_corpus_get(c, i, &a, &b) == S2S_OK, "get");
            FZ_CHECK(*a && *b, "pair %zu has an empty side", i);
        }
        s2s_corpus_free(c);
    }
    return 0;
}
