/* test_api.c - the public API's contract: statuses and messages for bad input, device
 * selection, exported symbols, the hello example, and an installed copy used through
 * pkg-config. */
#include "model.h"
#include "test_util.h"
#include "toy_task.h"
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static s2s_context *cpu_ctx(void)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU;
    s2s_context *ctx = NULL;
    cr_assert_eq(s2s_context_create(&o, &ctx), S2S_OK, "%s", s2s_last_error());
    return ctx;
}

static s2s_model *small_model(s2s_context *ctx)
{
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 8;
    c.embed = 4;
    c.src_vocab = 10;
    c.tgt_vocab = 12;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    return m;
}

Test(api, status_strings_and_last_error)
{
    for (int st = S2S_OK; st <= S2S_ERR_INTERNAL; st++)
        cr_assert(strlen(s2s_status_string((s2s_status)st)) > 0);
    cr_assert_eq(s2s_context_create(NULL, NULL), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "context.c:") != NULL, "no file:line in '%s'", s2s_last_error());
    cr_assert(strstr(s2s_last_error(), "out is NULL") != NULL, "%s", s2s_last_error());
    cr_assert_str_eq(s2s_version(), "0.1.0");
}

static char logged[512];
static void capture_log(s2s_log_level level, const char *msg, void *user)
{
    (void)level;
    snprintf(logged, sizeof logged, "%s", msg);
    *(int *)user += 1;
}

Test(api, device_selection_without_gpu)
{
    s2s_context_options o = s2s_context_options_default();
    s2s_context *ctx = NULL;
    o.device = S2S_DEVICE_CUDA;
    s2s_status st = s2s_context_create(&o, &ctx);
    if (st == S2S_OK) { /* a machine with a GPU: CUDA must then really be the device */
        cr_assert_eq(s2s_context_device(ctx), S2S_DEVICE_CUDA);
        s2s_context_free(ctx);
        cr_skip_test("a CUDA GPU is present; the no-GPU path cannot be tested here");
    }
    cr_assert_eq(st, S2S_ERR_NO_DEVICE, "got %s: %s", s2s_status_string(st), s2s_last_error());
    cr_assert(strstr(s2s_last_error(), "CPU") != NULL, "message should say what to do: %s", s2s_last_error());
    cr_assert_null(ctx);
    int calls = 0;
    o.device = S2S_DEVICE_AUTO;
    o.log = capture_log;
    o.log_user = &calls;
    cr_assert_eq(s2s_context_create(&o, &ctx), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_context_device(ctx), S2S_DEVICE_CPU);
    cr_assert_eq(calls, 1, "AUTO without a GPU logs exactly one line, got %d", calls);
    cr_assert(strstr(logged, "CPU") != NULL, "%s", logged);
    s2s_context_free(ctx);
}

Test(api, bad_configs_are_refused_with_reasons)
{
    s2s_context *ctx = cpu_ctx();
    s2s_model *m = NULL;
    s2s_model_config c = s2s_model_config_default();
    c.src_vocab = c.tgt_vocab = 10;
    struct { const char *field, *needle; } rows[] = {{"layers", "layers"}, {"hidden", "hidden"}, {"bidir", "even"},
                                                     {"dropout", "dropout"}, {"vocab", "vocab"}, {"cell", "cell"}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        s2s_model_config b = c;
        switch (i) {
        case 0: b.layers = 0; break;
        case 1: b.hidden = -3; break;
        case 2: b.bidirectional = 1; b.hidden = 7; break;
        case 3: b.dropout = 1.0f; break;
        case 4: b.tgt_vocab = 3; break;
        case 5: b.cell = (s2s_cell)9; break;
        }
        cr_assert_eq(s2s_model_create(ctx, &b, &m), S2S_ERR_INVALID_ARG, "row %s accepted", rows[i].field);
        cr_assert_null(m);
        cr_assert(strstr(s2s_last_error(), rows[i].needle), "row %s: message '%s' lacks '%s'", rows[i].field,
                  s2s_last_error(), rows[i].needle);
    }
    s2s_context_free(ctx);
}

