/* trainer.c - the training loop users can leave running: schedule, validation, checkpoints,
 * early stopping, time budget, non-finite recovery, progress, metrics CSV and SVG plot.
 *
 * Exact resume: everything that decides the next step is in the checkpoint — weights, Adam
 * moments and step, and the trainer state below (position in the epoch's batch order, which
 * is a function of the seed and the epoch; the lr scale; best scores). Dropout masks are keyed
 * by the step, so a resumed run draws the same masks.
 *
 * Data parallel (options.comm with more than one rank): every rank builds the same batch plan;
 * each step takes one global batch and rank r computes the gradients of its rows
 * [B r / N, B (r+1) / N), normalised by the global batch's target tokens and drawing the whole
 * batch's dropout masks, so that the sum over ranks is the gradient one process would compute
 * on the whole batch. Buckets of the gradient block are summed while backward goes on
 * (s2s_grad_phase); every rank then applies the same update (the clipping norm is that of the
 * summed gradient), or with shard_optimizer updates its 1/N of the parameters and the ranks
 * all-gather them (ZeRO-1). The position in the data is global, so a checkpoint resumes at any
 * world size. Rank 0 alone writes files and reports. */
#include "comm.h"
#include "data.h"
#include "sha256.h"
#include "model.h"
#include "plot.h"
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAGIC 0x53325354u /* "S2ST" */
#define STATE_VERSION 2 /* 2: budget_done; a version-1 state (without it) still resumes */

/* What a checkpoint carries besides weights and moments. Fixed-size fields only. */
typedef struct train_state {
    uint32_t magic, version;
    int64_t step, batch_in_epoch, skipped_steps;
    int32_t epoch, bad_valids, plateau_bad, nonfinite_run;
    float lr_scale, best_score;
    int32_t have_best;
    float budget_done; /* LINEAR: the share of the budget spent at the last step, in [0, 1] */
} train_state;

struct s2s_trainer {
    s2s_model *m;
    const s2s_tokenizer *src_tok, *tgt_tok;
    const s2s_corpus *train, *valid;
    s2s_trainer_options o;
    char *prefix;
    s2s_optimizer *opt;
    s2s_tokdata td, vd;
    s2s_batch_plan plan;
    int plan_epoch;
    s2s_host_batch hb;
    train_state st;
    char data_sha[65];
    double t0, t_report;       /* wall clock of this run's start and of the last report */
    double loss_sum;           /* loss x tokens since the last report */
    long tok_sum, tok_report;  /* tokens since the last report */
    s2s_train_progress last;
    /* data parallel (world > 1) */
    s2s_comm *comm;
    int rank, world;
    int time_up;             /* the ranks agreed at the last step that the time budget is spent */
    double time_done;        /* the share of this run's time budget spent at the last step (the
                                ranks' mean); 0 without a time budget */
    float done0;             /* st.budget_done when this run started: its time covers the rest */
    int weights_checked;     /* every rank's weights compared once per run */
    double wait_report;      /* comm->wait_s at the last report */
    size_t zchunk;           /* ZeRO-1: parameters per rank (the block padded to world * zchunk) */
    float *zbuf;             /* [world * zchunk]: padded gradients, then the gathered weights */
    float *zgrad;            /* [zchunk]: this rank's shard of the summed gradient */
    int snaps;               /* LINEAR with cycles > 1: the cycles whose snapshot is written (or
                                that ended before this run resumed) */
};

static int is_root(const s2s_trainer *t) { return t->rank == 0; }

S2S_API s2s_trainer_options s2s_trainer_options_default(void)
{
    s2s_trainer_options o;
    memset(&o, 0, sizeof o);
    o.batch_tokens = 4000;
    o.max_len = 100;
    o.lr = 1e-3f;
    o.warmup_steps = 400;
    o.schedule = S2S_LR_INVERSE_SQRT;
    o.plateau_factor = 0.5f;
    o.plateau_patience = 2;
    o.label_smoothing = 0.1f;
    o.clip_norm = 5.0f;
    o.valid_every = 500;
    o.valid_bleu = 1;
    o.valid_max = 1000;
    o.keep_last = 3;
    o.nonfinite_halve = 3;
    o.nonfinite_stop = 10;
    o.report_every = 100;
    o.cycles = 1;
    return o;
}

static s2s_status check_options(const s2s_trainer_options *o)
{
    if (o->batch_tokens < 1 || o->max_len < 1 || !(o->lr > 0) || o->warmup_steps < 0 || o->valid_every < 0 ||
        o->keep_last < 1 || o->patience < 0 || o->minutes < 0 || o->max_steps < 0 || o->max_epochs < 0 ||
        o->report_every < 1 || o->nonfinite_halve < 1 || o->nonfinite_stop < 1 || (unsigned)o->schedule > S2S_LR_LINEAR ||
        !(o->label_smoothing >= 0 && o->label_smoothing < 1) || !(o->plateau_factor > 0 && o->plateau_factor <= 1) ||
        !(o->word_dropout >= 0 && o->word_dropout < 1))
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "trainer options out of range: batch_tokens %d, max_len %d, keep_last %d, report_every %d "
                        "must be >= 1; lr %g > 0; label_smoothing %g and word_dropout %g in [0, 1); plateau_factor %g "
                        "in (0, 1]; schedule %d one of s2s_lr_schedule; the rest >= 0",
                        o->batch_tokens, o->max_len, o->keep_last, o->report_every, o->lr, o->label_smoothing,
                        o->word_dropout, o->plateau_factor, (int)o->schedule);
    if (o->batch_tokens < o->max_len + 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "batch_tokens %d cannot hold one pair of max_len %d (+ EOS); raise it",
                        o->batch_tokens, o->max_len);
    if (o->cycles < 0 || o->cycles > 1000 || (o->cycles > 1 && o->schedule != S2S_LR_LINEAR))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "cycles %d: must be in 0 .. 1000, and above 1 only with the LINEAR "
                        "schedule (the restarts are of its fall)", o->cycles);
    if (o->average_last < 0 || o->average_last > o->keep_last)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "average_last %d must be in 0 .. keep_last (%d): keep at least as many "
                        "checkpoints as are averaged", o->average_last, o->keep_last);
    return S2S_OK;
}

/* ---- files ------------------------------------------------------------------------------- */

static char *path_with(const s2s_trainer *t, const char *suffix)
{
    size_t n = strlen(t->prefix) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s", t->prefix, suffix);
    return p;
}

