/* cli.h - what the command-line tools share: table-driven option parsing with one-line
 * errors, the model/trainer/device options both tools take, and progress printing. Included
 * by apps/s2s-translate.c and apps/s2s-chat.c (each tool is one translation unit). */
#ifndef S2S_CLI_H
#define S2S_CLI_H
#pragma GCC diagnostic ignored "-Wunused-function" /* each tool uses a part of this */

#include <seq2seq.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { OPT_INT, OPT_LONG, OPT_FLOAT, OPT_DOUBLE, OPT_STR, OPT_FLAG, OPT_CHOICE, OPT_STRS } opt_type;

/* OPT_STRS: an option given several times (--model A --model B), in order. */
typedef struct str_list {
    const char *v[16];
    int n;
} str_list;

typedef struct opt {
    const char *name; /* "--beam" */
    opt_type type;
    void *dst;            /* int*, long*, float*, double*, const char**, int* (flag, choice) */
    double lo, hi;        /* numeric range */
    const char *choices;  /* OPT_CHOICE: "a|b|c", stored as the index */
} opt;

static int cli_fail(const char *tool, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", tool);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see --help)\n", stderr);
    return 0;
}

/* ---- output that is never lost ------------------------------------------------------------
 * Every write to standard output and to files is checked: a failure stops the command with a
 * message naming the destination and exit status 1, and nothing is reported as done that was
 * not written. A reader that has gone (EPIPE: `| head -1`) is a normal end: the command stops
 * quietly with status 0. */

enum { CLI_OUT_FAILED = 0, CLI_OUT_OK = 1, CLI_OUT_GONE = 2 };

/* At the start of a tool: SIGPIPE ignored (a reader that has gone shows as EPIPE), and standard
 * input, output or error that the caller closed (`>&-`) opened on /dev/null, so that no file the
 * tool opens takes their numbers. Returns whether standard output was open. */
static int cli_stdio_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    int out_open = fcntl(1, F_GETFD) != -1;
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) == -1) {
            int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
            if (n >= 0 && n != fd)
                dup2(n, fd), close(n);
        }
    return out_open;
}

/* Flushes f (named dest in messages) and checks it: CLI_OUT_OK; CLI_OUT_GONE when the reader has
 * gone (quiet); CLI_OUT_FAILED with a message. err: the errno of a printf to f that failed
 * before (0: none), since a long line's failed write empties the buffer and the flush then
 * succeeds: only the stream's error flag would remain, without its reason. */
static int cli_flush_err(const char *tool, FILE *f, const char *dest, int err)
{
    errno = 0;
    if (fflush(f) == 0 && !ferror(f) && !err)
        return CLI_OUT_OK;
    err = err ? err : errno;
    if (!err) { /* the error flag without a reason: a pipe whose reader left shows POLLERR */
        struct pollfd p = {fileno(f), POLLOUT, 0};
        err = poll(&p, 1, 0) == 1 && (p.revents & POLLERR) ? EPIPE : 0;
    }
    if (err == EPIPE)
        return CLI_OUT_GONE;
    fprintf(stderr, "%s: cannot write %s: %s\n", tool, dest, err ? strerror(err) : "write error");
    return CLI_OUT_FAILED;
}

static int cli_flush(const char *tool, FILE *f, const char *dest) { return cli_flush_err(tool, f, dest, 0); }

/* printf's result as an errno to hand to cli_flush_err (the first failure is kept in *err). */
static void cli_note(int printed, int *err)
{
    if (printed < 0 && !*err)
        *err = errno ? errno : EIO;
}

/* The end of a command that wrote to standard output: its last flush and close, checked. Returns
 * the command's exit status given rc, the status it had so far. */
static int cli_finish_stdout(const char *tool, int rc)
{
    if (rc) { /* a failure already said what it was */
        fclose(stdout);
        return rc;
    }
    int w = cli_flush(tool, stdout, "standard output");
    if (w == CLI_OUT_OK && fclose(stdout) != 0 && errno != EPIPE) {
        fprintf(stderr, "%s: cannot write standard output: %s\n", tool, strerror(errno));
        w = CLI_OUT_FAILED;
    }
    return w == CLI_OUT_FAILED;
}

/* Refuses a command that writes to standard output when the caller closed it. */
static int cli_need_stdout(const char *tool, int out_open)
{
    if (!out_open)
        fprintf(stderr, "%s: standard output is closed; the results would be lost (redirect it to a file, or to "
                        "/dev/null to discard them)\n", tool);
    return out_open;
}

/* A file the tool writes whole (eval --output): a regular file (or a new one) is written under a
 * temporary name beside it and renamed over it only when complete, so a failure leaves the old
 * one as it was; a device or pipe is written directly. */
