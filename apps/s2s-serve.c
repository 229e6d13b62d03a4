/* s2s-serve - translation and chat over HTTP for many people at once.
 *
 *   s2s-serve --model NAME=FILE [--model NAME=FILE ...] [--host 127.0.0.1] [--port 8080]
 *
 * Each model gets a serving engine (the library's continuous batching) on a thread of its own;
 * HTTP (libmicrohttpd, a pool of threads) only parses, queues, streams and answers: a handler
 * submits to an engine and suspends its connection, and the engine's callback resumes it with
 * the result or the next streamed piece. Endpoints: POST /translate (OpenNMT-py's REST shape),
 * POST /v1/chat/completions (OpenAI's, with Server-Sent Events when "stream" is true),
 * GET /v1/models, /health, /metrics (Prometheus) and / (a web page compiled into the binary).
 * Every limit has a flag and a JSON error; SIGTERM and SIGINT drain what is in flight. */
#include "cli.h"
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <time.h>

#include <s2s-serve-page.h> /* PAGE: apps/s2s-serve.html as a C string, made by the Makefile in the build */

#define TOOL "s2s-serve"
#define MAX_MODELS 8

/* ---- options ------------------------------------------------------------------------------- */

typedef struct serve_opts {
    const char *host;
    int port, http_threads, max_conn;
    long max_body;
    int max_tokens, max_rows, queue, beam;
    long budget;
    double deadline_s, drain_s;
    const char *api_key;
    int quiet, threads, device;
} serve_opts;

/* ---- metrics (Prometheus text) -------------------------------------------------------------- */

#define NBUCKET 12
static const double BUCKETS[NBUCKET] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

typedef struct histo {
    long long count[NBUCKET + 1];
    double sum;
} histo;

static void histo_add(histo *h, double v)
{
    int i = 0;
    while (i < NBUCKET && v > BUCKETS[i])
        i++;
    h->count[i]++;
    h->sum += v;
}

enum { EP_TRANSLATE, EP_CHAT, EP_OTHER, EP_N };
static const char *EP_NAME[EP_N] = {"translate", "chat", "other"};
static const int CODES[] = {200, 400, 401, 404, 405, 413, 429, 500, 503, 504};
#define NCODES ((int)(sizeof CODES / sizeof CODES[0]))

/* ---- models -------------------------------------------------------------------------------- */

typedef struct model_slot {
    char name[64];
    const char *path, *mmi_path;
    s2s_context *ctx;
    s2s_model *m, *rev;
    s2s_tokenizer *st, *tt, *rst, *rtt;
    s2s_engine *e;
    pthread_t thread;
    int running;
    pthread_mutex_t rev_mu; /* the reverse model is used from HTTP threads, one at a time */
} model_slot;

typedef struct server {
    serve_opts o;
    model_slot models[MAX_MODELS];
    int nmodels;
    struct MHD_Daemon *d;
    pthread_mutex_t mu; /* everything below */
    int state;          /* 0 loading, 1 ready, 2 draining */
    long long next_req;
    histo duration[EP_N], queue_time, per_token;
    long long responses[NCODES + 1];
    struct conn *waiting; /* connections with an engine request: the deadline watch */
    int watch_stop;
} server;

/* ---- one engine request and the connection waiting for it ----------------------------------------
 * A waiter is shared by the engine's callbacks (engine thread) and the connection (HTTP threads);
 * refs counts the holders: the engine until its result, the connection, and a streaming response. */
typedef struct waiter {
    pthread_mutex_t mu;
    int refs, done;
    s2s_engine_result res; /* copied: texts and scores owned here */
    char *error;
    char **texts;
    float *scores;
    char *pending; /* streamed text not yet sent */
    size_t pending_len, pending_cap;
    struct conn *conn; /* to resume, while it is suspended on this waiter */
    int suspended;
    uint64_t id;
    model_slot *model;
} waiter;

typedef struct conn {
    server *sv;
    struct MHD_Connection *c;
    int endpoint;
    char *body;
    size_t body_len, body_cap;
    int too_large;
    waiter **w; /* the request's engine requests */
    int nw;
    int stream, phase; /* stream: SSE; phase 0 collecting, 1 waiting, 2 answered */
    int sse_state;     /* 0 role sent? 1 streaming 2 final sent 3 done */
    double t0, deadline;
    int timed_out;
    long long req_no;
    int code;
    char chat_id[48];
    char *model_name;
    struct conn *next_waiting;
    int in_waiting;
    int tokens_in, tokens_out;
    int max_tokens; /* chat: the request's max_tokens (0: none) */
    int include_usage; /* chat stream: stream_options.include_usage, a last chunk with the usage */
    int streamed_any;  /* chat stream: a content piece was sent */
    const char *allow; /* a 405's Allow header */
} conn;

