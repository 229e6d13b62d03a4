/* s2s-chat - train a chatbot on (utterance, reply) pairs and talk to it.
 *
 *   s2s-chat train (--tsv F | --dailydialog DIR | --chatterbot DIR) --out PREFIX [options]
 *   s2s-chat chat --model F        (a prompt with line editing and history; with piped
 *                                   stdin, one reply per input line)
 *
 * Thin over the public API. */
#include "cli.h"
#include <editline/readline.h>

#define TOOL "s2s-chat"
#define MMI_WEIGHT 3 /* chosen on development questions (README): 5 and more begin to pick off-topic replies */
#define TEXT_OF(x) #x
#define TEXT(x) TEXT_OF(x)
enum { MAX_BEAM = 64 };

static const char *EXAMPLES =
    "examples:\n"
    "  s2s-chat train --dailydialog data/dailydialog --out runs/chat --minutes 60\n"
    "  s2s-chat chat --model runs/chat.best.safetensors\n";

static int lib_fail(void)
{
    fprintf(stderr, TOOL ": %s\n", s2s_last_error());
    return 1;
}

/* ---- train ----------------------------------------------------------------------------------- */

static char *join(const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

/* DailyDialog's train split for training, its validation split (deduplicated against train)
 * for validation. */
static s2s_status read_dailydialog(const char *dir, const s2s_corpus_options *o, s2s_corpus **train,
                                   s2s_corpus **valid)
{
    char *tp = join(dir, "train/dialogues_train.txt"), *vp = join(dir, "validation/dialogues_validation.txt");
    long excluded = 0;
    s2s_status s = tp && vp ? s2s_corpus_create(train) : S2S_ERR_OUT_OF_MEMORY;
    if (s == S2S_OK)
        s = s2s_corpus_add_dailydialog(*train, tp, NULL, o, NULL);
    if (s == S2S_OK)
        s = s2s_corpus_create(valid);
    if (s == S2S_OK)
        s = s2s_corpus_add_dailydialog(*valid, vp, *train, o, &excluded);
    if (s == S2S_OK)
        fprintf(stderr, TOOL ": validation: %zu pairs after removing %ld that also occur in training\n",
                s2s_corpus_size(*valid), excluded);
    free(tp), free(vp);
    return s;
}

static s2s_status read_data(const char *tsv, const char *dd, const char *cb, s2s_corpus **train, s2s_corpus **valid)
{
    s2s_corpus_options o = s2s_corpus_options_default();
    o.log = log_to_stderr;
    o.log_user = (void *)TOOL;
    *train = *valid = NULL;
    if (tsv)
        return s2s_corpus_read_tsv(tsv, &o, train);
    if (dd)
        return read_dailydialog(dd, &o, train, valid);
    s2s_status s = s2s_corpus_create(train);
    return s == S2S_OK ? s2s_corpus_add_chatterbot(*train, cb, &o) : s;
}

/* Replaces *c by a corpus of its pairs the other way round (reply, utterance). */
static s2s_status swap_pairs(s2s_corpus **c)
{
    if (!*c) /* no validation set */
        return S2S_OK;
    s2s_corpus *r = NULL;
    s2s_status s = s2s_corpus_create(&r);
    for (size_t i = 0; s == S2S_OK && i < s2s_corpus_size(*c); i++) {
        const char *u, *v;
        s = s2s_corpus_get(*c, i, &u, &v);
        if (s == S2S_OK)
            s = s2s_corpus_add(r, v, u);
    }
    if (s != S2S_OK) {
        s2s_corpus_free(r);
        return s;
    }
    s2s_corpus_free(*c);
    *c = r;
    return S2S_OK;
}

static int cmd_train(int argc, char **argv)
{
    cli_stdio_setup();
    common_opts c = {0, 0, 1, 0, 0};
    train_opts t;
    const char *tsv = NULL, *dd = NULL, *cb = NULL;
    int reverse = 0;
    train_opts_default(&t);
    opt table[] = {COMMON_OPTS(c), TRAIN_OPTS(t), {"--tsv", OPT_STR, &tsv, 0, 0, 0},
                   {"--dailydialog", OPT_STR, &dd, 0, 0, 0}, {"--chatterbot", OPT_STR, &cb, 0, 0, 0},
                   {"--reverse", OPT_FLAG, &reverse, 0, 0, 0}};
    if (argc > 2 && !strcmp(argv[2], "--help")) {
        printf("usage: s2s-chat train (--tsv F | --dailydialog DIR | --chatterbot DIR_OR_FILE) --out PREFIX "
               "[options]\n"
               "  --dailydialog DIR: DailyDialog's folder (train/ and validation/; validation deduplicated)\n"
               "  --reverse: learn the utterance from the reply, for chat --mmi (reranking replies by how well\n"
               "             they predict what was said)\n" TRAIN_OPTS_HELP
               "  --device auto|cpu|cuda --threads N --seed N --quiet\n"
               "example: s2s-chat train --dailydialog data/dailydialog --out runs/chat --minutes 60\n");
        return 0;
    }
    if (!parse_opts(TOOL, argc, argv, 2, table, sizeof table / sizeof table[0]) || !cli_train_precision_ok(TOOL, &c))
        return 2;
    if (!t.out || (!!tsv + !!dd + !!cb) != 1)
        return cli_fail(TOOL, "train needs --out and exactly one of --tsv, --dailydialog, --chatterbot"), 2;
    if (s2s_output_check(t.out, 0) != S2S_OK) /* before any work; the trainer checks the space too */
        return lib_fail();
    apply_train_choices(&t);
    t.to.progress = print_progress;
    t.to.progress_user = isatty(2) ? (void *)1 : NULL;
    s2s_corpus *train = NULL, *valid = NULL;
    s2s_status rs = read_data(tsv, dd, cb, &train, &valid);
    if (rs == S2S_OK && reverse && (rs = swap_pairs(&train)) == S2S_OK)
        rs = swap_pairs(&valid);
    if (rs != S2S_OK) {
        s2s_corpus_free(train), s2s_corpus_free(valid);
        return lib_fail();
    }
    s2s_context *ctx = make_context(TOOL, &c, 1);
    t.shared_vocab = 1; /* utterances and replies are one language */
    int rc = ctx ? cli_train(TOOL, ctx, &t, train, valid) : 1;
    s2s_context_free(ctx);
    s2s_corpus_free(train);
    s2s_corpus_free(valid);
    return rc;
}

/* ---- chat ------------------------------------------------------------------------------------ */

typedef struct session {
    s2s_context *ctx;
    s2s_model *m;
    s2s_model *more[S2S_ENSEMBLE_MAX]; /* --model given again: an ensemble with m */
    int nmore;
    s2s_tokenizer *st, *tt;
    s2s_translate_options o;
    s2s_model *rev; /* --mmi: the reply -> utterance model that reranks beam search's replies */
    s2s_tokenizer *rst, *rtt;
    float mmi_weight;
    int interactive, strict;
    long turn;      /* replies asked for; -1: stop with status 1 */
    int gone;       /* the reader of standard output has gone: stop with status 0 */
    long nul_lines; /* piped lines left out for a NUL byte */
} session;

static void chat_help(void)
{
    puts("commands: :beam N (beam search, the default), :lp A (beam length penalty), :mmi W (reranking weight, "
         "with --mmi; 0: off), :greedy, :sample (top-p sampling), :temp X, :topk K, :topp P, :help, :quit");
}

/* Applies a ":command"; returns 0 to quit. */
static int command(session *z, const char *line)
{
    s2s_decode_options *d = &z->o.decode;
    char name[16];
    double v = 0;
    int n = sscanf(line, ":%15s %lf", name, &v);
    if (n >= 1 && !strcmp(name, "quit"))
        return 0;
    if (n == 2 && !strcmp(name, "beam") && v >= 1 && v <= MAX_BEAM)
        d->mode = S2S_DECODE_BEAM, d->beam_size = (int)v;
    else if (n == 2 && !strcmp(name, "lp") && v >= 0 && v <= 10)
        d->length_penalty = (float)v;
    else if (n >= 1 && !strcmp(name, "mmi") && !z->rev)
        printf("no reranking model: start the chat with --mmi FILE (a model from train --reverse)\n");
    else if (n == 2 && !strcmp(name, "mmi") && v >= 0 && v <= 100)
        z->mmi_weight = (float)v;
    else if (n >= 1 && !strcmp(name, "greedy"))
        d->mode = S2S_DECODE_GREEDY;
    else if (n >= 1 && !strcmp(name, "sample"))
        d->mode = S2S_DECODE_SAMPLE;
    else if (n == 2 && !strcmp(name, "temp") && v > 0)
        d->temperature = (float)v;
    else if (n == 2 && !strcmp(name, "topk") && v >= 0)
        d->top_k = (int)v;
    else if (n == 2 && !strcmp(name, "topp") && v > 0 && v <= 1)
        d->top_p = (float)v;
    else if (n >= 1 && !strcmp(name, "help"))
        chat_help();
    else
        printf("unknown command or value: %s (:help lists them)\n", line);
    if (strcmp(name, "help"))
        printf("(decoding: %s, beam %d, length penalty %.2f, reranking weight %.2f%s, temperature %.2f, top-k %d, "
               "top-p %.2f)\n",
               d->mode == S2S_DECODE_BEAM ? "beam" : d->mode == S2S_DECODE_GREEDY ? "greedy" : "sampling",
               d->beam_size, d->length_penalty, z->mmi_weight, z->rev ? "" : " (no --mmi model)", d->temperature,
               d->top_k, d->top_p);
    return 1;
}

static int reply(session *z, const char *line)
{
    char *unknown[16];
    int nunk = 0;
    if (s2s_tokenizer_unknown_words(z->st, line, unknown, 16, &nunk) == S2S_OK && nunk > 0) {
        fprintf(stderr, "(words I do not know:");
        for (int i = 0; i < nunk; i++)
            fprintf(stderr, " %s", unknown[i]);
        fprintf(stderr, ")\n");
        s2s_strings_free(unknown, (size_t)(nunk < 16 ? nunk : 16));
    }
    z->o.decode.seed = (uint64_t)++z->turn;
    z->o.first_line = (size_t)z->turn; /* messages name the line (piped) or turn */
    s2s_translate_options o = z->o;
    int rerank = z->rev && o.decode.mode == S2S_DECODE_BEAM && z->mmi_weight > 0, n = 1, best = 0;
    if (rerank) /* the whole beam, reranked by how well each reply predicts the line */
        n = o.decode.nbest = o.decode.beam_size;
    char *outs[MAX_BEAM] = {NULL};
    float scores[MAX_BEAM];
    s2s_status s = s2s_translate(z->m, z->st, z->tt, &line, 1, &o, outs, scores);
    int any = 0; /* a line left out (not UTF-8) has only empty replies: nothing to rerank */
    for (int i = 0; s == S2S_OK && i < n; i++)
        any |= outs[i][0] != 0;
    int ntok = 0; /* a line answered in pieces is beyond what the reverse model scores */
    s2s_tokenizer_encode(z->st, line, NULL, 0, &ntok);
    rerank = rerank && any && ntok <= o.max_src_tokens;
    if (s == S2S_OK && rerank &&
        s2s_rerank_reverse(z->rev, z->rst, z->rtt, line, (const char *const *)outs, scores, n, z->mmi_weight, NULL,
                           &best) != S2S_OK) {
        fprintf(stderr, TOOL ": not reranked: %s\n", s2s_last_error());
        best = 0;
    }
    int w = CLI_OUT_OK, err = 0;
    if (s == S2S_OK) {
        cli_note(printf(z->interactive ? "bot> %s\n" : "%s\n", outs[best]), &err);
        w = cli_flush_err(TOOL, stdout, "the reply to standard output", err);
    }
    s2s_strings_free(outs, (size_t)n);
    if (s != S2S_OK)
        return lib_fail(), 0;
    if (w != CLI_OUT_OK && z->interactive) { /* said on stderr; the prompt goes on */
        clearerr(stdout);
        return 1;
    }
    z->gone = w == CLI_OUT_GONE;
    return w == CLI_OUT_OK;
}

static int chat_loop(session *z)
{
    char *line = NULL;
    size_t cap = 0;
    int go = 1;
    if (z->interactive)
        puts("Type a message (:help for commands, :quit or Ctrl-D to leave).");
    while (go) {
        char *in;
        if (z->interactive) {
            free(line);
            line = in = readline("you> ");
            if (!in)
                break;
            if (*in)
                add_history(in);
        } else {
            ssize_t r = getline(&line, &cap, stdin);
            if (r < 0)
                break;
            size_t at = 0;
            if (!cli_line(TOOL, line, r, (size_t)z->turn + 1, z->strict, &z->nul_lines, &at)) {
                cli_nul_error(TOOL, (size_t)z->turn + 1, at);
                z->turn = -1;
                break;
            }
            in = line;
        }
        if (in[0] == ':' && z->interactive)
            go = command(z, in);
        else if (!reply(z, in))
            go = 0, z->turn = z->gone ? z->turn : -1;
    }
    free(line);
    if (z->gone)
        return 0;
    return cli_finish_stdout(TOOL, z->turn < 0 ? 1 : 0);
}

static int cmd_chat(int argc, char **argv)
{
    int out_open = cli_stdio_setup();
    common_opts c = {0, 0, 1, 0, 1};
    const char *model = NULL, *mmi = NULL;
    str_list models = {{NULL}, 0};
    session z;
    memset(&z, 0, sizeof z);
    z.o = s2s_translate_options_default();
    z.o.decode.no_repeat_ngram = 3;
    z.mmi_weight = -1; /* not given */
    int beam = 10, greedy = 0, sample = 0; /* beam 10: chosen on development questions (README) */
    s2s_decode_options *d = &z.o.decode;
    opt table[] = {COMMON_OPTS(c),
                   {"--model", OPT_STRS, &models, 0, 0, 0},
                   {"--beam", OPT_INT, &beam, 1, MAX_BEAM, 0},
                   {"--length-penalty", OPT_FLOAT, &d->length_penalty, 0, 10, 0},
                   {"--greedy", OPT_FLAG, &greedy, 0, 0, 0},
                   {"--sample", OPT_FLAG, &sample, 0, 0, 0},
                   {"--temp", OPT_FLOAT, &d->temperature, 0.01, 100, 0},
                   {"--topk", OPT_INT, &d->top_k, 0, 1000000, 0},
                   {"--topp", OPT_FLOAT, &d->top_p, 0.01, 1, 0},
                   {"--mmi", OPT_STR, &mmi, 0, 0, 0},
                   {"--mmi-weight", OPT_FLOAT, &z.mmi_weight, 0, 100, 0},
                   {"--strict", OPT_FLAG, &z.strict, 0, 0, 0}};
    if (argc > 2 && !strcmp(argv[2], "--help")) {
        printf("usage: s2s-chat chat --model FILE [--beam N [--length-penalty A] [--mmi FILE [--mmi-weight W]]\n"
               "                     | --greedy | --sample [--temp X] [--topk K] [--topp P]] [--device auto|cpu|cuda]\n"
               "                     [--precision fp32|bf16|int8] [--threads N]\n"
               "  --model FILE again: an ensemble (files of one tokenizer pair; each step's log-probabilities averaged)\n"
               "  --precision: the weights' precision on the CPU (converted at load; bf16 needs AVX-512 BF16 or AMX,\n"
               "  int8 AVX2; without, fp32 with a warning)\n"
               "  on a terminal: a prompt with line editing and history; :help lists the commands\n"
               "  with piped input: one reply per input line (the options set the decoding)\n"
               "  decoding: beam search, beam 10 (default), scores divided by ((5 + length) / 6)^A with\n"
               "  A = --length-penalty (0.6; larger favours longer replies); --greedy; --sample: sampling\n"
               "  with temperature --temp (1), top-k --topk (0: off), top-p --topp (1: off); replies never\n"
               "  repeat a 3-gram\n"
               "  --mmi FILE: a model trained with train --reverse (reply -> utterance) reranks the whole beam:\n"
               "  each reply's score plus W (--mmi-weight, " TEXT(MMI_WEIGHT) ") times the reverse model's mean log-probability\n"
               "  of the line per token, favouring replies that answer what was said over generic ones\n"
               "  lines over 250 tokens are answered in pieces; lines that are not valid UTF-8 or hold a NUL byte\n"
               "  get an empty reply, with a warning naming the line; --strict: such a line ends the chat (status 1)\n"
               "example: echo 'How are you?' | s2s-chat chat --model runs/chat.best.safetensors\n"
               "         s2s-chat chat --model runs/chat.best.safetensors --mmi runs/chatrev.best.safetensors\n"
               "         s2s-chat chat --model runs/chat.best.safetensors --sample --temp 0.8 --topp 0.9 < lines.txt\n");
        return 0;
    }
    if (!parse_opts(TOOL, argc, argv, 2, table, sizeof table / sizeof table[0]))
        return 2;
    model = models.n ? models.v[0] : NULL;
    if (!model)
        return cli_fail(TOOL, "chat needs --model FILE"), 2;
    z.o.decode.beam_size = beam;
    if (greedy && sample)
        return cli_fail(TOOL, "choose one of --greedy and --sample"), 2;
    if (greedy)
        d->mode = S2S_DECODE_GREEDY;
    if (sample)
        d->mode = S2S_DECODE_SAMPLE;
    if (mmi && (greedy || sample))
        return cli_fail(TOOL, "--mmi reranks beam search's replies; it does not go with --greedy or --sample"), 2;
    if (!mmi && z.mmi_weight >= 0)
        return cli_fail(TOOL, "--mmi-weight needs --mmi FILE (the reverse model whose weight it sets)"), 2;
    if (z.mmi_weight < 0)
        z.mmi_weight = (float)MMI_WEIGHT;
    z.o.batch_size = 1;
    z.o.strict = z.strict;
    d->precision = cli_decode_precision(&c);
    z.interactive = isatty(0) && isatty(1);
    if (!z.interactive && !cli_need_stdout(TOOL, out_open))
        return 1;
    int rc = 1;
    if ((z.ctx = make_context(TOOL, &c, 0)) && s2s_model_load(z.ctx, model, &z.m, &z.st, &z.tt, NULL) == S2S_OK &&
        (!mmi || s2s_model_load(z.ctx, mmi, &z.rev, &z.rst, &z.rtt, NULL) == S2S_OK)) {
        if (!z.st || !z.tt || (mmi && (!z.rst || !z.rtt)))
            fprintf(stderr, TOOL ": %s holds no tokenizer\n", !z.st || !z.tt ? model : mmi);
        else if (cli_prepare_decoding(TOOL, z.m, &c, NULL) &&
                 cli_load_ensemble(TOOL, z.ctx, &models, z.st, z.tt, &c, z.more, &z.nmore)) {
            z.o.ensemble = z.more, z.o.ensemble_n = z.nmore;
            rc = chat_loop(&z);
        }
    } else if (z.ctx) {
        lib_fail();
    }
    for (int i = 0; i < z.nmore; i++)
        s2s_model_free(z.more[i]);
    s2s_model_free(z.rev);
    s2s_tokenizer_free(z.rst);
    s2s_tokenizer_free(z.rtt);
    s2s_model_free(z.m);
    if (z.tt != z.st)
        s2s_tokenizer_free(z.tt);
    s2s_tokenizer_free(z.st);
    s2s_context_free(z.ctx);
    return rc;
}

int main(int argc, char **argv)
{
    static const cli_command cmds[] = {
        {"train", "train on dialogue pairs: a TSV of utterance<TAB>reply, DailyDialog, or ChatterBot YAML", cmd_train},
        {"chat", "talk to a trained model (prompt commands: :beam N, :lp A, :mmi W, :greedy, :sample,\n"
                 "             :temp X, :topk K, :topp P, :help, :quit)", cmd_chat},
    };
    return cli_dispatch(TOOL, cmds, (int)(sizeof cmds / sizeof cmds[0]), EXAMPLES, argc, argv);
}
