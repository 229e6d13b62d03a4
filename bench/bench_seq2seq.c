/* bench_seq2seq.c - a whole model: training tokens/s and decoding latency (greedy and beam 5),
 * for named configurations, printing one JSON object per measurement.
 *
 *   build/bench_seq2seq [--config small|medium|gnmt] [--device cpu|cuda] [--precision fp32|tf32|bf16]
 *                       [--mode all|train|greedy1|greedy64|beam1|beam64] [--B N] [--len N] [--reps N]
 *                       [--impl fused|cudnn] [--streams N]
 *
 * small: 1 layer, 256; medium: 2 layers, 512, bidirectional encoder; gnmt: 4 layers, 1024;
 * all LSTM with general attention, vocabularies of 8000, dropout 0.2. Training batches hold
 * B random pairs of `len` tokens each side; tokens/s counts target tokens (with EOS).
 * Decoding runs exactly `len` + 1 steps (the EOS logit is pushed down so that no row stops
 * early, in the peer too); latency per token = time / `len`. Beam search: beam 5, one
 * hypothesis returned per sentence, no length penalty. Uses only the public API. */
#include <seq2seq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct opts {
    const char *config, *device, *precision, *mode, *impl;
    int B, len, reps, streams;
} opts;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmpd);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_seq2seq: %s: %s\n", what, s2s_last_error());
    return 1;
}

static s2s_model_config config(const char *name)
{
    s2s_model_config c = s2s_model_config_default();
    c.src_vocab = c.tgt_vocab = 8000;
    c.dropout = 0.2f;
    if (!strcmp(name, "small"))
        c.layers = 1, c.hidden = c.embed = 256;
    else if (!strcmp(name, "medium"))
        c.layers = 2, c.hidden = c.embed = 512, c.bidirectional = 1;
    else
        c.layers = 4, c.hidden = c.embed = 1024;
    return c;
}

/* Random ids in 4..vocab-1 for B rows of len tokens. */
static void random_ids(int32_t *ids, int n, int vocab, unsigned *seed)
{
    for (int i = 0; i < n; i++)
        ids[i] = 4 + (int)(rand_r(seed) % (unsigned)(vocab - 4));
}

static void header(const opts *o, s2s_context *ctx, const char *what)
{
    char impl[48];
    if (!strcmp(o->impl, "cudnn"))
        snprintf(impl, sizeof impl, "ours_cudnn_encoder");
    else if (o->streams)
        snprintf(impl, sizeof impl, "ours_%d_stream%s", o->streams, o->streams > 1 ? "s" : "");
    else
        snprintf(impl, sizeof impl, "ours");
    printf("{\"bench\":\"seq2seq\",\"impl\":\"%s\",\"config\":\"%s\",\"device\":\"%s\",\"device_name\":\"%s\","
           "\"precision\":\"%s\",\"what\":\"%s\"",
           impl, o->config, o->device, s2s_context_device_name(ctx), o->precision, what);
}

/* One decoding measurement: ms[0..reps) per call of len tokens per row. */
static void decode_line(const opts *o, s2s_context *ctx, const char *what, int B, double *ms)
{
    double med = median(ms, o->reps);
    header(o, ctx, what);
    printf(",\"B\":%d,\"len\":%d,\"median_ms\":%.3f,\"min_ms\":%.3f,\"ms_per_token\":%.4f,"
           "\"sentences_per_s\":%.1f}\n",
           B, o->len, med, ms[0], med / o->len, B / (med * 1e-3));
}