static void waiter_unref(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    int left = --w->refs;
    pthread_mutex_unlock(&w->mu);
    if (left)
        return;
    for (int j = 0; j < w->res.n; j++)
        free(w->texts[j]);
    free(w->texts), free(w->scores), free(w->error), free(w->pending);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* Resumes the waiter's connection if it is suspended on it (holding w->mu). */
static void wake(waiter *w)
{
    if (w->suspended && w->conn) {
        w->suspended = 0;
        MHD_resume_connection(w->conn->c);
    }
}

static void on_token(uint64_t id, const char *text, void *user)
{
    waiter *w = user;
    size_t n = strlen(text);
    pthread_mutex_lock(&w->mu);
    if (w->pending_len + n + 1 > w->pending_cap) {
        size_t cap = (w->pending_len + n + 1) * 2;
        char *p = realloc(w->pending, cap);
        if (p)
            w->pending = p, w->pending_cap = cap;
    }
    if (w->pending_len + n + 1 <= w->pending_cap) {
        memcpy(w->pending + w->pending_len, text, n + 1);
        w->pending_len += n;
    }
    wake(w);
    pthread_mutex_unlock(&w->mu);
}

static void on_result(const s2s_engine_result *r, void *user)
{
    waiter *w = user;
    pthread_mutex_lock(&w->mu);
    w->res = *r;
    w->error = strdup(r->error ? r->error : "");
    w->texts = calloc((size_t)(r->n + 1), sizeof(char *));
    w->scores = calloc((size_t)(r->n + 1), sizeof(float));
    for (int j = 0; w->texts && w->scores && j < r->n; j++) {
        w->texts[j] = strdup(r->texts[j]);
        w->scores[j] = r->scores[j];
    }
    if (!w->texts || !w->scores || !w->error) /* nothing kept: report it as a failure */
        w->res.status = S2S_ERR_OUT_OF_MEMORY, w->res.n = 0;
    w->res.texts = NULL, w->res.scores = NULL, w->res.error = NULL;
    w->done = 1;
    wake(w);
    pthread_mutex_unlock(&w->mu);
    waiter_unref(w); /* the engine's reference */
}

/* ---- JSON answers ------------------------------------------------------------------------------ */

static enum MHD_Result answer(conn *k, int code, const char *type, char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (code == 429)
        MHD_add_response_header(r, "Retry-After", "1");
    if (code == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (code == 405)
        MHD_add_response_header(r, "Allow", k->allow ? k->allow : "GET");
    k->code = code;
    enum MHD_Result ret = MHD_queue_response(k->c, (unsigned)code, r);
    MHD_destroy_response(r);
    k->phase = 2;
    return ret;
}

static enum MHD_Result answer_json(conn *k, int code, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        return MHD_NO;
    return answer(k, code, "application/json", s, strlen(s));
}

/* {"error": {"message": ..., "type": ..., "code": ...}}: OpenAI's shape, which the page and
 * OpenAI clients read. */
static enum MHD_Result fail(conn *k, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum MHD_Result fail(conn *k, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", code >= 500 ? "server_error" : "invalid_request_error");
    cJSON_AddNumberToObject(e, "code", code);
    return answer_json(k, code, j);
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* ---- the deadline watch ---------------------------------------------------------------------------
 * Connections waiting on engine requests are listed; a thread cancels the requests of those past
 * their deadline (the engine then answers them, and the connection says 504). */
static void watch_add(conn *k)
{
    server *sv = k->sv;
    pthread_mutex_lock(&sv->mu);
    k->next_waiting = sv->waiting, sv->waiting = k, k->in_waiting = 1;
    pthread_mutex_unlock(&sv->mu);
}

static void watch_remove(conn *k)
{
    server *sv = k->sv;
    pthread_mutex_lock(&sv->mu);
    for (conn **p = &sv->waiting; *p; p = &(*p)->next_waiting)
        if (*p == k) {
            *p = k->next_waiting;
            break;
        }
    k->in_waiting = 0;
    pthread_mutex_unlock(&sv->mu);
}

static void *watch(void *arg)
{
    server *sv = arg;
    for (int stop = 0; !stop;) {
        usleep(50 * 1000);
        double t = mono_ms();
        pthread_mutex_lock(&sv->mu);
        stop = sv->watch_stop;
        for (conn *k = sv->waiting; k; k = k->next_waiting)
            if (!k->timed_out && t > k->deadline) {
                k->timed_out = 1;
                for (int i = 0; i < k->nw; i++)
                    s2s_engine_cancel(k->w[i]->model->e, k->w[i]->id);
            }
        pthread_mutex_unlock(&sv->mu);
    }
    return NULL;
}


/* ---- submitting ---------------------------------------------------------------------------------- */

static model_slot *find_model(server *sv, const cJSON *id)
{
    if (!id || cJSON_IsNull(id))
        return &sv->models[0];
    if (cJSON_IsString(id)) {
        for (int i = 0; i < sv->nmodels; i++)
            if (!strcmp(sv->models[i].name, id->valuestring))
                return &sv->models[i];
        return NULL;
    }
    if (cJSON_IsNumber(id) && id->valuedouble >= 1 && id->valuedouble <= sv->nmodels &&
        id->valuedouble == (int)id->valuedouble)
        return &sv->models[(int)id->valuedouble - 1]; /* OpenNMT-py numbers its models from 1 */
    return NULL;
}

/* Submits text to model m; on success adds a waiter to the connection. Returns the HTTP status
 * of a refusal (with *why), or 0. */
static int submit(conn *k, model_slot *m, const char *text, const s2s_decode_options *o, int stream, char *why,
                  size_t cap)
{
    waiter *w = calloc(1, sizeof *w);
    waiter **list = realloc(k->w, sizeof *list * (size_t)(k->nw + 1));
    if (!w || !list) {
        free(w);
        snprintf(why, cap, "out of memory");
        return 500;
    }
    k->w = list;
    pthread_mutex_init(&w->mu, NULL);
    w->refs = 2; /* the engine's (until its result) and the connection's */
    w->model = m;
    s2s_status st = s2s_engine_submit(m->e, text, o, stream ? on_token : NULL, on_result, w, &w->id);
    if (st != S2S_OK) {
        snprintf(why, cap, "%s", s2s_last_error());
        w->refs = 1;
        waiter_unref(w);
        return st == S2S_ERR_BUSY ? 429 : st == S2S_ERR_CANCELLED ? 503 : st == S2S_ERR_INVALID_ARG ? 400 : 500;
    }
    k->w[k->nw++] = w;
    return 0;
}

/* Whether every waiter of the connection is done; if not, suspends the connection on the first
 * that is not (the engine's callback resumes it). */
static int all_done_or_suspend(conn *k)
{
    for (int i = 0; i < k->nw; i++) {
        waiter *w = k->w[i];
        pthread_mutex_lock(&w->mu);
        if (!w->done) {
            w->conn = k, w->suspended = 1;
            MHD_suspend_connection(k->c); /* under w->mu: the engine cannot resume before this */
            pthread_mutex_unlock(&w->mu);
            return 0;
        }
        pthread_mutex_unlock(&w->mu);
    }
    return 1;
}

static const char *strip_prefix(const char *msg)
{ /* the library's messages start "status (file.c:NN): "; a client needs what follows */
    const char *p = strstr(msg, "): ");
    return p ? p + 3 : msg;
}

/* A waiter that ended without outputs: its HTTP status. */
static int status_of(const conn *k, const waiter *w)
{
    if (w->res.status == S2S_OK)
        return 200;
    if (w->res.status == S2S_ERR_CANCELLED)
        return k->timed_out ? 504 : 503;
    return 500;
}

/* ---- request bodies ----------------------------------------------------------------------------- */

/* Parses the body as JSON; on failure answers 400 naming the byte and returns NULL. */
static cJSON *parse_body(conn *k, enum MHD_Result *ret)
{
    if (!k->body_len) {
        *ret = fail(k, 400, "the request has no body; send JSON");
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(k->body, k->body_len, &end, 0);
    if (!j) {
        size_t at = end && end >= k->body ? (size_t)(end - k->body) : 0;
        *ret = fail(k, 400, "malformed JSON at byte %zu of %zu", at + 1, k->body_len);
    }
    return j;
}

/* Reads an optional number field into *v within [lo, hi]; 0 with an answer when it is wrong. */
static int get_num(conn *k, const cJSON *obj, const char *key, double lo, double hi, int whole, double *v,
                   enum MHD_Result *ret, const char *where)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!x || cJSON_IsNull(x))
        return 1;
    if (!cJSON_IsNumber(x) || x->valuedouble < lo || x->valuedouble > hi || (whole && x->valuedouble != (long)x->valuedouble)) {
        *ret = fail(k, 400, "%s\"%s\" must be a %s in [%g, %g]", where, key, whole ? "whole number" : "number", lo, hi);
        return 0;
    }
    *v = x->valuedouble;
    return 1;
}

/* ---- POST /translate ------------------------------------------------------------------------- */

static enum MHD_Result translate_start(conn *k)
{
    server *sv = k->sv;
    enum MHD_Result ret = MHD_NO;
    cJSON *j = parse_body(k, &ret);
    if (!j)
        return ret;
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) < 1) {
        cJSON_Delete(j);
        return fail(k, 400, "the body must be a non-empty JSON array of {\"src\": text, \"id\": model}");
    }
    int n = cJSON_GetArraySize(j), first_nbest = 1;
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_GetArrayItem(j, i), *src = cJSON_GetObjectItemCaseSensitive(it, "src");
        char where[32];
        snprintf(where, sizeof where, "item %d: ", i);
        if (!cJSON_IsObject(it) || !cJSON_IsString(src)) {
            cJSON_Delete(j);
            return fail(k, 400, "item %d: must be an object with a string \"src\"", i);
        }
        model_slot *m = find_model(sv, cJSON_GetObjectItemCaseSensitive(it, "id"));
        if (!m) {
            cJSON_Delete(j);
            return fail(k, 400, "item %d: unknown model \"id\" (GET /v1/models lists them)", i);
        }
        s2s_decode_options o = s2s_decode_options_default();
        double beam = sv->o.beam, nbest = 1, lp = o.length_penalty;
        if (!get_num(k, it, "beam_size", 1, 64, 1, &beam, &ret, where) ||
            !get_num(k, it, "n_best", 1, 64, 1, &nbest, &ret, where) ||
            !get_num(k, it, "length_penalty", 0, 10, 0, &lp, &ret, where)) {
            cJSON_Delete(j);
            return ret;
        }
        if (nbest > beam) {
            cJSON_Delete(j);
            return fail(k, 400, "item %d: n_best %g exceeds beam_size %g", i, nbest, beam);
        }
        if (i > 0 && (int)nbest != first_nbest) { /* the answer is one list per rank */
            cJSON_Delete(j);
            return fail(k, 400, "item %d: n_best %g differs from item 0's %d; one request has one n_best", i, nbest,
                        first_nbest);
        }
        first_nbest = (int)nbest;
        o.beam_size = (int)beam, o.nbest = (int)nbest, o.length_penalty = (float)lp;
        char why[1024];
        int code = submit(k, m, src->valuestring, &o, 0, why, sizeof why);
        if (code) {
            for (int q = 0; q < k->nw; q++)
                s2s_engine_cancel(k->w[q]->model->e, k->w[q]->id);
            cJSON_Delete(j);
            return fail(k, code, "item %d: %s", i, strip_prefix(why));
        }
    }
    cJSON_Delete(j);
    k->phase = 1;
    watch_add(k);
    all_done_or_suspend(k); /* answered when called again with every result in */
    return MHD_YES;
}