static s2s_status append_csv(s2s_trainer *t, const s2s_train_progress *p)
{
    char *path = path_with(t, ".metrics.csv");
    if (!path)
        return S2S_ERR_OUT_OF_MEMORY;
    int fresh = access(path, F_OK) != 0;
    FILE *f = fopen(path, "a");
    if (!f) {
        s2s_status st = S2S_FAIL(S2S_ERR_IO, "cannot append to %s: %s", path, strerror(errno));
        free(path);
        return st;
    }
    if (fresh)
        fputs("step,epoch,kind,loss,ppl,bleu,lr,tokens_per_s,elapsed_s\n", f);
    if (p->is_validation)
        fprintf(f, "%ld,%d,valid,%.5f,%.4f,%.3f,%.6g,,%.1f\n", p->step, p->epoch, p->valid_loss, p->valid_ppl,
                p->valid_bleu, p->lr, p->elapsed_s);
    else
        fprintf(f, "%ld,%d,train,%.5f,,,%.6g,%.1f,%.1f\n", p->step, p->epoch, p->loss, p->lr, p->tokens_per_s,
                p->elapsed_s);
    int bad = fclose(f) != 0;
    s2s_status st = bad ? S2S_FAIL(S2S_ERR_IO, "cannot write %s: %s", path, strerror(errno)) : S2S_OK;
    free(path);
    return st;
}

/* ---- schedule ------------------------------------------------------------------------------ */

/* The share of this run's time budget spent so far, in [0, 1]; 0 without one. */
static double time_share(const s2s_trainer *t)
{
    const s2s_trainer_options *o = &t->o;
    return o->minutes > 0 ? fmin(1.0, (s2s_now_ms() * 1e-3 - t->t0) / (o->minutes * 60)) : 0.0;
}

/* LINEAR's progress: the largest share spent of any limit that is set (steps, epochs, time;
 * with none, the one epoch that is run), at the end of step `step`. A resumed run's time
 * budget covers what was left of the share when it started. Never decreases. */
static float budget_done(const s2s_trainer *t, long step)
{
    const s2s_trainer_options *o = &t->o;
    double d = t->st.budget_done;
    if (o->max_steps)
        d = fmax(d, (double)step / (double)o->max_steps);
    int epochs = o->max_epochs ? o->max_epochs : !o->max_steps && o->minutes <= 0 ? 1 : 0;
    if (epochs && t->plan.nbatches)
        d = fmax(d, ((double)t->st.epoch - 1 + (double)(t->st.batch_in_epoch + 1) / (double)t->plan.nbatches) / epochs);
    if (o->minutes > 0)
        d = fmax(d, t->done0 + (1.0 - t->done0) * t->time_done);
    return (float)fmin(d, 1.0);
}

static int ncycles(const s2s_trainer *t) { return t->o.cycles > 1 ? t->o.cycles : 1; }

/* LINEAR with cycles: the cycles ended at a share d of the budget (the 1e-6 absorbs float
 * rounding at a boundary such as 1/3), at most all but the last until the budget is spent. */
static int cycles_ended(const s2s_trainer *t, double d)
{
    int n = ncycles(t), k = (int)floor(d * n + 1e-6);
    return d >= 1.0 ? n : k < n - 1 ? k : n - 1;
}

/* LINEAR's fall within the current cycle, in [0, 1]: the share spent of the whole budget with one
 * cycle. The step that ends a cycle (its snapshot not yet written) is that cycle's last: 1. */
static double cycle_done(const s2s_trainer *t)
{
    int n = ncycles(t);
    double d = (double)t->st.budget_done;
    if (n == 1)
        return d;
    int k = cycles_ended(t, d);
    return k > t->snaps ? 1.0 : fmin(1.0, fmax(0.0, d * n - k));
}

static float learning_rate(const s2s_trainer *t, long step)
{
    const s2s_trainer_options *o = &t->o;
    double s = (double)(step > 0 ? step : 1), w = (double)o->warmup_steps, f = 1.0;
    if (w > 0 && s < w)
        f = s / w;
    else if (o->schedule == S2S_LR_INVERSE_SQRT && w > 0)
        f = sqrt(w / s);
    if (o->schedule == S2S_LR_LINEAR) /* down to a thousandth of the peak at the end of the budget (or cycle) */
        f = fmin(f, fmax(1e-3, 1.0 - cycle_done(t)));
    return (float)(o->lr * f * t->st.lr_scale);
}

/* ---- data parallel ------------------------------------------------------------------------ */