static int bench_train(const opts *o, s2s_context *ctx, s2s_model *m)
{
    s2s_optimizer *opt = NULL;
    if (s2s_optimizer_create(m, NULL, &opt) != S2S_OK)
        return fail("optimizer");
    int B = o->B, L = o->len, n = B * L;
    int32_t *src = malloc(sizeof(int32_t) * n * 2 + sizeof(int32_t) * B), *tgt = src + n, *len = tgt + n;
    unsigned seed = 7;
    random_ids(src, 2 * n, 8000, &seed);
    for (int b = 0; b < B; b++)
        len[b] = L;
    s2s_batch bt = {B, L, L, src, len, tgt, len};
    double *ms = malloc(sizeof(double) * (size_t)o->reps);
    s2s_loss_options lo = s2s_loss_options_default();
    int ntok = 0, rc = 0;
    for (int i = 0; i < 3 + o->reps && !rc; i++) {
        double t0 = now_ms();
        lo.step = (uint64_t)i;
        if (s2s_model_forward_backward(m, &bt, &lo, NULL, &ntok) != S2S_OK || s2s_optimizer_step(opt, 0, NULL) ||
            s2s_context_sync(ctx))
            rc = fail("training step");
        if (i >= 3)
            ms[i - 3] = now_ms() - t0;
    }
    if (!rc) {
        double med = median(ms, o->reps);
        header(o, ctx, "train");
        printf(",\"B\":%d,\"len\":%d,\"median_ms\":%.3f,\"min_ms\":%.3f,\"tokens_per_s\":%.0f}\n", B, L, med, ms[0],
               ntok / (med * 1e-3));
    }
    free(ms);
    free(src);
    s2s_optimizer_free(opt);
    return rc;
}

static int bench_greedy(const opts *o, s2s_context *ctx, s2s_model *m, int B)
{
    int L = o->len;
    int32_t *src = malloc(sizeof(int32_t) * (size_t)(B * L + B + B * L + B)), *len = src + B * L;
    int32_t *out = len + B, *out_len = out + B * L;
    unsigned seed = 11;
    random_ids(src, B * L, 8000, &seed);
    for (int b = 0; b < B; b++)
        len[b] = L;
    s2s_batch bt = {B, L, 0, src, len, NULL, NULL};
    double *ms = malloc(sizeof(double) * (size_t)o->reps);
    int rc = 0;
    for (int i = 0; i < 2 + o->reps && !rc; i++) {
        double t0 = now_ms();
        if (s2s_model_greedy_decode(m, &bt, L, out, out_len) != S2S_OK)
            rc = fail("greedy decoding");
        if (i >= 2)
            ms[i - 2] = now_ms() - t0;
    }
    if (!rc)
        decode_line(o, ctx, B == 1 ? "greedy_b1" : "greedy_batch", B, ms);
    free(ms);
    free(src);
    return rc;
}

static int bench_beam(const opts *o, s2s_context *ctx, s2s_model *m, int B)
{
    int L = o->len;
    int32_t *src = malloc(sizeof(int32_t) * (size_t)(B * L + B)), *len = src + B * L;
    unsigned seed = 13;
    random_ids(src, B * L, 8000, &seed);
    for (int b = 0; b < B; b++)
        len[b] = L;
    s2s_batch bt = {B, L, 0, src, len, NULL, NULL};
    s2s_decode_options d = s2s_decode_options_default();
    d.mode = S2S_DECODE_BEAM;
    d.beam_size = 5;
    d.length_penalty = 0.0f;
    d.max_len_a = 0.0f;
    d.max_len_b = L;
    double *ms = malloc(sizeof(double) * (size_t)o->reps);
    int rc = 0;
    for (int i = 0; i < 2 + o->reps && !rc; i++) {
        s2s_hypothesis *h = NULL;
        double t0 = now_ms();
        if (s2s_model_decode(m, &bt, &d, &h) != S2S_OK)
            rc = fail("beam search");
        if (i >= 2)
            ms[i - 2] = now_ms() - t0;
        s2s_hypotheses_free(h, (size_t)B);
    }
    if (!rc)
        decode_line(o, ctx, B == 1 ? "beam5_b1" : "beam5_batch", B, ms);
    free(ms);
    free(src);
    return rc;
}