static enum MHD_Result translate_finish(conn *k)
{
    cJSON *j = parse_body(k, &(enum MHD_Result){MHD_NO}); /* parsed before: cannot fail now */
    for (int i = 0; i < k->nw; i++) {
        int code = status_of(k, k->w[i]);
        if (code != 200) {
            cJSON_Delete(j);
            return code == 504 ? fail(k, 504, "the deadline of %g s passed; the request was cancelled", k->sv->o.deadline_s)
                               : fail(k, code, "item %d: %s", i, k->w[i]->error ? strip_prefix(k->w[i]->error) : "failed");
        }
    }
    /* OpenNMT-py's shape: one list per rank (n_best of them), each with one result per item, in
     * order; "n_best" is the number of ranks */
    int nbest = k->nw ? k->w[0]->res.n : 0;
    cJSON *out = cJSON_CreateArray();
    for (int b = 0; b < nbest; b++) {
        cJSON *rank = cJSON_CreateArray();
        for (int i = 0; i < k->nw; i++) {
            waiter *w = k->w[i];
            cJSON *h = cJSON_CreateObject();
            cJSON_AddStringToObject(h, "src", cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, i), "src")->valuestring);
            cJSON_AddStringToObject(h, "tgt", b < w->res.n ? w->texts[b] : "");
            cJSON_AddNumberToObject(h, "n_best", nbest);
            cJSON_AddNumberToObject(h, "pred_score", b < w->res.n ? w->scores[b] : 0.0);
            cJSON_AddItemToArray(rank, h);
        }
        cJSON_AddItemToArray(out, rank);
    }
    for (int i = 0; i < k->nw; i++)
        k->tokens_in += k->w[i]->res.src_tokens, k->tokens_out += k->w[i]->res.out_tokens;
    cJSON_Delete(j);
    return answer_json(k, 200, out);
}

/* ---- POST /v1/chat/completions ------------------------------------------------------------------ */

/* The chat's decoding: greedy by default (streams), sampling when a temperature > 0 is given,
 * beam search with "beam_size" (reranked by the model's reverse model when it has one); replies
 * never repeat a 3-gram, as in s2s-chat. */