typedef struct cli_file {
    FILE *f;
    const char *path;
    char *tmp;        /* NULL: written directly */
    char tmp_target[PATH_MAX]; /* what tmp replaces (path, or the file a link names) */
} cli_file;

/* Before the work: is path writable as such? A directory, or a folder that takes no new file, is
 * refused with a message. */
__attribute__((unused)) static int cli_file_check(const char *tool, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "%s: %s is a directory; give a file name\n", tool, path);
        return 0;
    }
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return 1; /* a device or pipe: written directly */
    if (s2s_output_check(path, 0) != S2S_OK) {
        fprintf(stderr, "%s: %s\n", tool, s2s_last_error());
        return 0;
    }
    return 1;
}

__attribute__((unused)) static int cli_file_open(const char *tool, const char *path, cli_file *o)
{
    struct stat sb;
    memset(o, 0, sizeof o[0]);
    o->path = path;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        if (!(o->f = fopen(path, "w")))
            fprintf(stderr, "%s: cannot open %s: %s\n", tool, path, strerror(errno));
        return o->f != NULL;
    }
    char real[PATH_MAX]; /* a link is followed: the file it names is replaced, the link stays */
    const char *target = realpath(path, real) ? real : path;
    mode_t mode = stat(target, &sb) == 0 ? sb.st_mode & 07777 : 0644;
    size_t n = strlen(target) + 16;
    int fd = -1;
    if ((o->tmp = malloc(n))) {
        snprintf(o->tmp, n, "%s.tmp-XXXXXX", target);
        snprintf(o->tmp_target, sizeof o->tmp_target, "%s", target);
        if ((fd = mkstemp(o->tmp)) >= 0)
            fchmod(fd, mode); /* mkstemp makes 0600: keep the old file's mode, or 0644 */
    }
    o->path = path;
    if (fd < 0 || !(o->f = fdopen(fd, "w"))) {
        fprintf(stderr, "%s: cannot create a file beside %s: %s\n", tool, path, strerror(errno));
        if (fd >= 0)
            close(fd), unlink(o->tmp);
        free(o->tmp), o->tmp = NULL;
        return 0;
    }
    return 1;
}

/* Flushes, syncs and closes the file, then renames it into place; 0 with a message (and the
 * temporary file removed) when any step fails. keep = 0 discards it (an earlier failure). */
__attribute__((unused)) static int cli_file_close(const char *tool, cli_file *o, int keep)
{
    if (!o->f)
        return 0;
    int w = keep ? cli_flush(tool, o->f, o->path) : CLI_OUT_FAILED, ok = w == CLI_OUT_OK;
    if (w == CLI_OUT_GONE) /* a pipe named as the file: its reader left before the end */
        fprintf(stderr, "%s: cannot write %s: the reader has gone (broken pipe)\n", tool, o->path);
    if (ok && o->tmp && fsync(fileno(o->f)) != 0)
        ok = 0, fprintf(stderr, "%s: cannot write %s: %s\n", tool, o->path, strerror(errno));
    if (fclose(o->f) != 0 && ok)
        ok = 0, fprintf(stderr, "%s: cannot write %s: %s\n", tool, o->path, strerror(errno));
    o->f = NULL;
    if (ok && o->tmp && rename(o->tmp, o->tmp_target) != 0)
        ok = 0, fprintf(stderr, "%s: cannot rename the finished file to %s: %s\n", tool, o->path, strerror(errno));
    if (o->tmp && !ok)
        unlink(o->tmp);
    free(o->tmp), o->tmp = NULL;
    return ok;
}

/* ---- input lines ---------------------------------------------------------------------------
 * A line read with getline (r bytes) loses its LF or CR LF; a NUL byte inside it cannot reach
 * the library (a C string would end there), so the line is left out: without strict a warning
 * names the line and it stands as an empty line (returns 1); with strict it returns 0 and *nul_at
 * gets the byte, so that the caller can first finish the lines before it (one of which may be
 * the first to fail) and then stop with cli_nul_error. */
static void cli_nul_error(const char *tool, size_t lineno, size_t at)
{
    fprintf(stderr, "%s: line %zu holds a NUL byte at byte %zu; remove it (or leave out --strict to have such lines "
                    "left untranslated)\n", tool, lineno, at);
}

static int cli_line(const char *tool, char *line, ssize_t r, size_t lineno, int strict, long *nul_lines,
                    size_t *nul_at)
{
    while (r > 0 && (line[r - 1] == '\n' || line[r - 1] == '\r'))
        line[--r] = '\0';
    const char *nul = memchr(line, '\0', (size_t)r);
    if (!nul)
        return 1;
    *nul_at = (size_t)(nul - line) + 1;
    if (strict)
        return 0;
    if ((*nul_lines)++ < 20)
        fprintf(stderr, "%s: warning: line %zu holds a NUL byte at byte %zu: not translated (an empty line stands in "
                        "its place)\n", tool, lineno, *nul_at);
    line[0] = '\0';
    return 1;
}