Test(api, bad_batches_and_params)
{
    s2s_context *ctx = cpu_ctx();
    s2s_model *m = small_model(ctx);
    int32_t src[2 * 3] = {4, 5, 6, 7, 0, 0}, sl[2] = {3, 1}, tgt[2 * 2] = {5, 6, 7, 0}, tl[2] = {2, 1};
    s2s_batch b = {2, 3, 2, src, sl, tgt, tl};
    float loss;
    cr_assert_eq(s2s_model_forward_backward(m, &b, NULL, &loss, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert(isfinite(loss) && loss > 0);
    src[1] = 10; /* out of the source vocabulary */
    cr_assert_eq(s2s_model_forward_backward(m, &b, NULL, &loss, NULL), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "row 0") && strstr(s2s_last_error(), "id 10"), "%s", s2s_last_error());
    src[1] = 5;
    sl[1] = 0; /* empty source */
    cr_assert_eq(s2s_model_forward_backward(m, &b, NULL, &loss, NULL), S2S_ERR_INVALID_ARG);
    sl[1] = 4; /* longer than the row */
    cr_assert_eq(s2s_model_forward_backward(m, &b, NULL, &loss, NULL), S2S_ERR_INVALID_ARG);
    sl[1] = 1;
    tgt[3] = 0;
    tl[1] = 2; /* padding inside a target */
    cr_assert_eq(s2s_model_forward_backward(m, &b, NULL, &loss, NULL), S2S_ERR_INVALID_ARG);
    tl[1] = 1;
    float w[12 * 8];
    cr_assert_eq(s2s_model_param_get(m, "generator.weight", w, 96), S2S_OK);
    cr_assert_eq(s2s_model_param_get(m, "generator.weight", w, 95), S2S_ERR_INVALID_ARG);
    cr_assert_eq(s2s_model_param_get(m, "no.such.tensor", w, 96), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "no.such.tensor"), "%s", s2s_last_error());
    w[5] = NAN;
    cr_assert_eq(s2s_model_param_set(m, "generator.weight", w, 96), S2S_ERR_NUMERIC);
    int32_t out[2 * 4], out_len[2];
    cr_assert_eq(s2s_model_greedy_decode(m, &b, 0, out, out_len), S2S_ERR_INVALID_ARG);
    cr_assert_eq(s2s_model_greedy_decode(m, &b, 4, out, out_len), S2S_OK, "%s", s2s_last_error());
    for (int i = 0; i < 2; i++)
        cr_assert(out_len[i] >= 0 && out_len[i] <= 4);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

Test(api, parameter_names_follow_pytorch)
{
    s2s_context *ctx = cpu_ctx();
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 8, c.embed = 4, c.src_vocab = 10, c.tgt_vocab = 12, c.layers = 2, c.bidirectional = 1;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK);
    const char *want[] = {"encoder.embedding.weight", "encoder.rnn.weight_ih_l0", "encoder.rnn.weight_hh_l0",
                          "encoder.rnn.bias_ih_l0", "encoder.rnn.bias_hh_l0", "encoder.rnn.weight_ih_l0_reverse"};
    for (int i = 0; i < 6; i++) {
        s2s_param_info info;
        cr_assert_eq(s2s_model_param_info_at(m, i, &info), S2S_OK);
        cr_assert_str_eq(info.name, want[i]);
    }
    s2s_param_info info;
    cr_assert_eq(s2s_model_param_info_at(m, 1, &info), S2S_OK);
    cr_assert(info.shape[0] == 16 && info.shape[1] == 4, "LSTM weight_ih_l0 with H/2 = 4 per direction is [16, 4]");
    float emb[10 * 4];
    cr_assert_eq(s2s_model_param_get(m, "encoder.embedding.weight", emb, 40), S2S_OK);
    for (int j = 0; j < 4; j++)
        cr_assert_eq(emb[j], 0.0f, "the padding row starts at zero");
    s2s_model_free(m);
    s2s_context_free(ctx);
}

