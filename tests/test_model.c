/* test_model.c - the whole encoder-decoder on the CPU: its loss gradient against finite
 * differences for every cell, attention type and direction setting (dropout, word dropout and
 * label smoothing on), word dropout's tokens, the uniform initialisation, and learning the reverse task with greedy decoding. */
#include "seq2seq.h"
#include "model.h"
#include "reverse_task.h"
#include "model_util.h"
#include <string.h>

static s2s_context *cpu_ctx(uint64_t seed)
{
    return tu_context(S2S_DEVICE_CPU, S2S_PRECISION_FP32, S2S_RNN_IMPL_FUSED, seed);
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

static void model_fd_tied(s2s_cell cell, int layers, int bidir, s2s_attention attn, float dropout, float smoothing,
                          s2s_tie tie, float word_dropout)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_context *ctx = cpu_ctx(seed);
    s2s_model_config c = s2s_model_config_default();
    c.cell = cell;
    c.layers = layers;
    c.bidirectional = bidir;
    c.attention = attn;
    c.hidden = 6;
    c.embed = tie ? 6 : 5;
    c.dropout = dropout;
    c.src_vocab = tie == S2S_TIE_ALL ? 11 : 10;
    c.tgt_vocab = 11;
    c.tie_embeddings = tie;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    rand_batch rb;
    make_batch(&rb, &s, 3, 5, 4, c.src_vocab, c.tgt_vocab);
    fd_ctx f = {m, &rb.b, s2s_loss_options_default(), NULL, NULL, 0};
    f.o.label_smoothing = smoothing;
    f.o.word_dropout = word_dropout; /* the same tokens at every evaluation: they are keyed by the step */
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

/* Gradients without dropout (train = 0) on a model configured with dropout: the loss is the
 * evaluation loss, and the gradients are those of the same weights configured without dropout
 * (bit for bit: the same ops run). Before the fix this crashed: no activations were kept. */
Test(model, gradients_with_dropout_switched_off)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_context *ctx = cpu_ctx(seed);
    s2s_model_config c = s2s_model_config_default();
    c.layers = 2, c.bidirectional = 1, c.hidden = 16, c.embed = 8, c.src_vocab = 23, c.tgt_vocab = 29;
    c.dropout = 0.4f;
    s2s_model *with = NULL, *without = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &with), S2S_OK, "%s", s2s_last_error());
    c.dropout = 0.0f;
    cr_assert_eq(s2s_model_create(ctx, &c, &without), S2S_OK, "%s", s2s_last_error());
    rand_batch rb;
    make_batch(&rb, &s, 4, 6, 5, c.src_vocab, c.tgt_vocab);
    s2s_loss_options off = s2s_loss_options_default(), on = s2s_loss_options_default();
    off.train = 0;
    float l_off, l_eval, l_ref;
    cr_assert_eq(s2s_model_forward_backward(with, &rb.b, &off, &l_off, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_evaluate(with, &rb.b, &l_eval, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_forward_backward(without, &rb.b, &on, &l_ref, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(memcmp(&l_off, &l_eval, sizeof(float)), 0, "loss %.9g vs evaluation %.9g", l_off, l_eval);
    cr_assert_eq(memcmp(&l_off, &l_ref, sizeof(float)), 0, "loss %.9g vs no-dropout model %.9g", l_off, l_ref);
    for (int i = 0; i < s2s_model_param_count(with); i++) {
        s2s_param_info info;
        s2s_model_param_info_at(with, i, &info);
        float *a = malloc(info.numel * sizeof(float)), *b = malloc(info.numel * sizeof(float));
        cr_assert_eq(s2s_model_grad_get(with, info.name, a, info.numel), S2S_OK);
        cr_assert_eq(s2s_model_grad_get(without, info.name, b, info.numel), S2S_OK);
        cr_assert_eq(memcmp(a, b, info.numel * sizeof(float)), 0, "%s: gradients differ", info.name);
        free(a), free(b);
    }
    s2s_model_free(with), s2s_model_free(without);
    s2s_context_free(ctx);
}

static void model_fd(s2s_cell cell, int layers, int bidir, s2s_attention attn, float dropout, float smoothing)
{
    model_fd_tied(cell, layers, bidir, attn, dropout, smoothing, S2S_TIE_NONE, 0.0f);
}

/* tied embeddings: the one tensor's gradient is that of the loss through all its roles */
Test(model_fd, lstm_general_tied_decoder_dropout)
{
    model_fd_tied(S2S_CELL_LSTM, 1, 0, S2S_ATTN_GENERAL, 0.2f, 0.1f, S2S_TIE_DECODER, 0.0f);
}
Test(model_fd, gru_bidir_dot_tied_all) { model_fd_tied(S2S_CELL_GRU, 1, 1, S2S_ATTN_DOT, 0.0f, 0.0f, S2S_TIE_ALL, 0.0f); }
Test(model_fd, lstm_bidir_general_word_dropout)
{
    model_fd_tied(S2S_CELL_LSTM, 1, 1, S2S_ATTN_GENERAL, 0.2f, 0.1f, S2S_TIE_NONE, 0.3f);
}

Test(model_fd, lstm_bidir_general_two_layers_dropout) { model_fd(S2S_CELL_LSTM, 2, 1, S2S_ATTN_GENERAL, 0.3f, 0.1f); }
Test(model_fd, gru_dot_two_layers) { model_fd(S2S_CELL_GRU, 2, 0, S2S_ATTN_DOT, 0.0f, 0.0f); }
Test(model_fd, gru_bidir_general_dropout) { model_fd(S2S_CELL_GRU, 1, 1, S2S_ATTN_GENERAL, 0.2f, 0.2f); }
Test(model_fd, rnn_bidir_no_attention) { model_fd(S2S_CELL_RNN_TANH, 1, 1, S2S_ATTN_NONE, 0.0f, 0.0f); }
Test(model_fd, lstm_no_attention_two_layers) { model_fd(S2S_CELL_LSTM, 2, 0, S2S_ATTN_NONE, 0.1f, 0.0f); }

/* ---- word dropout (s2s_loss_options.word_dropout) ------------------------------------------ */

/* The draws: about p of the tokens, other ones at another step or side, and a shard of a batch
 * (rows row0.. of `rows`) draws what the whole batch draws for those rows. */
Test(word_dropout, draws_p_of_the_tokens_and_shards_draw_the_whole_batchs)
{
    s2s_word_drop wd = {0.25f, 5}, later = {0.25f, 6};
    const int B = 8, L = 1000;
    s2s_drop_rows whole = {1, B, B, 0}, shard = {1, B - 3, B, 3}; /* rows 3..7 of 8 */
    long n = 0, other_step = 0, other_side = 0, shard_diff = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            int d = s2s_word_dropped(77, &wd, &whole, S2S_WORD_SRC, b, t);
            n += d;
            other_step += d != s2s_word_dropped(77, &later, &whole, S2S_WORD_SRC, b, t);
            other_side += d != s2s_word_dropped(77, &wd, &whole, S2S_WORD_TGT, b, t);
            if (b >= 3)
                shard_diff += d != s2s_word_dropped(77, &wd, &shard, S2S_WORD_SRC, b - 3, t);
        }
    /* 8000 draws at p = 0.25: a standard deviation of 0.0048; 0.02 is 4 of them */
    cr_assert(fabs((double)n / (B * L) - 0.25) < 0.02, "%ld of %d tokens dropped at p = 0.25", n, B * L);
    cr_assert(other_step > 1000 && other_side > 1000, "step 6 differs in %ld, the target side in %ld of %d", other_step,
              other_side, B * L);
    cr_assert_eq(shard_diff, 0, "a shard drew %ld tokens differently from the whole batch", shard_diff);
    wd.p = 0.0f;
    for (int t = 0; t < L; t++)
        cr_assert_eq(s2s_word_dropped(77, &wd, &whole, S2S_WORD_SRC, 0, t), 0, "p = 0 dropped token %d", t);
    cr_assert_eq(s2s_word_dropped(77, NULL, &whole, S2S_WORD_TGT, 0, 0), 0);
}

/* What the model reads: the uploaded source and decoder input have UNK exactly where the draws
 * say, and the BOS, the padding and the targets the loss scores are untouched. */
Test(word_dropout, uploads_unk_where_drawn_and_keeps_targets)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_context *ctx = cpu_ctx(seed);
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 8, c.embed = 8, c.src_vocab = 23, c.tgt_vocab = 29;
    c.dropout = 0.0f; /* only word dropout draws below */
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    rand_batch rb;
    make_batch(&rb, &s, 8, 8, 8, c.src_vocab, c.tgt_vocab);
    s2s_word_drop wd = {0.4f, 3};
    s2s_dev_batch db;
    cr_assert_eq(s2s_batch_upload(m, &rb.b, 1, &wd, &db), S2S_OK, "%s", s2s_last_error());
    int B = db.B, S = db.S, T = db.T, src[64], tin[72], tout[72], dropped = 0;
    cr_assert(S * B <= 64 && T * B <= 72);
    s2s_drop_rows whole = {1, B, B, 0};
    cr_assert_eq(m->be->ops->to_host(m->be, src, db.src, sizeof(int) * (size_t)S * B), S2S_OK);
    cr_assert_eq(m->be->ops->to_host(m->be, tin, db.tgt_in, sizeof(int) * (size_t)T * B), S2S_OK);
    cr_assert_eq(m->be->ops->to_host(m->be, tout, db.tgt_out, sizeof(int) * (size_t)T * B), S2S_OK);
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < S; i++) {
            int want = i >= rb.src_len[b] ? S2S_PAD_ID
                       : s2s_word_dropped(seed, &wd, &whole, S2S_WORD_SRC, b, i) ? S2S_UNK_ID : rb.src[b * 8 + i];
            cr_assert_eq(src[i * B + b], want, "source row %d token %d", b, i);
            dropped += want == S2S_UNK_ID;
        }
        int n = rb.tgt_len[b];
        cr_assert_eq(tin[b], S2S_BOS_ID, "row %d: BOS", b);
        for (int t = 0; t < T; t++) {
            int y = t < n ? rb.tgt[b * 8 + t] : t == n ? S2S_EOS_ID : S2S_PAD_ID;
            cr_assert_eq(tout[t * B + b], y, "target row %d step %d", b, t);
            if (t + 1 < T) {
                int want = t >= n ? S2S_PAD_ID : s2s_word_dropped(seed, &wd, &whole, S2S_WORD_TGT, b, t) ? S2S_UNK_ID : y;
                cr_assert_eq(tin[(t + 1) * B + b], want, "decoder input row %d step %d", b, t + 1);
                dropped += want == S2S_UNK_ID;
            }
        }
    }
    cr_assert(dropped > 0, "p = 0.4 dropped nothing");
    s2s_arena_reset(&m->arena);
    /* the loss: word dropout changes it when training, not when train = 0 (evaluation) */
    s2s_loss_options plain = s2s_loss_options_default(), on = plain;
    plain.step = on.step = 3;
    on.word_dropout = 0.4f;
    float l0, l1, e0, e1;
    cr_assert_eq(s2s_model_forward_backward(m, &rb.b, &plain, &l0, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_forward_backward(m, &rb.b, &on, &l1, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert(l0 != l1, "word dropout 0.4 left the loss at %.9g", l0);
    plain.train = on.train = 0;
    cr_assert_eq(s2s_model_forward_backward(m, &rb.b, &plain, &e0, NULL), S2S_OK);
    cr_assert_eq(s2s_model_forward_backward(m, &rb.b, &on, &e1, NULL), S2S_OK);
    cr_assert_eq(memcmp(&e0, &e1, sizeof(float)), 0, "train = 0: %.9g with word dropout, %.9g without", e1, e0);
    on.word_dropout = 1.0f;
    cr_assert_eq(s2s_model_forward_backward(m, &rb.b, &on, &e1, NULL), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "word_dropout"), "%s", s2s_last_error());
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* ---- learning: reverse a random sequence (tests/reverse_task.h) ---------------------------- */
Test(learning, reverse_task_reaches_99_percent_and_repeats_bit_for_bit, .timeout = 240)
{
    enum { STEPS = 900 };
    static float a[STEPS], b[STEPS];
    rv_result r = rv_train(S2S_DEVICE_CPU, 5, STEPS, a);
    cr_log_info("reverse task: exact match %.4f after %d steps, final loss %.4f", r.accuracy, STEPS, a[STEPS - 1]);
    cr_assert_geq(r.accuracy, 0.99, "exact-match accuracy %.4f < 0.99 (final loss %.4f)", r.accuracy, a[STEPS - 1]);
    rv_result r2 = rv_train(S2S_DEVICE_CPU, 5, 60, b);
    for (int i = 0; i < 60; i++)
        cr_assert_eq(memcmp(&a[i], &b[i], sizeof(float)), 0, "loss curves differ at step %d: %.9g vs %.9g", i, a[i],
                     b[i]);
    free(r.weights);
    free(r2.weights);
}

/* ---- tied embeddings ------------------------------------------------------------------------ */

/* A tied model with the weights of an untied one whose embeddings and output projection hold
 * the same matrix computes the same loss, every other gradient, and for the one tensor the sum
 * of the untied roles' gradients (within float rounding: the tied sums add in one buffer). Its
 * file-level names: one tensor, the other roles' names reaching it. Bad configs refused. */
static void tied_equals_sum(s2s_tie tie)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_context *ctx = cpu_ctx(seed);
    s2s_model_config c = s2s_model_config_default();
    c.layers = 2, c.bidirectional = 1, c.hidden = c.embed = 8, c.src_vocab = c.tgt_vocab = 19, c.dropout = 0.3f;
    s2s_model *u = NULL, *t = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &u), S2S_OK, "%s", s2s_last_error());
    c.tie_embeddings = tie;
    cr_assert_eq(s2s_model_create(ctx, &c, &t), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_param_count(t), s2s_model_param_count(u) - (tie == S2S_TIE_ALL ? 2 : 1));
    const char *one = tie == S2S_TIE_ALL ? "encoder.embedding.weight" : "decoder.embedding.weight";
    const char *roles[3] = {"generator.weight", "decoder.embedding.weight", "encoder.embedding.weight"};
    int nroles = tie == S2S_TIE_ALL ? 3 : 2;
    size_t VE = (size_t)c.tgt_vocab * c.embed;
    float *w = malloc(VE * sizeof(float)), *g = malloc(VE * sizeof(float)), *sum = calloc(VE, sizeof(float));
    /* the untied model's roles all get the untied generator's weights; the tied model all of u's */
    cr_assert_eq(s2s_model_param_get(u, "generator.weight", w, VE), S2S_OK);
    for (int r = 1; r < nroles; r++)
        cr_assert_eq(s2s_model_param_set(u, roles[r], w, VE), S2S_OK);
    tu_copy_weights(t, u); /* by u's names: every role sets the one tensor, all to the same values */
    for (int r = 0; r < nroles; r++) { /* every role's name reaches the one tensor */
        cr_assert_eq(s2s_model_param_get(t, roles[r], g, VE), S2S_OK, "%s: %s", roles[r], s2s_last_error());
        cr_assert_eq(memcmp(g, w, VE * sizeof(float)), 0, "%s", roles[r]);
    }
    rand_batch rb;
    make_batch(&rb, &s, 4, 6, 5, c.src_vocab, c.tgt_vocab);
    s2s_loss_options o = s2s_loss_options_default();
    o.step = 7, o.label_smoothing = 0.1f;
    float lu, lt;
    cr_assert_eq(s2s_model_forward_backward(u, &rb.b, &o, &lu, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_forward_backward(t, &rb.b, &o, &lt, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(memcmp(&lu, &lt, sizeof(float)), 0, "loss untied %.9g, tied %.9g", lu, lt);
    for (int r = 0; r < nroles; r++) {
        cr_assert_eq(s2s_model_grad_get(u, roles[r], g, VE), S2S_OK);
        for (size_t i = 0; i < VE; i++)
            sum[i] += g[i];
    }
    cr_assert_eq(s2s_model_grad_get(t, one, g, VE), S2S_OK);
    for (size_t i = 0; i < VE; i++)
        cr_assert(fabsf(g[i] - sum[i]) <= 1e-6f + 1e-5f * fabsf(sum[i]), "tied gradient [%zu] %.9g, roles' sum %.9g",
                  i, g[i], sum[i]);
    for (int i = 0; i < s2s_model_param_count(t); i++) { /* the others: the same ops, the same bits */
        s2s_param_info info;
        s2s_model_param_info_at(t, i, &info);
        if (!strcmp(info.name, one))
            continue;
        float *a = malloc(info.numel * sizeof(float)), *b = malloc(info.numel * sizeof(float));
        cr_assert_eq(s2s_model_grad_get(t, info.name, a, info.numel), S2S_OK);
        cr_assert_eq(s2s_model_grad_get(u, info.name, b, info.numel), S2S_OK);
        cr_assert_eq(memcmp(a, b, info.numel * sizeof(float)), 0, "%s: gradients differ", info.name);
        free(a), free(b);
    }
    free(w), free(g), free(sum);
    s2s_model_free(u), s2s_model_free(t);
    s2s_context_free(ctx);
}

Test(tied, decoder_gradient_is_the_roles_sum) { tied_equals_sum(S2S_TIE_DECODER); }
Test(tied, all_gradient_is_the_roles_sum) { tied_equals_sum(S2S_TIE_ALL); }

Test(tied, bad_configs_refused)
{
    s2s_context *ctx = cpu_ctx(3);
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 8, c.embed = 6, c.src_vocab = 19, c.tgt_vocab = 19, c.tie_embeddings = S2S_TIE_DECODER;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "make them equal"), "%s", s2s_last_error());
    c.embed = 8, c.src_vocab = 17, c.tie_embeddings = S2S_TIE_ALL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "one vocabulary"), "%s", s2s_last_error());
    c.tie_embeddings = (s2s_tie)3;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_ERR_INVALID_ARG);
    c.tie_embeddings = S2S_TIE_DECODER; /* other vocabularies are fine when only the decoder ties */
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    float x[8];
    cr_assert_eq(s2s_model_param_get(m, "encoder.embedding.weight", x, 8), S2S_ERR_INVALID_ARG); /* its own size */
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* Every tensor of m, in order, into out[s2s_model_param_numel(m)]. */
static void all_params(const s2s_model *m, float *out)
{
    for (int i = 0; i < s2s_model_param_count(m); i++) {
        s2s_param_info pi;
        cr_assert_eq(s2s_model_param_info_at(m, i, &pi), S2S_OK);
        cr_assert_eq(s2s_model_param_get(m, pi.name, out, pi.numel), S2S_OK, "%s", s2s_last_error());
        out += pi.numel;
    }
}