/* ---- subcommands ------------------------------------------------------------------------ */

/* One subcommand: its name, a line for the usage text, and its main (argv[1] is the name). */
typedef struct cli_command {
    const char *name, *summary;
    int (*run)(int argc, char **argv);
} cli_command;

/* Prints "usage: TOOL COMMAND [options]", the commands with their summaries, then tail. */
static void cli_usage(FILE *f, const char *tool, const cli_command *cmds, int n, const char *tail)
{
    fprintf(f, "usage: %s COMMAND [options]   (%s COMMAND --help for details)\ncommands:\n", tool, tool);
    for (int i = 0; i < n; i++)
        fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
    fputs(tail, f);
}

/* A tool's main: --help (exit 0), a missing command (usage on stderr, exit 2), an unknown one
 * (exit 2), or the command's own exit status. */
static int cli_dispatch(const char *tool, const cli_command *cmds, int n, const char *tail, int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        cli_usage(argc < 2 ? stderr : stdout, tool, cmds, n, tail);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < n; i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].run(argc, argv);
    fprintf(stderr, "%s: unknown command '%s'\n", tool, argv[1]);
    cli_usage(stderr, tool, cmds, n, tail);
    return 2;
}

static int choice_index(const char *choices, const char *v)
{
    int i = 0;
    size_t n = strlen(v);
    for (const char *p = choices; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return i;
        p += len + (bar ? 1 : 0);
    }
    return -1;
}

/* Sets one option from its value text; 0 with a message on a bad value. */
static int set_opt(const char *tool, const opt *o, const char *v)
{
    char *end = NULL;
    errno = 0;
    double x = o->type == OPT_STR || o->type == OPT_STRS || o->type == OPT_CHOICE ? 0 : strtod(v, &end);
    int numeric = o->type == OPT_INT || o->type == OPT_LONG || o->type == OPT_FLOAT || o->type == OPT_DOUBLE;
    if (numeric && (!*v || *end || errno || x < o->lo || x > o->hi))
        return cli_fail(tool, "%s needs a number in [%g, %g], not '%s'", o->name, o->lo, o->hi, v);
    if ((o->type == OPT_INT || o->type == OPT_LONG) && x != (double)(long)x)
        return cli_fail(tool, "%s needs a whole number, not '%s'", o->name, v);
    switch (o->type) {
    case OPT_INT: *(int *)o->dst = (int)x; break;
    case OPT_LONG: *(long *)o->dst = (long)x; break;
    case OPT_FLOAT: *(float *)o->dst = (float)x; break;
    case OPT_DOUBLE: *(double *)o->dst = x; break;
    case OPT_STR: *(const char **)o->dst = v; break;
    case OPT_STRS: {
        str_list *l = o->dst;
        if (l->n == (int)(sizeof l->v / sizeof l->v[0]))
            return cli_fail(tool, "%s is given more than %d times", o->name, l->n);
        l->v[l->n++] = v;
        break;
    }
    case OPT_CHOICE: {
        int k = choice_index(o->choices, v);
        if (k < 0)
            return cli_fail(tool, "%s takes one of %s, not '%s'", o->name, o->choices, v);
        *(int *)o->dst = k;
        break;
    }
    case OPT_FLAG: *(int *)o->dst = 1; break;
    }
    return 1;
}

/* Parses argv[first..] against the table; 0 on an unknown option or a bad value. */
static int parse_opts(const char *tool, int argc, char **argv, int first, const opt *table, int n)
{
    for (int i = first; i < argc; i++) {
        const opt *o = NULL;
        for (int k = 0; k < n && !o; k++)
            if (!strcmp(argv[i], table[k].name))
                o = &table[k];
        if (!o)
            return cli_fail(tool, "unknown option '%s'", argv[i]);
        if (o->type == OPT_FLAG) {
            *(int *)o->dst = 1;
            continue;
        }
        if (i + 1 >= argc)
            return cli_fail(tool, "%s needs a value", o->name);
        if (!set_opt(tool, o, argv[++i]))
            return 0;
    }
    return 1;
}

/* ---- options both tools take -------------------------------------------------------------- */

typedef struct common_opts {
    int device;       /* 0 auto, 1 cpu, 2 cuda */
    int threads;
    long seed;
    int precision;    /* 0 fp32, 1 tf32, 2 bf16, 3 int8: training: the GEMMs' (the context's; bf16
                         on the GPU or the CPU); decoding: the GPU's GEMMs and the weights' on the
                         CPU (cli_decode_precision) */
    int quiet;
} common_opts;