static enum MHD_Result chat_start(conn *k)
{
    server *sv = k->sv;
    enum MHD_Result ret = MHD_NO;
    cJSON *j = parse_body(k, &ret);
    if (!j)
        return ret;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages"), *last = NULL;
    if (!cJSON_IsObject(j) || !cJSON_IsArray(msgs)) {
        cJSON_Delete(j);
        return fail(k, 400, "the body must be an object with a \"messages\" array");
    }
    for (const cJSON *m = msgs->child; m; m = m->next) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role"), *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role) || !cJSON_IsString(c)) {
            cJSON_Delete(j);
            return fail(k, 400, "every message must be an object with string \"role\" and \"content\"");
        }
        if (!strcmp(role->valuestring, "user"))
            last = c;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model"), *stream = cJSON_GetObjectItemCaseSensitive(j, "stream");
    model_slot *m = find_model(sv, model);
    if (!last || !m || (model && !cJSON_IsString(model) && !cJSON_IsNull(model)) ||
        (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream))) {
        cJSON_Delete(j);
        return fail(k, 400, !last ? "no message with role \"user\" to answer"
                            : !m ? "unknown \"model\" (GET /v1/models lists them)"
                                 : "\"model\" must be a string and \"stream\" a boolean");
    }
    s2s_decode_options o = s2s_decode_options_default();
    o.mode = S2S_DECODE_GREEDY, o.no_repeat_ngram = 3;
    double temp = -1, top_p = 1, max_tokens = -1, min_tokens = 0, beam = 0, seed = -1, n = 1;
    if (!get_num(k, j, "temperature", 0, 100, 0, &temp, &ret, "") || !get_num(k, j, "top_p", 0.001, 1, 0, &top_p, &ret, "") ||
        !get_num(k, j, "max_tokens", 1, 4096, 1, &max_tokens, &ret, "") ||
        !get_num(k, j, "min_tokens", 0, 4096, 1, &min_tokens, &ret, "") ||
        !get_num(k, j, "beam_size", 1, 64, 1, &beam, &ret, "") || !get_num(k, j, "seed", 0, 4294967295.0, 1, &seed, &ret, "") ||
        !get_num(k, j, "n", 1, 1, 1, &n, &ret, "")) {
        cJSON_Delete(j);
        return ret;
    }
    if (beam > 0)
        o.mode = S2S_DECODE_BEAM, o.beam_size = (int)beam, o.nbest = m->rev ? (int)beam : 1;
    else if (temp > 0)
        o.mode = S2S_DECODE_SAMPLE, o.temperature = (float)temp, o.top_p = (float)top_p;
    if (seed >= 0)
        o.seed = (uint64_t)seed;
    o.min_len = (int)min_tokens; /* vLLM's extension: no end of reply before this many tokens */
    if (max_tokens > 0)
        o.max_len_a = 0, o.max_len_b = (int)max_tokens, k->max_tokens = (int)max_tokens;
    k->stream = cJSON_IsTrue(stream);
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    k->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    k->model_name = strdup(m->name);
    snprintf(k->chat_id, sizeof k->chat_id, "chatcmpl-%lld", k->req_no);
    char why[1024];
    int code = submit(k, m, last->valuestring, &o, k->stream, why, sizeof why);
    cJSON_Delete(j);
    if (code)
        return fail(k, code, "%s", strip_prefix(why));
    k->phase = 1;
    watch_add(k);
    if (k->stream)
        return MHD_YES; /* the SSE response starts at the next call */
    all_done_or_suspend(k);
    return MHD_YES;
}

/* The reply: the best output, or with a reverse model the beam reranked by it. */
static const char *chat_reply(conn *k, waiter *w)
{
    model_slot *m = w->model;
    int best = 0;
    if (m->rev && w->res.n > 1) {
        const char *line = NULL; /* the text was the last user message: re-read it */
        cJSON *j = cJSON_ParseWithLength(k->body, k->body_len);
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
        for (const cJSON *x = msgs ? msgs->child : NULL; x; x = x->next)
            if (!strcmp(cJSON_GetObjectItemCaseSensitive(x, "role")->valuestring, "user"))
                line = cJSON_GetObjectItemCaseSensitive(x, "content")->valuestring;
        pthread_mutex_lock(&m->rev_mu);
        if (line && s2s_rerank_reverse(m->rev, m->rst, m->rtt, line, (const char *const *)w->texts, w->scores, w->res.n,
                                       3.0f, NULL, &best) != S2S_OK)
            best = 0;
        pthread_mutex_unlock(&m->rev_mu);
        cJSON_Delete(j);
    }
    return w->texts[best];
}

static cJSON *chat_object(conn *k, const char *object)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", k->chat_id);
    cJSON_AddStringToObject(j, "object", object);
    cJSON_AddNumberToObject(j, "created", (double)time(NULL));
    cJSON_AddStringToObject(j, "model", k->model_name ? k->model_name : "");
    return j;
}

static const char *finish_reason(const conn *k, const waiter *w)
{ /* "length": the reply reached its length limit (max_tokens, or 2 x the input + 10) */
    int limit = k->max_tokens > 0 ? k->max_tokens : 2 * w->res.src_tokens + 10;
    return w->res.out_tokens >= limit ? "length" : "stop";
}

