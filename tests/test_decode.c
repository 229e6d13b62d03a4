/* test_decode.c - beam search and sampling: exact against brute-force enumeration on a tiny
 * vocabulary, consistent with greedy decoding, and with their options honoured. */
#include "reverse_task.h"
#include "test_util.h"
#include <string.h>

static s2s_model *tiny_model(s2s_context **ctx, uint64_t seed, int tgt_vocab)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU;
    o.seed = seed;
    cr_assert_eq(s2s_context_create(&o, ctx), S2S_OK);
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 8, c.embed = 6, c.src_vocab = 9, c.tgt_vocab = tgt_vocab, c.dropout = 0;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(*ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    /* sharpen the output layer so that scores differ clearly */
    float w[8 * 8];
    size_t n = (size_t)tgt_vocab * 8;
    cr_assert_eq(s2s_model_param_get(m, "generator.weight", w, n), S2S_OK);
    for (size_t i = 0; i < n; i++)
        w[i] *= 6.0f;
    cr_assert_eq(s2s_model_param_set(m, "generator.weight", w, n), S2S_OK);
    return m;
}

/* log p(y + EOS | x) by the model's own loss. */
static double seq_logp(s2s_model *m, const int32_t *src, int slen, const int32_t *y, int ylen)
{
    int32_t sl[1] = {slen}, tl[1] = {ylen}, ybuf[8] = {0}; /* ylen <= 5 (MAXLEN - 1) */
    memcpy(ybuf, y, sizeof(int32_t) * (size_t)ylen);
    s2s_batch b = {1, slen, ylen > 0 ? ylen : 1, src, sl, ybuf, tl};
    float loss;
    int ntok;
    cr_assert_eq(s2s_model_evaluate(m, &b, &loss, &ntok), S2S_OK, "%s", s2s_last_error());
    return -(double)loss * ntok;
}

/* With 2 ordinary tokens (ids 3, 4) and beams wider than the number of prefixes, beam search
 * is exhaustive, so its best must be the brute-force best over every EOS-terminated sequence,
 * scored logp / ((5 + len) / 6)^alpha. (A sequence cut at max_len has no EOS factor; when the
 * beam's best is such a one, it must score at least the best EOS-terminated one.) */
Test(decode, beam_search_finds_the_brute_force_best)
{
    enum { V = 5, MAXLEN = 6 };
    const float alpha = 0.6f;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        s2s_context *ctx;
        s2s_model *m = tiny_model(&ctx, seed, V);
        int32_t src[3] = {4, 7, 5}, y[MAXLEN], best_y[MAXLEN];
        double best = -INFINITY;
        int best_len = -1;
        for (int len = 0; len < MAXLEN; len++)
            for (int code = 0; code < (1 << len); code++) {
                for (int i = 0; i < len; i++)
                    y[i] = 3 + ((code >> i) & 1);
                double score = seq_logp(m, src, 3, y, len) / pow((5.0 + len) / 6.0, alpha);
                if (score > best)
                    best = score, best_len = len, memcpy(best_y, y, sizeof y);
            }
        s2s_decode_options o = s2s_decode_options_default();
        o.beam_size = 64;
        o.min_len = 0; /* the brute force includes the empty output */
        o.length_penalty = alpha;
        o.max_len_a = 0, o.max_len_b = MAXLEN;
        int32_t sl[1] = {3};
        s2s_batch b = {1, 3, 0, src, sl, NULL, NULL};
        s2s_hypothesis *h = NULL;
        cr_assert_eq(s2s_model_decode(m, &b, &o, &h), S2S_OK, "%s", s2s_last_error());
        if (h[0].len < MAXLEN) {
            cr_assert_eq(h[0].len, best_len, "seed %llu: beam length %d, brute force %d", (unsigned long long)seed,
                         h[0].len, best_len);
            cr_assert_eq(memcmp(h[0].ids, best_y, sizeof(int32_t) * (size_t)best_len), 0, "seed %llu: tokens differ",
                         (unsigned long long)seed);
            cr_assert(fabs(h[0].score - best) < 1e-4, "seed %llu: score %g vs %g", (unsigned long long)seed,
                      h[0].score, best);
        } else {
            cr_assert_geq(h[0].score, best - 1e-4, "a cut hypothesis must score at least every finished one");
        }
        s2s_hypotheses_free(h, 1);
        s2s_model_free(m);
        s2s_context_free(ctx);
    }
}