static void sha_text(s2s_sha256 *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sha_text(s2s_sha256 *s, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s2s_sha256_update(s, buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void sha_tokenizer(s2s_sha256 *s, const s2s_tokenizer *tok)
{
    const void *p = NULL;
    size_t len = 0;
    if (s2s_tokenizer_serialize(tok, &p, &len) == S2S_OK)
        s2s_sha256_update(s, p, len);
}

/* Every rank must train the same model on the same data with the same options: each hashes
 * its own, the hashes are gathered, and a rank that differs from rank 0 is named. */
static s2s_status check_ranks(s2s_trainer *t)
{
    enum { PARTS = 3 };
    uint8_t mine[PARTS][32], *all = s2s_host_alloc((size_t)t->world * sizeof mine, "rank hashes");
    if (!all)
        return S2S_ERR_OUT_OF_MEMORY;
    const s2s_model_config *c = &t->m->cfg;
    const s2s_trainer_options *o = &t->o;
    s2s_sha256 s;
    s2s_sha256_init(&s);
    sha_text(&s, "%d %d %d %d %d %d %a %d %d %d %zu", (int)c->cell, c->layers, c->hidden, c->embed, c->bidirectional,
             (int)c->attention, c->dropout, c->src_vocab, c->tgt_vocab, (int)c->tie_embeddings, t->m->params.total);
    sha_tokenizer(&s, t->src_tok);
    sha_tokenizer(&s, t->tgt_tok);
    s2s_sha256_final(&s, mine[0]);
    s2s_sha256_init(&s);
    s2s_sha256_update(&s, t->data_sha, 64);
    sha_text(&s, " %zu %zu", t->td.n, t->valid ? t->vd.n : (size_t)0);
    char vsha[65] = "";
    if (t->valid && s2s_corpus_sha256(t->valid, vsha) != S2S_OK) {
        free(all);
        return S2S_ERR_IO;
    }
    s2s_sha256_update(&s, vsha, strlen(vsha));
    s2s_sha256_final(&s, mine[1]);
    s2s_sha256_init(&s);
    sha_text(&s, "%d %d %a %d %d %a %a %a %d %d %d %d %d %a %ld %d %d %d %d %d %d %a %" PRIu64, o->batch_tokens,
             o->max_len, o->lr, o->warmup_steps, (int)o->schedule, o->plateau_factor, o->label_smoothing, o->clip_norm,
             o->valid_every, o->valid_bleu, o->valid_max, o->keep_last, o->patience, o->minutes, o->max_steps,
             o->max_epochs, o->plateau_patience, o->average_last, o->shard_optimizer, o->report_every, o->cycles,
             o->word_dropout, t->m->ctx->opts.seed);
    s2s_sha256_final(&s, mine[2]);
    s2s_status st = t->comm->ops->gather_host(t->comm, mine, all, sizeof mine);
    static const char *const what[PARTS] = {"model (configuration or tokenizers)", "training or validation data",
                                            "trainer options or seed"};
    for (int r = 1; r < t->world && st == S2S_OK; r++)
        for (int k = 0; k < PARTS && st == S2S_OK; k++)
            if (memcmp(all + (size_t)r * sizeof mine + (size_t)k * 32, all + (size_t)k * 32, 32))
                st = S2S_FAIL(S2S_ERR_COMM,
                              "rank %d's %s differs from rank 0's: every rank must train the same model on the same "
                              "data with the same options",
                              r, what[k]);
    free(all);
    return st;
}

/* The ranks start from the same weights (a different --init or checkpoint on one rank would
 * otherwise go unnoticed): a hash of each rank's weights, compared with rank 0's. */
static s2s_status check_weights(s2s_trainer *t)
{
    s2s_model *m = t->m;
    size_t n = m->params.total;
    float *w = s2s_host_alloc(n * sizeof(float), "a host copy of the weights");
    uint64_t h = 1469598103934665603ull, *all = s2s_host_calloc((size_t)t->world, sizeof *all, "weight hashes");
    s2s_status st = w && all ? m->be->ops->to_host(m->be, w, m->params.data, n * sizeof(float)) : S2S_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; st == S2S_OK && i < n; i++) {
        uint32_t b;
        memcpy(&b, &w[i], 4);
        h = (h ^ b) * 1099511628211ull;
    }
    if (st == S2S_OK)
        st = t->comm->ops->gather_host(t->comm, &h, all, sizeof h);
    for (int r = 1; r < t->world && st == S2S_OK; r++)
        if (all[r] != all[0])
            st = S2S_FAIL(S2S_ERR_COMM, "rank %d starts from other weights than rank 0 (another initial model or "
                                        "checkpoint?): every rank must start from the same",
                          r);
    free(w);
    free(all);
    return st;
}

/* m->grad_ready: a bucket of the gradient block is complete; start its sum over the ranks. */
static s2s_status bucket_ready(void *user, float *grad, size_t n)
{
    s2s_trainer *t = user;
    return n ? t->comm->ops->start_allreduce(t->comm, grad, n) : S2S_OK;
}

/* ZeRO-1: the moments hold this rank's shard only; the gradients are padded into zbuf. */
static s2s_status zero_setup(s2s_trainer *t)
{
    s2s_backend *be = t->m->be;
    size_t total = t->m->params.total, P = (size_t)t->world;
    t->zchunk = (total + P - 1) / P;
    if (!t->opt->m || !t->opt->v)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "shard_optimizer needs Adam's moments");
    be->ops->release(be, t->opt->m);
    be->ops->release(be, t->opt->v);
    t->opt->m = t->opt->v = NULL;
    float **buf[4] = {&t->opt->m, &t->opt->v, &t->zgrad, &t->zbuf};
    size_t len[4] = {t->zchunk, t->zchunk, t->zchunk, P * t->zchunk};
    for (int i = 0; i < 4; i++) {
        void *p = NULL;
        S2S_TRY(be->ops->alloc(be, len[i] * sizeof(float), &p));
        *buf[i] = p;
        S2S_TRY(be->ops->fill(be, p, len[i], 0.0f));
    }
    return S2S_OK;
}

/* Floats of the shard rank r updates (the last ranks' may be short or empty). */
static size_t zero_count(const s2s_trainer *t, int r)
{
    size_t off = (size_t)r * t->zchunk, total = t->m->params.total;
    return off >= total ? 0 : total - off < t->zchunk ? total - off : t->zchunk;
}

/* Runs fn with the optimizer's moments whole (every rank's shard all-gathered into full-size
 * buffers, which fn may read or fill); with `scatter`, each rank then keeps its shard of what
 * fn left there. Called by every rank. */
static s2s_status with_whole_moments(s2s_trainer *t, s2s_status (*fn)(s2s_trainer *, void *), void *arg, int scatter)
{
    s2s_optimizer *opt = t->opt;
    s2s_backend *be = t->m->be;
    size_t padded = (size_t)t->world * t->zchunk;
    float *mine[2] = {opt->m, opt->v}, *whole[2] = {NULL, NULL};
    s2s_status st = S2S_OK;
    for (int i = 0; i < 2 && st == S2S_OK; i++) {
        void *p = NULL;
        st = be->ops->alloc(be, padded * sizeof(float), &p);
        whole[i] = p;
        if (st == S2S_OK)
            st = t->comm->ops->allgather(t->comm, mine[i], whole[i], t->zchunk);
    }
    if (st == S2S_OK) {
        opt->m = whole[0], opt->v = whole[1];
        st = fn(t, arg);
        opt->m = mine[0], opt->v = mine[1];
    }
    for (int i = 0; i < 2 && st == S2S_OK && scatter; i++)
        st = be->ops->copy(be, mine[i], whole[i] + (size_t)t->rank * t->zchunk, t->zchunk * sizeof(float));
    be->ops->release(be, whole[0]);
    be->ops->release(be, whole[1]);
    return st;
}

/* ---- creation ------------------------------------------------------------------------------ */

static s2s_status trainer_init(s2s_trainer *t)
{
    const s2s_trainer_options *o = &t->o;
    s2s_optimizer_options oo = s2s_optimizer_options_default();
    oo.lr = o->lr;
    oo.clip_norm = o->clip_norm;
    S2S_TRY(s2s_optimizer_create(t->m, &oo, &t->opt));
    S2S_TRY(s2s_tokdata_build(t->train, t->src_tok, t->tgt_tok, o->max_len, 0, &t->td));
    if (t->td.n == 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "no training pair is short enough (max_len %d) or non-empty", o->max_len);
    if (t->valid)
        S2S_TRY(s2s_tokdata_build(t->valid, t->src_tok, t->tgt_tok, o->max_len, (size_t)o->valid_max, &t->vd));
    S2S_TRY(s2s_corpus_sha256(t->train, t->data_sha));
    if (t->td.skipped_long || t->td.skipped_empty)
        s2s_log(t->m->ctx, S2S_LOG_WARN,
                "training data: %zu pairs used; %ld skipped as longer than %d tokens, %ld with an empty source",
                t->td.n, t->td.skipped_long, o->max_len, t->td.skipped_empty);
    t->st = (train_state){STATE_MAGIC, STATE_VERSION, 0, 0, 0, 1, 0, 0, 0, 1.0f, 0.0f, 0, 0.0f};
    t->plan_epoch = -1;
    t->world = 1;
    /* an MPI or NCCL communicator of one rank takes the data-parallel path too (its sums are
     * then the rank's own: the same model as without one; tests/mpi checks it) */
    if (o->comm && (s2s_comm_size(o->comm) > 1 || strcmp(s2s_comm_name(o->comm), "local") != 0)) {
        t->comm = o->comm;
        t->rank = t->comm->rank;
        t->world = t->comm->size;
        S2S_TRY(check_ranks(t));
        if (o->shard_optimizer)
            S2S_TRY(zero_setup(t));
    }
    return S2S_OK;
}

/* About what one checkpoint takes on disk: the weights and two moments as float32, the
 * tokenizers, and 64 KiB for the header and the trainer's state. */
static uint64_t checkpoint_bytes(const s2s_model *m, const s2s_tokenizer *st, const s2s_tokenizer *tt)
{
    uint64_t bytes = 3 * 4 * (uint64_t)s2s_model_param_numel(m) + (64u << 10);
    const void *p = NULL, *q = NULL;
    size_t len = 0, len2 = 0;
    if (s2s_tokenizer_serialize(st, &p, &len) == S2S_OK)
        bytes += len;
    if (s2s_tokenizer_serialize(tt, &q, &len2) == S2S_OK && !(p && len2 == len && !memcmp(p, q, len)))
        bytes += len2; /* two equal tokenizers are stored once */
    return bytes;
}

S2S_API s2s_status s2s_trainer_create(s2s_model *model, const s2s_tokenizer *src_tok, const s2s_tokenizer *tgt_tok,
                                      const s2s_corpus *train, const s2s_corpus *valid,
                                      const s2s_trainer_options *opts, s2s_trainer **out)
{
    if (!model || !src_tok || !tgt_tok || !train || !out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_trainer_create: model, tokenizers, train corpus and out are needed");
    *out = NULL;
    s2s_trainer_options o = opts ? *opts : s2s_trainer_options_default();
    S2S_TRY(check_options(&o));
    if (s2s_tokenizer_vocab_size(src_tok) > model->cfg.src_vocab ||
        s2s_tokenizer_vocab_size(tgt_tok) > model->cfg.tgt_vocab)
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "tokenizer vocabularies (%d, %d) are larger than the model's (%d, %d); build the model "
                        "with the tokenizers' sizes",
                        s2s_tokenizer_vocab_size(src_tok), s2s_tokenizer_vocab_size(tgt_tok), model->cfg.src_vocab,
                        model->cfg.tgt_vocab);
    if (o.out_prefix)
        S2S_TRY(s2s_output_check(o.out_prefix, checkpoint_bytes(model, src_tok, tgt_tok)));
    s2s_trainer *t = s2s_host_calloc(1, sizeof *t, "the trainer");
    if (!t)
        return S2S_ERR_OUT_OF_MEMORY;
    t->m = model, t->src_tok = src_tok, t->tgt_tok = tgt_tok, t->train = train, t->valid = valid, t->o = o;
    if (o.out_prefix && !(t->prefix = strdup(o.out_prefix))) {
        free(t);
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "out_prefix copy");
    }
    s2s_status st = trainer_init(t);
    if (st != S2S_OK) {
        s2s_trainer_free(t);
        return st;
    }
    *out = t;
    return S2S_OK;
}