static enum MHD_Result chat_finish(conn *k)
{
    waiter *w = k->w[0];
    int code = status_of(k, w);
    if (code != 200)
        return code == 504 ? fail(k, 504, "the deadline of %g s passed; the request was cancelled", k->sv->o.deadline_s)
                           : fail(k, code, "%s", w->error ? strip_prefix(w->error) : "failed");
    cJSON *j = chat_object(k, "chat.completion"), *choices = cJSON_AddArrayToObject(j, "choices");
    cJSON *c = cJSON_CreateObject(), *msg = cJSON_AddObjectToObject(c, "message");
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", chat_reply(k, w));
    cJSON_AddStringToObject(c, "finish_reason", finish_reason(k, w));
    cJSON_AddItemToArray(choices, c);
    cJSON *u = cJSON_AddObjectToObject(j, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", w->res.src_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", w->res.out_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", w->res.src_tokens + w->res.out_tokens);
    k->tokens_in += w->res.src_tokens, k->tokens_out += w->res.out_tokens;
    return answer_json(k, 200, j);
}

/* ---- Server-Sent Events ------------------------------------------------------------------------- */

/* One "data: {chunk}\n\n" event into buf (at most cap bytes); its length, or 0 when it does not fit. */
static size_t sse_chunk(conn *k, const char *content, const char *role, const char *finish, char *buf, size_t cap)
{
    cJSON *j = chat_object(k, "chat.completion.chunk"), *choices = cJSON_AddArrayToObject(j, "choices");
    cJSON *c = cJSON_CreateObject(), *delta = cJSON_AddObjectToObject(c, "delta");
    cJSON_AddNumberToObject(c, "index", 0);
    if (role)
        cJSON_AddStringToObject(delta, "role", role);
    if (content)
        cJSON_AddStringToObject(delta, "content", content);
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    size_t n = s ? (size_t)snprintf(buf, cap, "data: %s\n\n", s) : 0;
    free(s);
    return n < cap ? n : 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    conn *k = cls;
    waiter *w = k->w[0];
    if (k->sse_state == 3)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (k->sse_state == 0) {
        k->sse_state = 1;
        size_t n = sse_chunk(k, NULL, "assistant", NULL, buf, max);
        return n ? (ssize_t)n : MHD_CONTENT_READER_END_WITH_ERROR;
    }
    pthread_mutex_lock(&w->mu);
    if (w->pending_len) { /* what was streamed since the last event: as much as fits */
        size_t take = w->pending_len, n = 0;
        while (take > 0) {
            char save = w->pending[take];
            w->pending[take] = '\0';
            n = sse_chunk(k, w->pending, NULL, NULL, buf, max);
            w->pending[take] = save;
            if (n)
                break;
            take /= 2; /* a long piece goes in halves (a UTF-8 sequence is never cut: see below) */
            while (take > 0 && ((unsigned char)w->pending[take] & 0xC0) == 0x80)
                take--;
        }
        if (n) {
            memmove(w->pending, w->pending + take, w->pending_len - take + 1);
            w->pending_len -= take;
            k->streamed_any = 1;
        }
        pthread_mutex_unlock(&w->mu);
        return n ? (ssize_t)n : MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (w->done) {
        pthread_mutex_unlock(&w->mu);
        size_t n = 0;
        int code = status_of(k, w);
        k->code = code;
        if (code == 200 && !k->streamed_any) /* beam search streams nothing: its (reranked) reply at once */
            n = sse_chunk(k, chat_reply(k, w), NULL, NULL, buf, max);
        if (code == 200) {
            size_t m0 = n;
            n += sse_chunk(k, NULL, NULL, finish_reason(k, w), buf + n, max - n);
            if (n == m0) /* it did not fit after the reply: the next call sends it */
                return k->streamed_any = 1, (ssize_t)n;
            k->tokens_in += w->res.src_tokens, k->tokens_out += w->res.out_tokens;
            if (k->include_usage && n) { /* OpenAI's last chunk: no choices, the usage */
                cJSON *j = chat_object(k, "chat.completion.chunk"), *u;
                cJSON_AddArrayToObject(j, "choices");
                u = cJSON_AddObjectToObject(j, "usage");
                cJSON_AddNumberToObject(u, "prompt_tokens", w->res.src_tokens);
                cJSON_AddNumberToObject(u, "completion_tokens", w->res.out_tokens);
                cJSON_AddNumberToObject(u, "total_tokens", w->res.src_tokens + w->res.out_tokens);
                char *s = cJSON_PrintUnformatted(j);
                cJSON_Delete(j);
                int m = s ? snprintf(buf + n, max - n, "data: %s\n\n", s) : 0;
                n += m > 0 && (size_t)m < max - n ? (size_t)m : 0;
                free(s);
            }
        } else {
            n = (size_t)snprintf(buf, max, "data: {\"error\":{\"message\":\"%s\",\"code\":%d}}\n\n",
                                 code == 504 ? "the deadline passed; the request was cancelled"
                                             : "the request ended without a reply",
                                 code);
        }
        if (n + 14 < max)
            n += (size_t)snprintf(buf + n, max - n, "data: [DONE]\n\n");
        k->sse_state = 3;
        return (ssize_t)n;
    }
    w->conn = k, w->suspended = 1;
    MHD_suspend_connection(k->c); /* resumed by the next piece or the result */
    pthread_mutex_unlock(&w->mu);
    return 0;
}

static void sse_free(void *cls) { (void)cls; /* the connection's context frees everything */ }

static enum MHD_Result chat_stream(conn *k)
{
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, k, sse_free);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    k->code = 200;
    enum MHD_Result ret = MHD_queue_response(k->c, 200, r);
    MHD_destroy_response(r);
    k->phase = 2;
    return ret;
}

/* ---- a growing text (the metrics page) ---------------------------------------------------------- */

typedef struct textbuf {
    char *p;
    size_t len, cap;
    int oom;
} textbuf;

static void buf_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(textbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->oom || n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q, b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- GET endpoints ------------------------------------------------------------------------------- */

static enum MHD_Result models_list(conn *k)
{
    cJSON *j = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(j, "data");
    cJSON_AddStringToObject(j, "object", "list");
    for (int i = 0; i < k->sv->nmodels; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", k->sv->models[i].name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "libseq2seq");
        cJSON_AddItemToArray(data, m);
    }
    return answer_json(k, 200, j);
}

static enum MHD_Result health(conn *k)
{
    pthread_mutex_lock(&k->sv->mu);
    int state = k->sv->state;
    pthread_mutex_unlock(&k->sv->mu);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", state == 1 ? "ok" : state == 0 ? "loading" : "draining");
    return answer_json(k, state == 1 ? 200 : 503, j);
}

static void put_histo(textbuf *b, const char *name, const char *labels, const histo *h)
{
    long long acc = 0;
    for (int i = 0; i <= NBUCKET; i++) {
        acc += h->count[i];
        char le[32];
        if (i < NBUCKET)
            snprintf(le, sizeof le, "%g", BUCKETS[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        buf_printf(b, "%s_bucket{%s%sle=\"%s\"} %lld\n", name, labels, *labels ? "," : "", le, acc);
    }
    buf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %lld\n", name, labels, h->sum, name, labels, acc);
}

static enum MHD_Result metrics(conn *k)
{
    server *sv = k->sv;
    textbuf b = {0};
    pthread_mutex_lock(&sv->mu);
    buf_printf(&b, "# HELP s2s_request_duration_seconds Time from a request's arrival to its answer.\n"
                   "# TYPE s2s_request_duration_seconds histogram\n");
    for (int e = 0; e < EP_N; e++) {
        char l[64];
        snprintf(l, sizeof l, "endpoint=\"%s\"", EP_NAME[e]);
        put_histo(&b, "s2s_request_duration_seconds", l, &sv->duration[e]);
    }
    buf_printf(&b, "# HELP s2s_queue_time_seconds Time a decoding request waited for admission.\n"
                   "# TYPE s2s_queue_time_seconds histogram\n");
    put_histo(&b, "s2s_queue_time_seconds", "", &sv->queue_time);
    buf_printf(&b, "# HELP s2s_time_per_output_token_seconds Decoding time of a request per output token.\n"
                   "# TYPE s2s_time_per_output_token_seconds histogram\n");
    put_histo(&b, "s2s_time_per_output_token_seconds", "", &sv->per_token);
    buf_printf(&b, "# HELP s2s_responses_total Answers by HTTP status.\n# TYPE s2s_responses_total counter\n");
    for (int i = 0; i < NCODES; i++)
        buf_printf(&b, "s2s_responses_total{code=\"%d\"} %lld\n", CODES[i], sv->responses[i]);
    pthread_mutex_unlock(&sv->mu);
    static const char *G[4][3] = {
        {"s2s_batch_size", "gauge", "Hypotheses decoded in the last step."},
        {"s2s_queue_depth", "gauge", "Requests waiting for admission."},
        {"s2s_tokens_in_total", "counter", "Input tokens of finished requests."},
        {"s2s_tokens_out_total", "counter", "Output tokens of finished requests."}};
    for (int g = 0; g < 4; g++) {
        buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", G[g][0], G[g][2], G[g][0], G[g][1]);
        for (int i = 0; i < sv->nmodels; i++) {
            s2s_engine_stats st;
            memset(&st, 0, sizeof st);
            if (sv->models[i].e)
                s2s_engine_stats_get(sv->models[i].e, &st);
            long long v = g == 0 ? st.rows_active : g == 1 ? st.requests_queued : g == 2 ? st.tokens_in : st.tokens_out;
            buf_printf(&b, "%s{model=\"%s\"} %lld\n", G[g][0], sv->models[i].name, v);
        }
    }
    if (b.oom) {
        free(b.p);
        return fail(k, 500, "out of memory");
    }
    return answer(k, 200, "text/plain; version=0.0.4", b.p, b.len);
}

/* ---- the handler --------------------------------------------------------------------------------- */

/* Constant-time comparison of the Authorization header with "Bearer KEY". */
static int authorized(conn *k)
{
    const char *key = k->sv->o.api_key;
    if (!key)
        return 1;
    const char *h = MHD_lookup_connection_value(k->c, MHD_HEADER_KIND, "Authorization");
    char want[512];
    snprintf(want, sizeof want, "Bearer %s", key);
    size_t n = strlen(want), m = h ? strlen(h) : 0;
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < m ? h[i] : 0);
    return diff == 0;
}

static int is(const char *a, const char *b) { return !strcmp(a, b); }

static enum MHD_Result route(conn *k, const char *url, const char *method)
{
    server *sv = k->sv;
    int get = is(method, "GET") || is(method, "HEAD"), post = is(method, "POST");
    k->allow = is(url, "/translate") || is(url, "/v1/chat/completions") ? "POST" : "GET, HEAD";
    if (is(url, "/health"))
        return get ? health(k) : fail(k, 405, "/health answers GET");
    if (is(url, "/") && get) /* the page itself holds nothing: its calls carry the key */
        return answer(k, 200, "text/html; charset=utf-8", strdup(PAGE), strlen(PAGE));
    if (!authorized(k))
        return fail(k, 401, "a valid API key is needed: send the header 'Authorization: Bearer KEY'");
    int known = is(url, "/translate") || is(url, "/v1/chat/completions") || is(url, "/v1/models") ||
                is(url, "/metrics") || is(url, "/");
    if (!known)
        return fail(k, 404, "no such endpoint: %s (POST /translate, POST /v1/chat/completions, GET /v1/models, "
                    "/health, /metrics, /)", url);
    if (is(url, "/v1/models"))
        return get ? models_list(k) : fail(k, 405, "%s answers GET", url);
    if (is(url, "/metrics"))
        return get ? metrics(k) : fail(k, 405, "%s answers GET", url);
    if (!post)
        return fail(k, 405, "%s answers POST", url);
    pthread_mutex_lock(&sv->mu);
    int state = sv->state;
    pthread_mutex_unlock(&sv->mu);
    if (state != 1)
        return fail(k, 503, state == 0 ? "the models are still loading" : "the server is shutting down");
    if (k->too_large)
        return fail(k, 413, "the body exceeds %ld bytes (--max-body)", sv->o.max_body);
    return k->endpoint == EP_TRANSLATE ? translate_start(k) : chat_start(k);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **con_cls)
{
    server *sv = cls;
    conn *k = *con_cls;
    if (!k) { /* a new request */
        if (!(k = calloc(1, sizeof *k)))
            return MHD_NO;
        k->sv = sv, k->c = c, k->t0 = mono_ms();
        k->endpoint = is(url, "/translate") ? EP_TRANSLATE : is(url, "/v1/chat/completions") ? EP_CHAT : EP_OTHER;
        pthread_mutex_lock(&sv->mu);
        k->req_no = ++sv->next_req;
        pthread_mutex_unlock(&sv->mu);
        k->deadline = k->t0 + sv->o.deadline_s * 1e3;
        *con_cls = k;
        return MHD_YES;
    }
    if (*size) { /* a piece of the body */
        if (k->body_len + *size > (size_t)sv->o.max_body) {
            k->too_large = 1;
        } else {
            if (k->body_len + *size + 1 > k->body_cap) {
                size_t cap = (k->body_len + *size + 1) * 2;
                char *p = realloc(k->body, cap);
                if (!p)
                    return MHD_NO;
                k->body = p, k->body_cap = cap;
            }
            memcpy(k->body + k->body_len, data, *size);
            k->body_len += *size;
            k->body[k->body_len] = '\0';
        }
        *size = 0;
        return MHD_YES;
    }
    if (k->phase == 0)
        return route(k, url, method);
    if (k->phase == 1) { /* resumed: a result came in */
        if (k->stream)
            return chat_stream(k);
        if (!all_done_or_suspend(k))
            return MHD_YES;
        return k->endpoint == EP_TRANSLATE ? translate_finish(k) : chat_finish(k);
    }
    return MHD_YES;
}

/* The request is over (answered, or the client went away): cancel what still decodes, count it. */
static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    server *sv = cls;
    conn *k = *con_cls;
    if (!k)
        return;
    if (k->in_waiting)
        watch_remove(k);
    for (int i = 0; i < k->nw; i++) {
        waiter *w = k->w[i];
        pthread_mutex_lock(&w->mu);
        int done = w->done;
        w->conn = NULL, w->suspended = 0;
        pthread_mutex_unlock(&w->mu);
        if (!done)
            s2s_engine_cancel(w->model->e, w->id); /* a client that left frees its rows */
        if (done && w->res.status == S2S_OK) {
            pthread_mutex_lock(&sv->mu);
            histo_add(&sv->queue_time, w->res.queue_ms * 1e-3);
            if (w->res.out_tokens > 0)
                histo_add(&sv->per_token, (w->res.total_ms - w->res.queue_ms) * 1e-3 / w->res.out_tokens);
            pthread_mutex_unlock(&sv->mu);
        }
        waiter_unref(w);
    }
    double ms = mono_ms() - k->t0;
    int code = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? k->code : k->code ? k->code : 499;
    pthread_mutex_lock(&sv->mu);
    histo_add(&sv->duration[k->endpoint], ms * 1e-3);
    int slot = NCODES; /* 499 (the client went away before its answer) and others: not listed */
    for (int i = 0; i < NCODES; i++)
        slot = CODES[i] == code ? i : slot;
    sv->responses[slot]++;
    pthread_mutex_unlock(&sv->mu);
    if (!sv->o.quiet && k->endpoint != EP_OTHER)
        fprintf(stderr, TOOL ": request %lld %s %d%s, %d tokens in, %d out, %.1f ms\n", k->req_no,
                EP_NAME[k->endpoint], code, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (client gone)",
                k->tokens_in, k->tokens_out, ms);
    free(k->w), free(k->body), free(k->model_name), free(k);
    *con_cls = NULL;
}

/* ---- models: load, run, stop ------------------------------------------------------------------------ */

static void *engine_thread(void *arg)
{
    model_slot *m = arg;
    s2s_engine_run(m->e);
    return NULL;
}

static int load_model(server *sv, model_slot *m, const common_opts *c)
{
    if (!(m->ctx = make_context(TOOL, c, 0)))
        return 0;
    if (s2s_model_load(m->ctx, m->path, &m->m, &m->st, &m->tt, NULL) != S2S_OK ||
        (m->mmi_path && s2s_model_load(m->ctx, m->mmi_path, &m->rev, &m->rst, &m->rtt, NULL) != S2S_OK)) {
        fprintf(stderr, TOOL ": model %s: %s\n", m->name, s2s_last_error());
        return 0;
    }
    if (!m->st || !m->tt || (m->rev && (!m->rst || !m->rtt))) {
        fprintf(stderr, TOOL ": model %s: %s holds no tokenizers\n", m->name, !m->st || !m->tt ? m->path : m->mmi_path);
        return 0;
    }
    s2s_engine_options eo = s2s_engine_options_default();
    eo.max_rows = sv->o.max_rows, eo.token_budget = sv->o.budget, eo.queue_max = sv->o.queue;
    eo.max_src_tokens = sv->o.max_tokens;
    eo.precision = cli_decode_precision(c);
    if (s2s_engine_create(m->m, m->st, m->tt, &eo, &m->e) != S2S_OK) {
        fprintf(stderr, TOOL ": model %s: %s\n", m->name, s2s_last_error());
        return 0;
    }
    pthread_mutex_init(&m->rev_mu, NULL);
    if (pthread_create(&m->thread, NULL, engine_thread, m) != 0) {
        fprintf(stderr, TOOL ": model %s: cannot start its engine thread\n", m->name);
        return 0;
    }
    m->running = 1;
    return 1;
}

/* Stops the engines: draining within drain_s seconds, then cancelling what is left. */
static void stop_models(server *sv, int drain)
{
    for (int i = 0; i < sv->nmodels; i++)
        if (sv->models[i].e)
            s2s_engine_stop(sv->models[i].e, drain);
    double until = mono_ms() + sv->o.drain_s * 1e3;
    for (int i = 0; i < sv->nmodels; i++) {
        model_slot *m = &sv->models[i];
        if (!m->running)
            continue;
        for (;;) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000)
                ts.tv_sec++, ts.tv_nsec -= 1000000000;
            if (pthread_timedjoin_np(m->thread, NULL, &ts) == 0)
                break;
            if (mono_ms() > until) { /* the drain took too long: what is left is cancelled */
                s2s_engine_stop(m->e, 0);
                pthread_join(m->thread, NULL);
                break;
            }
        }
        m->running = 0;
    }
}

