/* engine_threads.c - the serving engine under ThreadSanitizer (make tsan; Criterion does not run
 * under TSan): a thread runs the engine while three threads submit, cancel and read the stats,
 * then a drain; then a stop without draining while requests are in flight. Exits 1 when a request
 * gets no result or two. Public API only. */
#include <seq2seq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 90
static int results[N];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void on_result(const s2s_engine_result *r, void *user)
{
    pthread_mutex_lock(&mu);
    results[(intptr_t)user]++;
    pthread_mutex_unlock(&mu);
}

static void on_token(uint64_t id, const char *text, void *user) { (void)id, (void)text, (void)user; }

static const char *WORDS[] = {"red", "blue", "green", "cat", "dog", "sees", "likes", "the", "a", "big", "small", "bird"};

static void sentence(int i, char *out, size_t cap)
{
    out[0] = 0;
    for (int k = 0; k < 2 + i % 4; k++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", k ? " " : "", WORDS[(i * 7 + k * 5) % 12]);
}

typedef struct client { s2s_engine *e; int first, n; } client;

static void *submitter(void *arg)
{
    client *c = arg;
    for (int i = c->first; i < c->first + c->n; i++) {
        char text[128];
        sentence(i, text, sizeof text);
        s2s_decode_options o = s2s_decode_options_default();
        o.mode = i % 3 == 0 ? S2S_DECODE_GREEDY : i % 3 == 1 ? S2S_DECODE_BEAM : S2S_DECODE_SAMPLE;
        o.beam_size = 3;
        uint64_t id = 0;
        s2s_status st;
        while ((st = s2s_engine_submit(c->e, text, &o, on_token, on_result, (void *)(intptr_t)i, &id)) == S2S_ERR_BUSY)
            usleep(500);
        if (st != S2S_OK) {
            pthread_mutex_lock(&mu);
            results[i]++; /* refused: counts as its one answer */
            pthread_mutex_unlock(&mu);
        }
        if (i % 5 == 0)
            s2s_engine_cancel(c->e, id);
        s2s_engine_stats s;
        s2s_engine_stats_get(c->e, &s);
    }
    return NULL;
}

static void *runner(void *e)
{
    s2s_engine_run(e);
    return NULL;
}

static int round_of(s2s_engine *e, int drain)
{
    memset(results, 0, sizeof results);
    pthread_t run, sub[3];
    client c[3];
    pthread_create(&run, NULL, runner, e);
    for (int i = 0; i < 3; i++) {
        c[i] = (client){e, i * (N / 3), N / 3};
        pthread_create(&sub[i], NULL, submitter, &c[i]);
    }
    if (!drain)
        usleep(20 * 1000), s2s_engine_stop(e, 0); /* while the submitters still run */
    for (int i = 0; i < 3; i++)
        pthread_join(sub[i], NULL);
    if (drain)
        s2s_engine_stop(e, 1);
    pthread_join(run, NULL);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += results[i] != 1;
    return bad;
}

int main(void)
{
    s2s_context_options co = s2s_context_options_default();
    co.device = S2S_DEVICE_CPU, co.threads = 1;
    s2s_context *ctx = NULL;
    s2s_corpus *c = NULL;
    s2s_tokenizer *tok = NULL;
    s2s_model *m = NULL;
    s2s_engine *e = NULL;
    const char *all[400];
    char buf[400][128];
    if (s2s_context_create(&co, &ctx) || s2s_corpus_create(&c))
        return fprintf(stderr, "%s\n", s2s_last_error()), 1;
    for (int i = 0; i < 200; i++) {
        sentence(i, buf[i], sizeof buf[i]);
        all[i] = buf[i], all[200 + i] = buf[i];
        s2s_corpus_add(c, buf[i], buf[i]);
    }
    s2s_tokenizer_options to = s2s_tokenizer_options_default();
    to.vocab_size = 30, to.threads = 1;
    s2s_model_config mc = s2s_model_config_default();
    mc.hidden = 16, mc.embed = 8;
    if (s2s_tokenizer_train(all, 400, &to, &tok))
        return fprintf(stderr, "%s\n", s2s_last_error()), 1;
    mc.src_vocab = mc.tgt_vocab = s2s_tokenizer_vocab_size(tok);
    s2s_engine_options eo = s2s_engine_options_default();
    eo.max_rows = 32, eo.queue_max = 8;
    if (s2s_model_create(ctx, &mc, &m) || s2s_engine_create(m, tok, tok, &eo, &e))
        return fprintf(stderr, "%s\n", s2s_last_error()), 1;
    int bad = round_of(e, 1);
    s2s_engine_free(e);
    if (s2s_engine_create(m, tok, tok, &eo, &e))
        return fprintf(stderr, "%s\n", s2s_last_error()), 1;
    bad += round_of(e, 0);
    s2s_engine_free(e);
    s2s_model_free(m);
    s2s_tokenizer_free(tok);
    s2s_corpus_free(c);
    s2s_context_free(ctx);
    printf("engine_threads: %d request(s) without exactly one result\n", bad);
    return bad ? 1 : 0;
}
