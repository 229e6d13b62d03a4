/* bench_translate - s2s_translate called in-process on batches of lines: the C side of the Python
 * package's overhead measurement (bench/python_overhead.py does the same calls from Python).
 *
 *   bench_translate --model FILE --lines FILE [--batch N] [--beam K] [--reps R] [--threads T]
 *
 * Cuts the lines into batches of N, translates every batch R times (after one untimed pass) and
 * prints one JSON line: the median milliseconds per call and per sentence. Public API only. */
#include <seq2seq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *path = NULL;
    int batch = 1, beam = 5, reps = 3, threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--lines"))
            path = argv[i + 1];
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--beam"))
            beam = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
    }
    if (!model || !path || batch < 1 || beam < 1 || reps < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_translate --model FILE --lines FILE [--batch N] [--beam K] [--reps R] "
                        "[--threads T]\n");
        return 2;
    }
    FILE *f = fopen(path, "r");
    if (!f)
        return fprintf(stderr, "bench_translate: %s: %s\n", path, strerror(errno)), 1;
    char **lines = NULL, *line = NULL;
    size_t n = 0, cap = 0, lcap = 0;
    ssize_t r;
    while ((r = getline(&line, &lcap, f)) > 0) {
        while (r > 0 && (line[r - 1] == '\n' || line[r - 1] == '\r'))
            line[--r] = 0;
        if (n == cap)
            lines = realloc(lines, sizeof *lines * (cap = cap ? 2 * cap : 256));
        lines[n++] = strdup(line);
    }
    fclose(f);
    free(line);
    s2s_context_options co = s2s_context_options_default();
    co.device = S2S_DEVICE_CPU, co.threads = threads;
    s2s_context *ctx = NULL;
    s2s_model *m = NULL;
    s2s_tokenizer *st = NULL, *tt = NULL;
    if (s2s_context_create(&co, &ctx) || s2s_model_load(ctx, model, &m, &st, &tt, NULL))
        return fprintf(stderr, "bench_translate: %s\n", s2s_last_error()), 1;
    s2s_translate_options o = s2s_translate_options_default();
    o.decode.beam_size = beam, o.batch_size = batch;
    char **out = malloc(sizeof *out * (size_t)batch);
    size_t calls = (n + (size_t)batch - 1) / (size_t)batch;
    double *ms = malloc(sizeof *ms * calls * (size_t)reps);
    int bad = 0;
    for (int rep = -1; rep < reps && !bad; rep++)
        for (size_t c = 0; c < calls && !bad; c++) {
            size_t k = c * (size_t)batch, nb = n - k < (size_t)batch ? n - k : (size_t)batch;
            double t0 = now_ms();
            bad = s2s_translate(m, st, tt, (const char *const *)lines + k, nb, &o, out, NULL) != S2S_OK;
            if (rep >= 0)
                ms[(size_t)rep * calls + c] = now_ms() - t0;
            if (!bad)
                s2s_strings_free(out, nb);
        }
    if (bad)
        return fprintf(stderr, "bench_translate: %s\n", s2s_last_error()), 1;
    size_t total = calls * (size_t)reps;
    double sum = 0;
    for (size_t i = 0; i < total; i++)
        sum += ms[i];
    qsort(ms, total, sizeof *ms, cmp);
    printf("{\"impl\":\"c\",\"batch\":%d,\"beam\":%d,\"sentences\":%zu,\"calls\":%zu,\"median_ms_per_call\":%.4f,"
           "\"total_ms_per_pass\":%.2f}\n",
           batch, beam, n, calls, ms[total / 2], sum / reps);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines), free(out), free(ms);
    s2s_model_free(m);
    if (tt != st)
        s2s_tokenizer_free(tt);
    s2s_tokenizer_free(st);
    s2s_context_free(ctx);
    if (fflush(stdout) != 0 || ferror(stdout))
        return fprintf(stderr, "bench_translate: cannot write standard output: %s\n", strerror(errno)), 1;
    return 0;
}
