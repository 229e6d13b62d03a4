/* test_model.c - the whole encoder-decoder on the CPU: its loss gradient against finite
 * differences for every cell, attention type and direction setting (dropout and label
 * smoothing on), and learning the reverse task with greedy decoding. */
#include "seq2seq.h"
#include "test_util.h"
#include <string.h>

static s2s_context *cpu_ctx(uint64_t seed)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU;
    o.seed = seed;
    o.threads = 2;
    s2s_context *ctx = NULL;
    cr_assert_eq(s2s_context_create(&o, &ctx), S2S_OK, "%s", s2s_last_error());
    return ctx;
}

/* A random batch with varied lengths; tokens in 4..vocab-1. */
typedef struct {
    int32_t src[64], src_len[8], tgt[64], tgt_len[8];
    s2s_batch b;
} rand_batch;

static void make_batch(rand_batch *rb, uint64_t *s, int B, int S, int T, int vs, int vt)
{
    memset(rb, 0, sizeof *rb);
    for (int b = 0; b < B; b++) {
        rb->src_len[b] = b == 0 ? S : 1 + (int)(tu_next(s) % (uint64_t)S);
        rb->tgt_len[b] = b == 0 ? T : (int)(tu_next(s) % (uint64_t)(T + 1));
        for (int i = 0; i < rb->src_len[b]; i++)
            rb->src[b * S + i] = 4 + (int)(tu_next(s) % (uint64_t)(vs - 4));
        for (int i = 0; i < rb->tgt_len[b]; i++)
            rb->tgt[b * T + i] = 4 + (int)(tu_next(s) % (uint64_t)(vt - 4));
    }
    rb->b = (s2s_batch){B, S, T, rb->src, rb->src_len, rb->tgt, rb->tgt_len};
}

typedef struct {
    s2s_model *m;
    const s2s_batch *b;
    s2s_loss_options o;
    const char *name;
    float *host;
    size_t n;
} fd_ctx;

/* The loss after writing the perturbed host copy of one tensor back into the model. */
static double model_loss(void *p)
{
    fd_ctx *f = p;
    float loss = 0;
    cr_assert_eq(s2s_model_param_set(f->m, f->name, f->host, f->n), S2S_OK);
    cr_assert_eq(s2s_model_forward_backward(f->m, f->b, &f->o, &loss, NULL), S2S_OK, "%s", s2s_last_error());
    return loss;
}

static void model_fd(s2s_cell cell, int layers, int bidir, s2s_attention attn, float dropout, float smoothing)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_context *ctx = cpu_ctx(seed);
    s2s_model_config c = s2s_model_config_default();
    c.cell = cell;
    c.layers = layers;
    c.bidirectional = bidir;
    c.attention = attn;
    c.hidden = 6;
    c.embed = 5;
    c.dropout = dropout;
    c.src_vocab = 10;
    c.tgt_vocab = 11;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    rand_batch rb;
    make_batch(&rb, &s, 3, 5, 4, c.src_vocab, c.tgt_vocab);
    fd_ctx f = {m, &rb.b, s2s_loss_options_default(), NULL, NULL, 0};
    f.o.label_smoothing = smoothing;
    f.o.step = 3;
    int np = s2s_model_param_count(m);
    for (int i = 0; i < np; i++) {
        s2s_param_info info;
        cr_assert_eq(s2s_model_param_info_at(m, i, &info), S2S_OK);
        float *grad = malloc(info.numel * sizeof(float));
        f.host = malloc(info.numel * sizeof(float));
        f.name = info.name;
        f.n = info.numel;
        cr_assert_eq(s2s_model_param_get(m, info.name, f.host, info.numel), S2S_OK);
        model_loss(&f); /* leaves the gradients of these exact weights */
        cr_assert_eq(s2s_model_grad_get(m, info.name, grad, info.numel), S2S_OK);
        /* 1e-2 steps on a float32 loss: see test_ops_cpu.c; the whole model's curvature is
         * larger, so atol 3e-3, rtol 3e-2. */
        tu_fd_check(info.name, f.host, info.numel, grad, model_loss, &f, 1e-2f, 3e-3, 3e-2, 6, seed + (uint64_t)i);
        free(grad);
        free(f.host);
    }
    s2s_model_free(m);
    s2s_context_free(ctx);
}