/* Trained on the reverse task, beam search agrees with greedy decoding, nbest lists are sorted,
 * sampling with top_k = 1 is greedy, and lengths respect max_len. */
Test(decode, trained_model_beam_greedy_sampling, .timeout = 120)
{
    s2s_context_options co = s2s_context_options_default();
    co.device = S2S_DEVICE_CPU;
    co.seed = 9;
    s2s_context *ctx;
    cr_assert_eq(s2s_context_create(&co, &ctx), S2S_OK);
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 64, c.embed = 32, c.dropout = 0.1f, c.attention = S2S_ATTN_DOT;
    c.src_vocab = c.tgt_vocab = 4 + RV_VOCAB;
    s2s_model *m;
    s2s_optimizer *opt;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK);
    s2s_optimizer_options oo = s2s_optimizer_options_default();
    oo.lr = 3e-3f;
    cr_assert_eq(s2s_optimizer_create(m, &oo, &opt), S2S_OK);
    int32_t src[RV_B * RV_MAX], len[RV_B], tgt[RV_B * RV_MAX];
    uint64_t data = 77;
    for (int step = 0; step < 400; step++) {
        rv_batch(&data, src, len, tgt);
        s2s_batch b = {RV_B, RV_MAX, RV_MAX, src, len, tgt, len};
        s2s_loss_options lo = s2s_loss_options_default();
        lo.step = (uint64_t)step;
        cr_assert_eq(s2s_model_forward_backward(m, &b, &lo, NULL, NULL), S2S_OK);
        cr_assert_eq(s2s_optimizer_step(opt, 0, NULL), S2S_OK);
    }
    rv_batch(&data, src, len, tgt);
    s2s_batch b = {16, RV_MAX, 0, src, len, NULL, NULL};
    int32_t gout[16 * RV_OUT], glen[16];
    cr_assert_eq(s2s_model_greedy_decode(m, &b, RV_OUT, gout, glen), S2S_OK);
    s2s_decode_options o = s2s_decode_options_default();
    o.nbest = 3;
    o.attention = 1;
    s2s_hypothesis *h;
    cr_assert_eq(s2s_model_decode(m, &b, &o, &h), S2S_OK, "%s", s2s_last_error());
    int agree = 0, right = 0;
    for (int i = 0; i < 16; i++) {
        s2s_hypothesis *best = &h[i * 3];
        agree += best->len == glen[i] && !memcmp(best->ids, gout + i * RV_OUT, sizeof(int32_t) * (size_t)glen[i]);
        right += best->len == len[i] && !memcmp(best->ids, tgt + i * RV_MAX, sizeof(int32_t) * (size_t)len[i]);
        cr_assert_geq(best->score, h[i * 3 + 1].score, "nbest not sorted");
        cr_assert_geq(h[i * 3 + 1].score, h[i * 3 + 2].score, "nbest not sorted");
        cr_assert_leq(best->len, (int)(2 * len[i]) + 10);
        cr_assert_not_null(best->attention);
        for (int k = 0; k < best->len; k++) { /* attention rows are distributions over the source */
            double z = 0;
            for (int j = 0; j < best->src_len; j++)
                z += best->attention[k * best->src_len + j];
            cr_assert(fabs(z - 1) < 1e-4, "attention row sums to %g", z);
            cr_assert(best->src_pos[k] >= 0 && best->src_pos[k] < best->src_len);
        }
    }
    cr_assert_geq(agree, 14, "beam and greedy agree on %d of 16", agree);
    cr_assert_geq(right, 14, "beam search got %d of 16 right", right);
    s2s_hypotheses_free(h, 48);
    o.mode = S2S_DECODE_SAMPLE;
    o.top_k = 1;
    o.nbest = 1;
    cr_assert_eq(s2s_model_decode(m, &b, &o, &h), S2S_OK);
    for (int i = 0; i < 16; i++)
        cr_assert(h[i].len == glen[i] && !memcmp(h[i].ids, gout + i * RV_OUT, sizeof(int32_t) * (size_t)glen[i]),
                  "top-1 sampling differs from greedy at row %d", i);
    s2s_hypotheses_free(h, 16);
    o.top_k = 0, o.temperature = 3.0f, o.max_len_a = 0, o.max_len_b = 4; /* hot sampling, capped length */
    cr_assert_eq(s2s_model_decode(m, &b, &o, &h), S2S_OK);
    for (int i = 0; i < 16; i++)
        cr_assert_leq(h[i].len, 4);
    s2s_hypotheses_free(h, 16);
    o.mode = S2S_DECODE_BEAM, o.no_repeat_ngram = 1, o.max_len_b = 10, o.temperature = 1;
    cr_assert_eq(s2s_model_decode(m, &b, &o, &h), S2S_OK);
    for (int i = 0; i < 16; i++) /* with 1-gram blocking no token appears twice */
        for (int x = 0; x < h[i].len; x++)
            for (int y = x + 1; y < h[i].len; y++)
                cr_assert_neq(h[i].ids[x], h[i].ids[y]);
    s2s_hypotheses_free(h, 16);
    s2s_optimizer_free(opt);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* Beam search sees each hypothesis's 2K+3 best tokens (found on the device) unless n-gram
 * blocking is on, when it scans them all. With PAD, BOS and EOS pushed to the top of every
 * row and EOS refused by min_len, a smaller margin would leave sentences short of candidates:
 * both paths must give the same hypotheses and scores (blocking 100-grams never blocks here). */
