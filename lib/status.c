/* status.c - status names, the thread-local last error, logging, checked host allocation. */
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];

S2S_API const char *s2s_status_string(s2s_status st)
{
    switch (st) {
    case S2S_OK: return "ok";
    case S2S_ERR_INVALID_ARG: return "invalid argument";
    case S2S_ERR_OUT_OF_MEMORY: return "out of memory";
    case S2S_ERR_NO_DEVICE: return "no device";
    case S2S_ERR_UNSUPPORTED: return "unsupported";
    case S2S_ERR_IO: return "input/output error";
    case S2S_ERR_FORMAT: return "bad format";
    case S2S_ERR_NUMERIC: return "non-finite value";
    case S2S_ERR_CUDA: return "CUDA error";
    case S2S_ERR_CUBLAS: return "cuBLAS error";
    case S2S_ERR_CUDNN: return "cuDNN error";
    case S2S_ERR_INTERNAL: return "internal error";
    case S2S_ERR_BUSY: return "busy";
    case S2S_ERR_CANCELLED: return "cancelled";
    case S2S_ERR_COMM: return "communication failed";
    }
    return "unknown status";
}

S2S_API const char *s2s_last_error(void) { return last_error; }

S2S_API size_t s2s_sizeof(const char *type)
{
    static const struct {
        const char *name;
        size_t size;
    } T[] = {
        {"s2s_context_options", sizeof(s2s_context_options)},
        {"s2s_model_config", sizeof(s2s_model_config)},
        {"s2s_param_info", sizeof(s2s_param_info)},
        {"s2s_batch", sizeof(s2s_batch)},
        {"s2s_loss_options", sizeof(s2s_loss_options)},
        {"s2s_optimizer_options", sizeof(s2s_optimizer_options)},
        {"s2s_decode_options", sizeof(s2s_decode_options)},
        {"s2s_hypothesis", sizeof(s2s_hypothesis)},
        {"s2s_translate_options", sizeof(s2s_translate_options)},
        {"s2s_engine_options", sizeof(s2s_engine_options)},
        {"s2s_engine_result", sizeof(s2s_engine_result)},
        {"s2s_engine_stats", sizeof(s2s_engine_stats)},
        {"s2s_tagger_config", sizeof(s2s_tagger_config)},
        {"s2s_corpus_options", sizeof(s2s_corpus_options)},
        {"s2s_corpus_stats", sizeof(s2s_corpus_stats)},
        {"s2s_tokenizer_options", sizeof(s2s_tokenizer_options)},
        {"s2s_provenance", sizeof(s2s_provenance)},
        {"s2s_bleu", sizeof(s2s_bleu)},
        {"s2s_train_progress", sizeof(s2s_train_progress)},
        {"s2s_trainer_options", sizeof(s2s_trainer_options)},
        {"s2s_bench_rnn_options", sizeof(s2s_bench_rnn_options)},
        {"s2s_bench_result", sizeof(s2s_bench_result)},
    };
    for (size_t i = 0; type && i < sizeof T / sizeof T[0]; i++)
        if (!strcmp(T[i].name, type))
            return T[i].size;
    return 0;
}

S2S_API const char *s2s_version(void) { return "0.1.0"; }

static void vfail(const char *file, int line, s2s_status st, const char *tail, const char *fmt, va_list ap)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int n = snprintf(last_error, sizeof last_error, "%s (%s:%d): ", s2s_status_string(st), base, line);
    if (n < 0 || (size_t)n >= sizeof last_error)
        n = 0;
    int m = vsnprintf(last_error + n, sizeof last_error - (size_t)n, fmt, ap);
    if (tail && m >= 0 && (size_t)(n + m) < sizeof last_error)
        snprintf(last_error + n + m, sizeof last_error - (size_t)(n + m), ": %s", tail);
}

s2s_status s2s_fail_at(const char *file, int line, s2s_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(file, line, st, NULL, fmt, ap);
    va_end(ap);
    return st;
}

s2s_status s2s_fail_wrap_at(const char *file, int line, s2s_status st, const char *fmt, ...)
{
    char prev[sizeof last_error];
    snprintf(prev, sizeof prev, "%s", last_error); /* overwritten below */
    va_list ap;
    va_start(ap, fmt);
    vfail(file, line, st, prev, fmt, ap);
    va_end(ap);
    return st;
}

void s2s_vlog_to(s2s_log_fn log, void *user, s2s_log_level level, const char *fmt, va_list ap)
{
    if (!log)
        return;
    char buf[1200];
    vsnprintf(buf, sizeof buf, fmt, ap);
    log(level, buf, user);
}

void s2s_log(const s2s_context *ctx, s2s_log_level level, const char *fmt, ...)
{
    if (!ctx || level < ctx->opts.log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    s2s_vlog_to(ctx->opts.log, ctx->opts.log_user, level, fmt, ap);
    va_end(ap);
}

void *s2s_host_alloc(size_t bytes, const char *what)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "could not allocate %zu bytes of host memory for %s", bytes, what);
    return p;
}

void *s2s_host_calloc(size_t count, size_t size, const char *what)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "could not allocate %zu x %zu bytes of host memory for %s", count, size, what);
    return p;
}