Test(api, nonfinite_gradient_skips_the_update)
{
    s2s_context *ctx = cpu_ctx();
    s2s_model *m = small_model(ctx);
    s2s_optimizer *opt = NULL;
    cr_assert_eq(s2s_optimizer_create(m, NULL, &opt), S2S_OK);
    float before[96], after[96], norm = 0;
    cr_assert_eq(s2s_model_param_get(m, "generator.weight", before, 96), S2S_OK);
    m->params.grad[3] = NAN; /* the CPU backend's gradient block is host memory */
    cr_assert_eq(s2s_optimizer_step(opt, 0, &norm), S2S_ERR_NUMERIC);
    cr_assert(isnan(norm));
    cr_assert_eq(s2s_model_param_get(m, "generator.weight", after, 96), S2S_OK);
    cr_assert_eq(memcmp(before, after, sizeof before), 0, "weights changed by a skipped step");
    s2s_optimizer_free(opt);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* Runs a shell command, returns its exit status and the first line of its output. */
static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    return pclose(p);
}

static const char *build_dir(void)
{
    const char *b = getenv("S2S_BUILD");
    return b ? b : "build";
}

Test(api, shared_library_exports_only_s2s_symbols)
{
    char cmd[512], out[8192];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only %s/libseq2seq.so | awk 'NF == 3 {print $3}' | grep -v '^s2s_'",
             build_dir());
    run(cmd, out, sizeof out);
    cr_assert_str_empty(out, "symbols exported without the s2s_ prefix:\n%s", out);
    snprintf(cmd, sizeof cmd, "readelf -d %s/libseq2seq.so | grep -c 'SONAME.*libseq2seq.so.0'", build_dir());
    run(cmd, out, sizeof out);
    cr_assert_eq(atoi(out), 1, "soname is not libseq2seq.so.0");
}

Test(api, hello_rnn_learns_hell_to_ello, .timeout = 60)
{
    char cmd[512], out[8192];
    snprintf(cmd, sizeof cmd, "%s/hello_rnn 2>&1", build_dir());
    int rc = run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "hello_rnn failed (%d):\n%s", rc, out);
    cr_assert(strstr(out, "learned: \"hell\" -> \"ello\""), "%s", out);
    cr_assert(strstr(out, "input 'l' -> predicted 'o'"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s/hello_rnn --steps nope 2>&1", build_dir());
    cr_assert_neq(run(cmd, out, sizeof out), 0, "a bad argument must fail");
}

Test(api, installed_copy_builds_with_pkg_config, .timeout = 120)
{
    char dir[] = "/tmp/s2s-install-XXXXXX", cmd[2048], out[8192];
    if (run("command -v pkg-config", out, sizeof out) != 0)
        cr_skip_test("pkg-config is not installed (scripts/install-deps.sh installs it)");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "%s/use.c", dir);
    FILE *f = fopen(cmd, "w");
    cr_assert_not_null(f);
    fputs("#include <seq2seq.h>\n#include <stdio.h>\n"
          "int main(void) {\n"
          "    s2s_context_options o = s2s_context_options_default();\n"
          "    s2s_context *c;\n"
          "    o.device = S2S_DEVICE_CPU;\n"
          "    if (s2s_context_create(&o, &c) != S2S_OK) return 1;\n"
          "    printf(\"%s\\n\", s2s_version());\n"
          "    s2s_context_free(c);\n"
          "    return 0;\n"
          "}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "make -s install PREFIX=%s/prefix BUILD=%s >%s/log 2>&1 && export PKG_CONFIG_PATH=%s/prefix/lib/pkgconfig "
             "&& cc %s/use.c -o %s/use $(pkg-config --cflags --libs seq2seq) && %s/use",
             dir, build_dir(), dir, dir, dir, dir, dir);
    int rc = run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "install + pkg-config build failed (%d): %s (log in %s/log)", rc, out, dir);
    cr_assert(strstr(out, "0.1.0"), "%s", out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    run(cmd, out, sizeof out);
}

