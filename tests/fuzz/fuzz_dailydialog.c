/* fuzz_dailydialog.c - libFuzzer target for the DailyDialog reader, s2s_corpus_add_dailydialog.
 * The input is a dialogues_*.txt file. It is read once into a corpus A (byte 0 of the input
 * does not pick options here: the first line is text like the rest; normalize_spaces follows
 * the input size's parity), then again into a corpus B excluding A.
 * Checked besides memory safety: the second read adds nothing and excludes exactly the pairs
 * the first one added; status is S2S_OK or S2S_ERR_FORMAT (nothing read) only.
 *
 *   build-fuzz/fuzz_dailydialog -max_len=8192 tests/fuzz/seeds/dailydialog */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[300];
    fz_write(path, sizeof path, "dialogues_fuzz.txt", data, size);
    size_t logged = 0;
    s2s_corpus_options o = s2s_corpus_options_default();
    o.normalize_spaces = (int)(size & 1) ^ 1;
    o.log = fz_log, o.log_user = &logged;
    s2s_corpus *a = NULL, *b = NULL;
    FZ_CHECK(s2s_corpus_create(&a) == S2S_OK && s2s_corpus_create(&b) == S2S_OK, "create");
    long excluded = -1;
    s2s_status st = s2s_corpus_add_dailydialog(a, path, NULL, &o, &excluded);
    FZ_CHECK(st == S2S_OK || st == S2S_ERR_FORMAT, "status %d: %s", (int)st, s2s_last_error());
    FZ_CHECK(excluded == 0, "excluded %ld without an exclusion set", excluded);
    size_t n = s2s_corpus_size(a);
    FZ_CHECK((st == S2S_OK) == (n > 0), "status %d with %zu pairs", (int)st, n);
    for (size_t i = 0; i < n; i++) {
        const char *s, *t;
        FZ_CHECK(s2s_corpus_get(a, i, &s, &t) == S2S_OK && *s && *t, "pair %zu", i);
    }
    if (n > 0) {
        st = s2s_corpus_add_dailydialog(b, path, a, &o, &excluded);
        FZ_CHECK(st == S2S_OK, "second read: status %d: %s", (int)st, s2s_last_error());
        FZ_CHECK(s2s_corpus_size(b) == 0 && excluded == (long)n, "second read added %zu, excluded %ld of %zu",
                 s2s_corpus_size(b), excluded, n);
    }
    s2s_corpus_free(a);
    s2s_corpus_free(b);
    return 0;
}
