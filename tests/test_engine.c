/* test_engine.c - the serving engine: every request's result equals s2s_translate's for the line
 * alone (greedy, beam with n-best, seeded sampling, n-gram blocking), with requests joining and
 * leaving at different steps, cancelled while queued and while decoding, a budget that forces
 * queueing, a full queue, empty and bad texts, streaming that adds up to the result, a thread
 * running s2s_engine_run while others submit, and a thousand requests without a leak (make
 * sanitize). CPU. */
#include "test_util.h"
#include "toy_task.h"
#include <pthread.h>
#include <string.h>
#include <unistd.h>

typedef struct world {
    toy_world t;
    s2s_context *ctx;
    s2s_model *m;
} world;

/* A model trained a little on the toy task (reversal), so that outputs end at different steps. */
static void world_make(world *w)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU, o.seed = 3, o.threads = 2;
    cr_assert_eq(s2s_context_create(&o, &w->ctx), S2S_OK);
    toy_world_make(&w->t, 1, 400, 20, "engine");
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 32, c.embed = 16, c.layers = 2;
    c.src_vocab = c.tgt_vocab = s2s_tokenizer_vocab_size(w->t.tok);
    cr_assert_eq(s2s_model_create(w->ctx, &c, &w->m), S2S_OK, "%s", s2s_last_error());
    s2s_trainer_options to = s2s_trainer_options_default();
    to.batch_tokens = 300, to.warmup_steps = 5, to.lr = 5e-3f, to.valid_every = 0, to.max_steps = 120;
    s2s_trainer *tr = NULL;
    cr_assert_eq(s2s_trainer_create(w->m, w->t.tok, w->t.tok, w->t.train, NULL, &to, &tr), S2S_OK, "%s",
                 s2s_last_error());
    cr_assert_eq(s2s_trainer_run(tr), S2S_OK, "%s", s2s_last_error());
    s2s_trainer_free(tr);
}

static void world_free(world *w)
{
    s2s_model_free(w->m);
    toy_world_free(&w->t);
    s2s_context_free(w->ctx);
}

/* What one request got. */
typedef struct got {
    int done, status, n;
    char texts[4][512];
    float scores[4];
    char streamed[512];
} got;

static void on_token(uint64_t id, const char *text, void *user)
{
    got *g = user;
    cr_assert_eq(g->done, 0, "a piece after the result");
    strncat(g->streamed, text, sizeof g->streamed - strlen(g->streamed) - 1);
}

static void on_result(const s2s_engine_result *r, void *user)
{
    got *g = user;
    cr_assert_eq(g->done, 0, "two results for one request");
    g->done = 1, g->status = r->status, g->n = r->n;
    for (int j = 0; j < r->n && j < 4; j++) {
        snprintf(g->texts[j], sizeof g->texts[j], "%s", r->texts[j]);
        g->scores[j] = r->scores[j];
    }
}

/* The decoding option sets requests cycle through. */
static s2s_decode_options opts_of(int k)
{
    s2s_decode_options o = s2s_decode_options_default();
    switch (k % 5) {
    case 0: o.mode = S2S_DECODE_GREEDY; break;
    case 1: o.beam_size = 3, o.nbest = 2; break;
    case 2: o.beam_size = 5, o.length_penalty = 1.0f; break;
    case 3: o.mode = S2S_DECODE_SAMPLE, o.seed = 7 + (uint64_t)k, o.temperature = 0.8f, o.top_p = 0.9f; break;
    case 4: o.beam_size = 2, o.no_repeat_ngram = 2, o.nbest = 2; break;
    }
    return o;
}

/* The line alone through s2s_translate: the reference. */
static void alone(world *w, const char *line, const s2s_decode_options *d, char **texts, float *scores)
{
    s2s_translate_options o = s2s_translate_options_default();
    o.decode = *d, o.batch_size = 1;
    cr_assert_eq(s2s_translate(w->m, w->t.tok, w->t.tok, &line, 1, &o, texts, scores), S2S_OK, "%s",
                 s2s_last_error());
}

