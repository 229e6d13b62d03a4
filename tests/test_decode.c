/* test_decode.c - beam search and sampling: exact against brute-force enumeration on a tiny
 * vocabulary, consistent with greedy decoding, and with their options honoured. */
#include "model_util.h"
#include "reverse_task.h"
#include "test_util.h"
#include "toy_task.h"
#include <string.h>

static s2s_context *cpu_ctx(uint64_t seed)
{
    return tu_context(S2S_DEVICE_CPU, S2S_PRECISION_FP32, S2S_RNN_IMPL_FUSED, seed);
}

static s2s_model *tiny_model(s2s_context **ctx, uint64_t seed, int tgt_vocab)
{
    *ctx = cpu_ctx(seed);
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
    s2s_context *ctx = cpu_ctx(9);
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 64, c.embed = 32, c.dropout = 0.1f, c.attention = S2S_ATTN_DOT;
    c.src_vocab = c.tgt_vocab = 4 + RV_VOCAB;
    s2s_model *m;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK);
    uint64_t data = 77;
    rv_steps(m, &data, 400, 3e-3f, NULL);
    int32_t src[RV_B * RV_MAX], len[RV_B], tgt[RV_B * RV_MAX];
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
            const float *row = best->attention + (size_t)k * best->src_len;
            int top = 0; /* src_pos is the row's arg-max (the first of equal values) */
            for (int j = 1; j < best->src_len; j++)
                top = row[j] > row[top] ? j : top;
            cr_assert_eq(best->src_pos[k], top, "row %d token %d: src_pos %d, attention arg-max %d", i, k,
                         best->src_pos[k], top);
        }
    }
    cr_assert_geq(agree, 14, "beam and greedy agree on %d of 16", agree);
    cr_assert_geq(right, 14, "beam search got %d of 16 right", right);
    o.attention = 0; /* without the attention rows: the same hypotheses and positions */
    s2s_hypothesis *h2;
    cr_assert_eq(s2s_model_decode(m, &b, &o, &h2), S2S_OK, "%s", s2s_last_error());
    for (int i = 0; i < 48; i++) {
        cr_assert_null(h2[i].attention);
        cr_assert(h2[i].len == h[i].len && h2[i].score == h[i].score, "hypothesis %d differs without attention", i);
        cr_assert(!memcmp(h2[i].ids, h[i].ids, sizeof(int32_t) * (size_t)h[i].len));
        cr_assert(!memcmp(h2[i].src_pos, h[i].src_pos, sizeof(int32_t) * (size_t)h[i].len),
                  "hypothesis %d: src_pos differs without attention", i);
    }
    s2s_hypotheses_free(h2, 48);
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
    /* 2- and 3-gram blocking in each mode, on long outputs (min_len forces them): no n-gram twice */
    for (int n = 2; n <= 3; n++)
        for (int mode = 0; mode < 3; mode++) {
            o.mode = mode == 0 ? S2S_DECODE_GREEDY : mode == 1 ? S2S_DECODE_BEAM : S2S_DECODE_SAMPLE;
            o.no_repeat_ngram = n, o.min_len = 14, o.max_len_a = 0, o.max_len_b = 16;
            cr_assert_eq(s2s_model_decode(m, &b, &o, &h), S2S_OK, "%s", s2s_last_error());
            for (int i = 0; i < 16; i++)
                for (int x = 0; x + n <= h[i].len; x++)
                    for (int y = x + 1; y + n <= h[i].len; y++)
                        cr_assert(memcmp(h[i].ids + x, h[i].ids + y, sizeof(int32_t) * (size_t)n) != 0,
                                  "mode %d: row %d repeats the %d-gram at %d at %d", mode, i, n, x, y);
            s2s_hypotheses_free(h, 16);
        }
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* Beam search sees each hypothesis's 2K+3 best tokens (found on the device) unless n-gram
 * blocking is on, when it scans them all. With PAD, BOS and EOS pushed to the top of every
 * row and EOS refused by min_len, a smaller margin would leave sentences short of candidates:
 * both paths must give the same hypotheses and scores (blocking 100-grams never blocks here). */
