/* s2s-translate - train a translator, translate, evaluate, inspect model files.
 *
 *   s2s-translate train --train-src F --train-tgt F --out PREFIX [options]
 *   s2s-translate translate --model F [--beam N] [--nbest N] < in > out
 *   s2s-translate eval --model F --src F --ref F
 *   s2s-translate inspect --model F
 *
 * Thin over the public API: each command parses its options and calls the library. */
#include "cli.h"
#include <time.h>

#define TOOL "s2s-translate"

static const char *EXAMPLES =
    "examples:\n"
    "  s2s-translate train --train-src data/multi30k/train.en --train-tgt data/multi30k/train.de \\\n"
    "      --valid-src data/multi30k/val.en --valid-tgt data/multi30k/val.de --out runs/ende --minutes 30\n"
    "  echo 'A man rides a bike.' | s2s-translate translate --model runs/ende.best.safetensors\n"
    "  s2s-translate eval --model runs/ende.best.safetensors --src data/multi30k/test.en --ref data/multi30k/test.de\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int lib_fail(void)
{
    fprintf(stderr, TOOL ": %s\n", s2s_last_error());
    return 1;
}

/* ---- train ---------------------------------------------------------------------------------- */

typedef struct data_opts {
    const char *train_src, *train_tgt, *train_tsv, *valid_src, *valid_tgt, *valid_tsv;
} data_opts;

static s2s_status read_corpus(const char *src, const char *tgt, const char *tsv, const char *what, s2s_corpus **c)
{
    s2s_corpus_options o = s2s_corpus_options_default();
    o.log = log_to_stderr;
    o.log_user = (void *)TOOL;
    *c = NULL;
    if (tsv)
        return s2s_corpus_read_tsv(tsv, &o, c);
    if (src && tgt)
        return s2s_corpus_read_aligned(src, tgt, &o, c);
    if (src || tgt)
        fprintf(stderr, TOOL ": %s needs both --%s-src and --%s-tgt (or --%s-tsv)\n", what, what, what, what);
    return src || tgt ? S2S_ERR_INVALID_ARG : S2S_OK;
}

static int cmd_train(int argc, char **argv)
{
    cli_stdio_setup();
    common_opts c = {0, 0, 1, 0, 0};
    train_opts t;
    data_opts d = {0};
    train_opts_default(&t);
    opt table[] = {COMMON_OPTS(c), TRAIN_OPTS(t), {"--train-src", OPT_STR, &d.train_src, 0, 0, 0},
                   {"--train-tgt", OPT_STR, &d.train_tgt, 0, 0, 0}, {"--train-tsv", OPT_STR, &d.train_tsv, 0, 0, 0},
                   {"--valid-src", OPT_STR, &d.valid_src, 0, 0, 0}, {"--valid-tgt", OPT_STR, &d.valid_tgt, 0, 0, 0},
                   {"--valid-tsv", OPT_STR, &d.valid_tsv, 0, 0, 0}};
    if (argc > 2 && !strcmp(argv[2], "--help")) {
        printf("usage: s2s-translate train (--train-src F --train-tgt F | --train-tsv F) --out PREFIX [options]\n"
               "  --valid-src F --valid-tgt F | --valid-tsv F   validation set (perplexity and BLEU)\n" TRAIN_OPTS_HELP
               "  --device auto|cpu|cuda --threads N --seed N --precision fp32|tf32|bf16 --quiet\n"
               "  --precision: the products' precision: GPU tf32 or bf16 tensor cores; CPU bf16 (oneDNN, needs\n"
               "  AVX-512 BF16 or AMX; refused on other CPUs), weights and sums stay fp32\n"
               "example: s2s-translate train --train-tsv data/tatoeba-eng-fra/eng-fra.tsv --out runs/enfr "
               "--minutes 5\n");
        return 0;
    }
    if (!parse_opts(TOOL, argc, argv, 2, table, sizeof table / sizeof table[0]) || !cli_train_precision_ok(TOOL, &c))
        return 2;
    if (!t.out || !(d.train_tsv || (d.train_src && d.train_tgt)))
        return cli_fail(TOOL, "train needs --out and a training corpus (--train-src/--train-tgt or --train-tsv)"), 2;
    if (t.tie == 2 && !t.shared_vocab) /* the library sees two vocabularies of one size, not what they mean */
        return cli_fail(TOOL, "--tie-embeddings all gives both sides one embedding: it needs --shared-vocab (one "
                              "vocabulary for both languages)"), 2;
    if (s2s_output_check(t.out, 0) != S2S_OK) /* before any work; the trainer checks the space too */
        return lib_fail();
    apply_train_choices(&t);
    t.to.progress = print_progress;
    t.to.progress_user = isatty(2) ? (void *)1 : NULL;
    s2s_corpus *train = NULL, *valid = NULL;
    if (read_corpus(d.train_src, d.train_tgt, d.train_tsv, "train", &train) != S2S_OK ||
        read_corpus(d.valid_src, d.valid_tgt, d.valid_tsv, "valid", &valid) != S2S_OK) {
        s2s_corpus_free(train);
        return lib_fail();
    }
    s2s_context *ctx = make_context(TOOL, &c, 1);
    int rc = ctx ? cli_train(TOOL, ctx, &t, train, valid) : 1;
    s2s_context_free(ctx);
    s2s_corpus_free(train);
    s2s_corpus_free(valid);
    return rc;
}

