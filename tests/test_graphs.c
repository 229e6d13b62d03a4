/* test_graphs.c - recorded op sequences (graphs.c): the teacher-forced decoder's time loop,
 * forward and backward, and for decoding the encoder (two lanes joined into the recording)
 * and greedy chunks, recorded on the second sighting of a shape and replayed after.
 * A replay must give bit for bit what running the ops directly gives, at every training step
 * (its dropout masks read the step from device memory: a recording that froze the step of
 * the step it was made in would differ from the third step on), and the CPU's result within
 * the FP32 tolerance of test_cuda_model.c (2e-5 + 2e-3 |ref|). Skips without a GPU. */
#include "model.h"
#include "model_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static s2s_context *gctx(s2s_device dev, uint64_t seed)
{
    return tu_context(dev, S2S_PRECISION_FP32, S2S_RNN_IMPL_FUSED, seed);
}

enum { GB = 5, GS = 11, GT = 8 };

/* Loss and all gradients of one forward_backward at training step `step`. */
static float *grads(s2s_model *m, const tu_batch *x, uint64_t step, float *loss, size_t *n)
{
    s2s_loss_options lo = s2s_loss_options_default();
    lo.step = step;
    cr_assert_eq(s2s_model_forward_backward(m, &x->b, &lo, loss, NULL), S2S_OK, "%s", s2s_last_error());
    float *g = NULL;
    *n = 0;
    for (int i = 0; i < s2s_model_param_count(m); i++) {
        s2s_param_info info;
        s2s_model_param_info_at(m, i, &info);
        g = realloc(g, (*n + info.numel) * sizeof(float));
        cr_assert_eq(s2s_model_grad_get(m, info.name, g + *n, info.numel), S2S_OK, "%s", s2s_last_error());
        *n += info.numel;
    }
    return g;
}

static void replay_case(s2s_attention attn, int layers)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_context *gc = gctx(S2S_DEVICE_CUDA, seed);
    if (!gc)
        cr_skip_test("no CUDA device: %s", s2s_last_error());
    s2s_context *cc = gctx(S2S_DEVICE_CPU, seed);
    s2s_model_config c = s2s_model_config_default();
    c.layers = layers, c.attention = attn, c.hidden = 32, c.embed = 16, c.dropout = 0.3f;
    c.src_vocab = 29, c.tgt_vocab = 31;
    s2s_model *rec = NULL, *direct = NULL, *cpu = NULL;
    cr_assert_eq(s2s_model_create(gc, &c, &rec), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_create(gc, &c, &direct), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_create(cc, &c, &cpu), S2S_OK, "%s", s2s_last_error());
    direct->use_graphs = 0;
    tu_batch x;
    tu_make_batch(&x, &s, GB, GS, GT, c.src_vocab, c.tgt_vocab);
    for (uint64_t step = 1; step <= 5; step++) { /* recorded at step 2, replayed from step 3 */
        float lr, ld, lc;
        size_t n, n2, n3;
        float *gr = grads(rec, &x, step, &lr, &n), *gd = grads(direct, &x, step, &ld, &n2);
        float *gcpu = grads(cpu, &x, step, &lc, &n3);
        cr_assert_eq(memcmp(&lr, &ld, sizeof lr), 0, "step %d: loss %.9g replayed vs %.9g direct (seed %llu)",
                     (int)step, lr, ld, (unsigned long long)seed);
        cr_assert_eq(memcmp(gr, gd, n * sizeof(float)), 0, "step %d: gradients of the replay differ", (int)step);
        double *want = malloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++)
            want[i] = gcpu[i];
        cr_assert(fabs(lr - lc) <= 1e-5 * fabs(lc), "step %d: loss GPU %.9g CPU %.9g", (int)step, lr, lc);
        tu_assert_close("replayed step vs CPU", gr, want, n, 2e-5, 2e-3, seed);
        free(want), free(gr), free(gd), free(gcpu);
    }
    int recorded = 0;
    for (int i = 0; i < S2S_GRAPH_CACHE; i++)
        recorded += rec->graphs[i].graph != NULL;
    cr_assert_geq(recorded, 2, "the forward and backward loops were recorded (%d graphs)", recorded);
    for (int k = 0; k < 8; k++)
        cr_assert_eq(rec->graph_broken[k], 0, "recording of kind %d failed", k);
    s2s_model_free(rec), s2s_model_free(direct), s2s_model_free(cpu);
    s2s_context_free(gc), s2s_context_free(cc);
}