static void free_models(server *sv)
{
    for (int i = 0; i < sv->nmodels; i++) {
        model_slot *m = &sv->models[i];
        s2s_engine_free(m->e);
        s2s_model_free(m->m), s2s_model_free(m->rev);
        if (m->tt != m->st)
            s2s_tokenizer_free(m->tt);
        s2s_tokenizer_free(m->st);
        if (m->rtt != m->rst)
            s2s_tokenizer_free(m->rtt);
        s2s_tokenizer_free(m->rst);
        s2s_context_free(m->ctx);
    }
}

/* ---- main ---------------------------------------------------------------------------------------- */

static const char *HELP =
    "usage: s2s-serve --model NAME=FILE [--model NAME=FILE ...] [options]\n"
    "  serves translation and chat over HTTP: POST /translate (OpenNMT-py), POST /v1/chat/completions\n"
    "  (OpenAI, \"stream\": true for Server-Sent Events), GET /v1/models, /health, /metrics, and a web page at /\n"
    "  --model NAME=FILE      a model file to serve under NAME (up to 8; the first is the default)\n"
    "  --mmi NAME=FILE        a reverse model (s2s-chat train --reverse) that reranks NAME's chat beam\n"
    "  --host ADDR (127.0.0.1) --port N (8080; 0: any free port, printed at start)\n"
    "  --http-threads N (4)   threads serving connections; --max-connections N (512)\n"
    "  --max-body BYTES (1048576)  413 above   --max-input-tokens N (250)  400 above\n"
    "  --queue N (256)        requests waiting per model; 429 with Retry-After beyond\n"
    "  --max-rows N (256) --token-budget N (16384)  what a model's engine decodes at once\n"
    "  --beam N (5)           /translate's default beam\n"
    "  --deadline SECONDS (60)  a request not answered by then is cancelled: 504\n"
    "  --drain SECONDS (30)   on SIGTERM or SIGINT: stop accepting, finish what is in flight this long\n"
    "  --api-key KEY          every endpoint but /health (and the page itself) needs 'Authorization:\n"
    "                         Bearer KEY' (or set S2S_API_KEY)\n"
    "  --device auto|cpu|cuda --threads N --quiet\n"
    "  --precision fp32|bf16|int8: the weights' precision on the CPU for every model (converted at load; bf16\n"
    "  needs AVX-512 BF16 or AMX, int8 AVX2; without, fp32 with a warning)\n"
    "example: s2s-serve --model en-de=runs/m30k.best.safetensors --model chat=runs/chat.best.safetensors\n";

