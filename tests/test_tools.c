/* test_tools.c - nothing is lost: the library's per-line policy of s2s_translate (long lines in
 * pieces, lines that are not UTF-8 left out, --strict), its file checks (s2s_output_check, inputs
 * that are not regular files refused at once), and the tools against full, closed and vanishing
 * outputs and odd inputs (tests/tools/output_matrix.sh). */
#include "seq2seq.h"
#include "model_util.h"
#include "test_util.h"
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct logs {
    int warnings;
    char text[8192];
} logs;

static void keep_log(s2s_log_level level, const char *msg, void *user)
{
    logs *l = user;
    if (level != S2S_LOG_WARN)
        return;
    l->warnings++;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "%s\n", msg);
}

/* An untrained model whose tokenizer knows sentences that end in " .": its outputs are arbitrary
 * but fixed, which is all an equality needs. */
typedef struct world {
    s2s_context *ctx;
    s2s_tokenizer *tok;
    s2s_model *m;
    logs log;
} world;

static const char *SENT[3] = {"red cat sees the big bird .", "a small dog likes blue birds .",
                              "the green bird sees a cat ."};

static void world_make(world *w)
{
    memset(w, 0, sizeof *w);
    s2s_context_options co = s2s_context_options_default();
    co.device = S2S_DEVICE_CPU, co.threads = 1, co.log = keep_log, co.log_user = &w->log;
    cr_assert_eq(s2s_context_create(&co, &w->ctx), S2S_OK, "%s", s2s_last_error());
    const char *text[60];
    for (int i = 0; i < 60; i++)
        text[i] = SENT[i % 3];
    s2s_tokenizer_options to = s2s_tokenizer_options_default();
    to.vocab_size = 30, to.threads = 1;
    cr_assert_eq(s2s_tokenizer_train(text, 60, &to, &w->tok), S2S_OK, "%s", s2s_last_error());
    s2s_model_config mc = s2s_model_config_default();
    mc.hidden = 16, mc.embed = 8;
    mc.src_vocab = mc.tgt_vocab = s2s_tokenizer_vocab_size(w->tok);
    cr_assert_eq(s2s_model_create(w->ctx, &mc, &w->m), S2S_OK, "%s", s2s_last_error());
}

static void world_free(world *w)
{
    s2s_model_free(w->m);
    s2s_tokenizer_free(w->tok);
    s2s_context_free(w->ctx);
}

static s2s_translate_options short_greedy(void)
{
    s2s_translate_options o = s2s_translate_options_default();
    o.decode.mode = S2S_DECODE_GREEDY, o.decode.max_len_a = 0, o.decode.max_len_b = 4;
    return o;
}

static int tokens(const world *w, const char *s)
{
    int32_t ids[256];
    int n = 0;
    cr_assert_eq(s2s_tokenizer_encode(w->tok, s, ids, 256, &n), S2S_OK);
    return n;
}

/* A line of three sentences over a limit that holds one: cut after each sentence, it translates
 * to the three sentences' own translations joined, with one warning naming the line. */
