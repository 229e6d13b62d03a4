/* bench.c - s2s_bench_rnn: times a recurrent layer stack (this library's fused path, or cuDNN
 * through bench_cudnn.c) on random data, for bench/bench_lstm and the GPU check. */
#include "bench.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_MAX_LAYERS 16

S2S_API s2s_bench_rnn_options s2s_bench_rnn_options_default(void)
{
    s2s_bench_rnn_options o;
    memset(&o, 0, sizeof o);
    o.cell = S2S_CELL_LSTM;
    o.T = 100, o.B = 64, o.I = 512, o.H = 512;
    o.layers = 1;
    o.warmup = 3, o.reps = 20;
    o.impl = S2S_RNN_IMPL_FUSED;
    o.cudnn_algo = -1;
    return o;
}

typedef struct stack {
    const s2s_bench_rnn_options *o;
    s2s_backend *be;
    s2s_params params;
    s2s_arena arena;
    s2s_rnn_w w[BENCH_MAX_LAYERS][2];
    int dirs, Hd;
    float *x, *dy; /* [T*B, I] input, [T*B, H] output gradient */
} stack;

static s2s_status stack_build(stack *s, uint64_t seed)
{
    const s2s_bench_rnn_options *o = s->o;
    int G = s2s_cell_gates(o->cell), idx[BENCH_MAX_LAYERS][2][4];
    for (int l = 0; l < o->layers; l++)
        for (int d = 0; d < s->dirs; d++)
            for (int k = 0; k < 4; k++) {
                static const char *nm[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
                char name[S2S_PARAM_NAME];
                snprintf(name, sizeof name, "%s_l%d%s", nm[k], l, d ? "_reverse" : "");
                int in = l ? s->Hd * s->dirs : o->I;
                idx[l][d][k] = s2s_params_add(&s->params, name, G * s->Hd, k == 0 ? in : k == 1 ? s->Hd : 1, 2);
                if (idx[l][d][k] < 0)
                    return S2S_ERR_INTERNAL;
            }
    S2S_TRY(s2s_params_alloc(&s->params));
    s2s_init_kind kind[S2S_MAX_PARAMS];
    float bound[S2S_MAX_PARAMS];
    for (int i = 0; i < s->params.count; i++)
        kind[i] = S2S_INIT_UNIFORM, bound[i] = 1.0f / sqrtf((float)s->Hd);
    S2S_TRY(s2s_params_init_values(&s->params, seed, kind, bound));
    for (int l = 0; l < o->layers; l++)
        for (int d = 0; d < s->dirs; d++) {
            s2s_rnn_w *w = &s->w[l][d];
            w->cell = o->cell, w->in = l ? s->Hd * s->dirs : o->I, w->H = s->Hd, w->G = G;
            w->w_ih = s2s_params_view(&s->params, idx[l][d][0]);
            w->w_hh = s2s_params_view(&s->params, idx[l][d][1]);
            w->b_ih = s2s_params_view(&s->params, idx[l][d][2]);
            w->b_hh = s2s_params_view(&s->params, idx[l][d][3]);
        }
    size_t TB = (size_t)o->T * o->B;
    S2S_TRY(s2s_bench_random(s->be, seed, 1, TB * o->I, &s->x));
    return s2s_bench_random(s->be, seed, 2, TB * s->Hd * s->dirs, &s->dy);
}

/* One forward (and backward) pass of the whole stack: the library's own stack and
 * bidirectional-layer schedules (rnn.c), as the encoder runs them. */
static s2s_status stack_run(stack *s)
{
    const s2s_bench_rnn_options *o = s->o;
    s2s_backend *be = s->be;
    s2s_rnn_run run[BENCH_MAX_LAYERS][2];
    const float *in[BENCH_MAX_LAYERS + 1];
    int T = o->T, B = o->B, TB = T * B, L = o->layers;
    in[0] = s->x;
    if (s->dirs == 1) {
        const s2s_rnn_w *w[BENCH_MAX_LAYERS];
        s2s_rnn_run *r[BENCH_MAX_LAYERS];
        for (int l = 0; l < L; l++)
            w[l] = &s->w[l][0], r[l] = &run[l][0];
        S2S_TRY(s2s_rnn_stack_fwd(&s->arena, be, L, w, r, T, B, NULL, NULL, o->backward, NULL, in));
        if (!o->backward)
            return S2S_OK;
        float *dx; /* the first layer's input gradient too, as cuDNN always computes it */
        S2S_TRY(s2s_arena_floats(&s->arena, (size_t)TB * o->I, &dx));
        return s2s_rnn_stack_bwd(&s->arena, be, L, w, (const s2s_rnn_run *const *)r, in, NULL, NULL, s->dy, NULL, dx);
    }
    for (int l = 0; l < L; l++) {
        float *out;
        S2S_TRY(s2s_rnn_bidir_fwd(&s->arena, be, s->w[l], run[l], T, B, NULL, NULL, o->backward, in[l], s->w[l][0].in));
        S2S_TRY(s2s_concat_dirs(&s->arena, be, s->Hd, run[l][0].y, run[l][1].y, TB, &out));
        in[l + 1] = out;
    }
    if (!o->backward)
        return S2S_OK;
    const float *dy = s->dy;
    for (int l = L - 1; l >= 0; l--) {
        float *dyd[2], *dx;
        const float *none[2] = {NULL, NULL};
        int win = s->w[l][0].in;
        S2S_TRY(s2s_split_dirs(&s->arena, be, s->Hd, dy, TB, &dyd[0], &dyd[1]));
        S2S_TRY(s2s_arena_floats(&s->arena, (size_t)TB * win, &dx));
        S2S_TRY(s2s_rnn_bidir_bwd(&s->arena, be, s->w[l], run[l], (const float *const *)dyd, none, none, in[l], win, dx));
        dy = dx;
    }
    return S2S_OK;
}

static s2s_status bench_fused(s2s_context *ctx, const s2s_bench_rnn_options *o, s2s_bench_result *r)
{
    stack *s = s2s_host_calloc(1, sizeof *s, "the benchmark stack");
    double *ms = s2s_host_calloc((size_t)o->reps, sizeof(double), "benchmark times");
    if (!s || !ms) {
        free(s), free(ms);
        return S2S_ERR_OUT_OF_MEMORY;
    }
    s->o = o;
    s->be = ctx->be;
    int lanes = s->be->lanes, chunk = s->be->wave_chunk; /* the schedule asked for, for this run only */
    if (o->lanes > 0)
        s->be->lanes = o->lanes;
    if (o->wave_chunk > 0)
        s->be->wave_chunk = o->wave_chunk;
    s->dirs = o->bidirectional ? 2 : 1;
    s->Hd = o->H;
    s2s_params_init(&s->params, s->be);
    s2s_arena_init(&s->arena, s->be);
    s2s_status st = stack_build(s, ctx->opts.seed);
    for (int i = 0; i < o->warmup + o->reps && st == S2S_OK; i++) {
        double t0 = 0;
        st = s->be->ops->sync(s->be);
        if (st == S2S_OK)
            t0 = s2s_now_ms(), st = stack_run(s);
        if (st == S2S_OK)
            st = s->be->ops->sync(s->be);
        if (st == S2S_OK && i >= o->warmup)
            ms[i - o->warmup] = s2s_now_ms() - t0;
        s2s_arena_reset(&s->arena);
    }
    if (st == S2S_OK) {
        s2s_bench_summarise(ms, o->reps, r);
        size_t cur;
        st = s->be->ops->mem_stats(s->be, &cur, &r->peak_bytes);
    }
    s->be->lanes = lanes;
    s->be->wave_chunk = chunk;
    s2s_arena_free(&s->arena);
    s2s_params_free(&s->params);
    s->be->ops->release(s->be, s->x);
    s->be->ops->release(s->be, s->dy);
    free(s);
    free(ms);
    return st;
}

S2S_API s2s_status s2s_bench_rnn(s2s_context *ctx, const s2s_bench_rnn_options *o, s2s_bench_result *r)
{
    if (!ctx || !o || !r)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_bench_rnn: ctx, options and result must not be NULL");
    memset(r, 0, sizeof *r);
    r->cudnn_algo = -1;
    if (o->T < 1 || o->B < 1 || o->I < 1 || o->H < 1 || o->layers < 1 || o->layers > BENCH_MAX_LAYERS ||
        o->reps < 1 || o->warmup < 0 ||
        (o->cell != S2S_CELL_LSTM && o->cell != S2S_CELL_GRU && o->cell != S2S_CELL_RNN_TANH))
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "benchmark options: T %d, B %d, I %d, H %d must be >= 1, layers %d in 1..%d, reps %d >= 1, "
                        "warmup %d >= 0",
                        o->T, o->B, o->I, o->H, o->layers, BENCH_MAX_LAYERS, o->reps, o->warmup);
    if (o->lanes < 0 || o->lanes > ctx->be->lanes_max || o->wave_chunk < 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "benchmark options: lanes %d (0..%d on this device), chunk %d (>= 0)",
                        o->lanes, ctx->be->lanes_max, o->wave_chunk);
    if (o->impl == S2S_RNN_IMPL_FUSED)
        return bench_fused(ctx, o, r);
#ifdef S2S_HAVE_CUDNN
    if (ctx->device == S2S_DEVICE_CUDA)
        return s2s_cudnn_bench_rnn(ctx->be, ctx->opts.seed, o, r);
#endif
    return S2S_FAIL(S2S_ERR_UNSUPPORTED, "the cuDNN implementation needs the CUDA device and a build with cuDNN "
                                         "(this build: %s)",
#ifdef S2S_HAVE_CUDNN
                    "cuDNN, but the context is on the CPU"
#else
                    "no cuDNN"
#endif
    );
}