/* ---- translate / eval --------------------------------------------------------------------- */

typedef struct decode_cli {
    const char *svg;
    str_list models;
    int beam, nbest, greedy, sample, batch, no_unk, no_repeat, strict;
    float lp, a, temperature, top_p;
    int b, top_k;
} decode_cli;

#define ENSEMBLE_HELP                                                                                             \
    "  --model FILE again: an ensemble (at most 16 files of one tokenizer pair; each step's log-probabilities\n"  \
    "  are the models' mean)\n"

#define DECODE_OPTS(d)                                                                                            \
    {"--model", OPT_STRS, &(d).models, 0, 0, 0}, {"--beam", OPT_INT, &(d).beam, 1, 64, 0},                      \
        {"--nbest", OPT_INT, &(d).nbest, 1, 64, 0}, {"--greedy", OPT_FLAG, &(d).greedy, 0, 0, 0},               \
        {"--batch", OPT_INT, &(d).batch, 1, 100000, 0}, {"--no-replace-unk", OPT_FLAG, &(d).no_unk, 0, 0, 0},   \
        {"--length-penalty", OPT_FLOAT, &(d).lp, 0, 10, 0}, {"--max-len-a", OPT_FLOAT, &(d).a, 0, 100, 0},        \
        {"--max-len-b", OPT_INT, &(d).b, 0, 10000, 0}, {"--no-repeat-ngram", OPT_INT, &(d).no_repeat, 0, 100, 0},  \
        {"--strict", OPT_FLAG, &(d).strict, 0, 0, 0}

static s2s_translate_options decode_options(const decode_cli *d, const common_opts *c)
{
    s2s_translate_options o = s2s_translate_options_default();
    o.decode.precision = cli_decode_precision(c);
    o.decode.mode = d->greedy ? S2S_DECODE_GREEDY : d->sample ? S2S_DECODE_SAMPLE : S2S_DECODE_BEAM;
    o.decode.beam_size = d->beam;
    o.decode.nbest = d->nbest;
    o.decode.length_penalty = d->lp;
    o.decode.max_len_a = d->a;
    o.decode.max_len_b = d->b;
    o.decode.no_repeat_ngram = d->no_repeat;
    o.batch_size = d->batch > 0 ? d->batch : 64;
    o.replace_unk = !d->no_unk;
    o.strict = d->strict;
    return o;
}

static void decode_cli_default(decode_cli *d)
{
    s2s_decode_options o = s2s_decode_options_default();
    memset(d, 0, sizeof *d);
    d->beam = o.beam_size, d->nbest = 1, d->lp = o.length_penalty, d->a = o.max_len_a, d->b = o.max_len_b;
}

typedef struct loaded {
    s2s_context *ctx;
    s2s_model *m;
    s2s_model *more[S2S_ENSEMBLE_MAX]; /* --model given again: an ensemble with m */
    int nmore;
    s2s_tokenizer *st, *tt;
    s2s_precision used; /* what decoding uses (--precision, or fp32 where this device cannot) */
} loaded;

static void loaded_free(loaded *l)
{
    for (int i = 0; i < l->nmore; i++)
        s2s_model_free(l->more[i]);
    s2s_model_free(l->m);
    if (l->tt != l->st)
        s2s_tokenizer_free(l->tt);
    s2s_tokenizer_free(l->st);
    s2s_context_free(l->ctx);
}