S2S_API void s2s_trainer_free(s2s_trainer *t)
{
    if (!t)
        return;
    if (t->zbuf) {
        t->m->be->ops->release(t->m->be, t->zbuf);
        t->m->be->ops->release(t->m->be, t->zgrad);
    }
    s2s_optimizer_free(t->opt);
    s2s_tokdata_free(&t->td);
    s2s_tokdata_free(&t->vd);
    s2s_batch_plan_free(&t->plan);
    s2s_host_batch_free(&t->hb);
    free(t->prefix);
    free(t);
}

S2S_API void s2s_trainer_data_counts(const s2s_trainer *t, long *pairs, long *skipped_long, long *batches)
{
    if (pairs)
        *pairs = (long)t->td.n;
    if (skipped_long)
        *skipped_long = t->td.skipped_long + t->td.skipped_empty;
    if (batches)
        *batches = (long)t->plan.nbatches;
}

/* ---- validation --------------------------------------------------------------------------- */

/* Data parallel: rank r validates batches r, r + N, ... and the sums are added. */
static int my_batch(const s2s_trainer *t, size_t i) { return (int)(i % (size_t)t->world) == t->rank; }

static s2s_status valid_loss(s2s_trainer *t, const s2s_batch_plan *p, float *loss)
{
    double v[2] = {0, 0}; /* loss x tokens, tokens */
    for (size_t i = 0; i < p->nbatches; i++) {
        float l;
        int n;
        if (!my_batch(t, i))
            continue;
        S2S_TRY(s2s_host_batch_fill(&t->vd, p, i, &t->hb));
        S2S_TRY(s2s_model_evaluate(t->m, &t->hb.b, &l, &n));
        v[0] += (double)l * n;
        v[1] += n;
    }
    if (t->comm)
        S2S_TRY(t->comm->ops->sum_host(t->comm, v, 2));
    *loss = (float)(v[0] / (v[1] > 0 ? v[1] : 1));
    return S2S_OK;
}

/* Greedy-translates the validation sources and scores them against the raw targets. */
static s2s_status valid_bleu(s2s_trainer *t, const s2s_batch_plan *p, float *bleu)
{
    size_t n = t->vd.n, cap = 1 << 16;
    char **hyp = s2s_host_calloc(n + 1, sizeof(char *), "hypotheses");
    const char **ref = s2s_host_calloc(n + 1, sizeof(char *), "references");
    int32_t *out = NULL, *out_len = NULL;
    char *text = s2s_host_alloc(cap, "detokenized text");
    s2s_status st = hyp && ref && text ? S2S_OK : S2S_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < p->nbatches && st == S2S_OK; i++) {
        if (!my_batch(t, i))
            continue;
        st = s2s_host_batch_fill(&t->vd, p, i, &t->hb);
        int B = t->hb.b.batch, L = 2 * t->hb.b.src_max_len + 10;
        int32_t *o2 = st == S2S_OK ? realloc(out, sizeof(int32_t) * (size_t)B * L) : NULL;
        int32_t *l2 = o2 ? realloc(out_len, sizeof(int32_t) * (size_t)B) : NULL;
        if (o2)
            out = o2;
        if (l2)
            out_len = l2;
        if (st == S2S_OK && (!o2 || !l2))
            st = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "validation outputs");
        if (st == S2S_OK)
            st = s2s_model_greedy_decode(t->m, &t->hb.b, L, out, out_len);
        for (int b = 0; b < B && st == S2S_OK; b++) {
            size_t k = p->order[p->start[i] + (size_t)b], len = 0;
            const char *src;
            st = s2s_tokenizer_decode(t->tgt_tok, out + (size_t)b * L, out_len[b], text, cap, &len);
            if (st == S2S_OK && len >= cap)
                st = S2S_FAIL(S2S_ERR_INTERNAL, "a decoded sentence of %zu bytes does not fit %zu", len, cap);
            if (st == S2S_OK)
                st = s2s_corpus_get(t->valid, t->vd.corpus_index[k], &src, &ref[k]);
            if (st == S2S_OK && !(hyp[k] = strdup(text)))
                st = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "hypothesis copy");
        }
    }
    s2s_bleu b = {0};
    if (st == S2S_OK && !t->comm) {
        st = s2s_bleu_corpus((const char *const *)hyp, ref, n, &b);
    } else if (st == S2S_OK) { /* this rank's sentences, then the sums of every rank's */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) /* swapped, so that each string is freed once */
            if (hyp[i]) {
                char *h = hyp[k];
                hyp[k] = hyp[i], hyp[i] = h, ref[k++] = ref[i];
            }
        double sums[S2S_BLEU_STATS];
        st = s2s_bleu_stats((const char *const *)hyp, ref, k, sums);
        if (st == S2S_OK)
            st = t->comm->ops->sum_host(t->comm, sums, S2S_BLEU_STATS);
        if (st == S2S_OK)
            s2s_bleu_from_stats(sums, &b);
    }
    *bleu = (float)b.score;
    for (size_t i = 0; hyp && i < n; i++)
        free(hyp[i]);
    free(hyp), free(ref), free(out), free(out_len), free(text);
    return st;
}