/* Attention asked of a model without attention: zero rows and position 0, never stale memory. */
Test(decode, attention_of_a_model_without_attention_is_zero)
{
    s2s_context *ctx = cpu_ctx(5);
    s2s_model_config c = s2s_model_config_default();
    c.src_vocab = c.tgt_vocab = 12, c.hidden = 8, c.embed = 4, c.attention = S2S_ATTN_NONE;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    int32_t src[2 * 3] = {4, 5, 6, 7, 8, 0}, len[2] = {3, 2};
    s2s_batch b = {2, 3, 0, src, len, NULL, NULL};
    s2s_decode_options o = s2s_decode_options_default();
    o.attention = 1, o.beam_size = 3, o.nbest = 2, o.min_len = 2;
    s2s_hypothesis *h = NULL;
    cr_assert_eq(s2s_model_decode(m, &b, &o, &h), S2S_OK, "%s", s2s_last_error());
    for (int i = 0; i < 4; i++) {
        cr_assert_gt(h[i].len, 0);
        cr_assert_not_null(h[i].attention);
        for (int k = 0; k < h[i].len; k++) {
            cr_assert_eq(h[i].src_pos[k], 0);
            for (int j = 0; j < h[i].src_len; j++)
                cr_assert_eq(h[i].attention[k * h[i].src_len + j], 0.0f, "hypothesis %d token %d: %g", i, k,
                             h[i].attention[k * h[i].src_len + j]);
        }
    }
    s2s_hypotheses_free(h, 4);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

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

/* s2s_model_score: each row's log-probability, whatever the padding around it; the rows add up
 * to the batch's loss; beam search's unnormalised scores (its own step-by-step decoder path) are
 * the same numbers; a bad row is named. */
Test(rerank, model_score_per_row)
{
    s2s_context *ctx;
    s2s_model *m = tiny_model(&ctx, 21, 8);
    enum { B = 4, S = 5, T = 4 };
    int32_t src[B * S] = {4, 5, 6, 7, 8, 5, 0, 0, 0, 0, 6, 6, 7, 0, 0, 8, 4, 0, 0, 0};
    int32_t sl[B] = {5, 1, 3, 2}, tgt[B * T] = {3, 4, 5, 6, 7, 0, 0, 0, 5, 5, 3, 0, 0, 0, 0, 0}, tl[B] = {4, 1, 3, 0};
    s2s_batch b = {B, S, T, src, sl, tgt, tl};
    float lp[B], loss;
    int ntok;
    cr_assert_eq(s2s_model_score(m, &b, lp), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_model_evaluate(m, &b, &loss, &ntok), S2S_OK);
    double sum = 0;
    for (int i = 0; i < B; i++) {
        double one = seq_logp(m, src + i * S, sl[i], tgt + i * T, tl[i]);
        cr_assert(lp[i] < 0 && fabs(lp[i] - one) <= 1e-5 * fabs(one), "row %d: %g vs %g alone", i, lp[i], one);
        sum += lp[i];
    }
    cr_assert_eq(ntok, (4 + 1) + (1 + 1) + (3 + 1) + (0 + 1));
    cr_assert(fabs(sum + (double)loss * ntok) <= 1e-5 * fabs(sum), "rows add to %g, the batch loss gives %g", sum,
              -(double)loss * ntok);

    /* models of other seeds until beam search finishes a hypothesis (a tiny random model may
       never choose EOS within the limit) */
    int compared = 0;
    for (uint64_t seed = 22; seed < 60 && !compared; seed++) {
        s2s_context *c2;
        s2s_model *m2 = tiny_model(&c2, seed, 8);
        s2s_decode_options o = s2s_decode_options_default();
        o.beam_size = o.nbest = 4;
        o.length_penalty = 0; /* scores are plain log-probabilities */
        enum { L = 12 };
        o.max_len_a = 0, o.max_len_b = L;
        s2s_batch db = {1, sl[0], 0, src, sl, NULL, NULL};
        s2s_hypothesis *h = NULL;
        cr_assert_eq(s2s_model_decode(m2, &db, &o, &h), S2S_OK, "%s", s2s_last_error());
        for (int k = 0; k < o.nbest; k++) {
            if (h[k].len >= L) /* cut at the length limit: no EOS in its score */
                continue;
            int32_t y[L] = {0}, yl[1] = {h[k].len};
            memcpy(y, h[k].ids, sizeof(int32_t) * (size_t)h[k].len);
            s2s_batch hb = {1, S, L, src, sl, y, yl};
            float got;
            cr_assert_eq(s2s_model_score(m2, &hb, &got), S2S_OK);
            cr_assert(fabs(got - h[k].score) <= 1e-4 * fabs(h[k].score) + 1e-5, "hypothesis %d: score %g, beam %g", k,
                      got, h[k].score);
            compared++;
        }
        s2s_hypotheses_free(h, (size_t)o.nbest);
        s2s_model_free(m2);
        s2s_context_free(c2);
    }
    cr_assert_geq(compared, 1, "no finished hypothesis to compare");

    tgt[2 * T + 1] = 99; /* out of the vocabulary in row 2 */
    cr_assert_eq(s2s_model_score(m, &b, lp), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "token 1 of row 2 is id 99"), "%s", s2s_last_error());
    cr_assert_eq(s2s_model_score(m, NULL, lp), S2S_ERR_INVALID_ARG);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* s2s_rerank_reverse adds weight * log p(input | output) per input token to each score, with the
 * reverse model's probabilities computed here independently; empty outputs never win. */
Test(rerank, reverse_model_reranks_the_outputs, .timeout = 60)
{
    s2s_corpus *c = toy_corpus(5, 200);
    s2s_tokenizer *tok = toy_tokenizer(c, 30);
    s2s_context *ctx = cpu_ctx(4);
    s2s_model_config mc = s2s_model_config_default();
    mc.hidden = 16, mc.embed = 8, mc.dropout = 0;
    mc.src_vocab = mc.tgt_vocab = s2s_tokenizer_vocab_size(tok);
    s2s_model *rev;
    cr_assert_eq(s2s_model_create(ctx, &mc, &rev), S2S_OK, "%s", s2s_last_error());

    const char *input = "the big cat", *outs[4] = {"cat big the", "", "red dog", "a bird sees the small cat"};
    const float scores[4] = {-1.0f, -0.5f, -2.0f, -1.5f};
    int32_t in_ids[32], out_ids[32];
    int T = 0;
    cr_assert_eq(s2s_tokenizer_encode(tok, input, in_ids, 32, &T), S2S_OK);
    double rlp[4] = {0};
    for (int i = 0; i < 4; i++) {
        int n = 0;
        cr_assert_eq(s2s_tokenizer_encode(tok, outs[i], out_ids, 32, &n), S2S_OK);
        if (n == 0)
            continue;
        int32_t sl[1] = {n}, tl[1] = {T};
        s2s_batch b = {1, n, T, out_ids, sl, in_ids, tl};
        float loss;
        int ntok;
        cr_assert_eq(s2s_model_evaluate(rev, &b, &loss, &ntok), S2S_OK, "%s", s2s_last_error());
        rlp[i] = -(double)loss * ntok;
    }
    for (int w = 0; w < 3; w++) {
        float weight = w == 0 ? 0.0f : w == 1 ? 0.7f : 50.0f, combined[4];
        int best = -1, want = 0;
        cr_assert_eq(s2s_rerank_reverse(rev, tok, tok, input, outs, scores, 4, weight, combined, &best), S2S_OK, "%s",
                     s2s_last_error());
        cr_assert(isinf(combined[1]) && combined[1] < 0, "the empty output scores %g", combined[1]);
        for (int i = 0; i < 4; i++) {
            if (i == 1)
                continue;
            double expect = scores[i] + weight * rlp[i] / (T + 1);
            cr_assert(fabs(combined[i] - expect) <= 1e-4 * fabs(expect) + 1e-5, "weight %g, output %d: %g vs %g",
                      weight, i, combined[i], expect);
            if (expect > scores[want] + weight * rlp[want] / (T + 1))
                want = i;
        }
        cr_assert_eq(best, want, "weight %g: best %d, expected %d", weight, best, want);
    }
    float nanw = NAN;
    cr_assert_eq(s2s_rerank_reverse(rev, tok, tok, input, outs, scores, 0, 1.0f, NULL, NULL), S2S_ERR_INVALID_ARG);
    cr_assert_eq(s2s_rerank_reverse(rev, tok, tok, input, outs, scores, 4, nanw, NULL, NULL), S2S_ERR_INVALID_ARG);
    s2s_model_free(rev);
    s2s_tokenizer_free(tok);
    s2s_corpus_free(c);
    s2s_context_free(ctx);
}

/* ---- ensembles ------------------------------------------------------------------------------ */

static s2s_model *rv_model(s2s_context *ctx, int steps, uint64_t data)
{
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 64, c.embed = 32, c.dropout = 0.1f, c.attention = S2S_ATTN_DOT;
    c.src_vocab = c.tgt_vocab = 4 + RV_VOCAB;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    rv_steps(m, &data, steps, 3e-3f, NULL);
    return m;
}

static void same_hyps(const s2s_hypothesis *a, const s2s_hypothesis *b, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        cr_assert_eq(a[i].len, b[i].len, "%s: hypothesis %d: length %d vs %d", what, i, a[i].len, b[i].len);
        cr_assert_eq(memcmp(a[i].ids, b[i].ids, sizeof(int32_t) * (size_t)a[i].len), 0, "%s: hypothesis %d", what, i);
        cr_assert_eq(memcmp(&a[i].score, &b[i].score, sizeof(float)), 0, "%s: hypothesis %d: score %.9g vs %.9g",
                     what, i, a[i].score, b[i].score);
    }
}