Test(translate_lines, long_line_is_translated_in_pieces_at_sentence_ends)
{
    world w;
    world_make(&w);
    char line[512];
    snprintf(line, sizeof line, "%s %s %s", SENT[0], SENT[1], SENT[2]);
    int n0 = tokens(&w, SENT[0]), n1 = tokens(&w, SENT[1]), n2 = tokens(&w, SENT[2]);
    cr_assert_eq(tokens(&w, line), n0 + n1 + n2, "a sentence encodes alike alone and in the line");
    s2s_translate_options o = short_greedy();
    o.max_src_tokens = (n0 > n1 ? (n0 > n2 ? n0 : n2) : (n1 > n2 ? n1 : n2)) + 2; /* one sentence, not two */
    cr_assert_lt(o.max_src_tokens, n0 + n1);
    o.first_line = 7;
    const char *alone[3] = {SENT[0], SENT[1], SENT[2]}, *one = line;
    char *want[3], *got[1];
    float ws[3], gs[1];
    cr_assert_eq(s2s_translate(w.m, w.tok, w.tok, alone, 3, &o, want, ws), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(w.log.warnings, 0);
    cr_assert_eq(s2s_translate(w.m, w.tok, w.tok, &one, 1, &o, got, gs), S2S_OK, "%s", s2s_last_error());
    char joined[1024] = "";
    for (int i = 0; i < 3; i++)
        if (*want[i])
            strcat(joined, *joined ? " " : ""), strcat(joined, want[i]);
    cr_assert_str_eq(got[0], joined);
    cr_assert_float_eq(gs[0], ws[0] + ws[1] + ws[2], 1e-4, "the score of the pieces' sum");
    cr_assert_eq(w.log.warnings, 1, "%s", w.log.text);
    cr_assert(strstr(w.log.text, "line 7 has") && strstr(w.log.text, "translated in 3 pieces"), "%s", w.log.text);
    s2s_strings_free(got, 1);
    o.strict = 1;
    cr_assert_eq(s2s_translate(w.m, w.tok, w.tok, &one, 1, &o, got + 0, gs), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "line 7 has"), "%s", s2s_last_error());
    s2s_strings_free(want, 3);
    world_free(&w);
}

/* No sentence end within reach: the cut falls between words, never inside one; n-best lists join
 * piece by piece. */