static void expect_alone_at(world *w, const char *line, int k, const got *g, s2s_precision prec)
{
    s2s_decode_options d = opts_of(k);
    d.precision = prec;
    int nbest = d.mode == S2S_DECODE_BEAM ? d.nbest : 1;
    char *texts[4];
    float scores[4];
    alone(w, line, &d, texts, scores);
    cr_assert(g->done && g->status == S2S_OK, "request %d ('%s'): done %d status %d", k, line, g->done, g->status);
    cr_assert_eq(g->n, nbest);
    for (int j = 0; j < nbest; j++) {
        cr_assert_str_eq(g->texts[j], texts[j], "request %d ('%s', options %d) output %d", k, line, k % 5, j);
        cr_assert(fabsf(g->scores[j] - scores[j]) <= 1e-4f * fabsf(scores[j]) + 1e-6f,
                  "request %d output %d: score %.7g alone %.7g", k, j, g->scores[j], scores[j]);
    }
    if (d.mode != S2S_DECODE_BEAM)
        cr_assert_str_eq(g->streamed, g->texts[0], "the streamed pieces add up to the result");
    s2s_strings_free(texts, (size_t)nbest);
}

static void expect_alone(world *w, const char *line, int k, const got *g)
{
    expect_alone_at(w, line, k, g, S2S_PRECISION_FP32);
}

static const char *line_of(const world *w, int k)
{
    const char *src, *tgt;
    s2s_corpus_get(w->t.valid, (size_t)k % s2s_corpus_size(w->t.valid), &src, &tgt);
    return src;
}

/* Requests join in waves while others decode; each ends as it would alone (at the engine's
 * precision: int8's scales are per row, so a row's numbers do not depend on its neighbours). */
static void equal_alone(s2s_precision prec)
{
    world w;
    world_make(&w);
    s2s_engine_options eo = s2s_engine_options_default();
    eo.max_rows = 24, eo.token_budget = 200; /* small: later requests wait their turn */
    eo.precision = prec;
    s2s_engine *e = NULL;
    cr_assert_eq(s2s_engine_create(w.m, w.t.tok, w.t.tok, &eo, &e), S2S_OK, "%s", s2s_last_error());
    enum { N = 40 };
    static got g[N];
    memset(g, 0, sizeof g);
    int submitted = 0, active = 1, steps = 0, max_active = 0;
    while (active && steps < 2000) {
        for (int burst = 0; burst < 3 && submitted < N && steps % 2 == 0; burst++) {
            s2s_decode_options d = opts_of(submitted);
            cr_assert_eq(s2s_engine_submit(e, line_of(&w, submitted), &d, on_token, on_result, &g[submitted], NULL),
                         S2S_OK, "%s", s2s_last_error());
            submitted++;
        }
        cr_assert_eq(s2s_engine_step(e, &active), S2S_OK, "%s", s2s_last_error());
        s2s_engine_stats st;
        s2s_engine_stats_get(e, &st);
        max_active = st.requests_active > max_active ? (int)st.requests_active : max_active;
        cr_assert_leq(st.rows_active, eo.max_rows);
        active |= submitted < N;
        steps++;
    }
    cr_assert_gt(max_active, 3, "requests must overlap (at most %d did)", max_active);
    for (int k = 0; k < N; k++)
        expect_alone_at(&w, line_of(&w, k), k, &g[k], prec);
    s2s_engine_free(e);
    world_free(&w);
}

Test(engine, results_equal_decoding_alone, .timeout = 120) { equal_alone(S2S_PRECISION_FP32); }
Test(engine, int8_results_equal_decoding_alone, .timeout = 120) { equal_alone(S2S_PRECISION_INT8); }