#define COMMON_OPTS(c)                                                                                             \
    {"--device", OPT_CHOICE, &(c).device, 0, 0, "auto|cpu|cuda"}, {"--threads", OPT_INT, &(c).threads, 0, 1024, 0}, \
        {"--seed", OPT_LONG, &(c).seed, 0, 2147483647, 0}, {"--precision", OPT_CHOICE, &(c).precision, 0, 0, "fp32|tf32|bf16|int8"}, \
        {"--quiet", OPT_FLAG, &(c).quiet, 0, 0, 0}

/* The library's messages on stderr, prefixed by the tool; a run shows at most 200 warnings (a
 * file of bad lines would bury the rest), then says once that it stops showing them. */
static void log_to_stderr(s2s_log_level level, const char *msg, void *user)
{
    static long warnings; /* this program's, not the library's: one count per run */
    if (level == S2S_LOG_WARN && ++warnings > 200) {
        if (warnings == 201)
            fprintf(stderr, "%s: warning: more warnings follow; they are not shown\n", (const char *)user);
        return;
    }
    fprintf(stderr, "%s: %s%s\n", (const char *)user, level == S2S_LOG_WARN ? "warning: " : level > S2S_LOG_WARN ? "error: " : "",
            msg);
}

/* training: the context's precision is --precision's on every device (bf16 products on the CPU
 * where it has AVX-512 BF16 or AMX); decoding: on the CPU --precision is the weights'
 * (cli_decode_precision) and the context stays fp32, as the decoding precision tests expect. */
static s2s_context *make_context_at(const char *tool, const common_opts *c, s2s_precision prec_ctx);
static s2s_context *make_context(const char *tool, const common_opts *c, int training)
{
    /* int8 is a decoding precision only: the context (the GEMMs) stays fp32 */
    static const s2s_precision prec[4] = {S2S_PRECISION_FP32, S2S_PRECISION_TF32, S2S_PRECISION_BF16,
                                          S2S_PRECISION_FP32};
    s2s_precision want = prec[c->precision];
    s2s_context *ctx;
    if (training || want == S2S_PRECISION_FP32 || c->device == 2) {
        ctx = make_context_at(tool, c, want);
    } else { /* decoding: the CPU's context stays fp32; on auto, where it lands decides */
        ctx = make_context_at(tool, c, S2S_PRECISION_FP32);
        if (ctx && c->device == 0 && s2s_context_device(ctx) == S2S_DEVICE_CUDA) {
            s2s_context_free(ctx); /* a GPU: its GEMMs at --precision */
            ctx = make_context_at(tool, c, want);
        }
    }
    int rank = 0;
    s2s_comm_launcher(&rank, NULL);
    if (ctx && !c->quiet && rank == 0)
        fprintf(stderr, "%s: device: %s\n", tool, s2s_context_device_name(ctx));
    return ctx;
}

static s2s_context *make_context_at(const char *tool, const common_opts *c, s2s_precision prec_ctx)
{
    s2s_context_options o = s2s_context_options_default();
    static const s2s_device dev[3] = {S2S_DEVICE_AUTO, S2S_DEVICE_CPU, S2S_DEVICE_CUDA};
    o.device = dev[c->device];
    o.threads = c->threads;
    o.seed = (uint64_t)c->seed;
    o.precision = prec_ctx;
    o.log = log_to_stderr;
    o.log_user = (void *)tool;
    o.log_level = c->quiet ? S2S_LOG_WARN : S2S_LOG_INFO;
    int rank = 0, local_rank = 0;
    if (s2s_comm_launcher(&rank, &local_rank) > 1) { /* mpirun/srun: one GPU per rank on a machine; */
        o.cuda_device = local_rank;                  /* rank 0 alone says what it is doing */
        if (rank != 0)
            o.log_level = S2S_LOG_WARN;
    }
    s2s_context *ctx = NULL;
    if (s2s_context_create(&o, &ctx) != S2S_OK) {
        fprintf(stderr, "%s: %s\n", tool, s2s_last_error());
        return NULL;
    }
    return ctx;
}

/* The weights' precision for decoding (s2s_decode_options.precision) from --precision. */
static s2s_precision cli_decode_precision(const common_opts *c)
{
    static const s2s_precision prec[4] = {S2S_PRECISION_FP32, S2S_PRECISION_FP32, S2S_PRECISION_BF16,
                                          S2S_PRECISION_INT8};
    return prec[c->precision];
}

/* Converts a loaded model's weights for decoding at --precision now, at load; the library
 * logs what it uses (or, with a warning, why fp32). *used: what decoding will use. */
