/* test_layers.c - the ways the encoder's layers can run: stacked layers as a wavefront
 * (rnn.c: s2s_rnn_stack_fwd/bwd), bidirectional layers with one direction per lane, and
 * cuDNN's RNN API as the layer implementation (s2s_context_options.rnn_impl).
 *
 * The wavefront cuts time into chunks and overlaps layers across the backend's lanes; neither
 * may change the result. On the CPU (one lane) a chunked run of a whole training step (loss
 * and every gradient, dropout on) is held to the unchunked run; on a GPU the default schedule
 * (two lanes, chunks of 10 steps) is held to the CPU and, bit for bit, to a one-lane run and
 * to itself (a missing wait between lanes shows up as a difference there). Sources are longer
 * than a chunk and of mixed lengths, so partial chunks and padded rows are exercised.
 *
 * cuDNN layers (suite cudnn_layer): a whole training step with cuDNN running the encoder is
 * held to the fused path on the same GPU from the same weights, for stacked LSTM, GRU and
 * tanh-RNN layers and bidirectional ones, with padded rows; asking for cuDNN where it cannot
 * run (the CPU, a build without cuDNN, bf16) is a clear error.
 *
 * Tolerances: CPU chunked vs whole, |x - ref| <= 1e-6 + 1e-5 |ref| (the same arithmetic, only
 * the input-projection GEMMs are cut into row blocks); GPU vs CPU and cuDNN vs fused in FP32
 * as test_cuda_model.c, 2e-5 + 2e-3 |ref|. */
#include "backend.h"
#include "internal.h"
#include "model_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { WB = 6, WS = 37, WT = 9 };

static s2s_context *wctx_impl(s2s_device dev, uint64_t seed, s2s_rnn_impl impl)
{
    return tu_context(dev, S2S_PRECISION_FP32, impl, seed);
}

static s2s_context *wctx(s2s_device dev, uint64_t seed) { return wctx_impl(dev, seed, S2S_RNN_IMPL_FUSED); }

static s2s_model_config wconfig(s2s_cell cell, int bidir)
{
    s2s_model_config c = s2s_model_config_default();
    c.cell = cell, c.layers = 3, c.bidirectional = bidir, c.attention = S2S_ATTN_GENERAL;
    c.hidden = 40, c.embed = 24, c.dropout = 0.3f, c.src_vocab = 37, c.tgt_vocab = 41;
    return c;
}

/* Loss and every gradient of one training step, gradients concatenated in parameter order. */
typedef struct {
    float loss;
    size_t n;
    float *g;
} wresult;

static wresult train_step(s2s_context *ctx, const s2s_model_config *c, const tu_batch *x)
{
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, c, &m), S2S_OK, "%s", s2s_last_error());
    s2s_loss_options lo = s2s_loss_options_default();
    lo.label_smoothing = 0.1f;
    lo.step = 5;
    wresult r = {0, 0, NULL};
    cr_assert_eq(s2s_model_forward_backward(m, &x->b, &lo, &r.loss, NULL), S2S_OK, "%s", s2s_last_error());
    for (int i = 0; i < s2s_model_param_count(m); i++) {
        s2s_param_info info;
        s2s_model_param_info_at(m, i, &info);
        r.g = realloc(r.g, (r.n + info.numel) * sizeof(float));
        cr_assert_eq(s2s_model_grad_get(m, info.name, r.g + r.n, info.numel), S2S_OK, "%s", s2s_last_error());
        r.n += info.numel;
    }
    s2s_model_free(m);
    return r;
}

static void assert_close(const char *what, const wresult *got, const wresult *want, double atol, double rtol,
                         uint64_t seed)
{
    cr_assert_eq(got->n, want->n);
    cr_assert(fabs(got->loss - want->loss) <= atol + rtol * fabs(want->loss), "%s: loss %.9g vs %.9g (seed %llu)",
              what, got->loss, want->loss, (unsigned long long)seed);
    double *ref = malloc(want->n * sizeof(double));
    for (size_t i = 0; i < want->n; i++)
        ref[i] = want->g[i];
    tu_assert_close(what, got->g, ref, want->n, atol, rtol, seed);
    free(ref);
}