static int load_model(const common_opts *c, const char *path, loaded *l)
{
    memset(l, 0, sizeof *l);
    if (!path)
        return cli_fail(TOOL, "--model FILE is required");
    if (!(l->ctx = make_context(TOOL, c, 0)))
        return 0;
    if (s2s_model_load(l->ctx, path, &l->m, &l->st, &l->tt, NULL) != S2S_OK)
        return lib_fail(), 0;
    if (!l->st || !l->tt)
        return cli_fail(TOOL, "%s holds no tokenizers: it cannot translate text", path);
    return cli_prepare_decoding(TOOL, l->m, c, &l->used);
}

/* The first --model, then the others as an ensemble with it (same tokenizers, or refused). */
static int load_models(const common_opts *c, const decode_cli *d, loaded *l)
{
    return load_model(c, d->models.n ? d->models.v[0] : NULL, l) &&
           cli_load_ensemble(TOOL, l->ctx, &d->models, l->st, l->tt, c, l->more, &l->nmore);
}

/* Decodes line with attention and writes the source x output heatmap to path. */
static int write_svg(const loaded *l, const char *line, const s2s_translate_options *o, const char *path)
{
    int32_t ids[1024];
    int n = 0;
    if (s2s_tokenizer_encode(l->st, line, ids, 1024, &n) != S2S_OK || n < 1 || n > 1024)
        return cli_fail(TOOL, "--attention-svg: cannot encode the first line (%d tokens)", n);
    int32_t len[1] = {n};
    s2s_batch b = {1, n, 0, ids, len, NULL, NULL};
    s2s_decode_options d = o->decode;
    d.attention = 1, d.nbest = 1;
    s2s_hypothesis *h = NULL;
    if (s2s_model_decode(l->m, &b, &d, &h) != S2S_OK)
        return lib_fail(), 0;
    char(*sp)[64] = calloc((size_t)n + (size_t)h->len + 1, 64);
    const char **src = calloc((size_t)n + (size_t)h->len + 1, sizeof(char *)), **out = src + n;
    for (int i = 0; sp && src && i < n + h->len; i++) {
        const s2s_tokenizer *t = i < n ? l->st : l->tt;
        s2s_tokenizer_piece(t, i < n ? ids[i] : h->ids[i - n], sp[i], 64);
        src[i] = sp[i];
    }
    s2s_status s = sp && src ? s2s_attention_svg(path, src, n, out, h->len, h->attention) : S2S_ERR_OUT_OF_MEMORY;
    free(sp), free(src);
    s2s_hypotheses_free(h, 1);
    return s == S2S_OK ? 1 : (lib_fail(), 0);
}

/* Writes a batch's translations and flushes them: a cli_flush result. */
static int print_translations(char **out, const float *scores, size_t n, int nbest, size_t first_line)
{
    int err = 0;
    for (size_t i = 0; i < n && !err; i++)
        for (int j = 0; j < nbest; j++) {
            size_t k = i * nbest + j;
            if (nbest == 1)
                cli_note(printf("%s\n", out[k]), &err);
            else
                cli_note(printf("%zu ||| %s ||| %.4f\n", first_line + i, out[k], scores[k]), &err);
        }
    return cli_flush_err(TOOL, stdout, "the translations to standard output", err);
}

#define PRECISION_HELP                                                                                              \
    "  --precision fp32|bf16|int8: the weights' precision on the CPU (converted at load; the file stays fp32):\n"   \
    "  bf16 needs AVX-512 BF16 or AMX, int8 AVX2; without, fp32 with a warning. On the GPU: fp32|tf32|bf16 GEMMs\n"

#define STRICT_HELP                                                                                                 \
    "  lines over 250 tokens are translated in pieces (cut at sentence ends) and joined; lines that are not\n"        \
    "  valid UTF-8 or hold a NUL byte are left untranslated (an empty line in their place); each with a warning\n"  \
    "  naming the line; --strict: such a line stops the run instead (exit status 1)\n"