static int cli_prepare_decoding(const char *tool, s2s_model *m, const common_opts *c, s2s_precision *used)
{
    char what[400];
    s2s_precision want = cli_decode_precision(c), got = S2S_PRECISION_FP32;
    if (s2s_model_prepare_decoding(m, want, &got, what, sizeof what) != S2S_OK) {
        fprintf(stderr, "%s: %s\n", tool, s2s_last_error());
        return 0;
    }
    if (used)
        *used = got;
    if (want != S2S_PRECISION_FP32 && got == want) /* what it picked (a fallback was warned about) */
        fprintf(stderr, "%s: decoding with %s\n", tool, what);
    return 1;
}

static int cli_same_tokenizer(const s2s_tokenizer *a, const s2s_tokenizer *b)
{
    const void *pa, *pb;
    size_t la, lb;
    return a && b && s2s_tokenizer_serialize(a, &pa, &la) == S2S_OK && s2s_tokenizer_serialize(b, &pb, &lb) == S2S_OK &&
           la == lb && !memcmp(pa, pb, la);
}

/* --model given again: loads paths->v[1..] on ctx as an ensemble with the first model, whose
 * tokenizers st, tt they must share (refused otherwise); more[] gets them (the caller frees
 * each of the *nmore), converted for decoding like the first. 1 on success, 0 with a message. */
static int cli_load_ensemble(const char *tool, s2s_context *ctx, const str_list *paths, const s2s_tokenizer *st,
                             const s2s_tokenizer *tt, const common_opts *c, s2s_model **more, int *nmore)
{
    *nmore = 0;
    if (paths->n > S2S_ENSEMBLE_MAX)
        return cli_fail(tool, "at most %d --model files make an ensemble", S2S_ENSEMBLE_MAX);
    for (int i = 1; i < paths->n; i++) {
        s2s_tokenizer *mst = NULL, *mtt = NULL;
        s2s_model *m = NULL;
        if (s2s_model_load(ctx, paths->v[i], &m, &mst, &mtt, NULL) != S2S_OK) {
            fprintf(stderr, "%s: %s\n", tool, s2s_last_error());
            return 0;
        }
        more[(*nmore)++] = m;
        int same = cli_same_tokenizer(mst, st) && cli_same_tokenizer(mtt, tt);
        if (mtt != mst)
            s2s_tokenizer_free(mtt);
        s2s_tokenizer_free(mst);
        if (!same)
            return cli_fail(tool, "%s's tokenizers differ from %s's: an ensemble needs the same vocabularies "
                            "(models of one tokenizer pair)", paths->v[i], paths->v[0]);
        if (!cli_prepare_decoding(tool, m, c, NULL))
            return 0;
    }
    return 1;
}

static const char *cli_precision_name(s2s_precision p)
{
    return p == S2S_PRECISION_INT8 ? "int8" : p == S2S_PRECISION_BF16 ? "bf16" : p == S2S_PRECISION_TF32 ? "tf32"
                                                                                                          : "fp32";
}

/* Training takes the GEMM precisions only. */
static int cli_train_precision_ok(const char *tool, const common_opts *c)
{
    if (c->precision != 3)
        return 1;
    fprintf(stderr, "%s: --precision int8 is for decoding (translate, eval, chat, serve); train with fp32, tf32 or "
                    "bf16 (GPU, or a CPU with AVX-512 BF16 or AMX)\n", tool);
    return 0;
}

/* ---- model and trainer options ---------------------------------------------------------------- */

typedef struct train_opts {
    s2s_model_config mc;
    s2s_trainer_options to;
    int vocab, shared_vocab, bpe, cell, attention, no_valid_bleu, schedule, tie;
    float init_uniform; /* --init-uniform A: 0 keeps PyTorch's initialisation */
    const char *out, *resume;
    int comm;            /* --comm: 0 auto, 1 local, 2 mpi, 3 nccl */
    double comm_timeout; /* --comm-timeout seconds */
} train_opts;

static void train_opts_default(train_opts *t)
{
    memset(t, 0, sizeof *t);
    t->mc = s2s_model_config_default();
    t->to = s2s_trainer_options_default();
    t->vocab = 8000;
    t->attention = 2; /* general */
    t->comm_timeout = s2s_comm_options_default().timeout_s;
}