/* s2s_model_init_uniform: every weight in [-a, a] and spread over it, the embeddings' pad rows
 * zero, drawn again from the context seed (the same seed gives the same values, another seed
 * others), unlike the default initialisation; bad bounds refused. */
Test(init_uniform, draws_every_weight_in_the_bound_with_zero_pad_rows)
{
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 16, c.embed = 8, c.src_vocab = 23, c.tgt_vocab = 19, c.bidirectional = 1, c.layers = 2;
    s2s_model *m[3] = {NULL, NULL, NULL};
    s2s_context *ctx[3] = {cpu_ctx(5), cpu_ctx(5), cpu_ctx(6)};
    for (int k = 0; k < 3; k++)
        cr_assert_eq(s2s_model_create(ctx[k], &c, &m[k]), S2S_OK, "%s", s2s_last_error());
    size_t total = s2s_model_param_numel(m[0]);
    float *def = malloc(total * sizeof(float)), *a = malloc(total * sizeof(float)), *b = malloc(total * sizeof(float)),
          *o = malloc(total * sizeof(float));
    cr_assert(def && a && b && o);
    all_params(m[0], def);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(s2s_model_init_uniform(m[k], 0.05f), S2S_OK, "%s", s2s_last_error());
    all_params(m[0], a);
    all_params(m[1], b);
    all_params(m[2], o);
    cr_assert_eq(memcmp(a, b, total * sizeof(float)), 0, "the same seed draws the same weights");
    size_t same_other = 0, same_def = 0, off = 0;
    for (int i = 0; i < s2s_model_param_count(m[0]); i++) {
        s2s_param_info pi;
        cr_assert_eq(s2s_model_param_info_at(m[0], i, &pi), S2S_OK);
        int emb = strstr(pi.name, "embedding") != NULL;
        float lo = 1, hi = -1;
        for (size_t e = 0; e < pi.numel; e++) {
            float v = a[off + e];
            if (emb && e < (size_t)pi.shape[1]) {
                cr_assert_eq(v, 0.0f, "%s: pad row element %zu = %g", pi.name, e, v);
                continue;
            }
            cr_assert(v >= -0.05f && v <= 0.05f, "%s[%zu] = %g outside [-0.05, 0.05]", pi.name, e, v);
            lo = v < lo ? v : lo, hi = v > hi ? v : hi;
            same_other += v == o[off + e];
            same_def += v == def[off + e];
        }
        if (pi.numel >= 64) /* spread over the interval, not a constant */
            cr_assert(lo < -0.04f && hi > 0.04f, "%s spans [%g, %g]", pi.name, lo, hi);
        off += pi.numel;
    }
    cr_assert_eq(off, total);
    cr_assert_lt(same_other, total / 100, "another seed draws other weights (%zu of %zu equal)", same_other, total);
    cr_assert_lt(same_def, total / 100, "the default initialisation was replaced (%zu equal)", same_def);
    /* the model trains from there: a finite loss and gradient */
    rand_batch rb;
    uint64_t s = 9;
    make_batch(&rb, &s, 3, 5, 4, c.src_vocab, c.tgt_vocab);
    s2s_loss_options lo = s2s_loss_options_default();
    float loss = 0;
    cr_assert_eq(s2s_model_forward_backward(m[0], &rb.b, &lo, &loss, NULL), S2S_OK, "%s", s2s_last_error());
    cr_assert(isfinite(loss) && loss > 0, "loss %g", loss);
    float bad[3] = {0.0f, -0.1f, NAN};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(s2s_model_init_uniform(m[0], bad[k]), S2S_ERR_INVALID_ARG, "bound %g", bad[k]);
        cr_assert(strstr(s2s_last_error(), "finite value > 0"), "%s", s2s_last_error());
    }
    cr_assert_eq(s2s_model_init_uniform(NULL, 0.1f), S2S_ERR_INVALID_ARG);
    free(def), free(a), free(b), free(o);
    for (int k = 0; k < 3; k++)
        s2s_model_free(m[k]), s2s_context_free(ctx[k]);
}