static int cmd_translate(int argc, char **argv)
{
    int out_open = cli_stdio_setup();
    common_opts c = {0, 0, 1, 0, 1};
    decode_cli d;
    decode_cli_default(&d);
    opt table[] = {COMMON_OPTS(c), DECODE_OPTS(d), {"--attention-svg", OPT_STR, &d.svg, 0, 0, 0}};
    if (argc > 2 && !strcmp(argv[2], "--help")) {
        printf("usage: s2s-translate translate --model FILE [options] < input > output\n"
               "  one line in, one line out, flushed per batch (--batch 1 on a terminal: per line)\n"
               "  --beam N (5) --nbest N (1: plain lines; >1: 'LINE ||| TEXT ||| SCORE') --greedy\n"
               "  --batch N (64; 1 when stdin is a terminal) --length-penalty X (0.6) --max-len-a X (2)\n"
               "  --max-len-b N (10) --no-repeat-ngram N --no-replace-unk --attention-svg FILE (first line)\n"
               "  --strict --device auto|cpu|cuda --threads N --quiet\n" ENSEMBLE_HELP PRECISION_HELP STRICT_HELP
               "example: echo 'Go now.' | s2s-translate translate --model runs/enfr.best.safetensors --beam 5\n");
        return 0;
    }
    if (!parse_opts(TOOL, argc, argv, 2, table, sizeof table / sizeof table[0]))
        return 2;
    if (d.nbest > d.beam)
        return cli_fail(TOOL, "--nbest %d cannot exceed --beam %d", d.nbest, d.beam), 2;
    if (!d.batch)
        d.batch = isatty(0) ? 1 : 64;
    if (!cli_need_stdout(TOOL, out_open))
        return 1;
    if (d.svg && !cli_file_check(TOOL, d.svg))
        return 1;
    loaded l;
    if (!load_models(&c, &d, &l))
        return loaded_free(&l), 1;
    s2s_translate_options o = decode_options(&d, &c);
    o.ensemble = l.more, o.ensemble_n = l.nmore;
    int nbest = o.decode.mode == S2S_DECODE_BEAM ? o.decode.nbest : 1, rc = 0, gone = 0;
    char **lines = calloc((size_t)d.batch, sizeof(char *)), **out = malloc(sizeof(char *) * (size_t)d.batch * nbest);
    float *scores = malloc(sizeof(float) * (size_t)d.batch * nbest);
    char *line = NULL;
    size_t cap = 0, done = 0, nul_line = 0, nul_at = 0;
    ssize_t r;
    long nul_lines = 0;
    int n = 0, eof = 0, svg_done = !d.svg;
    if (!lines || !out || !scores)
        rc = 1, fprintf(stderr, TOOL ": out of memory for batches of %d lines\n", d.batch);
    while (!rc && !gone && !eof) {
        if ((r = getline(&line, &cap, stdin)) >= 0) {
            if (!cli_line(TOOL, line, r, done + (size_t)n + 1, d.strict, &nul_lines, &nul_at))
                nul_line = done + (size_t)n + 1, eof = 1; /* the lines before it first */
            else if (!(lines[n++] = strdup(line)))
                rc = 1, fprintf(stderr, TOOL ": out of memory for line %zu\n", done + (size_t)n);
            if (!rc && !svg_done && !*line)
                fprintf(stderr, TOOL ": warning: --attention-svg: the first line is empty or left out; no heatmap\n");
            else if (!rc && !svg_done && !write_svg(&l, line, &o, d.svg))
                rc = 1;
            svg_done = svg_done || !rc;
        } else {
            eof = 1;
            if (ferror(stdin))
                rc = 1, fprintf(stderr, TOOL ": cannot read standard input: %s\n", strerror(errno));
        }
        if (!rc && n && (n == d.batch || eof)) {
            o.first_line = done + 1;
            if (s2s_translate(l.m, l.st, l.tt, (const char *const *)lines, (size_t)n, &o, out, scores) != S2S_OK) {
                rc = lib_fail();
            } else {
                int w = print_translations(out, scores, (size_t)n, nbest, done + 1);
                rc = w == CLI_OUT_FAILED, gone = w == CLI_OUT_GONE;
                s2s_strings_free(out, (size_t)n * nbest);
            }
        }
        if (n == d.batch || eof || rc) {
            s2s_strings_free(lines, (size_t)n);
            done += (size_t)n, n = 0;
        }
        if (nul_line && !rc && !gone)
            cli_nul_error(TOOL, nul_line, nul_at), rc = 1;
    }
    if (nul_lines > 20)
        fprintf(stderr, TOOL ": warning: %ld more lines held a NUL byte (not translated)\n", nul_lines - 20);
    free(line), free(lines), free(out), free(scores);
    loaded_free(&l);
    return gone ? 0 : cli_finish_stdout(TOOL, rc);
}