#define TRAIN_OPTS(t)                                                                                               \
    {"--out", OPT_STR, &(t).out, 0, 0, 0}, {"--resume", OPT_STR, &(t).resume, 0, 0, 0},                             \
        {"--vocab", OPT_INT, &(t).vocab, 16, 1000000, 0}, {"--shared-vocab", OPT_FLAG, &(t).shared_vocab, 0, 0, 0}, \
        {"--bpe", OPT_FLAG, &(t).bpe, 0, 0, 0}, {"--cell", OPT_CHOICE, &(t).cell, 0, 0, "lstm|gru|rnn"},             \
        {"--layers", OPT_INT, &(t).mc.layers, 1, 16, 0}, {"--hidden", OPT_INT, &(t).mc.hidden, 1, 65536, 0},         \
        {"--embed", OPT_INT, &(t).mc.embed, 1, 65536, 0},                                                          \
        {"--bidirectional", OPT_FLAG, &(t).mc.bidirectional, 0, 0, 0},                                             \
        {"--attention", OPT_CHOICE, &(t).attention, 0, 0, "none|dot|general"},                                     \
        {"--tie-embeddings", OPT_CHOICE, &(t).tie, 0, 0, "none|decoder|all"},                                      \
        {"--dropout", OPT_FLOAT, &(t).mc.dropout, 0, 0.99, 0},                                                     \
        {"--init-uniform", OPT_FLOAT, &(t).init_uniform, 0, 1000, 0},                                              \
        {"--word-dropout", OPT_FLOAT, &(t).to.word_dropout, 0, 0.99, 0},                                           \
        {"--batch-tokens", OPT_INT, &(t).to.batch_tokens, 1, 10000000, 0},                                         \
        {"--max-len", OPT_INT, &(t).to.max_len, 1, 100000, 0}, {"--lr", OPT_FLOAT, &(t).to.lr, 1e-9, 100, 0},        \
        {"--warmup", OPT_INT, &(t).to.warmup_steps, 0, 10000000, 0},                                               \
        {"--schedule", OPT_CHOICE, &(t).schedule, 0, 0, "invsqrt|plateau|linear"},                                 \
        {"--cycles", OPT_INT, &(t).to.cycles, 1, 1000, 0},                                                         \
        {"--label-smoothing", OPT_FLOAT, &(t).to.label_smoothing, 0, 0.99, 0},                                     \
        {"--clip", OPT_FLOAT, &(t).to.clip_norm, 0, 1e9, 0},                                                       \
        {"--valid-every", OPT_INT, &(t).to.valid_every, 0, 100000000, 0},                                          \
        {"--no-valid-bleu", OPT_FLAG, &(t).no_valid_bleu, 0, 0, 0},                                                \
        {"--valid-max", OPT_INT, &(t).to.valid_max, 1, 100000000, 0},                                              \
        {"--keep", OPT_INT, &(t).to.keep_last, 1, 1000, 0}, {"--patience", OPT_INT, &(t).to.patience, 0, 100000, 0}, \
        {"--minutes", OPT_DOUBLE, &(t).to.minutes, 0, 1e7, 0},                                                     \
        {"--max-steps", OPT_LONG, &(t).to.max_steps, 0, 1e12, 0},                                                  \
        {"--epochs", OPT_INT, &(t).to.max_epochs, 0, 1000000, 0},                                                  \
        {"--report-every", OPT_INT, &(t).to.report_every, 1, 1000000, 0},                                         \
        {"--average-last", OPT_INT, &(t).to.average_last, 0, 1000, 0},                                            \
        {"--comm", OPT_CHOICE, &(t).comm, 0, 0, "auto|local|mpi|nccl"},                                            \
        {"--comm-timeout", OPT_DOUBLE, &(t).comm_timeout, 0.1, 1e7, 0},                                           \
        {"--shard-optimizer", OPT_FLAG, &(t).to.shard_optimizer, 0, 0, 0}

