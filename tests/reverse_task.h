/* reverse_task.h - the synthetic learning task shared by the CPU and GPU tests: reverse a
 * sequence of 5-12 random tokens over a 20-token vocabulary, trained with Adam, scored by
 * exact match of greedy decoding on 256 held-out sequences. */
#ifndef S2S_REVERSE_TASK_H
#define S2S_REVERSE_TASK_H

#include "seq2seq.h"
#include "test_util.h"
#include <string.h>

enum { RV_VOCAB = 20, RV_MIN = 5, RV_MAX = 12, RV_B = 64, RV_OUT = RV_MAX + 4 };

__attribute__((unused)) static void rv_batch(uint64_t *s, int32_t *src, int32_t *len, int32_t *tgt)
{
    for (int b = 0; b < RV_B; b++) {
        int n = RV_MIN + (int)(tu_next(s) % (RV_MAX - RV_MIN + 1));
        len[b] = n;
        for (int i = 0; i < RV_MAX; i++)
            src[b * RV_MAX + i] = tgt[b * RV_MAX + i] = 0;
        for (int i = 0; i < n; i++)
            src[b * RV_MAX + i] = 4 + (int)(tu_next(s) % RV_VOCAB);
        for (int i = 0; i < n; i++)
            tgt[b * RV_MAX + i] = src[b * RV_MAX + n - 1 - i];
    }
}

/* steps Adam steps at lr on the task's batches drawn from *data; curve (may be NULL) gets each
 * step's loss. */
__attribute__((unused)) static void rv_steps(s2s_model *m, uint64_t *data, int steps, float lr, float *curve)
{
    s2s_optimizer *opt = NULL;
    s2s_optimizer_options oo = s2s_optimizer_options_default();
    oo.lr = lr;
    cr_assert_eq(s2s_optimizer_create(m, &oo, &opt), S2S_OK, "%s", s2s_last_error());
    int32_t src[RV_B * RV_MAX], len[RV_B], tgt[RV_B * RV_MAX];
    for (int step = 0; step < steps; step++) {
        rv_batch(data, src, len, tgt);
        s2s_batch b = {RV_B, RV_MAX, RV_MAX, src, len, tgt, len};
        s2s_loss_options lo = s2s_loss_options_default();
        lo.step = (uint64_t)step;
        cr_assert_eq(s2s_model_forward_backward(m, &b, &lo, curve ? &curve[step] : NULL, NULL), S2S_OK, "%s",
                     s2s_last_error());
        cr_assert_eq(s2s_optimizer_step(opt, 0, NULL), S2S_OK, "%s", s2s_last_error());
    }
    s2s_optimizer_free(opt);
}

typedef struct rv_result {
    double accuracy; /* exact match on held-out sequences */
    float *weights;  /* generator.weight after training (malloc'd; caller frees) */
    size_t nweights;
} rv_result;

/* Trains `steps` steps on `device` with the context's GEMM precision prec from `seed`, writing
 * the loss of each step to curve. */
__attribute__((unused)) static rv_result rv_train_at(s2s_device device, s2s_precision prec, uint64_t seed, int steps,
                                                     float *curve)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = device;
    o.precision = prec;
    o.seed = seed;
    o.threads = 2;
    s2s_context *ctx = NULL;
    cr_assert_eq(s2s_context_create(&o, &ctx), S2S_OK, "%s", s2s_last_error());
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 64;
    c.embed = 32;
    c.dropout = 0.1f;
    c.attention = S2S_ATTN_DOT;
    c.src_vocab = c.tgt_vocab = 4 + RV_VOCAB;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    uint64_t data = seed * 31 + 7;
    rv_steps(m, &data, steps, 3e-3f, curve);
    int32_t src[RV_B * RV_MAX], len[RV_B], tgt[RV_B * RV_MAX];
    uint64_t held = 0xABCDEF; /* a different stream from training */
    int right = 0, total = 0;
    for (int k = 0; k < 4; k++) {
        rv_batch(&held, src, len, tgt);
        s2s_batch b = {RV_B, RV_MAX, 0, src, len, NULL, NULL};
        int32_t out[RV_B * RV_OUT], out_len[RV_B];
        cr_assert_eq(s2s_model_greedy_decode(m, &b, RV_OUT, out, out_len), S2S_OK, "%s", s2s_last_error());
        for (int i = 0; i < RV_B; i++) {
            int ok = out_len[i] == len[i];
            for (int j = 0; ok && j < len[i]; j++)
                ok = out[i * RV_OUT + j] == tgt[i * RV_MAX + j];
            right += ok;
            total++;
        }
    }
    rv_result r = {(double)right / total, NULL, (size_t)c.tgt_vocab * c.hidden};
    r.weights = malloc(r.nweights * sizeof(float));
    cr_assert_eq(s2s_model_param_get(m, "generator.weight", r.weights, r.nweights), S2S_OK);
    s2s_model_free(m);
    s2s_context_free(ctx);
    return r;
}

__attribute__((unused)) static rv_result rv_train(s2s_device device, uint64_t seed, int steps, float *curve)
{
    return rv_train_at(device, S2S_PRECISION_FP32, seed, steps, curve);
}

#endif