/* Cancelled while queued and while decoding; an empty text; refused submissions. */
Test(engine, cancel_empty_and_refusals, .timeout = 120)
{
    world w;
    world_make(&w);
    s2s_engine_options eo = s2s_engine_options_default();
    eo.max_rows = 8, eo.token_budget = 60, eo.queue_max = 3, eo.max_src_tokens = 30;
    s2s_engine *e = NULL;
    cr_assert_eq(s2s_engine_create(w.m, w.t.tok, w.t.tok, &eo, &e), S2S_OK);
    got g[6];
    memset(g, 0, sizeof g);
    uint64_t id[6];
    s2s_decode_options beam = opts_of(2), greedy = opts_of(0);
    cr_assert_eq(s2s_engine_submit(e, "", &greedy, on_token, on_result, &g[2], &id[2]), S2S_OK);
    cr_assert_eq(s2s_engine_submit(e, line_of(&w, 0), &beam, NULL, on_result, &g[0], &id[0]), S2S_OK);
    cr_assert_eq(s2s_engine_submit(e, line_of(&w, 1), &beam, NULL, on_result, &g[1], &id[1]), S2S_OK);
    cr_assert_eq(s2s_engine_submit(e, line_of(&w, 3), &greedy, NULL, on_result, &g[3], &id[3]), S2S_ERR_BUSY);
    cr_assert_eq(s2s_engine_step(e, NULL), S2S_OK);
    cr_assert(g[2].done && g[2].status == S2S_OK && g[2].texts[0][0] == 0, "an empty text: one empty output");
    s2s_engine_stats st;
    s2s_engine_stats_get(e, &st);
    cr_assert_eq(st.requests_active, 1, "5 rows of 8 tokens: only one beam-5 request fits a budget of 60");
    cr_assert_eq(st.requests_queued, 1);
    s2s_engine_cancel(e, id[1]); /* queued */
    s2s_engine_cancel(e, id[0]); /* decoding */
    cr_assert_eq(s2s_engine_step(e, NULL), S2S_OK);
    cr_assert(g[0].done && g[0].status == S2S_ERR_CANCELLED);
    cr_assert(g[1].done && g[1].status == S2S_ERR_CANCELLED);
    s2s_engine_stats_get(e, &st);
    cr_assert_eq(st.requests_active + st.requests_queued + st.rows_active, 0);
    char longline[4096] = "";
    for (int i = 0; i < 40; i++)
        strcat(longline, "red cat ");
    cr_assert_eq(s2s_engine_submit(e, longline, &greedy, NULL, on_result, &g[4], NULL), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "max_src_tokens"), "%s", s2s_last_error());
    cr_assert_eq(s2s_engine_submit(e, "red \xff cat", &greedy, NULL, on_result, &g[4], NULL), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "UTF-8"), "%s", s2s_last_error());
    s2s_decode_options bad = greedy;
    bad.top_p = 2;
    cr_assert_eq(s2s_engine_submit(e, "red cat", &bad, NULL, on_result, &g[4], NULL), S2S_ERR_INVALID_ARG);
    s2s_engine_stop(e, 0);
    cr_assert_eq(s2s_engine_submit(e, "red cat", &greedy, NULL, on_result, &g[4], NULL), S2S_ERR_CANCELLED);
    cr_assert_eq(g[4].done, 0, "no result for a refused submission");
    s2s_engine_free(e);
    world_free(&w);
}

/* A request that leaves from the front moves the others' rows down: their states and their next
 * tokens move with them (the tokens once stayed behind, and the requests after a cancelled one
 * went on from the wrong tokens). */
Test(engine, cancel_moves_the_other_rows_intact, .timeout = 120)
{
    world w;
    world_make(&w);
    s2s_engine *e = NULL;
    cr_assert_eq(s2s_engine_create(w.m, w.t.tok, w.t.tok, NULL, &e), S2S_OK);
    got g[5];
    memset(g, 0, sizeof g);
    uint64_t id[5];
    for (int k = 0; k < 5; k++) {
        s2s_decode_options d = opts_of(k % 2 ? 1 : 0); /* greedy and beam rows interleaved */
        if (k == 0 || k == 2) /* the two to cancel cannot end before it */
            d.min_len = 30, d.max_len_b = 40;
        cr_assert_eq(s2s_engine_submit(e, line_of(&w, k), &d, on_token, on_result, &g[k], &id[k]), S2S_OK);
    }
    cr_assert_eq(s2s_engine_step(e, NULL), S2S_OK);
    cr_assert_eq(s2s_engine_step(e, NULL), S2S_OK);
    s2s_engine_cancel(e, id[0]);
    s2s_engine_cancel(e, id[2]);
    int active = 1;
    while (active)
        cr_assert_eq(s2s_engine_step(e, &active), S2S_OK);
    cr_assert(g[0].done && g[0].status == S2S_ERR_CANCELLED);
    cr_assert(g[2].done && g[2].status == S2S_ERR_CANCELLED);
    for (int k = 1; k < 5; k += 2) /* 1 and 3 (beam), and 4 (greedy) went on after the others left */
        expect_alone(&w, line_of(&w, k), k % 2 ? 1 : 0, &g[k]);
    expect_alone(&w, line_of(&w, 4), 0, &g[4]);
    s2s_engine_free(e);
    world_free(&w);
}