#define TRAIN_OPTS_HELP                                                                                            \
    "  --out PREFIX            write PREFIX.best.safetensors, checkpoints, metrics CSV, loss SVG (required)\n"      \
    "  --resume CHECKPOINT     continue a run exactly from PREFIX.ckpt-STEP.safetensors\n"                           \
    "  --vocab N (8000)        subword vocabulary size; --shared-vocab: one for both sides; --bpe: BPE\n"        \
    "  --cell lstm|gru|rnn     --layers N (1) --hidden N (256) --embed N (256) --bidirectional\n"                 \
    "  --attention none|dot|general (general)   --dropout P (0.2)\n"                                              \
    "  --init-uniform A (0)    a new model's weights uniform in [-A, A], the embeddings' pad rows zero\n"       \
    "                          (Luong et al. 2015, OpenNMT: 0.1); 0: PyTorch's initialisation\n"              \
    "  --word-dropout P (0)    training: each source and decoder input token replaced by UNK with\n"          \
    "                          probability P (the targets scored stay)\n"                                      \
    "  --tie-embeddings none|decoder|all (none): decoder: the target embedding is the output layer's weight\n"    \
    "                          (needs --embed = --hidden); all: the source embedding too (needs --shared-vocab)\n" \
    "  --batch-tokens N (4000) --max-len N (100) --lr X (1e-3) --warmup N (400)\n"                              \
    "  --schedule invsqrt|plateau|linear (invsqrt): after warm-up, lr*sqrt(warmup/step); or lr halved\n"        \
    "                          when validation stalls; or lr falling to lr/1000 at the end of the budget\n"        \
    "                          (--minutes, --max-steps or --epochs, whichever ends first)\n"                       \
    "  --cycles N (1)          linear only: N falls, each over 1/N of the budget, the lr back at the peak\n"      \
    "                          after each; PREFIX.snap-1..N.safetensors: the model at each fall's end, a\n"      \
    "                          snapshot ensemble (--model PREFIX.snap-1.safetensors --model ... to decode)\n"    \
    "  --label-smoothing X (0.1) --clip X (5) --valid-every N (500) --valid-max N (1000) --no-valid-bleu\n"     \
    "  --keep N (3) --patience N (0: off) --minutes X --max-steps N --epochs N --report-every N (100)\n"       \
    "  --average-last K        at the end, PREFIX.avg.safetensors = the mean of the last K checkpoints (keeps K)\n" \
    "  data parallel: mpirun -np N TOOL train ... trains one model on N ranks (one GPU each, or CPU ranks)\n"     \
    "  --comm auto|local|mpi|nccl (auto: NCCL on GPUs, MPI on CPUs when started by mpirun/srun)\n"               \
    "  --comm-timeout S (300)  how long a rank waits for the others before stopping with an error\n"            \
    "  --shard-optimizer       ZeRO-1: each rank keeps and updates the Adam moments of 1/N of the weights\n"

static void apply_train_choices(train_opts *t)
{
    static const s2s_cell cells[3] = {S2S_CELL_LSTM, S2S_CELL_GRU, S2S_CELL_RNN_TANH};
    static const s2s_attention att[3] = {S2S_ATTN_NONE, S2S_ATTN_DOT, S2S_ATTN_GENERAL};
    t->mc.cell = cells[t->cell];
    t->mc.attention = att[t->attention];
    t->mc.tie_embeddings = (s2s_tie)t->tie;
    t->to.valid_bleu = !t->no_valid_bleu;
    static const s2s_lr_schedule schedules[3] = {S2S_LR_INVERSE_SQRT, S2S_LR_PLATEAU, S2S_LR_LINEAR};
    t->to.schedule = schedules[t->schedule];
    t->to.out_prefix = t->out;
    if (t->to.keep_last < t->to.average_last) /* the averaged checkpoints must still be there */
        t->to.keep_last = t->to.average_last;
}

/* Trains the tokenizers on the training pairs: one on both sides (shared), or one per side. */
static s2s_status cli_train_tokenizers(const s2s_corpus *c, const train_opts *t, s2s_tokenizer **st, s2s_tokenizer **tt)
{
    size_t n = s2s_corpus_size(c);
    const char **side[2] = {malloc(sizeof(char *) * (2 * n + 1)), NULL};
    if (!side[0])
        return S2S_ERR_OUT_OF_MEMORY;
    side[1] = side[0] + n;
    for (size_t i = 0; i < n; i++)
        s2s_corpus_get(c, i, &side[0][i], &side[1][i]);
    s2s_tokenizer_options o = s2s_tokenizer_options_default();
    o.vocab_size = t->vocab;
    o.type = t->bpe ? S2S_TOKENIZER_BPE : S2S_TOKENIZER_UNIGRAM;
    s2s_status s;
    if (t->shared_vocab) {
        s = s2s_tokenizer_train(side[0], 2 * n, &o, st);
        *tt = *st;
    } else {
        s = s2s_tokenizer_train(side[0], n, &o, st);
        if (s == S2S_OK)
            s = s2s_tokenizer_train(side[1], n, &o, tt);
    }
    free(side[0]);
    return s;
}

/* The files a finished run left, named only when they are there (the average only when asked). */
static void cli_report_outputs(const char *tool, const char *prefix, int averaged, int cycles)
{
    static const char *what[4][2] = {{".best.safetensors", "best model"}, {".metrics.csv", "metrics"},
                                     {".loss.svg", "plot"}, {".avg.safetensors", "averaged model"}};
    fprintf(stderr, "\n%s: done", tool);
    for (int i = 0; i < 3 + (averaged != 0); i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s%s", prefix, what[i][0]);
        if (access(p, F_OK) == 0)
            fprintf(stderr, "%s %s: %s", i ? "," : ";", what[i][1], p);
    }
    int snaps = 0;
    for (int k = 1; k <= cycles; k++) {
        char p[4096];
        snprintf(p, sizeof p, "%s.snap-%d.safetensors", prefix, k);
        snaps += access(p, F_OK) == 0;
    }
    if (snaps)
        fprintf(stderr, ", %d snapshot%s: %s.snap-%s%d.safetensors (decode together: --model each)", snaps,
                snaps > 1 ? "s" : "", prefix, snaps > 1 ? "1.." : "", snaps);
    fputc('\n', stderr);
}