/* The README's C program is examples/readme_example.c, verbatim; it compiles against the
 * library and translates its test sentence. */
Test(api, readme_example_is_current_compiles_and_runs, .timeout = 120)
{
    char cmd[1024], out[8192];
    FILE *f = fopen("examples/readme_example.c", "r"), *r = fopen("README.md", "r");
    cr_assert(f && r, "run from the repository root");
    static char ex[16384], readme[65536];
    size_t ne = fread(ex, 1, sizeof ex - 1, f), nr = fread(readme, 1, sizeof readme - 1, r);
    ex[ne] = readme[nr] = '\0';
    fclose(f), fclose(r);
    cr_assert(strstr(readme, ex), "README.md does not contain examples/readme_example.c verbatim");
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/readme_example.c -o %s/readme_example -L%s "
             "-lseq2seq -Wl,-rpath,$PWD/%s 2>&1 && %s/readme_example 2>&1",
             build_dir(), build_dir(), build_dir(), build_dir());
    int rc = run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "the dog sleeps -> "), "%s", out);
}

/* s2s-chat chat --mmi: a second model (here the same file) reranks the beam; piped lines get one
 * reply each, with and without reranking, and a reranking weight of 0 gives plain beam search's
 * reply. */
/* An untrained model over the toy task's tokenizer (*tok, *c and *ctx for the caller to free). */
static s2s_model *toy_text_model(s2s_corpus **c, s2s_tokenizer **tok, s2s_context **ctx)
{
    *c = toy_corpus(3, 200);
    *tok = toy_tokenizer(*c, 30);
    *ctx = cpu_ctx();
    s2s_model_config mc = s2s_model_config_default();
    mc.hidden = 16, mc.embed = 8;
    mc.src_vocab = mc.tgt_vocab = s2s_tokenizer_vocab_size(*tok);
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(*ctx, &mc, &m), S2S_OK, "%s", s2s_last_error());
    return m;
}

Test(api, chat_tool_reranks_with_a_reverse_model, .timeout = 120)
{
    s2s_corpus *c;
    s2s_tokenizer *tok;
    s2s_context *ctx;
    s2s_model *m = toy_text_model(&c, &tok, &ctx);
    char dir[] = "/tmp/s2s_chat_XXXXXX", path[64], cmd[512], out[3][4096];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    cr_assert_eq(s2s_model_save(m, tok, tok, NULL, path), S2S_OK, "%s", s2s_last_error());
    const char *extra[3] = {"", "--mmi-weight 3", "--mmi-weight 0"};
    for (int k = 0; k < 3; k++) {
        snprintf(cmd, sizeof cmd, "printf 'the big cat\\nred dog sees a bird\\n' | %s/s2s-chat chat --model %s %s%s %s "
                 "--beam 6 --device cpu 2>&1", build_dir(), path, k ? "--mmi " : "", k ? path : "", extra[k]);
        int rc = run(cmd, out[k], sizeof out[k]);
        cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s:\n%s", cmd, out[k]);
        int lines = 0;
        for (const char *q = out[k]; *q; q++)
            lines += *q == '\n';
        cr_assert_eq(lines, 2, "%s: %d lines:\n%s", cmd, lines, out[k]);
    }
    cr_assert_str_eq(out[2], out[0], "weight 0 must give beam search's own replies");
    /* the tool's reranked reply to the first line is the library's choice with the chat's settings */
    s2s_translate_options to = s2s_translate_options_default();
    to.decode.beam_size = to.decode.nbest = 6, to.decode.no_repeat_ngram = 3, to.batch_size = 1;
    const char *line = "the big cat";
    char *outs[6];
    float scores[6];
    int best = -1;
    cr_assert_eq(s2s_translate(m, tok, tok, &line, 1, &to, outs, scores), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_rerank_reverse(m, tok, tok, line, (const char *const *)outs, scores, 6, 3.0f, NULL, &best), S2S_OK,
                 "%s", s2s_last_error());
    char want[1024];
    snprintf(want, sizeof want, "%s\n", outs[best]);
    cr_assert(strncmp(out[1], want, strlen(want)) == 0, "the tool replied\n%swhere the library picks %s", out[1], want);
    s2s_strings_free(outs, 6);
    snprintf(cmd, sizeof cmd, "%s/s2s-chat chat --model %s --mmi %s/missing.safetensors 2>&1 </dev/null", build_dir(),
             path, dir);
    int rc = run(cmd, out[0], sizeof out[0]);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1 && strstr(out[0], "missing.safetensors"), "%s", out[0]);
    remove(path);
    rmdir(dir);
    s2s_model_free(m);
    s2s_tokenizer_free(tok);
    s2s_corpus_free(c);
    s2s_context_free(ctx);
}