S2S_API s2s_status s2s_trainer_validate(s2s_trainer *t, float *loss, float *ppl, float *bleu)
{
    if (!t || !t->valid || t->vd.n == 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "validation needs a validation corpus with usable pairs");
    s2s_batch_plan p;
    S2S_TRY(s2s_batch_plan_make(&t->vd, t->o.batch_tokens, 0, 0, 0, &p));
    float l = 0;
    s2s_status st = valid_loss(t, &p, &l);
    if (st == S2S_OK && bleu)
        st = valid_bleu(t, &p, bleu);
    s2s_batch_plan_free(&p);
    if (loss)
        *loss = l;
    if (ppl)
        *ppl = expf(l);
    return st;
}

/* ---- checkpoints ------------------------------------------------------------------------- */

static s2s_provenance provenance(const s2s_trainer *t)
{
    s2s_provenance p;
    memset(&p, 0, sizeof p);
    p.seed = t->m->ctx->opts.seed;
    p.step = (uint64_t)t->st.step;
    memcpy(p.data_sha256, t->data_sha, sizeof p.data_sha256);
    return p;
}

static s2s_status write_checkpoint(s2s_trainer *t, void *path)
{
    s2s_provenance p = provenance(t);
    return s2s_checkpoint_save(path, t->m, t->opt, t->src_tok, t->tgt_tok, &p, &t->st, sizeof t->st);
}

/* Only rank 0 writes; with sharded moments every rank must call it (they are gathered first). */
static s2s_status checkpoint_as_root(s2s_trainer *t, void *path)
{
    return is_root(t) ? write_checkpoint(t, path) : S2S_OK;
}

S2S_API s2s_status s2s_trainer_checkpoint(s2s_trainer *t, const char *path)
{
    if (!t || !path)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_trainer_checkpoint: trainer and path are needed");
    if (t->zbuf)
        return with_whole_moments(t, checkpoint_as_root, (void *)path, 0);
    return checkpoint_as_root(t, (void *)path);
}

/* A checkpoint write cut short (the process killed) leaves PREFIX.ckpt-N.safetensors.tmp.XXXXXX. */
static int stale_temp(const char *name, const char *base)
{
    size_t n = strlen(base);
    return !strncmp(name, base, n) && !strncmp(name + n, ".ckpt-", 6) && strstr(name + n, ".safetensors.tmp.");
}

static long ckpt_step(const char *name, const char *base)
{
    size_t n = strlen(base);
    long step;
    char tail[32];
    if (strncmp(name, base, n) || sscanf(name + n, ".ckpt-%ld.safetensor%31s", &step, tail) != 2 || strcmp(tail, "s"))
        return -1;
    return step;
}

/* The steps of this prefix's checkpoints on disk (at most 256), removing stale temporary files. */
static int list_checkpoints(s2s_trainer *t, long *steps)
{
    char *dir = strdup(t->prefix), *slash = dir ? strrchr(dir, '/') : NULL;
    const char *base = slash ? slash + 1 : t->prefix;
    if (!dir)
        return 0;
    if (slash)
        *slash = '\0';
    DIR *d = opendir(slash ? (*dir ? dir : "/") : ".");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) && n < 256;) {
        long s = ckpt_step(e->d_name, base);
        if (s >= 0)
            steps[n++] = s;
        else if (stale_temp(e->d_name, base)) { /* no process writes checkpoints of this prefix but us */
            char *p = malloc(strlen(dir) + strlen(e->d_name) + 2);
            if (p)
                sprintf(p, "%s/%s", slash ? (*dir ? dir : "") : ".", e->d_name), unlink(p);
            free(p);
        }
    }
    if (d)
        closedir(d);
    free(dir);
    return n;
}

/* Deletes all but the keep_last newest PREFIX.ckpt-STEP.safetensors. */
static void prune_checkpoints(s2s_trainer *t)
{
    long steps[256];
    int n = list_checkpoints(t, steps);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++)
            newer += steps[j] > steps[i];
        if (newer >= t->o.keep_last) {
            char suffix[64];
            snprintf(suffix, sizeof suffix, ".ckpt-%ld.safetensors", steps[i]);
            char *p = path_with(t, suffix);
            if (p && unlink(p) != 0)
                s2s_log(t->m->ctx, S2S_LOG_WARN, "could not remove old checkpoint %s: %s", p, strerror(errno));
            free(p);
        }
    }
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* PREFIX.avg.safetensors: the mean of the newest average_last checkpoints, oldest first. */
static s2s_status average_checkpoints(s2s_trainer *t)
{
    long steps[256];
    int n = list_checkpoints(t, steps), k = n < t->o.average_last ? n : t->o.average_last;
    if (k < 1)
        return S2S_OK;
    qsort(steps, (size_t)n, sizeof *steps, cmp_long);
    char *paths[256], *out = path_with(t, ".avg.safetensors");
    int made = 0;
    s2s_status st = out ? S2S_OK : S2S_ERR_OUT_OF_MEMORY;
    for (; made < k && st == S2S_OK; made++) {
        char suffix[64];
        snprintf(suffix, sizeof suffix, ".ckpt-%ld.safetensors", steps[n - k + made]);
        if (!(paths[made] = path_with(t, suffix)))
            st = S2S_ERR_OUT_OF_MEMORY;
    }
    if (st == S2S_OK)
        st = s2s_model_average(t->m->ctx, (const char *const *)paths, k, out);
    if (st == S2S_OK)
        s2s_log(t->m->ctx, S2S_LOG_INFO, "%s: the mean of the last %d checkpoints (steps %ld to %ld)%s", out, k,
                steps[n - k], steps[n - 1], k < t->o.average_last ? "; fewer were on disk than asked for" : "");
    for (int i = 0; i < made; i++)
        free(paths[i]);
    free(out);
    return st;
}