static s2s_status gemm_reps(s2s_backend *be, int m, int n, int k, int reps, const float *a, const float *b, float *c,
                            double *ms)
{
    for (int i = 0; i < reps + 2; i++) {
        S2S_TRY(be->ops->sync(be));
        double t0 = s2s_now_ms();
        S2S_TRY(be->ops->gemm(be, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n));
        S2S_TRY(be->ops->sync(be));
        if (i >= 2)
            ms[i - 2] = s2s_now_ms() - t0;
    }
    return S2S_OK;
}

S2S_API s2s_status s2s_bench_gemm(s2s_context *ctx, int m, int n, int k, int reps, s2s_bench_result *r)
{
    if (!ctx || !r || m < 1 || n < 1 || k < 1 || reps < 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_bench_gemm: ctx, r and sizes >= 1 needed");
    memset(r, 0, sizeof *r);
    r->cudnn_algo = -1;
    s2s_backend *be = ctx->be;
    float *a = NULL, *b = NULL, *c = NULL;
    double *ms = s2s_host_calloc((size_t)reps, sizeof(double), "benchmark times");
    s2s_status st = ms ? s2s_bench_random(be, ctx->opts.seed, 1, (size_t)m * k, &a) : S2S_ERR_OUT_OF_MEMORY;
    if (st == S2S_OK)
        st = s2s_bench_random(be, ctx->opts.seed, 2, (size_t)k * n, &b);
    if (st == S2S_OK)
        st = be->ops->alloc(be, (size_t)m * n * sizeof(float), (void **)&c);
    if (st == S2S_OK)
        st = gemm_reps(be, m, n, k, reps, a, b, c, ms);
    if (st == S2S_OK)
        s2s_bench_summarise(ms, reps, r);
    be->ops->release(be, a);
    be->ops->release(be, b);
    be->ops->release(be, c);
    free(ms);
    return st;
}