static int cmd_eval(int argc, char **argv)
{
    int out_open = cli_stdio_setup();
    common_opts c = {0, 0, 1, 0, 1};
    decode_cli d;
    const char *src = NULL, *ref = NULL, *tsv = NULL, *save = NULL;
    decode_cli_default(&d);
    opt table[] = {COMMON_OPTS(c), DECODE_OPTS(d), {"--src", OPT_STR, &src, 0, 0, 0}, {"--ref", OPT_STR, &ref, 0, 0, 0},
                   {"--tsv", OPT_STR, &tsv, 0, 0, 0}, {"--output", OPT_STR, &save, 0, 0, 0}};
    if (argc > 2 && !strcmp(argv[2], "--help")) {
        printf("usage: s2s-translate eval --model FILE (--src F --ref F | --tsv F) [--output F] [decoding options]\n"
               "  translates the sources, prints corpus BLEU (sacreBLEU 13a) and the time taken; --output F\n"
               "  writes the translations (replacing F only once all of them are written)\n"
               "  decoding options: as translate's (s2s-translate translate --help)\n" ENSEMBLE_HELP PRECISION_HELP STRICT_HELP
               "example: s2s-translate eval --model runs/ende.best.safetensors --src test.en --ref test.de --beam 5\n");
        return 0;
    }
    if (!parse_opts(TOOL, argc, argv, 2, table, sizeof table / sizeof table[0]))
        return 2;
    s2s_corpus *test = NULL;
    if (!tsv && !(src && ref))
        return cli_fail(TOOL, "eval needs --src and --ref, or --tsv"), 2;
    if (!cli_need_stdout(TOOL, out_open) || (save && !cli_file_check(TOOL, save)))
        return 1;
    s2s_corpus_options co = s2s_corpus_options_default();
    co.normalize_spaces = 0; /* score against the references as they are */
    co.log = log_to_stderr;  /* pairs the reader skips are named (the rest is info, as in train) */
    co.log_user = (void *)TOOL;
    s2s_status s = tsv ? s2s_corpus_read_tsv(tsv, &co, &test) : s2s_corpus_read_aligned(src, ref, &co, &test);
    if (s != S2S_OK)
        return lib_fail();
    loaded l;
    if (!load_models(&c, &d, &l))
        return s2s_corpus_free(test), loaded_free(&l), 1;
    size_t n = s2s_corpus_size(test);
    const char **in = malloc(sizeof(char *) * (n + 1)), **refs = malloc(sizeof(char *) * (n + 1));
    char **out = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; in && refs && i < n; i++)
        s2s_corpus_get(test, i, &in[i], &refs[i]);
    s2s_translate_options o = decode_options(&d, &c);
    o.ensemble = l.more, o.ensemble_n = l.nmore;
    o.decode.nbest = 1;
    double t0 = now_s();
    s = in && refs && out ? s2s_translate(l.m, l.st, l.tt, in, n, &o, out, NULL) : S2S_ERR_OUT_OF_MEMORY;
    double secs = now_s() - t0;
    s2s_bleu b;
    if (s == S2S_OK)
        s = s2s_bleu_corpus((const char *const *)out, refs, n, &b);
    int rc = s == S2S_OK ? 0 : lib_fail();
    cli_file f; /* the translations first: nothing is reported before they are written */
    if (!rc && save && cli_file_open(TOOL, save, &f)) {
        for (size_t i = 0; i < n; i++)
            fprintf(f.f, "%s\n", out[i]);
        rc = !cli_file_close(TOOL, &f, 1);
    } else if (!rc && save) {
        rc = 1;
    }
    if (!rc) {
        printf("BLEU = %.2f %.1f/%.1f/%.1f/%.1f (BP = %.3f hyp_len = %ld ref_len = %ld)\n", b.score, b.precisions[0],
               b.precisions[1], b.precisions[2], b.precisions[3], b.brevity_penalty, b.hyp_len, b.ref_len);
        printf("%zu sentences in %.2f s (%.1f sentences/s), %s, %s, %s\n", n, secs, n / secs,
               o.decode.mode == S2S_DECODE_GREEDY ? "greedy" : "beam", cli_precision_name(l.used),
               s2s_context_device_name(l.ctx));
    }
    s2s_strings_free(out, n);
    free(out), free(in), free(refs);
    s2s_corpus_free(test);
    loaded_free(&l);
    return cli_finish_stdout(TOOL, rc);
}