Test(translate_lines, long_line_without_sentence_ends_is_cut_between_words)
{
    world w;
    world_make(&w);
    char line[4096] = "";
    for (int i = 0; i < 40; i++)
        strcat(line, i ? " red cat" : "red cat");
    s2s_translate_options o = short_greedy();
    o.decode.mode = S2S_DECODE_BEAM, o.decode.beam_size = 3, o.decode.nbest = 2, o.max_src_tokens = 7;
    const char *one = line;
    char *got[2];
    cr_assert_eq(s2s_translate(w.m, w.tok, w.tok, &one, 1, &o, got, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert(strstr(w.log.text, "line 1 has"), "%s", w.log.text);
    s2s_strings_free(got, 2);
    world_free(&w);
}

/* A line that is not UTF-8 gives empty outputs and a warning; the others are as if alone. */
Test(translate_lines, invalid_utf8_line_is_left_out_with_a_warning)
{
    world w;
    world_make(&w);
    const char *lines[3] = {SENT[0], "red \xc3\x28 cat", SENT[2]}, *alone[2] = {SENT[0], SENT[2]};
    s2s_translate_options o = short_greedy();
    char *got[3], *want[2];
    cr_assert_eq(s2s_translate(w.m, w.tok, w.tok, alone, 2, &o, want, NULL), S2S_OK);
    cr_assert_eq(s2s_translate(w.m, w.tok, w.tok, lines, 3, &o, got, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert_str_eq(got[0], want[0]);
    cr_assert_str_eq(got[1], "");
    cr_assert_str_eq(got[2], want[1]);
    cr_assert(strstr(w.log.text, "line 2 is not valid UTF-8 at byte 5"), "%s", w.log.text);
    s2s_strings_free(got, 3);
    o.strict = 1, o.first_line = 11;
    cr_assert_eq(s2s_translate(w.m, w.tok, w.tok, lines, 3, &o, got, NULL), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "line 12 is not valid UTF-8"), "%s", s2s_last_error());
    s2s_strings_free(want, 2);
    world_free(&w);
}

Test(files, output_check)
{
    char dir[] = "/tmp/s2s_out_XXXXXX", p[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/run", dir);
    cr_assert_eq(s2s_output_check(p, 1024), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_output_check(p, (uint64_t)1 << 62), S2S_ERR_IO);
    cr_assert(strstr(s2s_last_error(), "a checkpoint needs about"), "%s", s2s_last_error());
    snprintf(p, sizeof p, "%s/missing/run", dir);
    cr_assert_eq(s2s_output_check(p, 0), S2S_ERR_IO);
    cr_assert(strstr(s2s_last_error(), "missing") && strstr(s2s_last_error(), "mkdir -p"), "%s", s2s_last_error());
    snprintf(p, sizeof p, "%s/file", dir);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fclose(f);
    snprintf(p, sizeof p, "%s/file/run", dir);
    cr_assert_eq(s2s_output_check(p, 0), S2S_ERR_IO);
    cr_assert(strstr(s2s_last_error(), "not a directory"), "%s", s2s_last_error());
    snprintf(p, sizeof p, "%s/", dir);
    cr_assert_eq(s2s_output_check(p, 0), S2S_ERR_INVALID_ARG);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A FIFO with no writer as a model or a corpus is refused at once (opening it would wait). */
Test(files, fifo_inputs_are_refused_without_waiting, .timeout = 20)
{
    char dir[] = "/tmp/s2s_fifo_XXXXXX", p[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/fifo", dir);
    cr_assert_eq(mkfifo(p, 0600), 0, "%s", strerror(errno));
    s2s_context *ctx = NULL;
    s2s_context_options co = s2s_context_options_default();
    co.device = S2S_DEVICE_CPU;
    cr_assert_eq(s2s_context_create(&co, &ctx), S2S_OK);
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_load(ctx, p, &m, NULL, NULL, NULL), S2S_ERR_IO);
    cr_assert(strstr(s2s_last_error(), "named pipe"), "%s", s2s_last_error());
    s2s_corpus *c = NULL;
    cr_assert_eq(s2s_corpus_read_tsv(p, NULL, &c), S2S_ERR_IO);
    cr_assert(strstr(s2s_last_error(), "named pipe"), "%s", s2s_last_error());
    s2s_context_free(ctx);
    unlink(p);
    rmdir(dir);
}

Test(tools, output_matrix, .timeout = 300)
{
    const char *build = getenv("S2S_BUILD") ? getenv("S2S_BUILD") : "build";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tests/tools/output_matrix.sh %s 2>&1", build);
    static char out[65536];
    int rc = tu_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "%s:\n%s", cmd, out);
    cr_assert(strstr(out, "output_matrix: 0 failed"), "%s", out);
}

/* s2s_translate with an ensemble: a model with a copy of itself translates as the model alone
 * (text and score), with beam search; a bad ensemble count is refused. */
Test(translate_lines, ensemble_with_a_copy_translates_as_the_model)
{
    world w;
    world_make(&w);
    s2s_model_config mc = s2s_model_get_config(w.m);
    s2s_model *copy = NULL;
    cr_assert_eq(s2s_model_create(w.ctx, &mc, &copy), S2S_OK);
    tu_copy_weights(copy, w.m);
    s2s_translate_options o = s2s_translate_options_default();
    o.decode.nbest = 2;
    char *alone[6], *ens[6];
    float sa[6], se[6];
    cr_assert_eq(s2s_translate(w.m, w.tok, w.tok, SENT, 3, &o, alone, sa), S2S_OK, "%s", s2s_last_error());
    s2s_model *more[1] = {copy};
    o.ensemble = more, o.ensemble_n = 1;
    cr_assert_eq(s2s_translate(w.m, w.tok, w.tok, SENT, 3, &o, ens, se), S2S_OK, "%s", s2s_last_error());
    for (int i = 0; i < 6; i++) {
        cr_assert_str_eq(alone[i], ens[i]);
        cr_assert_eq(memcmp(&sa[i], &se[i], sizeof(float)), 0, "%.9g vs %.9g", sa[i], se[i]);
    }
    s2s_strings_free(alone, 6), s2s_strings_free(ens, 6);
    o.ensemble_n = S2S_ENSEMBLE_MAX;
    cr_assert_eq(s2s_translate(w.m, w.tok, w.tok, SENT, 3, &o, ens, se), S2S_ERR_INVALID_ARG);
    s2s_model_free(copy);
    world_free(&w);
}
