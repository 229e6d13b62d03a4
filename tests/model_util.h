/* model_util.h - what the model-level GPU tests share: contexts, and random batches of mixed
 * lengths (the first row as long as the batch allows on the source side, the second on the
 * target side, the others drawn). */
#ifndef S2S_MODEL_UTIL_H
#define S2S_MODEL_UTIL_H

#include "seq2seq.h"
#include "test_util.h"
#include <string.h>

/* A context on dev; NULL (no failure) where the CUDA device was asked for and none is present. */
static inline s2s_context *tu_context(s2s_device dev, s2s_precision prec, s2s_rnn_impl impl, uint64_t seed)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = dev;
    o.precision = prec;
    o.rnn_impl = impl;
    o.seed = seed;
    o.threads = 2;
    s2s_context *ctx = NULL;
    s2s_status st = s2s_context_create(&o, &ctx);
    if (dev == S2S_DEVICE_CUDA && st == S2S_ERR_NO_DEVICE)
        return NULL;
    cr_assert_eq(st, S2S_OK, "%s", s2s_last_error());
    return ctx;
}

#define TU_MAX_B 8
#define TU_MAX_S 40
#define TU_MAX_T 12

typedef struct {
    int32_t src[TU_MAX_B * TU_MAX_S], sl[TU_MAX_B], tgt[TU_MAX_B * TU_MAX_T], tl[TU_MAX_B];
    s2s_batch b;
} tu_batch;

/* B rows (<= TU_MAX_B), sources of 1..S tokens, targets of 1..T, tokens in 4..vocab-1. */
static inline void tu_make_batch(tu_batch *x, uint64_t *s, int B, int S, int T, int vs, int vt)
{
    cr_assert(B <= TU_MAX_B && S <= TU_MAX_S && T <= TU_MAX_T, "tu_make_batch: %d x %d x %d too large", B, S, T);
    memset(x, 0, sizeof *x);
    for (int b = 0; b < B; b++) {
        x->sl[b] = b == 0 ? S : 1 + (int)(tu_next(s) % (uint64_t)S);
        x->tl[b] = b == 1 ? T : 1 + (int)(tu_next(s) % (uint64_t)T);
        for (int i = 0; i < x->sl[b]; i++)
            x->src[b * S + i] = 4 + (int)(tu_next(s) % (uint64_t)(vs - 4));
        for (int i = 0; i < x->tl[b]; i++)
            x->tgt[b * T + i] = 4 + (int)(tu_next(s) % (uint64_t)(vt - 4));
    }
    x->b = (s2s_batch){B, S, T, x->src, x->sl, x->tgt, x->tl};
}

/* Every parameter of m, in the model's tensor order, in one malloc'd vector of *n floats. */
static inline float *tu_weights(const s2s_model *m, size_t *n)
{
    *n = s2s_model_param_numel(m);
    float *v = malloc(sizeof(float) * (*n ? *n : 1)), *p = v;
    for (int i = 0; i < s2s_model_param_count(m); i++) {
        s2s_param_info info;
        cr_assert_eq(s2s_model_param_info_at(m, i, &info), S2S_OK);
        cr_assert_eq(s2s_model_param_get(m, info.name, p, info.numel), S2S_OK, "%s", s2s_last_error());
        p += info.numel;
    }
    return v;
}

/* dst's weights = src's (models of one config). */
static inline void tu_copy_weights(s2s_model *dst, const s2s_model *src)
{
    size_t n;
    float *v = tu_weights(src, &n), *p = v;
    for (int i = 0; i < s2s_model_param_count(src); i++) {
        s2s_param_info info;
        cr_assert_eq(s2s_model_param_info_at(src, i, &info), S2S_OK);
        cr_assert_eq(s2s_model_param_set(dst, info.name, p, info.numel), S2S_OK, "%s", s2s_last_error());
        p += info.numel;
    }
    free(v);
}

#endif