static int cmd_inspect(int argc, char **argv)
{
    int out_open = cli_stdio_setup();
    const char *model = NULL;
    opt table[] = {{"--model", OPT_STR, &model, 0, 0, 0}};
    if (argc > 2 && !strcmp(argv[2], "--help")) {
        printf("usage: s2s-translate inspect --model FILE\n"
               "  prints the config, provenance and tensor table of a model or checkpoint file and verifies every\n"
               "  tensor's CRC32 (exit status 1 when one does not match)\n");
        return 0;
    }
    if (!parse_opts(TOOL, argc, argv, 2, table, 1))
        return 2;
    if (!model)
        return cli_fail(TOOL, "inspect needs --model FILE"), 2;
    if (!cli_need_stdout(TOOL, out_open))
        return 1;
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    s2s_status s = buf ? s2s_model_file_report(model, buf, cap, &len) : S2S_ERR_OUT_OF_MEMORY;
    if (buf && len >= cap) { /* a long tensor table: ask again with room for all of it */
        free(buf);
        cap = len + 1;
        buf = malloc(cap);
        s = buf ? s2s_model_file_report(model, buf, cap, &len) : S2S_ERR_OUT_OF_MEMORY;
    }
    if (buf && len)
        fputs(buf, stdout);
    free(buf);
    return cli_finish_stdout(TOOL, s == S2S_OK ? 0 : lib_fail());
}

/* ---- average ------------------------------------------------------------------------------ */

static int cmd_average(int argc, char **argv)
{
    const char *out = NULL;
    const char **files = calloc((size_t)argc, sizeof *files);
    int n = 0;
    if (!files)
        return cli_fail(TOOL, "out of memory"), 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: s2s-translate average --out FILE MODEL1 MODEL2 ...\n"
                   "  writes a model file whose every weight is the mean of the given model or checkpoint files\n"
                   "  (the last K checkpoints of one run, say); the tokenizers and provenance come from the last file.\n"
                   "  Files whose config or tokenizers differ are refused. Works for s2s-chat's models too.\n"
                   "example: s2s-translate average --out runs/m30k.avg.safetensors runs/m30k.ckpt-*.safetensors\n");
            free(files);
            return 0;
        }
        if (!strcmp(argv[i], "--out")) {
            if (i + 1 >= argc) {
                free(files);
                return cli_fail(TOOL, "--out needs a value"), 2;
            }
            out = argv[++i];
        } else if (!strncmp(argv[i], "--", 2)) {
            free(files);
            return cli_fail(TOOL, "unknown option '%s' (s2s-translate average --help)", argv[i]), 2;
        } else {
            files[n++] = argv[i];
        }
    }
    if (!out || n < 1) {
        free(files);
        return cli_fail(TOOL, "average needs --out FILE and at least one model file"), 2;
    }
    s2s_context_options co = s2s_context_options_default();
    co.device = S2S_DEVICE_CPU;
    co.threads = 1;
    s2s_context *ctx = NULL;
    int rc = 0;
    if (s2s_context_create(&co, &ctx) != S2S_OK || s2s_model_average(ctx, files, n, out) != S2S_OK)
        rc = lib_fail();
    else
        fprintf(stderr, TOOL ": wrote %s, the mean of %d file%s\n", out, n, n == 1 ? "" : "s");
    s2s_context_free(ctx);
    free(files);
    return rc;
}

int main(int argc, char **argv)
{
    static const cli_command cmds[] = {
        {"train", "train a model on a parallel corpus", cmd_train},
        {"translate", "translate stdin to stdout, one line in, one line out", cmd_translate},
        {"eval", "translate a test set and print corpus BLEU (sacreBLEU-compatible) and the time", cmd_eval},
        {"inspect", "print a model file's config, provenance and tensors, verifying checksums", cmd_inspect},
        {"average", "average the weights of checkpoints (or model files) of one run into a model file", cmd_average},
    };
    return cli_dispatch(TOOL, cmds, (int)(sizeof cmds / sizeof cmds[0]), EXAMPLES, argc, argv);
}