static int sig_pipe[2];

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(sig_pipe[1], &b, 1); /* async-signal-safe; a full pipe already holds a signal */
    (void)n;
}

static int parse_named(const char *v, char *name, size_t cap, const char **path)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1] || (size_t)(eq - v) >= cap)
        return 0;
    memcpy(name, v, (size_t)(eq - v));
    name[eq - v] = '\0';
    *path = eq + 1;
    return 1;
}

int main(int argc, char **argv)
{
    if (cli_stdio_setup() == 0) { /* nothing is printed to stdout: a closed one does not matter */
    }
    static server sv;
    serve_opts *o = &sv.o;
    *o = (serve_opts){"127.0.0.1", 8080, 4, 512, 1 << 20, 250, 256, 256, 5, 16384, 60, 30, NULL, 0, 0, 0};
    common_opts c = {0, 0, 1, 0, 0};
    const char *models[MAX_MODELS + 1] = {0}, *mmis[MAX_MODELS + 1] = {0};
    int nm = 0, nmmi = 0;
    for (int i = 1; i < argc; i++) { /* --model and --mmi repeat: taken out before the table */
        int is_model = !strcmp(argv[i], "--model"), is_mmi = !strcmp(argv[i], "--mmi");
        if ((is_model || is_mmi) && i + 1 < argc) {
            if ((is_model ? nm : nmmi) == MAX_MODELS)
                return cli_fail(TOOL, "at most %d models", MAX_MODELS), 2;
            (is_model ? models : mmis)[is_model ? nm++ : nmmi++] = argv[i + 1];
            for (int j = i; j + 2 <= argc; j++)
                argv[j] = argv[j + 2];
            argc -= 2, i--;
        }
    }
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
        return fputs(HELP, stdout), 0;
    opt table[] = {{"--host", OPT_STR, &o->host, 0, 0, 0},
                   {"--port", OPT_INT, &o->port, 0, 65535, 0},
                   {"--http-threads", OPT_INT, &o->http_threads, 1, 256, 0},
                   {"--max-connections", OPT_INT, &o->max_conn, 1, 100000, 0},
                   {"--max-body", OPT_LONG, &o->max_body, 16, 1 << 30, 0},
                   {"--max-input-tokens", OPT_INT, &o->max_tokens, 1, 100000, 0},
                   {"--queue", OPT_INT, &o->queue, 0, 1000000, 0},
                   {"--max-rows", OPT_INT, &o->max_rows, 1, 65536, 0},
                   {"--token-budget", OPT_LONG, &o->budget, 2, 1e12, 0},
                   {"--beam", OPT_INT, &o->beam, 1, 64, 0},
                   {"--deadline", OPT_DOUBLE, &o->deadline_s, 0.001, 1e6, 0},
                   {"--drain", OPT_DOUBLE, &o->drain_s, 0, 1e6, 0},
                   {"--api-key", OPT_STR, &o->api_key, 0, 0, 0},
                   COMMON_OPTS(c)};
    if (!parse_opts(TOOL, argc, argv, 1, table, sizeof table / sizeof table[0]))
        return 2;
    if (!o->api_key && getenv("S2S_API_KEY") && *getenv("S2S_API_KEY"))
        o->api_key = getenv("S2S_API_KEY");
    if (o->api_key && strlen(o->api_key) > 400)
        return cli_fail(TOOL, "--api-key is longer than 400 characters"), 2;
    o->quiet = c.quiet;
    if (nm == 0)
        return cli_fail(TOOL, "give at least one --model NAME=FILE"), 2;
    for (int i = 0; i < nm; i++) {
        model_slot *m = &sv.models[i];
        if (!parse_named(models[i], m->name, sizeof m->name, &m->path))
            return cli_fail(TOOL, "--model takes NAME=FILE, not '%s'", models[i]), 2;
        for (int j = 0; j < i; j++)
            if (!strcmp(sv.models[j].name, m->name))
                return cli_fail(TOOL, "two models are named '%s'", m->name), 2;
    }
    sv.nmodels = nm;
    for (int i = 0; i < nmmi; i++) {
        char name[64];
        const char *path;
        int hit = -1;
        if (!parse_named(mmis[i], name, sizeof name, &path))
            return cli_fail(TOOL, "--mmi takes NAME=FILE, not '%s'", mmis[i]), 2;
        for (int j = 0; j < nm; j++)
            hit = !strcmp(sv.models[j].name, name) ? j : hit;
        if (hit < 0)
            return cli_fail(TOOL, "--mmi %s: no --model is named '%s'", mmis[i], name), 2;
        sv.models[hit].mmi_path = path;
    }
    /* the address: 127.0.0.1 unless told otherwise; IPv4 or IPv6 */
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    memset(&a4, 0, sizeof a4), memset(&a6, 0, sizeof a6);
    char host[128];
    snprintf(host, sizeof host, "%s", o->host);
    if (host[0] == '[' && host[strlen(host) - 1] == ']')
        memmove(host, host + 1, strlen(host)), host[strlen(host) - 1] = '\0';
    int v6 = strchr(host, ':') != NULL;
    if (v6 ? inet_pton(AF_INET6, host, &a6.sin6_addr) != 1 : inet_pton(AF_INET, host, &a4.sin_addr) != 1)
        return cli_fail(TOOL, "--host '%s' is not an IPv4 or IPv6 address", o->host), 2;
    a4.sin_family = AF_INET, a4.sin_port = htons((uint16_t)o->port);
    a6.sin6_family = AF_INET6, a6.sin6_port = htons((uint16_t)o->port);

    /* SIGTERM and SIGINT: a handler (whichever thread takes it: the BLAS library's threads exist
     * before main) writes a byte that this thread waits for; a second one changes nothing */
    if (pipe(sig_pipe) != 0)
        return fprintf(stderr, TOOL ": cannot make a pipe: %s\n", strerror(errno)), 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL), sigaction(SIGINT, &sa, NULL);
    pthread_mutex_init(&sv.mu, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     (v6 ? MHD_USE_IPv6 : 0);
    sv.d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handler, &sv, MHD_OPTION_SOCK_ADDR,
                            v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4, MHD_OPTION_THREAD_POOL_SIZE,
                            (unsigned)o->http_threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_conn,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_NOTIFY_COMPLETED, completed, &sv,
                            MHD_OPTION_END);
    if (!sv.d)
        return fprintf(stderr, TOOL ": cannot listen on %s port %d (in use, or not an address of this machine)\n",
                       o->host, o->port), 1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(sv.d, MHD_DAEMON_INFO_BIND_PORT);
    int port = info ? info->port : o->port;
    fprintf(stderr, TOOL ": listening on http://%s%s%s:%d/ (loading %d model%s)\n", v6 ? "[" : "", host, v6 ? "]" : "",
            port, nm, nm == 1 ? "" : "s");
    pthread_t watcher;
    pthread_create(&watcher, NULL, watch, &sv);
    int ok = 1;
    for (int i = 0; i < nm && ok; i++)
        ok = load_model(&sv, &sv.models[i], &c);
    int rc = 0;
    if (ok) {
        pthread_mutex_lock(&sv.mu);
        sv.state = 1;
        pthread_mutex_unlock(&sv.mu);
        fprintf(stderr, TOOL ": ready: http://%s%s%s:%d/ serves", v6 ? "[" : "", host, v6 ? "]" : "", port);
        for (int i = 0; i < nm; i++)
            fprintf(stderr, " %s%s", sv.models[i].name, sv.models[i].rev ? " (with a reverse model)" : "");
        fprintf(stderr, "%s\n", o->api_key ? "; an API key is required" : "");
        unsigned char sig = 0;
        while (read(sig_pipe[0], &sig, 1) < 0 && errno == EINTR)
            ;
        fprintf(stderr, TOOL ": %s: draining (up to %g s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT", o->drain_s);
    } else {
        rc = 1;
    }
    pthread_mutex_lock(&sv.mu);
    sv.state = 2; /* decoding requests already connected: 503; /health: 503 */
    pthread_mutex_unlock(&sv.mu);
    MHD_socket ls = MHD_quiesce_daemon(sv.d); /* no new connections; those open go on */
    if (ls != MHD_INVALID_SOCKET)
        close(ls);
    stop_models(&sv, 1); /* every request in flight is answered (or cancelled at the drain's end) */
    usleep(100 * 1000);  /* let the resumed connections send their answers */
    MHD_stop_daemon(sv.d);
    pthread_mutex_lock(&sv.mu);
    sv.watch_stop = 1;
    pthread_mutex_unlock(&sv.mu);
    pthread_join(watcher, NULL);
    free_models(&sv);
    if (rc == 0)
        fprintf(stderr, TOOL ": stopped\n");
    return rc;
}
