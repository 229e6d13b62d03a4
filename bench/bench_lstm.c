/* bench_lstm.c - times a recurrent layer stack (ours or cuDNN's) and prints one JSON object.
 *
 *   build/bench_lstm [--device cpu|cuda] [--impl fused|cudnn] [--cell lstm|gru] [--T N] [--B N]
 *                    [--I N] [--H N] [--layers N] [--bidirectional] [--backward]
 *                    [--precision fp32|tf32|bf16] [--warmup N] [--reps N] [--algo -1|0|1|2]
 *                    [--lanes N] [--chunk N]
 *
 * FLOP count: 2*B*G*H*(in+H) per step, layer and direction forward (G gates: LSTM 4, GRU 3),
 * three times that for forward + backward. Uses only the public API. */
#include <seq2seq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f, int code)
{
    fputs("usage: bench_lstm [--device cpu|cuda] [--impl fused|cudnn] [--cell lstm|gru] [--T N] [--B N] [--I N]\n"
          "                  [--H N] [--layers N] [--bidirectional] [--backward] [--precision fp32|tf32|bf16]\n"
          "                  [--warmup N] [--reps N] [--algo -1|0|1|2] [--lanes N] [--chunk N] [--gemm M,N,K]\n"
          "--lanes N, --chunk N: the layer wavefront of --impl fused: N concurrent streams (1 = none; GPU\n"
          "default 2), chunks of N time steps (GPU default 10).\n"
          "Times a recurrent layer stack on random data; prints one JSON line.\n"
          "--gemm M,N,K times one M x N x K GEMM (OpenBLAS or cuBLAS) instead: the ceiling.\n"
          "example: bench_lstm --device cuda --impl cudnn --T 100 --B 64 --I 1024 --H 1024 --backward\n",
          f);
    return code;
}

static int int_arg(const char *v, int lo, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > 1000000000)
        return 0;
    *out = (int)x;
    return 1;
}

typedef struct args {
    s2s_context_options co;
    s2s_bench_rnn_options o;
    const char *device, *precision;
    int gemm[3]; /* --gemm M,N,K: time one GEMM instead */
} args;

static int parse(int argc, char **argv, args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        int ok = 1;
        if (!strcmp(k, "--help") || !strcmp(k, "-h"))
            exit(usage(stdout, 0));
        else if (!strcmp(k, "--bidirectional"))
            a->o.bidirectional = 1;
        else if (!strcmp(k, "--backward"))
            a->o.backward = 1;
        else if (!strcmp(k, "--device") && (!strcmp(v, "cpu") || !strcmp(v, "cuda")) && ++i)
            a->device = v, a->co.device = !strcmp(v, "cpu") ? S2S_DEVICE_CPU : S2S_DEVICE_CUDA;
        else if (!strcmp(k, "--impl") && (!strcmp(v, "fused") || !strcmp(v, "cudnn")) && ++i)
            a->o.impl = !strcmp(v, "fused") ? S2S_RNN_IMPL_FUSED : S2S_RNN_IMPL_CUDNN;
        else if (!strcmp(k, "--cell") && (!strcmp(v, "lstm") || !strcmp(v, "gru")) && ++i)
            a->o.cell = !strcmp(v, "lstm") ? S2S_CELL_LSTM : S2S_CELL_GRU;
        else if (!strcmp(k, "--precision") && (!strcmp(v, "fp32") || !strcmp(v, "tf32") || !strcmp(v, "bf16")) && ++i)
            a->precision = v, a->co.precision = !strcmp(v, "fp32")   ? S2S_PRECISION_FP32
                                                : !strcmp(v, "tf32") ? S2S_PRECISION_TF32
                                                                     : S2S_PRECISION_BF16;
        else if (!strcmp(k, "--T")) ok = int_arg(v, 1, &a->o.T) && ++i;
        else if (!strcmp(k, "--B")) ok = int_arg(v, 1, &a->o.B) && ++i;
        else if (!strcmp(k, "--I")) ok = int_arg(v, 1, &a->o.I) && ++i;
        else if (!strcmp(k, "--H")) ok = int_arg(v, 1, &a->o.H) && ++i;
        else if (!strcmp(k, "--layers")) ok = int_arg(v, 1, &a->o.layers) && ++i;
        else if (!strcmp(k, "--warmup")) ok = int_arg(v, 0, &a->o.warmup) && ++i;
        else if (!strcmp(k, "--reps")) ok = int_arg(v, 1, &a->o.reps) && ++i;
        else if (!strcmp(k, "--lanes")) ok = int_arg(v, 1, &a->o.lanes) && ++i;
        else if (!strcmp(k, "--chunk")) ok = int_arg(v, 1, &a->o.wave_chunk) && ++i;
        else if (!strcmp(k, "--gemm") && sscanf(v, "%d,%d,%d", &a->gemm[0], &a->gemm[1], &a->gemm[2]) == 3 && ++i)
            ;
        else if (!strcmp(k, "--algo")) ok = int_arg(v, -1, &a->o.cudnn_algo) && a->o.cudnn_algo <= 2 && ++i;
        else
            ok = 0;
        if (!ok) {
            fprintf(stderr, "bench_lstm: bad option or value: %s %s\n", k, v);
            return 0;
        }
    }
    return 1;
}