Test(cuda_graphs, training_loops_replay_exactly_general) { replay_case(S2S_ATTN_GENERAL, 2); }
Test(cuda_graphs, training_loops_replay_exactly_dot_3_layers) { replay_case(S2S_ATTN_DOT, 3); }
Test(cuda_graphs, training_loops_replay_exactly_no_attention) { replay_case(S2S_ATTN_NONE, 2); }

/* Decoding with recorded encoders and greedy chunks (bidirectional encoder: both lanes in
 * the recording) gives exactly what running the ops directly gives, call after call, with
 * another shape in between; beam search (encoder recorded) too. */
Test(cuda_graphs, decoding_replays_exactly)
{
    uint64_t seed = tu_seed(), s = seed;
    s2s_context *gc = gctx(S2S_DEVICE_CUDA, seed);
    if (!gc)
        cr_skip_test("no CUDA device: %s", s2s_last_error());
    s2s_model_config c = s2s_model_config_default();
    c.layers = 2, c.bidirectional = 1, c.hidden = 32, c.embed = 16, c.src_vocab = 29, c.tgt_vocab = 31;
    s2s_model *rec = NULL, *direct = NULL;
    cr_assert_eq(s2s_model_create(gc, &c, &rec), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_create(gc, &c, &direct), S2S_OK, "%s", s2s_last_error());
    direct->use_graphs = 0;
    tu_batch x, y;
    tu_make_batch(&x, &s, GB, GS, GT, c.src_vocab, c.tgt_vocab);
    tu_make_batch(&y, &s, GB, GS, GT, c.src_vocab, c.tgt_vocab);
    y.b.batch = 3;
    enum { L = 12 };
    int32_t a[GB * L], al[GB], b[GB * L], bl[GB];
    s2s_decode_options d = s2s_decode_options_default();
    d.beam_size = 4;
    for (int round = 0; round < 4; round++) {
        const tu_batch *z = round == 2 ? &y : &x;
        cr_assert_eq(s2s_model_greedy_decode(rec, &z->b, L, a, al), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_model_greedy_decode(direct, &z->b, L, b, bl), S2S_OK, "%s", s2s_last_error());
        for (int r = 0; r < z->b.batch; r++) {
            cr_assert_eq(al[r], bl[r], "round %d row %d: greedy length %d vs %d", round, r, al[r], bl[r]);
            cr_assert_eq(memcmp(a + r * L, b + r * L, sizeof(int32_t) * (size_t)al[r]), 0, "round %d row %d", round, r);
        }
        s2s_hypothesis *ha = NULL, *hb = NULL;
        cr_assert_eq(s2s_model_decode(rec, &z->b, &d, &ha), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_model_decode(direct, &z->b, &d, &hb), S2S_OK, "%s", s2s_last_error());
        for (int r = 0; r < z->b.batch; r++) {
            cr_assert_eq(ha[r].len, hb[r].len, "round %d row %d: beam length %d vs %d", round, r, ha[r].len, hb[r].len);
            cr_assert_eq(memcmp(&ha[r].score, &hb[r].score, sizeof(float)), 0, "round %d row %d: score", round, r);
            cr_assert_eq(memcmp(ha[r].ids, hb[r].ids, sizeof(int32_t) * (size_t)ha[r].len), 0, "round %d row %d", round,
                         r);
        }
        s2s_hypotheses_free(ha, (size_t)z->b.batch);
        s2s_hypotheses_free(hb, (size_t)z->b.batch);
    }
    int recorded = 0;
    for (int i = 0; i < S2S_GRAPH_CACHE; i++)
        recorded += rec->graphs[i].graph != NULL && rec->graphs[i].key[0] == S2S_GRAPH_ENC;
    cr_assert_geq(recorded, 1, "the encoder was recorded");
    for (int k = 0; k < 8; k++)
        cr_assert_eq(rec->graph_broken[k], 0, "recording of kind %d failed", k);
    s2s_model_free(rec), s2s_model_free(direct);
    s2s_context_free(gc);
}