/* One line of 200 or more tokens (up to the 250 allowed) translates: its ids fit the buffer
 * (they overflowed it once; make sanitize shows that). */
Test(api, translate_one_line_near_the_token_limit, .timeout = 60)
{
    s2s_corpus *c;
    s2s_tokenizer *tok;
    s2s_context *ctx;
    s2s_model *m = toy_text_model(&c, &tok, &ctx);
    static const char *words[] = {"red", "blue", "green", "cat", "dog", "sees"};
    char longline[4096] = "";
    int32_t ids[1024];
    int nids = 0;
    for (int k = 0; nids < 200; k++) {
        strcat(longline, k ? " " : ""), strcat(longline, words[k % 6]);
        cr_assert_eq(s2s_tokenizer_encode(tok, longline, ids, 1024, &nids), S2S_OK);
    }
    cr_assert_leq(nids, 250);
    s2s_translate_options to = s2s_translate_options_default();
    to.decode.beam_size = to.decode.nbest = 1, to.batch_size = 1;
    const char *ll = longline;
    char *lout[1] = {NULL};
    cr_assert_eq(s2s_translate(m, tok, tok, &ll, 1, &to, lout, NULL), S2S_OK, "%d tokens: %s", nids, s2s_last_error());
    s2s_strings_free(lout, 1);
    s2s_model_free(m);
    s2s_tokenizer_free(tok);
    s2s_corpus_free(c);
    s2s_context_free(ctx);
}

/* The tools refuse bad arguments with one line and exit status 2, and every command has --help
 * (the chat command's decoding options among them). */
Test(api, tools_refuse_bad_arguments, .timeout = 60)
{
    struct {
        const char *args, *needle;
        int help;
    } rows[] = {
        {"s2s-chat chat --help", "--sample", 1},
        {"s2s-chat chat --model x --greedy --sample", "choose one of --greedy and --sample", 0},
        {"s2s-chat chat --model x --topp 2", "--topp", 0},
        {"s2s-chat chat --help", "--length-penalty", 1},
        {"s2s-chat chat --model x --length-penalty -1", "--length-penalty", 0},
        {"s2s-chat chat --help", "--mmi", 1},
        {"s2s-chat chat --model x --mmi y --sample", "--mmi reranks beam search", 0},
        {"s2s-chat chat --model x --mmi-weight 2", "--mmi-weight needs --mmi", 0},
        {"s2s-chat train --help", "--reverse", 1},
        {"s2s-chat chat --sample", "--model", 0},
        {"s2s-translate translate --help", "--beam", 1},
        {"s2s-translate frobnicate", "unknown command", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char cmd[512], out[8192];
        snprintf(cmd, sizeof cmd, "%s/%s 2>&1 </dev/null", build_dir(), rows[i].args);
        int rc = run(cmd, out, sizeof out);
        int status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
        cr_assert_eq(status, rows[i].help ? 0 : 2, "%s: exit %d\n%s", rows[i].args, status, out);
        cr_assert(strstr(out, rows[i].needle), "%s: no '%s' in:\n%s", rows[i].args, rows[i].needle, out);
    }
}