/* The train command once the corpora are read: tokenizers (trained, or the checkpoint's when
 * resuming), model, trainer, the run, and the clean-up. Returns the exit status. */
static int cli_train(const char *tool, s2s_context *ctx, train_opts *t, const s2s_corpus *train,
                     const s2s_corpus *valid)
{
    s2s_tokenizer *st = NULL, *tt = NULL;
    s2s_model *m = NULL;
    s2s_trainer *tr = NULL;
    s2s_comm *comm = NULL;
    s2s_comm_options co = s2s_comm_options_default();
    co.kind = (s2s_comm_kind)t->comm; /* the choices' order is the enum's */
    co.timeout_s = t->comm_timeout;
    if (s2s_comm_create(ctx, &co, &comm) != S2S_OK) {
        fprintf(stderr, "%s: %s\n", tool, s2s_last_error());
        return 1;
    }
    int root = s2s_comm_rank(comm) == 0, world = s2s_comm_size(comm);
    t->to.comm = comm;
    s2s_status s;
    if (world > 1 && root)
        fprintf(stderr, "%s: data parallel over %d ranks (%s)%s\n", tool, world, s2s_comm_name(comm),
                t->to.shard_optimizer ? ", optimizer sharded (ZeRO-1)" : "");
    if (t->resume) { /* the checkpoint holds the model and its tokenizers */
        s = s2s_model_load(ctx, t->resume, &m, &st, &tt, NULL);
        if (s == S2S_OK && (!st || !tt))
            s = S2S_ERR_FORMAT, fprintf(stderr, "%s: %s has no tokenizers\n", tool, t->resume);
    } else {
        if (root)
            fprintf(stderr, "%s: training the tokenizer%s (vocabulary %d)\n", tool, t->shared_vocab ? "" : "s",
                    t->vocab);
        s = cli_train_tokenizers(train, t, &st, &tt);
        t->mc.src_vocab = st ? s2s_tokenizer_vocab_size(st) : 0;
        t->mc.tgt_vocab = tt ? s2s_tokenizer_vocab_size(tt) : 0;
        if (s == S2S_OK)
            s = s2s_model_create(ctx, &t->mc, &m);
        if (s == S2S_OK && t->init_uniform > 0)
            s = s2s_model_init_uniform(m, t->init_uniform);
    }
    if (s == S2S_OK)
        s = s2s_trainer_create(m, st, tt, train, valid, &t->to, &tr);
    if (s == S2S_OK && t->resume)
        s = s2s_trainer_resume(tr, t->resume);
    if (s == S2S_OK) {
        long pairs, skipped, batches;
        s2s_trainer_data_counts(tr, &pairs, &skipped, &batches);
        if (root)
            fprintf(stderr, "%s: training on %ld pairs (%ld skipped: longer than %d tokens or empty); %zu parameters\n",
                    tool, pairs, skipped, t->to.max_len, s2s_model_param_numel(m));
        s = s2s_trainer_run(tr);
    }
    int rc = s == S2S_OK ? 0 : 1;
    if (rc && world > 1) { /* the other ranks would wait for this one until their timeout */
        fprintf(stderr, "%s: rank %d: %s\n", tool, s2s_comm_rank(comm), s2s_last_error());
        s2s_comm_abort(comm, 1);
    } else if (rc) {
        fprintf(stderr, "%s: %s\n", tool, s2s_last_error());
    } else if (root) {
        cli_report_outputs(tool, t->out, t->to.average_last, t->to.cycles);
    }
    s2s_trainer_free(tr);
    s2s_model_free(m);
    if (tt != st)
        s2s_tokenizer_free(tt);
    s2s_tokenizer_free(st);
    s2s_comm_free(comm);
    return rc;
}

/* Progress: one updating line on a terminal, plain lines otherwise; validations always on a
 * line of their own. */
static void print_progress(const s2s_train_progress *p, void *user)
{
    char line[512];
    int tty = user != NULL;
    s2s_train_progress_format(p, line, sizeof line);
    if (tty && !p->is_validation)
        fprintf(stderr, "\r\033[K%s", line);
    else
        fprintf(stderr, "%s%s\n", tty ? "\r\033[K" : "", line);
    fflush(stderr);
}

#endif