Test(decode, top_candidates_match_the_full_scan)
{
    enum { V = 8, B = 3, S = 4, K = 2, LEN = 6 }; /* 2K+3 < V: the top-candidate path */
    s2s_context *ctx = NULL;
    s2s_model *m = tiny_model(&ctx, 5, V);
    float bias[V];
    cr_assert_eq(s2s_model_param_get(m, "generator.bias", bias, V), S2S_OK);
    bias[S2S_PAD_ID] = bias[S2S_BOS_ID] = bias[S2S_EOS_ID] = 50.0f;
    cr_assert_eq(s2s_model_param_set(m, "generator.bias", bias, V), S2S_OK);
    int32_t src[B * S] = {1, 2, 3, 4, 5, 6, 7, 8, 2, 4, 6, 8}, sl[B] = {4, 3, 2};
    s2s_batch b = {B, S, 0, src, sl, NULL, NULL};
    s2s_decode_options o = s2s_decode_options_default();
    o.beam_size = K, o.nbest = K, o.min_len = LEN - 1, o.max_len_a = 0, o.max_len_b = LEN;
    s2s_hypothesis *top = NULL, *full = NULL;
    cr_assert_eq(s2s_model_decode(m, &b, &o, &top), S2S_OK, "%s", s2s_last_error());
    o.no_repeat_ngram = 100;
    cr_assert_eq(s2s_model_decode(m, &b, &o, &full), S2S_OK, "%s", s2s_last_error());
    for (int i = 0; i < B * K; i++) {
        cr_assert_eq(top[i].len, full[i].len, "hypothesis %d: length %d vs %d", i, top[i].len, full[i].len);
        cr_assert_eq(memcmp(&top[i].score, &full[i].score, sizeof(float)), 0, "hypothesis %d: score %.9g vs %.9g", i,
                     top[i].score, full[i].score);
        cr_assert_eq(memcmp(top[i].ids, full[i].ids, sizeof(int32_t) * (size_t)top[i].len), 0, "hypothesis %d", i);
        for (int j = 0; j < top[i].len; j++)
            cr_assert(top[i].ids[j] > S2S_EOS_ID, "hypothesis %d holds a special token", i);
    }
    s2s_hypotheses_free(top, B * K);
    s2s_hypotheses_free(full, B * K);
    s2s_model_free(m);
    s2s_context_free(ctx);
}
