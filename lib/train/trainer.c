/* trainer.c - the training loop users can leave running: schedule, validation, checkpoints,
 * early stopping, time budget, non-finite recovery, progress, metrics CSV and SVG plot.
 *
 * Exact resume: everything that decides the next step is in the checkpoint — weights, Adam
 * moments and step, and the trainer state below (position in the epoch's batch order, which
 * is a function of the seed and the epoch; the lr scale; best scores). Dropout masks are keyed
 * by the step, so a resumed run draws the same masks. */
#include "data.h"
#include "model.h"
#include "plot.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAGIC 0x53325354u /* "S2ST" */
#define STATE_VERSION 1

/* What a checkpoint carries besides weights and moments. Fixed-size fields only. */
typedef struct train_state {
    uint32_t magic, version;
    int64_t step, batch_in_epoch, skipped_steps;
    int32_t epoch, bad_valids, plateau_bad, nonfinite_run;
    float lr_scale, best_score;
    int32_t have_best;
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
};

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
    return o;
}

static s2s_status check_options(const s2s_trainer_options *o)
{
    if (o->batch_tokens < 1 || o->max_len < 1 || !(o->lr > 0) || o->warmup_steps < 0 || o->valid_every < 0 ||
        o->keep_last < 1 || o->patience < 0 || o->minutes < 0 || o->max_steps < 0 || o->max_epochs < 0 ||
        o->report_every < 1 || o->nonfinite_halve < 1 || o->nonfinite_stop < 1 ||
        !(o->label_smoothing >= 0 && o->label_smoothing < 1) || !(o->plateau_factor > 0 && o->plateau_factor <= 1))
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "trainer options out of range: batch_tokens %d, max_len %d, keep_last %d, report_every %d "
                        "must be >= 1; lr %g > 0; label_smoothing %g in [0, 1); plateau_factor %g in (0, 1]; "
                        "the rest >= 0",
                        o->batch_tokens, o->max_len, o->keep_last, o->report_every, o->lr, o->label_smoothing,
                        o->plateau_factor);
    if (o->batch_tokens < o->max_len + 1)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "batch_tokens %d cannot hold one pair of max_len %d (+ EOS); raise it",
                        o->batch_tokens, o->max_len);
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

static float learning_rate(const s2s_trainer *t, long step)
{
    const s2s_trainer_options *o = &t->o;
    double s = (double)(step > 0 ? step : 1), w = (double)o->warmup_steps, f = 1.0;
    if (w > 0 && s < w)
        f = s / w;
    else if (o->schedule == S2S_LR_INVERSE_SQRT && w > 0)
        f = sqrt(w / s);
    return (float)(o->lr * f * t->st.lr_scale);
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
    t->st = (train_state){STATE_MAGIC, STATE_VERSION, 0, 0, 0, 1, 0, 0, 0, 1.0f, 0.0f, 0};
    t->plan_epoch = -1;
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

static s2s_status valid_loss(s2s_trainer *t, const s2s_batch_plan *p, float *loss)
{
    double sum = 0;
    long tok = 0;
    for (size_t i = 0; i < p->nbatches; i++) {
        float l;
        int n;
        S2S_TRY(s2s_host_batch_fill(&t->vd, p, i, &t->hb));
        S2S_TRY(s2s_model_evaluate(t->m, &t->hb.b, &l, &n));
        sum += (double)l * n;
        tok += n;
    }
    *loss = (float)(sum / (tok ? tok : 1));
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
    if (st == S2S_OK)
        st = s2s_bleu_corpus((const char *const *)hyp, ref, n, &b);
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

S2S_API s2s_status s2s_trainer_checkpoint(s2s_trainer *t, const char *path)
{
    if (!t || !path)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_trainer_checkpoint: trainer and path are needed");
    s2s_provenance p = provenance(t);
    return s2s_checkpoint_save(path, t->m, t->opt, t->src_tok, t->tgt_tok, &p, &t->st, sizeof t->st);
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

S2S_API s2s_status s2s_trainer_resume(s2s_trainer *t, const char *path)
{
    if (!t || !path)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_trainer_resume: trainer and path are needed");
    void *blob = NULL;
    size_t len = 0;
    S2S_TRY(s2s_checkpoint_load(path, t->m, t->opt, &blob, &len));
    train_state s;
    if (len != sizeof s || ((train_state *)blob)->magic != STATE_MAGIC ||
        ((train_state *)blob)->version != STATE_VERSION) {
        free(blob);
        return S2S_FAIL(S2S_ERR_FORMAT, "%s holds no trainer state of this version (%zu bytes); resume from a "
                                        "checkpoint written by s2s_trainer_checkpoint",
                        path, len);
    }
    memcpy(&s, blob, sizeof s);
    free(blob);
    t->st = s;
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
    snprintf(buf, cap, "epoch %d step %ld%s loss %.4f %.0f tok/s lr %.2e elapsed %s ETA %s%s", p->epoch, p->step, tot,
             p->loss, p->tokens_per_s, p->lr, el, eta, p->skipped_steps ? " (non-finite steps skipped)" : "");
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
    if (!p->is_validation) {
        p->loss = (float)(t->loss_sum / (t->tok_sum ? t->tok_sum : 1));
        p->tokens_per_s = t->tok_report / (now - t->t_report > 1e-9 ? now - t->t_report : 1e-9);
        p->eta_s = eta(t, elapsed, (now - t->t_report) / steps);
        t->loss_sum = 0, t->tok_sum = 0, t->tok_report = 0, t->t_report = now;
    }
    t->last = *p;
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
    lo.step = (uint64_t)t->st.step;
    float loss = 0, norm = 0;
    int ntok = 0;
    S2S_TRY(s2s_model_forward_backward(t->m, &t->hb.b, &lo, &loss, &ntok));
    s2s_status st = isfinite(loss) ? s2s_optimizer_step(t->opt, learning_rate(t, t->st.step + 1), &norm)
                                   : S2S_ERR_NUMERIC;
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
    if (o->minutes > 0 && s2s_now_ms() * 1e-3 - t->t0 >= o->minutes * 60)
        return 0;
    if (o->max_epochs && t->st.epoch > o->max_epochs)
        return 0;
    if (!o->max_steps && !o->max_epochs && o->minutes <= 0 && t->st.epoch > 1)
        return 0; /* no limit given: one epoch */
    return 1;
}

static s2s_status loop(s2s_trainer *t, long max_now, int final_round)
{
    int stop = 0;
    long done = 0, last_saved = -1;
    t->t0 = t->t_report = s2s_now_ms() * 1e-3;
    t->loss_sum = 0, t->tok_sum = 0, t->tok_report = 0;
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
    }
    if (final_round && last_saved != t->st.step)
        S2S_TRY(checkpoint_round(t, &stop));
    if (final_round && t->prefix && t->o.average_last > 0)
        S2S_TRY(average_checkpoints(t));
    if (t->prefix)
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