int main(int argc, char **argv)
{
    opts o = {"medium", "cpu", "fp32", "all", "fused", 64, 30, 10, 0};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[++i] : "";
        if (!strcmp(k, "--help") || !strcmp(k, "-h")) {
            puts("usage: bench_seq2seq [--config small|medium|gnmt] [--device cpu|cuda] [--precision fp32|tf32|bf16]\n"
                 "                     [--mode all|train|greedy1|greedy64|beam1|beam64] [--B N] [--len N] [--reps N]\n"
                 "                     [--impl fused|cudnn]  (cudnn: the encoder's layers through cuDNN)\n"
                 "                     [--streams N]  (GPU streams for the encoder's layers, 1..4; default 2)\n"
                 "example: bench_seq2seq --config medium --device cuda --mode all");
            return 0;
        }
        if (!strcmp(k, "--config") && (!strcmp(v, "small") || !strcmp(v, "medium") || !strcmp(v, "gnmt")))
            o.config = v;
        else if (!strcmp(k, "--device") && (!strcmp(v, "cpu") || !strcmp(v, "cuda")))
            o.device = v;
        else if (!strcmp(k, "--precision") && (!strcmp(v, "fp32") || !strcmp(v, "tf32") || !strcmp(v, "bf16")))
            o.precision = v;
        else if (!strcmp(k, "--mode") &&
                 (!strcmp(v, "all") || !strcmp(v, "train") || !strcmp(v, "greedy1") || !strcmp(v, "greedy64") ||
                  !strcmp(v, "beam1") || !strcmp(v, "beam64")))
            o.mode = v;
        else if (!strcmp(k, "--impl") && (!strcmp(v, "fused") || !strcmp(v, "cudnn")))
            o.impl = v;
        else if (!strcmp(k, "--streams") && atoi(v) >= 1 && atoi(v) <= 4)
            o.streams = atoi(v);
        else if (!strcmp(k, "--B") && atoi(v) > 0)
            o.B = atoi(v);
        else if (!strcmp(k, "--len") && atoi(v) > 0)
            o.len = atoi(v);
        else if (!strcmp(k, "--reps") && atoi(v) > 0)
            o.reps = atoi(v);
        else {
            fprintf(stderr, "bench_seq2seq: bad option or value: %s %s (see --help)\n", k, v);
            return 2;
        }
    }
    s2s_context_options co = s2s_context_options_default();
    co.device = !strcmp(o.device, "cpu") ? S2S_DEVICE_CPU : S2S_DEVICE_CUDA;
    co.rnn_impl = !strcmp(o.impl, "cudnn") ? S2S_RNN_IMPL_CUDNN : S2S_RNN_IMPL_FUSED;
    co.streams = o.streams;
    co.precision = !strcmp(o.precision, "tf32")   ? S2S_PRECISION_TF32
                   : !strcmp(o.precision, "bf16") ? S2S_PRECISION_BF16
                                                  : S2S_PRECISION_FP32;
    s2s_context *ctx = NULL;
    s2s_model *m = NULL;
    s2s_model_config c = config(o.config);
    if (s2s_context_create(&co, &ctx) != S2S_OK)
        return fail("context");
    if (s2s_model_create(ctx, &c, &m) != S2S_OK)
        return fail("model");
    int rc = 0, all = !strcmp(o.mode, "all");
    if (all || !strcmp(o.mode, "train"))
        rc |= bench_train(&o, ctx, m);
    float *bias = malloc(sizeof(float) * 8000);
    s2s_model_param_get(m, "generator.bias", bias, 8000);
    bias[S2S_EOS_ID] = -1e4f; /* decode exactly len + 1 steps */
    s2s_model_param_set(m, "generator.bias", bias, 8000);
    free(bias);
    if (all || !strcmp(o.mode, "greedy1"))
        rc |= bench_greedy(&o, ctx, m, 1);
    if (all || !strcmp(o.mode, "greedy64"))
        rc |= bench_greedy(&o, ctx, m, 64);
    if (all || !strcmp(o.mode, "beam1"))
        rc |= bench_beam(&o, ctx, m, 1);
    if (all || !strcmp(o.mode, "beam64"))
        rc |= bench_beam(&o, ctx, m, 64);
    s2s_model_free(m);
    s2s_context_free(ctx);
    if (fflush(stdout) != 0 || ferror(stdout)) /* a result never written is a failed run */
        return fprintf(stderr, "bench_seq2seq: cannot write standard output: %s\n", strerror(errno)), 1;
    return rc;
}
