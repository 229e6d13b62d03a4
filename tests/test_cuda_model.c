/* test_cuda_model.c - the whole model on the GPU against the CPU: one training step (loss and
 * every gradient) from the same weights and dropout masks, the reverse task learned to the
 * CPU's accuracy, and bit-identical repeats. Skips where no GPU is present.
 *
 * Tolerances: FP32, per element |gpu - cpu| <= 2e-5 + 2e-3 |cpu| (both float32; the GPU sums
 * in other orders, and gradients pass through ~20 chained steps). TF32 rounds GEMM inputs to
 * 10 mantissa bits (~5e-4 relative each), so it is held norm-wise per tensor:
 * ||gpu - cpu|| <= 2e-2 ||cpu|| + 1e-5 and the loss within 1e-2 relative. BF16 rounds them to
 * 8 bits (8x coarser): 8e-2 norm-wise and the loss within 4e-2. */
#include "reverse_task.h"
#include "model_util.h"
#include <string.h>

static s2s_context *make_ctx(s2s_device dev, s2s_precision prec, uint64_t seed)
{
    return tu_context(dev, prec, S2S_RNN_IMPL_FUSED, seed);
}

static void skip_without_gpu(void)
{
    s2s_context *ctx = make_ctx(S2S_DEVICE_CUDA, S2S_PRECISION_FP32, 1);
    if (!ctx)
        cr_skip_test("no CUDA device: %s", s2s_last_error());
    s2s_context_free(ctx);
}

typedef struct {
    int32_t src[8 * 9], sl[8], tgt[8 * 7], tl[8];
    s2s_batch b;
} batch8;

static void make_batch8(batch8 *x, uint64_t *s, int vs, int vt)
{
    memset(x, 0, sizeof *x);
    for (int b = 0; b < 8; b++) {
        x->sl[b] = b == 0 ? 9 : 1 + (int)(tu_next(s) % 9);
        x->tl[b] = b == 1 ? 7 : (int)(tu_next(s) % 8);
        for (int i = 0; i < x->sl[b]; i++)
            x->src[b * 9 + i] = 4 + (int)(tu_next(s) % (uint64_t)(vs - 4));
        for (int i = 0; i < x->tl[b]; i++)
            x->tgt[b * 7 + i] = 4 + (int)(tu_next(s) % (uint64_t)(vt - 4));
    }
    x->b = (s2s_batch){8, 9, 7, x->src, x->sl, x->tgt, x->tl};
}