static s2s_status save_files(s2s_trainer *t, int improved)
{
    if (!t->prefix)
        return S2S_OK;
    char suffix[64];
    snprintf(suffix, sizeof suffix, ".ckpt-%ld.safetensors", (long)t->st.step);
    char *ck = path_with(t, suffix), *best = path_with(t, ".best.safetensors");
    s2s_status st = ck && best ? s2s_trainer_checkpoint(t, ck) : S2S_ERR_OUT_OF_MEMORY;
    if (!is_root(t)) { /* the checkpoint above was a collective with sharded moments */
        free(ck);
        free(best);
        return st;
    }
    if (st == S2S_OK && improved) {
        s2s_provenance p = provenance(t);
        st = s2s_model_save(t->m, t->src_tok, t->tgt_tok, &p, best);
    }
    if (st == S2S_OK)
        prune_checkpoints(t);
    free(ck);
    free(best);
    return st;
}

/* PREFIX.snap-K.safetensors: the model at the end of cycle K (cycles > 1), a member of the
 * snapshot ensemble the run leaves. */
static s2s_status save_snapshot(s2s_trainer *t, int k)
{
    if (!t->prefix || !is_root(t))
        return S2S_OK;
    char suffix[64];
    snprintf(suffix, sizeof suffix, ".snap-%d.safetensors", k);
    char *path = path_with(t, suffix);
    if (!path)
        return S2S_ERR_OUT_OF_MEMORY;
    s2s_provenance p = provenance(t);
    s2s_status st = s2s_model_save(t->m, t->src_tok, t->tgt_tok, &p, path);
    if (st == S2S_OK)
        s2s_log(t->m->ctx, S2S_LOG_INFO, "%s: the model at the end of cycle %d of %d (step %ld)", path, k,
                ncycles(t), (long)t->st.step);
    free(path);
    return st;
}

typedef struct resume_args {
    const char *path;
    void *blob;
    size_t len;
} resume_args;

static s2s_status load_checkpoint(s2s_trainer *t, void *arg)
{
    resume_args *a = arg;
    return s2s_checkpoint_load(a->path, t->m, t->opt, &a->blob, &a->len);
}

S2S_API s2s_status s2s_trainer_resume(s2s_trainer *t, const char *path)
{
    if (!t || !path)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_trainer_resume: trainer and path are needed");
    resume_args a = {path, NULL, 0};
    S2S_TRY(t->zbuf ? with_whole_moments(t, load_checkpoint, &a, 1) : load_checkpoint(t, &a));
    void *blob = a.blob;
    size_t len = a.len;
    train_state s;
    if (len != sizeof s || ((train_state *)blob)->magic != STATE_MAGIC ||
        (((train_state *)blob)->version != STATE_VERSION && ((train_state *)blob)->version != 1)) {
        free(blob);
        return S2S_FAIL(S2S_ERR_FORMAT, "%s holds no trainer state of this version (%zu bytes); resume from a "
                                        "checkpoint written by s2s_trainer_checkpoint",
                        path, len);
    }
    memcpy(&s, blob, sizeof s);
    free(blob);
    if (s.version == 1) /* written before budget_done: its bytes were padding */
        s.budget_done = 0.0f;
    s.version = STATE_VERSION;
    t->st = s;
    t->weights_checked = 0;
    t->plan_epoch = -1; /* rebuilt for st.epoch on the next step */
    return S2S_OK;
}

/* ---- progress ------------------------------------------------------------------------------ */