static void assert_identical(const char *what, const wresult *a, const wresult *b)
{
    cr_assert_eq(memcmp(&a->loss, &b->loss, sizeof(float)), 0, "%s: loss %.9g vs %.9g", what, a->loss, b->loss);
    cr_assert_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        cr_assert_eq(memcmp(&a->g[i], &b->g[i], sizeof(float)), 0, "%s: gradient element %zu: %.9g vs %.9g", what, i,
                     a->g[i], b->g[i]);
}

static void cpu_chunked(s2s_cell cell)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_context *ctx = wctx(S2S_DEVICE_CPU, seed);
    s2s_model_config c = wconfig(cell, 0);
    tu_batch x;
    tu_make_batch(&x, &s, WB, WS, WT, c.src_vocab, c.tgt_vocab);
    cr_assert_eq(ctx->be->wave_chunk, 0, "the CPU runs whole sequences by default");
    wresult whole = train_step(ctx, &c, &x);
    int chunks[] = {1, 4, 10, 36};
    for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++) {
        ctx->be->wave_chunk = chunks[i];
        wresult r = train_step(ctx, &c, &x);
        char what[64];
        snprintf(what, sizeof what, "chunks of %d steps", chunks[i]);
        assert_close(what, &r, &whole, 1e-6, 1e-5, seed);
        free(r.g);
    }
    free(whole.g);
    s2s_context_free(ctx);
}

Test(wavefront, cpu_chunked_lstm_step_matches_whole) { cpu_chunked(S2S_CELL_LSTM); }
Test(wavefront, cpu_chunked_gru_step_matches_whole) { cpu_chunked(S2S_CELL_GRU); }
Test(wavefront, cpu_chunked_rnn_step_matches_whole) { cpu_chunked(S2S_CELL_RNN_TANH); }

/* A lane program issued on a one-lane device is an error where it names another lane. */
Test(wavefront, cpu_has_one_lane)
{
    s2s_context *ctx = wctx(S2S_DEVICE_CPU, 1);
    s2s_backend *be = ctx->be;
    cr_assert_eq(be->lanes, 1);
    cr_assert_eq(be->ops->lane(be, 0), S2S_OK);
    cr_assert_neq(be->ops->lane(be, 1), S2S_OK);
    cr_assert_eq(be->ops->lane_mark(be, S2S_LANE_EVENTS - 1), S2S_OK);
    cr_assert_neq(be->ops->lane_wait(be, S2S_LANE_EVENTS), S2S_OK);
    s2s_context_free(ctx);
    /* the streams option: 0..4; the CPU keeps its one lane whatever is asked */
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU;
    o.streams = 3;
    cr_assert_eq(s2s_context_create(&o, &ctx), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(ctx->be->lanes, 1);
    s2s_context_free(ctx);
    int bad[2] = {-1, S2S_LANES_MAX + 1};
    for (int i = 0; i < 2; i++) {
        o.streams = bad[i];
        ctx = NULL;
        cr_assert_eq(s2s_context_create(&o, &ctx), S2S_ERR_INVALID_ARG, "streams = %d accepted", bad[i]);
        cr_assert(strstr(s2s_last_error(), "streams") != NULL, "%s", s2s_last_error());
    }
}

static void gpu_lanes(s2s_cell cell, int bidir)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_context *gc = wctx(S2S_DEVICE_CUDA, seed);
    if (!gc)
        cr_skip_test("no CUDA device: %s", s2s_last_error());
    s2s_context *cc = wctx(S2S_DEVICE_CPU, seed);
    s2s_model_config c = wconfig(cell, bidir);
    tu_batch x;
    tu_make_batch(&x, &s, WB, WS, WT, c.src_vocab, c.tgt_vocab);
    cr_assert(gc->be->lanes >= 2 && gc->be->wave_chunk > 0 && gc->be->wave_chunk < WS,
              "the GPU schedule under test: %d lanes, chunks of %d", gc->be->lanes, gc->be->wave_chunk);
    wresult cpu = train_step(cc, &c, &x);
    wresult two = train_step(gc, &c, &x);
    assert_close("GPU (lanes) vs CPU", &two, &cpu, 2e-5, 2e-3, seed);
    for (int rep = 0; rep < 3; rep++) {
        wresult again = train_step(gc, &c, &x);
        assert_identical("GPU rerun", &again, &two);
        free(again.g);
    }
    int lanes = gc->be->lanes;
    gc->be->lanes = 1;
    wresult one = train_step(gc, &c, &x);
    gc->be->lanes = lanes;
    assert_identical("two lanes vs one", &two, &one);
    cr_log_info("%s %s: GPU with %d lanes, chunks of %d: bit-identical to one lane and to reruns", cell == S2S_CELL_LSTM ? "LSTM" : "GRU",
                bidir ? "bidirectional" : "3 stacked layers", lanes, gc->be->wave_chunk);
    free(cpu.g), free(two.g), free(one.g);
    s2s_context_free(gc), s2s_context_free(cc);
}