static void step_parity(s2s_cell cell, int bidir, s2s_attention attn, s2s_precision prec)
{
    skip_without_gpu();
    uint64_t seed = tu_seed(), s = seed;
    s2s_context *cc = make_ctx(S2S_DEVICE_CPU, S2S_PRECISION_FP32, seed);
    s2s_context *gc = make_ctx(S2S_DEVICE_CUDA, prec, seed);
    s2s_model_config c = s2s_model_config_default();
    c.cell = cell, c.layers = 2, c.bidirectional = bidir, c.attention = attn;
    c.hidden = 48, c.embed = 24, c.dropout = 0.2f, c.src_vocab = 37, c.tgt_vocab = 41;
    s2s_model *cm = NULL, *gm = NULL;
    cr_assert_eq(s2s_model_create(cc, &c, &cm), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_create(gc, &c, &gm), S2S_OK, "%s", s2s_last_error());
    batch8 x;
    make_batch8(&x, &s, c.src_vocab, c.tgt_vocab);
    s2s_loss_options lo = s2s_loss_options_default();
    lo.label_smoothing = 0.1f;
    lo.step = 11;
    float lc, lg;
    cr_assert_eq(s2s_model_forward_backward(cm, &x.b, &lo, &lc, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_forward_backward(gm, &x.b, &lo, &lg, NULL), S2S_OK, "%s", s2s_last_error());
    int tf32 = prec != S2S_PRECISION_FP32, bf16 = prec == S2S_PRECISION_BF16;
    cr_assert(fabs(lg - lc) <= (bf16 ? 4e-2 : tf32 ? 1e-2 : 1e-5) * fabs(lc), "loss gpu %.8g cpu %.8g (seed %llu)", lg, lc,
              (unsigned long long)seed);
    for (int i = 0; i < s2s_model_param_count(cm); i++) {
        s2s_param_info info;
        s2s_model_param_info_at(cm, i, &info);
        float *gcpu = malloc(info.numel * sizeof(float)), *ggpu = malloc(info.numel * sizeof(float));
        double *want = malloc(info.numel * sizeof(double));
        cr_assert_eq(s2s_model_grad_get(cm, info.name, gcpu, info.numel), S2S_OK);
        cr_assert_eq(s2s_model_grad_get(gm, info.name, ggpu, info.numel), S2S_OK);
        double diff = 0, ref = 0;
        for (size_t e = 0; e < info.numel; e++) {
            want[e] = gcpu[e];
            diff += ((double)ggpu[e] - gcpu[e]) * ((double)ggpu[e] - gcpu[e]);
            ref += (double)gcpu[e] * gcpu[e];
        }
        if (tf32)
            cr_assert(sqrt(diff) <= (bf16 ? 8e-2 : 2e-2) * sqrt(ref) + 1e-5, "%s: relative error %.3g (seed %llu)", info.name,
                      sqrt(diff / (ref + 1e-30)), (unsigned long long)seed);
        else
            tu_assert_close(info.name, ggpu, want, info.numel, 2e-5, 2e-3, seed);
        free(gcpu), free(ggpu), free(want);
    }
    s2s_model_free(cm), s2s_model_free(gm);
    s2s_context_free(cc), s2s_context_free(gc);
}

Test(cuda_model, step_lstm_bidir_general_fp32) { step_parity(S2S_CELL_LSTM, 1, S2S_ATTN_GENERAL, S2S_PRECISION_FP32); }
Test(cuda_model, step_gru_dot_fp32) { step_parity(S2S_CELL_GRU, 0, S2S_ATTN_DOT, S2S_PRECISION_FP32); }
Test(cuda_model, step_rnn_bidir_none_fp32) { step_parity(S2S_CELL_RNN_TANH, 1, S2S_ATTN_NONE, S2S_PRECISION_FP32); }
Test(cuda_model, step_lstm_bidir_general_tf32) { step_parity(S2S_CELL_LSTM, 1, S2S_ATTN_GENERAL, S2S_PRECISION_TF32); }
Test(cuda_model, step_lstm_bidir_general_bf16) { step_parity(S2S_CELL_LSTM, 1, S2S_ATTN_GENERAL, S2S_PRECISION_BF16); }

Test(cuda_model, reverse_task_300_steps_matches_cpu_and_repeats, .timeout = 300)
{
    skip_without_gpu();
    enum { STEPS = 300 };
    static float cpu[STEPS], g1[STEPS], g2[STEPS];
    rv_result rc = rv_train(S2S_DEVICE_CPU, 9, STEPS, cpu);
    rv_result r1 = rv_train(S2S_DEVICE_CUDA, 9, STEPS, g1);
    rv_result r2 = rv_train(S2S_DEVICE_CUDA, 9, STEPS, g2);
    cr_log_info("reverse task, %d steps: CPU %.4f, GPU %.4f exact match; final loss CPU %.4f GPU %.4f", STEPS,
                rc.accuracy, r1.accuracy, cpu[STEPS - 1], g1[STEPS - 1]);
    /* float differences grow over 300 steps, so the runs are compared by outcome */
    cr_assert(fabs(r1.accuracy - rc.accuracy) <= 0.03, "GPU accuracy %.4f vs CPU %.4f", r1.accuracy, rc.accuracy);
    cr_assert(fabs(g1[STEPS - 1] - cpu[STEPS - 1]) <= 0.25 * cpu[STEPS - 1] + 0.02, "final loss GPU %.4f vs CPU %.4f",
              g1[STEPS - 1], cpu[STEPS - 1]);
    for (int i = 0; i < STEPS; i++)
        cr_assert_eq(memcmp(&g1[i], &g2[i], sizeof(float)), 0, "GPU runs differ at step %d: %.9g vs %.9g", i, g1[i],
                     g2[i]);
    cr_assert_eq(memcmp(r1.weights, r2.weights, r1.nweights * sizeof(float)), 0, "GPU final weights differ");
    free(rc.weights), free(r1.weights), free(r2.weights);
}

/* Greedy decoding records each chunk of steps as a graph on first use and replays it later:
 * the replays must give exactly the first run's output, with another shape in between. */
Test(cuda_model, greedy_graph_replay_is_exact)
{
    skip_without_gpu();
    uint64_t seed = tu_seed(), s = seed;
    s2s_context *gc = make_ctx(S2S_DEVICE_CUDA, S2S_PRECISION_FP32, seed);
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 32, c.embed = 16, c.layers = 2, c.src_vocab = 37, c.tgt_vocab = 41;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(gc, &c, &m), S2S_OK, "%s", s2s_last_error());
    batch8 x, y;
    make_batch8(&x, &s, c.src_vocab, c.tgt_vocab);
    make_batch8(&y, &s, c.src_vocab, c.tgt_vocab);
    y.b.batch = 5; /* another shape */
    enum { L = 20 };
    int32_t first[8 * L], first_len[8], again[8 * L], again_len[8];
    cr_assert_eq(s2s_model_greedy_decode(m, &x.b, L, first, first_len), S2S_OK, "%s", s2s_last_error());
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(s2s_model_greedy_decode(m, &y.b, L, again, again_len), S2S_OK, "%s", s2s_last_error());
        memset(again, 0, sizeof again);
        cr_assert_eq(s2s_model_greedy_decode(m, &x.b, L, again, again_len), S2S_OK, "%s", s2s_last_error());
        for (int b = 0; b < 8; b++) {
            cr_assert_eq(again_len[b], first_len[b], "round %d row %d: length %d vs %d", round, b, again_len[b],
                         first_len[b]);
            cr_assert_eq(memcmp(again + b * L, first + b * L, sizeof(int32_t) * (size_t)first_len[b]), 0,
                         "round %d row %d differs", round, b);
        }
    }
    s2s_model_free(m);
    s2s_context_free(gc);
}
