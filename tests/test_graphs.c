/* test_graphs.c - recorded decoder loops (graphs.c): the teacher-forced decoder's time loop,
 * forward and backward, is recorded on the second sighting of its shape and replayed after.
 * A replay must give bit for bit what running the ops directly gives, at every training step
 * (its dropout masks read the step from device memory: a recording that froze the step of
 * the step it was made in would differ from the third step on), and the CPU's result within
 * the FP32 tolerance of test_cuda_model.c (2e-5 + 2e-3 |ref|). Skips without a GPU. */
#include "model.h"
#include "test_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static s2s_context *gctx(s2s_device dev, uint64_t seed)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = dev;
    o.seed = seed;
    o.threads = 2;
    s2s_context *ctx = NULL;
    s2s_status st = s2s_context_create(&o, &ctx);
    if (dev == S2S_DEVICE_CUDA && st == S2S_ERR_NO_DEVICE)
        return NULL;
    cr_assert_eq(st, S2S_OK, "%s", s2s_last_error());
    return ctx;
}

enum { GB = 5, GS = 11, GT = 8 };

typedef struct {
    int32_t src[GB * GS], sl[GB], tgt[GB * GT], tl[GB];
    s2s_batch b;
} gbatch;

static void make_gbatch(gbatch *x, uint64_t *s, int vs, int vt)
{
    memset(x, 0, sizeof *x);
    for (int b = 0; b < GB; b++) {
        x->sl[b] = b == 0 ? GS : 1 + (int)(tu_next(s) % GS);
        x->tl[b] = b == 1 ? GT : 1 + (int)(tu_next(s) % GT);
        for (int i = 0; i < x->sl[b]; i++)
            x->src[b * GS + i] = 4 + (int)(tu_next(s) % (uint64_t)(vs - 4));
        for (int i = 0; i < x->tl[b]; i++)
            x->tgt[b * GT + i] = 4 + (int)(tu_next(s) % (uint64_t)(vt - 4));
    }
    x->b = (s2s_batch){GB, GS, GT, x->src, x->sl, x->tgt, x->tl};
}

/* Loss and all gradients of one forward_backward at training step `step`. */
static float *grads(s2s_model *m, const gbatch *x, uint64_t step, float *loss, size_t *n)
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
    gbatch x;
    make_gbatch(&x, &s, c.src_vocab, c.tgt_vocab);
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
    s2s_model_free(rec), s2s_model_free(direct), s2s_model_free(cpu);
    s2s_context_free(gc), s2s_context_free(cc);
}

Test(cuda_graphs, training_loops_replay_exactly_general) { replay_case(S2S_ATTN_GENERAL, 2); }
Test(cuda_graphs, training_loops_replay_exactly_dot_3_layers) { replay_case(S2S_ATTN_DOT, 3); }
Test(cuda_graphs, training_loops_replay_exactly_no_attention) { replay_case(S2S_ATTN_NONE, 2); }