static void fmt_duration(double s, char *buf, size_t cap)
{
    long x = (long)(s + 0.5);
    if (s < 0)
        snprintf(buf, cap, "?");
    else if (x >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", x / 3600, x / 60 % 60);
    else
        snprintf(buf, cap, "%ldm%02lds", x / 60, x % 60);
}

S2S_API void s2s_train_progress_format(const s2s_train_progress *p, char *buf, size_t cap)
{
    char el[32], eta[32];
    fmt_duration(p->elapsed_s, el, sizeof el);
    fmt_duration(p->eta_s, eta, sizeof eta);
    if (p->is_validation) {
        char b[32] = "";
        if (p->valid_bleu >= 0)
            snprintf(b, sizeof b, " BLEU %.2f", p->valid_bleu);
        snprintf(buf, cap, "validation at step %ld: loss %.4f ppl %.2f%s%s", p->step, p->valid_loss, p->valid_ppl, b,
                 p->improved ? " (best so far)" : "");
        return;
    }
    char tot[32] = "";
    if (p->steps_total > 0)
        snprintf(tot, sizeof tot, "/%ld", p->steps_total);
    char ranks[64] = "";
    if (p->world_size > 1)
        snprintf(ranks, sizeof ranks, " on %d ranks (%.0f%% waiting)", p->world_size, 100 * p->comm_wait);
    snprintf(buf, cap, "epoch %d step %ld%s loss %.4f %.0f tok/s%s lr %.2e elapsed %s ETA %s%s", p->epoch, p->step, tot,
             p->loss, p->tokens_per_s, ranks, p->lr, el, eta, p->skipped_steps ? " (non-finite steps skipped)" : "");
}

S2S_API s2s_train_progress s2s_trainer_get_progress(const s2s_trainer *t) { return t->last; }

static double eta(const s2s_trainer *t, double elapsed, double sec_per_step)
{
    const s2s_trainer_options *o = &t->o;
    double e = -1;
    if (o->max_steps)
        e = (o->max_steps - t->st.step) * sec_per_step;
    if (o->max_epochs && t->plan.nbatches) {
        double left = ((double)o->max_epochs - t->st.epoch) * t->plan.nbatches + (t->plan.nbatches - t->st.batch_in_epoch);
        e = e < 0 || left * sec_per_step < e ? left * sec_per_step : e;
    }
    if (o->minutes > 0) {
        double left = o->minutes * 60 - elapsed;
        e = e < 0 || left < e ? left : e;
    }
    return e;
}

static void report(s2s_trainer *t, s2s_train_progress *p)
{
    double now = s2s_now_ms() * 1e-3, elapsed = now - t->t0;
    long steps = t->o.report_every;
    p->epoch = t->st.epoch;
    p->step = t->st.step;
    p->steps_total = t->o.max_steps;
    p->lr = learning_rate(t, t->st.step);
    p->elapsed_s = elapsed;
    p->skipped_steps = t->st.skipped_steps;
    p->world_size = t->world;
    if (!p->is_validation) {
        double span = now - t->t_report > 1e-9 ? now - t->t_report : 1e-9;
        p->comm_wait = t->comm ? (t->comm->wait_s - t->wait_report) / span : 0.0;
        t->wait_report = t->comm ? t->comm->wait_s : 0.0;
        p->loss = (float)(t->loss_sum / (t->tok_sum ? t->tok_sum : 1));
        p->tokens_per_s = t->tok_report / span;
        p->eta_s = eta(t, elapsed, (now - t->t_report) / steps);
        t->loss_sum = 0, t->tok_sum = 0, t->tok_report = 0, t->t_report = now;
    }
    t->last = *p;
    if (!is_root(t))
        return;
    if (t->prefix && append_csv(t, p) != S2S_OK)
        s2s_log(t->m->ctx, S2S_LOG_WARN, "%s", s2s_last_error());
    if (t->o.progress)
        t->o.progress(p, t->o.progress_user);
}

/* ---- the loop ------------------------------------------------------------------------------- */

static s2s_status nonfinite(s2s_trainer *t, float loss)
{
    t->st.nonfinite_run++;
    t->st.skipped_steps++;
    t->st.batch_in_epoch++;
    s2s_log(t->m->ctx, S2S_LOG_WARN, "step %ld: non-finite loss or gradient (loss %g); step skipped (%d in a row)",
            (long)t->st.step + 1, loss, t->st.nonfinite_run);
    if (t->st.nonfinite_run >= t->o.nonfinite_stop)
        return S2S_FAIL(S2S_ERR_NUMERIC,
                        "%d steps in a row had a non-finite loss or gradient; training stopped (the last checkpoint "
                        "is intact); lower the learning rate or check the data",
                        t->st.nonfinite_run);
    if (t->st.nonfinite_run % t->o.nonfinite_halve == 0) {
        t->st.lr_scale *= 0.5f;
        s2s_log(t->m->ctx, S2S_LOG_WARN, "learning rate halved (scale %g) after %d non-finite steps", t->st.lr_scale,
                t->st.nonfinite_run);
    }
    return S2S_OK;
}

/* Data parallel: this rank's rows of the global batch b, with gradients summed over the ranks
 * (in buckets during backward, or whole into zbuf for ZeRO-1); *loss and *ntok become the
 * global batch's. A rank with no rows (a batch smaller than the world) adds zeros. */
static s2s_status shard_grads(s2s_trainer *t, const s2s_batch *b, s2s_loss_options *lo, float *loss, int *ntok)
{
    s2s_model *m = t->m;
    s2s_comm *c = t->comm;
    int P = t->world, r0 = (int)((long)b->batch * t->rank / P), r1 = (int)((long)b->batch * (t->rank + 1) / P);
    long gtok = 0;
    for (int i = 0; i < b->batch; i++)
        gtok += b->tgt_len[i] + 1; /* EOS counted, as the loss does */
    S2S_TRY(c->ops->arrive(c, t->st.step + t->st.skipped_steps));
    lo->norm_tokens = (int)gtok;
    lo->shard_rows = b->batch;
    lo->shard_row0 = r0;
    s2s_batch sb = {r1 - r0, b->src_max_len, b->tgt_max_len, b->src + (size_t)r0 * b->src_max_len, b->src_len + r0,
                    b->tgt + (size_t)r0 * b->tgt_max_len, b->tgt_len + r0};
    int zero = t->zbuf != NULL;
    m->grad_ready = zero ? NULL : bucket_ready;
    m->grad_ready_user = t;
    float l = 0;
    int n = 0;
    s2s_status st = S2S_OK;
    if (sb.batch > 0) {
        st = s2s_model_forward_backward(m, &sb, lo, &l, &n);
    } else {
        st = m->be->ops->fill(m->be, m->params.grad, m->params.total, 0.0f);
        for (int phase = 0; phase < 3 && st == S2S_OK; phase++)
            st = s2s_grad_phase(m, phase);
    }
    m->grad_ready = NULL;
    if (st == S2S_OK && !zero)
        st = c->ops->wait_all(c);
    if (st == S2S_OK && zero) { /* the padded block reduce-scattered: this rank's shard in zgrad */
        size_t total = m->params.total, padded = (size_t)P * t->zchunk;
        st = m->be->ops->copy(m->be, t->zbuf, m->params.grad, total * sizeof(float));
        if (st == S2S_OK && padded > total)
            st = m->be->ops->fill(m->be, t->zbuf + total, padded - total, 0.0f);
        if (st == S2S_OK)
            st = c->ops->reduce_scatter(c, t->zbuf, t->zgrad, t->zchunk);
    }
    /* the global loss, and whether any rank has spent the time budget (all stop together) */
    double v[4] = {(double)l * n, n, t->o.minutes > 0 && s2s_now_ms() * 1e-3 - t->t0 >= t->o.minutes * 60,
                   time_share(t)};
    if (st == S2S_OK)
        st = c->ops->sum_host(c, v, 4);
    *loss = (float)(v[0] / (v[1] > 0 ? v[1] : 1));
    *ntok = (int)v[1];
    t->time_up = v[2] > 0;
    t->time_done = v[3] / t->world; /* the ranks' mean: every rank takes the same learning rate */
    return st;
}

/* ZeRO-1's update: the norm of the summed gradient from every rank's shard, Adam on this
 * rank's shard of the weights, then every rank's shard all-gathered into the weights. */
static s2s_status zero_update(s2s_trainer *t, float lr, float *norm_out)
{
    s2s_model *m = t->m;
    s2s_backend *be = m->be;
    s2s_optimizer *opt = t->opt;
    size_t n = zero_count(t, t->rank), off = (size_t)t->rank * t->zchunk;
    double ss = 0.0;
    if (n)
        S2S_TRY(be->ops->sumsq(be, t->zgrad, n, &ss));
    S2S_TRY(t->comm->ops->sum_host(t->comm, &ss, 1));
    float norm = (float)sqrt(ss);
    *norm_out = norm;
    if (!isfinite(norm))
        return S2S_FAIL(S2S_ERR_NUMERIC, "gradient norm is %g: update skipped (weights unchanged)", norm);
    const s2s_optimizer_options *o = &opt->o;
    float gscale = o->clip_norm > 0.0f && norm > o->clip_norm ? o->clip_norm / (norm + 1e-6f) : 1.0f;
    opt->step++;
    s2s_model_weights_changed(m);
    if (n)
        S2S_TRY(be->ops->adam(be, m->params.data + off, t->zgrad, opt->m, opt->v, n, lr > 0 ? lr : o->lr, o->beta1,
                              o->beta2, o->eps, o->weight_decay, gscale, opt->step));
    S2S_TRY(be->ops->copy(be, t->zbuf + off, m->params.data + off, n * sizeof(float)));
    S2S_TRY(t->comm->ops->allgather(t->comm, t->zbuf + off, t->zbuf, t->zchunk));
    return be->ops->copy(be, m->params.data, t->zbuf, m->params.total * sizeof(float));
}

static s2s_status one_step(s2s_trainer *t)
{
    if (t->plan_epoch != t->st.epoch) {
        s2s_batch_plan_free(&t->plan);
        S2S_TRY(s2s_batch_plan_make(&t->td, t->o.batch_tokens, t->m->ctx->opts.seed, t->st.epoch, 1, &t->plan));
        t->plan_epoch = t->st.epoch;
    }
    S2S_TRY(s2s_host_batch_fill(&t->td, &t->plan, (size_t)t->st.batch_in_epoch, &t->hb));
    s2s_loss_options lo = s2s_loss_options_default();
    lo.label_smoothing = t->o.label_smoothing;
    lo.word_dropout = t->o.word_dropout;
    lo.step = (uint64_t)t->st.step;
    float loss = 0, norm = 0;
    int ntok = 0;
    if (t->comm)
        S2S_TRY(shard_grads(t, &t->hb.b, &lo, &loss, &ntok));
    else {
        S2S_TRY(s2s_model_forward_backward(t->m, &t->hb.b, &lo, &loss, &ntok));
        t->time_done = time_share(t);
    }
    t->st.budget_done = budget_done(t, t->st.step + 1);
    float lr = learning_rate(t, t->st.step + 1);
    s2s_status st = !isfinite(loss) ? S2S_ERR_NUMERIC
                    : t->zbuf       ? zero_update(t, lr, &norm)
                                    : s2s_optimizer_step(t->opt, lr, &norm);
    if (st == S2S_ERR_NUMERIC)
        S2S_TRY(nonfinite(t, loss));
    else if (st != S2S_OK)
        return st;
    else {
        t->st.nonfinite_run = 0;
        t->st.step++;
        t->st.batch_in_epoch++;
        t->loss_sum += (double)loss * ntok;
        t->tok_sum += ntok;
    }
    t->tok_report += ntok;
    if (t->st.batch_in_epoch >= (int64_t)t->plan.nbatches) {
        t->st.epoch++;
        t->st.batch_in_epoch = 0;
    }
    return S2S_OK;
}

/* Validates (when there is a validation set), saves the checkpoint and, when it improved, the
 * best model; returns 1 in *stop when early stopping says so. */
static s2s_status checkpoint_round(s2s_trainer *t, int *stop)
{
    s2s_train_progress p;
    memset(&p, 0, sizeof p);
    p.is_validation = 1;
    p.valid_bleu = -1;
    int improved = 1;
    if (t->valid && t->vd.n) {
        S2S_TRY(s2s_trainer_validate(t, &p.valid_loss, &p.valid_ppl, t->o.valid_bleu ? &p.valid_bleu : NULL));
        float score = t->o.valid_bleu ? p.valid_bleu : -p.valid_loss;
        improved = !t->st.have_best || score > t->st.best_score;
        if (improved) {
            t->st.best_score = score, t->st.have_best = 1, t->st.bad_valids = 0, t->st.plateau_bad = 0;
        } else {
            t->st.bad_valids++;
            if (t->o.schedule == S2S_LR_PLATEAU && ++t->st.plateau_bad >= t->o.plateau_patience) {
                t->st.lr_scale *= t->o.plateau_factor;
                t->st.plateau_bad = 0;
            }
        }
        p.improved = improved;
        report(t, &p);
    }
    S2S_TRY(save_files(t, improved));
    *stop = t->o.patience && t->st.bad_valids >= t->o.patience;
    return S2S_OK;
}

static int budget_left(const s2s_trainer *t)
{
    const s2s_trainer_options *o = &t->o;
    if (o->max_steps && t->st.step >= o->max_steps)
        return 0;
    if (o->minutes > 0 && (t->comm ? t->time_up : s2s_now_ms() * 1e-3 - t->t0 >= o->minutes * 60))
        return 0; /* data parallel: as the ranks agreed at the last step */
    if (o->max_epochs && t->st.epoch > o->max_epochs)
        return 0;
    if (!o->max_steps && !o->max_epochs && o->minutes <= 0 && t->st.epoch > 1)
        return 0; /* no limit given: one epoch */
    return 1;
}

static s2s_status loop(s2s_trainer *t, long max_now, int final_round)
{
    int stop = 0;
    long done = 0, last_saved = -1, last_snap = -1;
    t->t0 = t->t_report = s2s_now_ms() * 1e-3;
    t->loss_sum = 0, t->tok_sum = 0, t->tok_report = 0;
    t->time_up = 0;
    t->time_done = 0.0;
    t->done0 = t->st.budget_done;
    int ended = cycles_ended(t, t->st.budget_done); /* resumed: the snapshots written before */
    t->snaps = ended < ncycles(t) ? ended : ncycles(t) - 1;
    if (t->comm && !t->weights_checked) {
        S2S_TRY(check_weights(t));
        t->weights_checked = 1;
    }
    t->wait_report = t->comm ? t->comm->wait_s : 0.0;
    while (!stop && done < max_now && budget_left(t)) {
        int64_t before = t->st.step;
        S2S_TRY(one_step(t));
        done++;
        if (t->st.step == before) /* a skipped non-finite step: nothing new to report, validate or save */
            continue;
        if (t->st.step % t->o.report_every == 0) {
            s2s_train_progress p;
            memset(&p, 0, sizeof p);
            report(t, &p);
        }
        if (t->o.valid_every && t->st.step % t->o.valid_every == 0 && last_saved != t->st.step) {
            S2S_TRY(checkpoint_round(t, &stop));
            last_saved = t->st.step;
        }
        if (ncycles(t) > 1 && cycles_ended(t, t->st.budget_done) > t->snaps && t->snaps < ncycles(t) - 1) {
            if (last_saved != t->st.step) /* a checkpoint (and validation) at every cycle's end */
                S2S_TRY(checkpoint_round(t, &stop));
            last_saved = t->st.step;
            S2S_TRY(save_snapshot(t, ++t->snaps));
            last_snap = t->st.step;
        }
    }
    if (final_round && last_saved != t->st.step)
        S2S_TRY(checkpoint_round(t, &stop));
    if (final_round && ncycles(t) > 1 && last_snap != t->st.step) /* the last cycle's end, or where it stopped */
        S2S_TRY(save_snapshot(t, t->snaps + 1));
    if (final_round && t->prefix && t->o.average_last > 0 && is_root(t))
        S2S_TRY(average_checkpoints(t));
    if (t->prefix && is_root(t))
        S2S_TRY(s2s_trainer_plot(t->prefix));
    return S2S_OK;
}

S2S_API s2s_status s2s_trainer_run(s2s_trainer *t)
{
    if (!t)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_trainer_run: trainer is NULL");
    return loop(t, -1UL >> 1, 1);
}

S2S_API s2s_status s2s_trainer_steps(s2s_trainer *t, long n)
{
    if (!t || n < 0)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_trainer_steps: trainer needed and n >= 0");
    return loop(t, n, 0);
}