Test(wavefront, cuda_lstm_stack_matches_cpu_and_one_lane) { gpu_lanes(S2S_CELL_LSTM, 0); }
Test(wavefront, cuda_gru_stack_matches_cpu_and_one_lane) { gpu_lanes(S2S_CELL_GRU, 0); }
Test(wavefront, cuda_lstm_bidir_matches_cpu_and_one_lane) { gpu_lanes(S2S_CELL_LSTM, 1); }

/* ---- cuDNN as the layer implementation ------------------------------------------------- */

static void cudnn_case(s2s_cell cell, int bidir)
{
    uint64_t seed = tu_seed();
    s2s_context *fc = wctx(S2S_DEVICE_CUDA, seed);
    if (!fc)
        cr_skip_test("no CUDA device: %s", s2s_last_error());
#ifndef S2S_HAVE_CUDNN
    s2s_context_free(fc);
    cr_skip_test("built without cuDNN");
#else
    s2s_context *dc = wctx_impl(S2S_DEVICE_CUDA, seed, S2S_RNN_IMPL_CUDNN);
    cr_assert(dc->be->ops->layer_fwd != NULL, "the cuDNN context runs its layers through cuDNN");
    s2s_model_config c = wconfig(cell, bidir);
    tu_batch x;
    uint64_t s = seed;
    tu_make_batch(&x, &s, WB, WS, WT, c.src_vocab, c.tgt_vocab);
    wresult fused = train_step(fc, &c, &x);
    wresult dnn = train_step(dc, &c, &x);
    assert_close("cuDNN layers vs fused", &dnn, &fused, 2e-5, 2e-3, seed);
    cr_log_info("cuDNN layers = fused within 2e-5 + 2e-3 |ref|: %s, %s", cell == S2S_CELL_LSTM ? "LSTM" : cell == S2S_CELL_GRU ? "GRU" : "RNN",
                bidir ? "bidirectional, 3 layers" : "3 stacked layers");
    free(fused.g), free(dnn.g);
    s2s_context_free(dc);
    s2s_context_free(fc);
#endif
}

Test(cudnn_layer, lstm_stack_matches_fused) { cudnn_case(S2S_CELL_LSTM, 0); }
Test(cudnn_layer, lstm_bidir_matches_fused) { cudnn_case(S2S_CELL_LSTM, 1); }
Test(cudnn_layer, gru_bidir_matches_fused) { cudnn_case(S2S_CELL_GRU, 1); }
Test(cudnn_layer, rnn_stack_matches_fused) { cudnn_case(S2S_CELL_RNN_TANH, 0); }

/* Where cuDNN cannot run the layers, asking for it fails at context creation and says why. */
Test(cudnn_layer, refused_where_it_cannot_run)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU;
    o.rnn_impl = S2S_RNN_IMPL_CUDNN;
    s2s_context *ctx = NULL;
    cr_assert_eq(s2s_context_create(&o, &ctx), S2S_ERR_UNSUPPORTED, "CPU + cuDNN layers: %s", s2s_last_error());
    cr_assert_null(ctx);
    cr_assert(strstr(s2s_last_error(), "cuDNN") != NULL, "the message names cuDNN: %s", s2s_last_error());
    o.rnn_impl = (s2s_rnn_impl)7;
    cr_assert_eq(s2s_context_create(&o, &ctx), S2S_ERR_INVALID_ARG);
    o.device = S2S_DEVICE_CUDA;
    o.rnn_impl = S2S_RNN_IMPL_CUDNN;
    o.precision = S2S_PRECISION_BF16;
    s2s_status st = s2s_context_create(&o, &ctx);
    cr_assert(st == S2S_ERR_UNSUPPORTED || st == S2S_ERR_NO_DEVICE, "bf16 + cuDNN layers: %s", s2s_last_error());
    cr_assert_null(ctx);
}