Test(model_fd, lstm_bidir_general_two_layers_dropout) { model_fd(S2S_CELL_LSTM, 2, 1, S2S_ATTN_GENERAL, 0.3f, 0.1f); }
Test(model_fd, gru_dot_two_layers) { model_fd(S2S_CELL_GRU, 2, 0, S2S_ATTN_DOT, 0.0f, 0.0f); }
Test(model_fd, gru_bidir_general_dropout) { model_fd(S2S_CELL_GRU, 1, 1, S2S_ATTN_GENERAL, 0.2f, 0.2f); }
Test(model_fd, rnn_bidir_no_attention) { model_fd(S2S_CELL_RNN_TANH, 1, 1, S2S_ATTN_NONE, 0.0f, 0.0f); }
Test(model_fd, lstm_no_attention_two_layers) { model_fd(S2S_CELL_LSTM, 2, 0, S2S_ATTN_NONE, 0.1f, 0.0f); }

/* ---- learning: reverse a random sequence --------------------------------------------------- */
enum { RV_VOCAB = 20, RV_MIN = 5, RV_MAX = 12, RV_B = 64 };

static void reverse_batch(uint64_t *s, int32_t *src, int32_t *len, int32_t *tgt)
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

/* Trains `steps` steps from seed; fills curve[steps] with the losses; returns the exact-match
 * accuracy of greedy decoding on 256 held-out sequences. */
static double train_reverse(uint64_t seed, int steps, float *curve)
{
    s2s_context *ctx = cpu_ctx(seed);
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 64;
    c.embed = 32;
    c.dropout = 0.0f;
    c.attention = S2S_ATTN_DOT;
    c.src_vocab = c.tgt_vocab = 4 + RV_VOCAB;
    s2s_model *m = NULL;
    s2s_optimizer *opt = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    s2s_optimizer_options oo = s2s_optimizer_options_default();
    oo.lr = 3e-3f;
    cr_assert_eq(s2s_optimizer_create(m, &oo, &opt), S2S_OK);
    int32_t src[RV_B * RV_MAX], len[RV_B], tgt[RV_B * RV_MAX];
    uint64_t data = seed * 31 + 7;
    for (int step = 0; step < steps; step++) {
        reverse_batch(&data, src, len, tgt);
        s2s_batch b = {RV_B, RV_MAX, RV_MAX, src, len, tgt, len};
        s2s_loss_options lo = s2s_loss_options_default();
        lo.step = (uint64_t)step;
        cr_assert_eq(s2s_model_forward_backward(m, &b, &lo, &curve[step], NULL), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_optimizer_step(opt, 0, NULL), S2S_OK, "%s", s2s_last_error());
    }
    uint64_t held = 0xABCDEF; /* a different stream from training */
    int right = 0, total = 0;
    for (int k = 0; k < 4; k++) {
        reverse_batch(&held, src, len, tgt);
        s2s_batch b = {RV_B, RV_MAX, 0, src, len, NULL, NULL};
        int32_t out[RV_B * (RV_MAX + 4)], out_len[RV_B];
        cr_assert_eq(s2s_model_greedy_decode(m, &b, RV_MAX + 4, out, out_len), S2S_OK, "%s", s2s_last_error());
        for (int i = 0; i < RV_B; i++) {
            int ok = out_len[i] == len[i];
            for (int j = 0; ok && j < len[i]; j++)
                ok = out[i * (RV_MAX + 4) + j] == tgt[i * RV_MAX + j];
            right += ok;
            total++;
        }
    }
    s2s_optimizer_free(opt);
    s2s_model_free(m);
    s2s_context_free(ctx);
    return (double)right / total;
}

Test(learning, reverse_task_reaches_99_percent_and_repeats_bit_for_bit, .timeout = 240)
{
    enum { STEPS = 700 };
    static float a[STEPS], b[STEPS];
    double acc = train_reverse(5, STEPS, a);
    cr_log_info("reverse task: exact match %.4f after %d steps, final loss %.4f", acc, STEPS, a[STEPS - 1]);
    cr_assert_geq(acc, 0.99, "exact-match accuracy %.4f < 0.99 (final loss %.4f)", acc, a[STEPS - 1]);
    train_reverse(5, 60, b);
    for (int i = 0; i < 60; i++)
        cr_assert_eq(memcmp(&a[i], &b[i], sizeof(float)), 0, "loss curves differ at step %d: %.9g vs %.9g", i, a[i],
                     b[i]);
}