/* The engine on its own thread, three submitting threads, a drain at the end. */
typedef struct client {
    s2s_engine *e;
    world *w;
    int first, n;
    got *g;
} client;

static void *submitter(void *arg)
{
    client *c = arg;
    for (int k = c->first; k < c->first + c->n; k++) {
        s2s_decode_options d = opts_of(k);
        while (s2s_engine_submit(c->e, line_of(c->w, k), &d, on_token, on_result, &c->g[k], NULL) == S2S_ERR_BUSY)
            usleep(1000);
        if (k % 7 == 0)
            usleep(2000);
    }
    return NULL;
}

static void *runner(void *arg)
{
    s2s_engine_run(arg);
    return NULL;
}

Test(engine, threads_submit_while_the_engine_runs, .timeout = 180)
{
    world w;
    world_make(&w);
    s2s_engine_options eo = s2s_engine_options_default();
    eo.max_rows = 32, eo.queue_max = 8;
    s2s_engine *e = NULL;
    cr_assert_eq(s2s_engine_create(w.m, w.t.tok, w.t.tok, &eo, &e), S2S_OK);
    enum { N = 60 };
    static got g[N];
    memset(g, 0, sizeof g);
    pthread_t run, sub[3];
    client c[3];
    cr_assert_eq(pthread_create(&run, NULL, runner, e), 0);
    for (int i = 0; i < 3; i++) {
        c[i] = (client){e, &w, i * (N / 3), N / 3, g};
        cr_assert_eq(pthread_create(&sub[i], NULL, submitter, &c[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(sub[i], NULL);
    s2s_engine_stop(e, 1); /* drain: everything submitted finishes */
    pthread_join(run, NULL);
    for (int k = 0; k < N; k++)
        expect_alone(&w, line_of(&w, k), k, &g[k]);
    s2s_engine_stats st;
    s2s_engine_stats_get(e, &st);
    cr_assert_eq(st.requests_done, N);
    s2s_engine_free(e);
    world_free(&w);
}

/* A thousand short requests through one engine: make sanitize's LeakSanitizer checks that none
 * of them leaks. */
Test(engine, a_thousand_requests, .timeout = 180)
{
    world w;
    world_make(&w);
    s2s_engine *e = NULL;
    cr_assert_eq(s2s_engine_create(w.m, w.t.tok, w.t.tok, NULL, &e), S2S_OK);
    static got g;
    int done = 0, active = 1;
    for (int k = 0; k < 1000; k++) {
        s2s_decode_options d = opts_of(k);
        d.max_len_a = 0, d.max_len_b = 3;
        memset(&g, 0, sizeof g);
        cr_assert_eq(s2s_engine_submit(e, line_of(&w, k), &d, NULL, NULL, NULL, NULL), S2S_OK);
        if (k % 10 == 9) {
            uint64_t id;
            cr_assert_eq(s2s_engine_submit(e, line_of(&w, k), &d, NULL, on_result, &g, &id), S2S_OK);
            if (k % 20 == 19)
                s2s_engine_cancel(e, id);
            while (!g.done)
                cr_assert_eq(s2s_engine_step(e, &active), S2S_OK);
            done++;
        }
    }
    while (active)
        cr_assert_eq(s2s_engine_step(e, &active), S2S_OK);
    cr_assert_eq(done, 100);
    s2s_engine_free(e);
    world_free(&w);
}