static double flops(const s2s_bench_rnn_options *o)
{
    int G = o->cell == S2S_CELL_LSTM ? 4 : o->cell == S2S_CELL_GRU ? 3 : 1, dirs = o->bidirectional ? 2 : 1;
    double f = 0;
    for (int l = 0; l < o->layers; l++) {
        double in = l ? (double)o->H * dirs : o->I;
        f += dirs * 2.0 * o->B * G * o->H * (in + o->H) * o->T;
    }
    return o->backward ? 3 * f : f;
}

/* --gemm: the GEMM rate of the device, one JSON line. */
static int gemm_line(const args *a, s2s_context *ctx)
{
    s2s_bench_result r;
    const int *g = a->gemm;
    s2s_status st = s2s_bench_gemm(ctx, g[0], g[1], g[2], a->o.reps, &r);
    if (st != S2S_OK) {
        fprintf(stderr, "bench_lstm: %s\n", s2s_last_error());
        return 1;
    }
    printf("{\"bench\":\"gemm\",\"device\":\"%s\",\"device_name\":\"%s\",\"precision\":\"%s\",\"M\":%d,"
           "\"N\":%d,\"K\":%d,\"median_ms\":%.4f,\"tflops\":%.3f}\n",
           a->device, s2s_context_device_name(ctx), a->precision, g[0], g[1], g[2], r.median_ms,
           2.0 * g[0] * g[1] * g[2] / (r.median_ms * 1e-3) / 1e12);
    return 0;
}

int main(int argc, char **argv)
{
    args a = {s2s_context_options_default(), s2s_bench_rnn_options_default(), "cpu", "fp32", {0, 0, 0}};
    a.co.device = S2S_DEVICE_CPU;
    if (!parse(argc, argv, &a))
        return usage(stderr, 2);
    s2s_context *ctx = NULL;
    s2s_bench_result r;
    s2s_status st = s2s_context_create(&a.co, &ctx);
    if (st == S2S_OK && a.gemm[0] > 0) {
        int rc = gemm_line(&a, ctx);
        s2s_context_free(ctx);
        return rc;
    }
    if (st == S2S_OK)
        st = s2s_bench_rnn(ctx, &a.o, &r);
    const s2s_bench_rnn_options *o = &a.o;
    printf("{\"bench\":\"rnn\",\"impl\":\"%s\",\"device\":\"%s\",\"device_name\":\"%s\",\"cell\":\"%s\",\"T\":%d,"
           "\"B\":%d,\"I\":%d,\"H\":%d,\"layers\":%d,\"bidirectional\":%d,\"mode\":\"%s\",\"precision\":\"%s\"",
           o->impl == S2S_RNN_IMPL_FUSED ? "fused" : "cudnn", a.device, ctx ? s2s_context_device_name(ctx) : "",
           o->cell == S2S_CELL_LSTM ? "lstm" : "gru", o->T, o->B, o->I, o->H, o->layers, o->bidirectional,
           o->backward ? "fwdbwd" : "fwd", a.precision);
    if (st != S2S_OK) {
        printf(",\"error\":\"%s\"}\n", s2s_status_string(st));
        fprintf(stderr, "bench_lstm: %s\n", s2s_last_error());
        s2s_context_free(ctx);
        return 1;
    }
    printf(",\"median_ms\":%.4f,\"min_ms\":%.4f,\"us_per_step\":%.2f,\"tflops\":%.3f,\"peak_mb\":%.1f,"
           "\"cudnn_algo\":%d,\"lanes\":%d,\"chunk\":%d,\"note\":\"%s\"}\n",
           r.median_ms, r.min_ms, 1e3 * r.median_ms / o->T, flops(o) / (r.median_ms * 1e-3) / 1e12,
           r.peak_bytes / 1048576.0, r.cudnn_algo, o->lanes, o->wave_chunk, r.note);
    s2s_context_free(ctx);
    if (fflush(stdout) != 0 || ferror(stdout)) /* a result never written is a failed run */
        return fprintf(stderr, "bench_lstm: cannot write standard output: %s\n", strerror(errno)), 1;
    return 0;
}