/* An ensemble of one model is that model; a model with a copy of itself gives the model's
 * output (the mean of equal rows is the row), bit for bit, in greedy, beam and sampling; two
 * different models give something else; mismatched vocabularies and one object twice are
 * refused. */
Test(decode, ensemble_of_one_and_of_copies, .timeout = 120)
{
    s2s_context *ctx = cpu_ctx(5);
    s2s_model *a = rv_model(ctx, 150, 77), *a2 = rv_model(ctx, 0, 1), *b = rv_model(ctx, 150, 99);
    tu_copy_weights(a2, a);
    int32_t src[RV_B * RV_MAX], len[RV_B], tgt[RV_B * RV_MAX];
    uint64_t held = 4242;
    rv_batch(&held, src, len, tgt);
    s2s_batch bt = {12, RV_MAX, 0, src, len, NULL, NULL};
    static const s2s_decode_mode modes[3] = {S2S_DECODE_GREEDY, S2S_DECODE_BEAM, S2S_DECODE_SAMPLE};
    int differ = 0;
    for (int k = 0; k < 3; k++) {
        s2s_decode_options o = s2s_decode_options_default();
        o.mode = modes[k], o.nbest = k == 1 ? 3 : 1, o.seed = 11;
        int n = 12 * o.nbest;
        s2s_hypothesis *one, *ens1, *ens2, *mixed;
        cr_assert_eq(s2s_model_decode(a, &bt, &o, &one), S2S_OK, "%s", s2s_last_error());
        s2s_model *m1[1] = {a}, *m2[2] = {a, a2}, *mx[2] = {a, b};
        cr_assert_eq(s2s_ensemble_decode(m1, 1, &bt, &o, &ens1), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_ensemble_decode(m2, 2, &bt, &o, &ens2), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_ensemble_decode(mx, 2, &bt, &o, &mixed), S2S_OK, "%s", s2s_last_error());
        same_hyps(one, ens1, n, "ensemble of one");
        same_hyps(one, ens2, n, "a model with its copy");
        for (int i = 0; i < n; i++)
            differ += mixed[i].score != one[i].score;
        s2s_hypotheses_free(one, (size_t)n), s2s_hypotheses_free(ens1, (size_t)n);
        s2s_hypotheses_free(ens2, (size_t)n), s2s_hypotheses_free(mixed, (size_t)n);
    }
    cr_assert_gt(differ, 0, "two different models gave the first one's scores");
    s2s_hypothesis *h = NULL;
    s2s_model *twice[2] = {a, a};
    cr_assert_eq(s2s_ensemble_decode(twice, 2, &bt, NULL, &h), S2S_ERR_INVALID_ARG);
    cr_assert_null(h);
    s2s_model_config c = s2s_model_get_config(a);
    c.tgt_vocab += 1;
    s2s_model *other = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &other), S2S_OK);
    s2s_model *mm[2] = {a, other};
    cr_assert_eq(s2s_ensemble_decode(mm, 2, &bt, NULL, &h), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "vocabularies"), "%s", s2s_last_error());
    s2s_model_free(other), s2s_model_free(a), s2s_model_free(a2), s2s_model_free(b);
    s2s_context_free(ctx);
}
