/* test_trainer.c - the trainer: an interrupted and resumed run ends with bit-identical weights,
 * files (checkpoints pruned to keep_last, best model, CSV, SVG), early stopping, and
 * non-finite steps skipped then given up on with the last checkpoint intact. CPU only. */
#include "model.h"
#include "model_util.h"
#include "test_util.h"
#include "toy_task.h"
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>


typedef struct world {
    toy_world t; /* data, tokenizer, scratch directory */
    s2s_context *ctx;
} world;

static void world_make(world *w)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU, o.seed = 3, o.threads = 2;
    cr_assert_eq(s2s_context_create(&o, &w->ctx), S2S_OK);
    toy_world_make(&w->t, 1, 400, 40, "trainer");
}

static void world_free(world *w)
{
    toy_world_free(&w->t);
    s2s_context_free(w->ctx);
}

static s2s_model *toy_model(world *w)
{
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 32, c.embed = 16, c.dropout = 0.2f;
    c.src_vocab = c.tgt_vocab = s2s_tokenizer_vocab_size(w->t.tok);
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(w->ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    return m;
}

static s2s_trainer_options toy_options(world *w, const char *name, long steps)
{
    static char prefix[4][128];
    static int k;
    s2s_trainer_options o = s2s_trainer_options_default();
    o.batch_tokens = 300, o.warmup_steps = 5, o.lr = 3e-3f, o.valid_every = 10, o.report_every = 5;
    o.max_steps = steps, o.keep_last = 2, o.valid_max = 40;
    snprintf(prefix[k % 4], sizeof prefix[0], "%s/%s", w->t.dir, name);
    o.out_prefix = prefix[k++ % 4];
    return o;
}

static int exists(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

Test(trainer, resume_gives_bit_identical_weights_and_files, .timeout = 120)
{
    world w;
    world_make(&w);
    /* uninterrupted: 40 steps (several epochs: the epoch boundary is crossed after resuming) */
    s2s_model *a = toy_model(&w);
    s2s_trainer *ta = NULL;
    s2s_trainer_options oa = toy_options(&w, "a", 40);
    oa.word_dropout = 0.1f; /* its tokens are drawn again after resuming, as the dropout masks are */
    cr_assert_eq(s2s_trainer_create(a, w.t.tok, w.t.tok, w.t.train, w.t.valid, &oa, &ta), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_trainer_run(ta), S2S_OK, "%s", s2s_last_error());
    long pairs, skipped, batches;
    s2s_trainer_data_counts(ta, &pairs, &skipped, &batches);
    cr_assert(batches < 40, "the run must cross an epoch boundary (%ld batches)", batches);
    /* interrupted at 20, resumed from the step-20 checkpoint into fresh objects */
    s2s_model *b = toy_model(&w);
    s2s_trainer *tb = NULL;
    s2s_trainer_options ob = toy_options(&w, "b", 20);
    ob.word_dropout = 0.1f;
    cr_assert_eq(s2s_trainer_create(b, w.t.tok, w.t.tok, w.t.train, w.t.valid, &ob, &tb), S2S_OK);
    cr_assert_eq(s2s_trainer_run(tb), S2S_OK, "%s", s2s_last_error());
    s2s_trainer_free(tb);
    s2s_model_free(b);
    s2s_model *c = toy_model(&w);
    s2s_trainer *tc = NULL;
    s2s_trainer_options oc = toy_options(&w, "b", 40);
    oc.word_dropout = 0.1f;
    char ck[256];
    snprintf(ck, sizeof ck, "%s/b.ckpt-20.safetensors", w.t.dir);
    cr_assert_eq(s2s_trainer_create(c, w.t.tok, w.t.tok, w.t.train, w.t.valid, &oc, &tc), S2S_OK);
    cr_assert_eq(s2s_trainer_resume(tc, ck), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_trainer_run(tc), S2S_OK, "%s", s2s_last_error());
    size_t na, nc;
    float *wa = tu_weights(a, &na), *wc = tu_weights(c, &nc);
    cr_assert_eq(na, nc);
    size_t diff = 0;
    for (size_t i = 0; i < na; i++)
        diff += memcmp(&wa[i], &wc[i], sizeof(float)) != 0;
    cr_assert_eq(diff, 0, "%zu of %zu weights differ after resuming", diff, na);
    /* files: keep_last = 2 checkpoints, the best model, metrics and plot */
    cr_assert(exists(w.t.dir, "a.ckpt-40.safetensors") && exists(w.t.dir, "a.ckpt-30.safetensors"));
    cr_assert(!exists(w.t.dir, "a.ckpt-20.safetensors") && !exists(w.t.dir, "a.ckpt-10.safetensors"), "not pruned");
    cr_assert(exists(w.t.dir, "a.best.safetensors") && exists(w.t.dir, "a.metrics.csv") && exists(w.t.dir, "a.loss.svg"));
    s2s_train_progress p = s2s_trainer_get_progress(ta);
    cr_assert_eq(p.step, 40);
    cr_assert(p.is_validation && p.valid_bleu >= 0 && p.valid_ppl > 1, "last progress: a validation with BLEU");
    free(wa), free(wc);
    s2s_trainer_free(ta), s2s_trainer_free(tc);
    s2s_model_free(a), s2s_model_free(c);
    world_free(&w);
}

Test(trainer, nonfinite_steps_are_skipped_then_stop_with_checkpoint_intact, .timeout = 60)
{
    world w;
    world_make(&w);
    s2s_model *m = toy_model(&w);
    s2s_trainer *t = NULL;
    s2s_trainer_options o = toy_options(&w, "n", 0);
    o.nonfinite_halve = 2, o.nonfinite_stop = 4, o.max_epochs = 100;
    cr_assert_eq(s2s_trainer_create(m, w.t.tok, w.t.tok, w.t.train, w.t.valid, &o, &t), S2S_OK);
    cr_assert_eq(s2s_trainer_steps(t, 10), S2S_OK, "%s", s2s_last_error()); /* 10 good steps */
    char ck[256];
    snprintf(ck, sizeof ck, "%s/n.ckpt-10.safetensors", w.t.dir);
    struct stat before, after;
    cr_assert_eq(stat(ck, &before), 0, "no checkpoint %s after %ld steps", ck, s2s_trainer_get_progress(t).step);
    m->params.data[m->gen_w.w - m->params.data] = NAN; /* CPU: host memory; poisons every loss */
    cr_assert_eq(s2s_trainer_steps(t, 100), S2S_ERR_NUMERIC, "%s", s2s_last_error());
    cr_assert(strstr(s2s_last_error(), "4 steps in a row"), "%s", s2s_last_error());
    s2s_train_progress p = s2s_trainer_get_progress(t);
    cr_assert_eq(p.step, 10, "no update may be applied by a non-finite step");
    cr_assert_eq(stat(ck, &after), 0);
    /* an atomic save would give a new inode: the checkpoint of step 10 must not be written again */
    cr_assert(before.st_ino == after.st_ino && before.st_size == after.st_size &&
                  before.st_mtim.tv_sec == after.st_mtim.tv_sec && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec,
              "checkpoint touched");
    s2s_trainer_free(t);
    s2s_model_free(m);
    world_free(&w);
}

Test(trainer, early_stopping_and_bad_options)
{
    world w;
    world_make(&w);
    s2s_model *m = toy_model(&w);
    s2s_trainer *t = NULL;
    s2s_trainer_options o = toy_options(&w, "e", 0);
    o.batch_tokens = 5; /* cannot hold a pair of max_len 100 */
    cr_assert_eq(s2s_trainer_create(m, w.t.tok, w.t.tok, w.t.train, w.t.valid, &o, &t), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "batch_tokens"), "%s", s2s_last_error());
    o = toy_options(&w, "e", 0);
    o.word_dropout = 1.0f; /* every token UNK: nothing to learn from */
    cr_assert_eq(s2s_trainer_create(m, w.t.tok, w.t.tok, w.t.train, w.t.valid, &o, &t), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "word_dropout 1"), "%s", s2s_last_error());
    o = toy_options(&w, "e", 0);
    o.max_epochs = 200, o.valid_every = 2, o.patience = 1, o.lr = 1e-9f; /* nothing improves: stops early */
    cr_assert_eq(s2s_trainer_create(m, w.t.tok, w.t.tok, w.t.train, w.t.valid, &o, &t), S2S_OK);
    cr_assert_eq(s2s_trainer_run(t), S2S_OK, "%s", s2s_last_error());
    s2s_train_progress p = s2s_trainer_get_progress(t);
    cr_assert_leq(p.step, 20, "early stopping should end the run after a couple of validations (step %ld)", p.step);
    s2s_trainer_free(t);
    s2s_model_free(m);
    world_free(&w);
}

/* average_last: at the end of the run PREFIX.avg.safetensors holds the mean of the newest
 * checkpoints (here the 2 kept of steps 10, 20, 30: 20 and 30); more than keep_last is refused. */
Test(trainer, averages_the_last_checkpoints, .timeout = 60)
{
    world w;
    world_make(&w);
    s2s_model *m = toy_model(&w);
    s2s_trainer *t = NULL;
    s2s_trainer_options o = toy_options(&w, "avg", 30);
    o.average_last = 3; /* keep_last is 2 */
    cr_assert_eq(s2s_trainer_create(m, w.t.tok, w.t.tok, w.t.train, w.t.valid, &o, &t), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "average_last"), "%s", s2s_last_error());
    o.average_last = 2;
    cr_assert_eq(s2s_trainer_create(m, w.t.tok, w.t.tok, w.t.train, w.t.valid, &o, &t), S2S_OK, "%s",
                 s2s_last_error());
    cr_assert_eq(s2s_trainer_run(t), S2S_OK, "%s", s2s_last_error());
    s2s_trainer_free(t);
    cr_assert(exists(w.t.dir, "avg.avg.safetensors") && exists(w.t.dir, "avg.ckpt-20.safetensors") &&
              exists(w.t.dir, "avg.ckpt-30.safetensors") && !exists(w.t.dir, "avg.ckpt-10.safetensors"));
    char p[3][256];
    const char *names[3] = {"avg.ckpt-20.safetensors", "avg.ckpt-30.safetensors", "avg.avg.safetensors"};
    float *v[3];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(p[i], sizeof p[i], "%s/%s", w.t.dir, names[i]);
        s2s_model *x = NULL;
        cr_assert_eq(s2s_model_load(w.ctx, p[i], &x, NULL, NULL, NULL), S2S_OK, "%s", s2s_last_error());
        v[i] = tu_weights(x, &n);
        s2s_model_free(x);
    }
    int differ = 0;
    for (size_t k = 0; k < n; k++) {
        float want = (float)(((double)v[0][k] + (double)v[1][k]) / 2.0);
        differ += memcmp(&want, &v[2][k], sizeof want) != 0;
    }
    cr_assert_eq(differ, 0, "%d of %zu weights are not the mean of steps 20 and 30", differ, n);
    for (int i = 0; i < 3; i++)
        free(v[i]);
    s2s_model_free(m);
    world_free(&w);
}

typedef struct lr_log {
    long n;
    long step[64];
    float lr[64];
} lr_log;

static void log_lr(const s2s_train_progress *p, void *user)
{
    lr_log *l = user;
    if (!p->is_validation && l->n < 64)
        l->step[l->n] = p->step, l->lr[l->n++] = p->lr;
}

/* The learning rate of step s under LINEAR with max_steps N and warm-up w. */
static double linear_lr(double peak, long s, long w, long n)
{
    double f = s < w ? (double)s / (double)w : 1.0, down = 1.0 - (double)s / (double)n;
    return peak * fmin(f, fmax(1e-3, down));
}

/* LINEAR: warm-up, then a straight fall to lr/1000 at the last of max_steps (every step's
 * reported lr, to float precision); with max_epochs instead, the fall ends at the last epoch's
 * last batch; an unknown schedule is refused. */
Test(trainer, linear_schedule_falls_to_the_end_of_the_budget, .timeout = 60)
{
    world w;
    world_make(&w);
    s2s_model *m = toy_model(&w);
    s2s_trainer *t = NULL;
    s2s_trainer_options o = toy_options(&w, "lin", 40);
    o.schedule = (s2s_lr_schedule)7;
    cr_assert_eq(s2s_trainer_create(m, w.t.tok, w.t.tok, w.t.train, w.t.valid, &o, &t), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "schedule 7"), "%s", s2s_last_error());
    lr_log l = {0};
    o.schedule = S2S_LR_LINEAR, o.report_every = 1, o.valid_every = 0, o.progress = log_lr, o.progress_user = &l;
    cr_assert_eq(s2s_trainer_create(m, w.t.tok, w.t.tok, w.t.train, w.t.valid, &o, &t), S2S_OK, "%s",
                 s2s_last_error());
    cr_assert_eq(s2s_trainer_run(t), S2S_OK, "%s", s2s_last_error());
    s2s_trainer_free(t);
    cr_assert_eq(l.n, 40, "one report per step");
    for (long i = 0; i < l.n; i++) {
        double want = linear_lr(o.lr, l.step[i], o.warmup_steps, o.max_steps);
        cr_assert(fabs(l.lr[i] - want) <= 1e-6 * want, "step %ld: lr %g, want %g", l.step[i], l.lr[i], want);
    }
    cr_assert(fabs(l.lr[39] - o.lr * 1e-3) <= 1e-9, "the last step's lr %g is lr/1000", l.lr[39]);
    /* two epochs, no step limit: the fall follows the batches */
    l.n = 0;
    o.max_steps = 0, o.max_epochs = 2;
    cr_assert_eq(s2s_trainer_create(m, w.t.tok, w.t.tok, w.t.train, w.t.valid, &o, &t), S2S_OK);
    cr_assert_eq(s2s_trainer_run(t), S2S_OK, "%s", s2s_last_error());
    long pairs, skipped, batches;
    s2s_trainer_data_counts(t, &pairs, &skipped, &batches);
    s2s_trainer_free(t);
    cr_assert_eq(l.n, 2 * batches, "%ld reports for 2 epochs of %ld batches", l.n, batches);
    for (long i = 0; i < l.n; i++) {
        double want = linear_lr(o.lr, l.step[i], o.warmup_steps, 2 * batches);
        cr_assert(fabs(l.lr[i] - want) <= 1e-5 * want, "epochs: step %ld: lr %g, want %g", l.step[i], l.lr[i], want);
    }
    s2s_model_free(m);
    world_free(&w);
}

/* Rewrites the trainer state's version in a checkpoint file (the bytes after its magic) and
 * the state tensor's CRC32 in the header, as a file of that version would hold them. */
static void set_state_version(const char *path, uint32_t version)
{
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "%s", path);
    static unsigned char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f), len = 64; /* sizeof(train_state) */
    cr_assert(n < sizeof buf, "%s is larger than the test's buffer", path);
    const unsigned char magic[4] = {0x54, 0x53, 0x32, 0x53}; /* 0x53325354, little-endian */
    long at = -1;
    for (size_t i = 0; i + len <= n && at < 0; i++)
        if (!memcmp(buf + i, magic, 4) && buf[i + 4] == 2 && !buf[i + 5] && !buf[i + 6] && !buf[i + 7])
            at = (long)i;
    cr_assert_geq(at, 0, "no version-2 trainer state in %s", path);
    char old_crc[9], new_crc[9];
    snprintf(old_crc, sizeof old_crc, "%08lx", crc32_z(0, buf + at, len));
    buf[at + 4] = (unsigned char)version;
    snprintf(new_crc, sizeof new_crc, "%08lx", crc32_z(0, buf + at, len));
    unsigned char *hit = memmem(buf, (size_t)at, old_crc, 8);
    cr_assert_not_null(hit, "the header of %s holds no CRC32 %s", path, old_crc);
    memcpy(hit, new_crc, 8);
    rewind(f);
    cr_assert_eq(fwrite(buf, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

/* How many of m's weights differ in their bits from want[0..n). */
static size_t differing(const float *want, size_t n, s2s_model *m)
{
    size_t nm, diff = 0;
    float *w = tu_weights(m, &nm);
    cr_assert_eq(nm, n);
    for (size_t i = 0; i < n; i++)
        diff += memcmp(&want[i], &w[i], sizeof(float)) != 0;
    free(w);
    return diff;
}

/* LINEAR with `cycles` falls over max_steps n: step s is in cycle ceil(s * cycles / n), and the
 * fall within it is the share of that cycle done (1 at its last step). */
static double cyclic_lr(double peak, long s, long w, long n, int cycles)
{
    double u = (double)s * cycles / (double)n, k = fmax(0.0, ceil(u) - 1.0);
    double f = s < w ? (double)s / (double)w : 1.0;
    return peak * fmin(f, fmax(1e-3, 1.0 - (u - k)));
}

/* Trains m with o (max_steps, cycles set; every step reported), checking each step's lr. */
static void run_checking_lr(world *w, s2s_model *m, s2s_trainer_options o)
{
    lr_log l = {0};
    o.report_every = 1, o.progress = log_lr, o.progress_user = &l;
    s2s_trainer *t = NULL;
    cr_assert_eq(s2s_trainer_create(m, w->t.tok, w->t.tok, w->t.train, w->t.valid, &o, &t), S2S_OK, "%s",
                 s2s_last_error());
    cr_assert_eq(s2s_trainer_run(t), S2S_OK, "%s", s2s_last_error());
    s2s_trainer_free(t);
    cr_assert_eq(l.n, o.max_steps, "one report per step");
    for (long i = 0; i < l.n; i++) {
        double want = cyclic_lr(o.lr, l.step[i], o.warmup_steps, o.max_steps, o.cycles);
        cr_assert(fabs(l.lr[i] - want) <= 1e-5 * want, "%d cycles: step %ld: lr %g, want %g", o.cycles, l.step[i],
                  l.lr[i], want);
    }
    long end = o.max_steps / o.cycles; /* the first cycle's last step, and the next */
    cr_assert(fabs(l.lr[end - 1] - o.lr * 1e-3) <= 1e-9 && l.lr[end] > 0.85f * o.lr, "steps %ld, %ld: lr %g, %g",
              end, end + 1, l.lr[end - 1], l.lr[end]);
}

static float *weights_of(world *w, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", w->t.dir, name);
    s2s_model *x = NULL;
    cr_assert_eq(s2s_model_load(w->ctx, p, &x, NULL, NULL, NULL), S2S_OK, "%s: %s", name, s2s_last_error());
    size_t n;
    float *v = tu_weights(x, &n);
    s2s_model_free(x);
    return v;
}

/* Warm restarts: with cycles = N the lr falls to lr/1000 N times, back at the peak the step after
 * each fall (every step's reported lr, 3 cycles of 10 steps and 2 of 20); the model at each
 * cycle's end is PREFIX.snap-K (equal to that step's checkpoint, the last to the final weights);
 * a run stopped at a cycle's end and resumed ends bit-identical and writes only the rest of the
 * snapshots; cycles are refused above 1000 and with another schedule. */
Test(trainer, cycles_restart_the_linear_fall_and_keep_snapshots, .timeout = 120)
{
    world w;
    world_make(&w);
    s2s_model *a = toy_model(&w);
    s2s_trainer *t = NULL;
    s2s_trainer_options o = toy_options(&w, "cy", 30);
    o.cycles = 2;
    cr_assert_eq(s2s_trainer_create(a, w.t.tok, w.t.tok, w.t.train, w.t.valid, &o, &t), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "cycles 2") && strstr(s2s_last_error(), "LINEAR"), "%s", s2s_last_error());
    o.schedule = S2S_LR_LINEAR, o.cycles = 1001;
    cr_assert_eq(s2s_trainer_create(a, w.t.tok, w.t.tok, w.t.train, w.t.valid, &o, &t), S2S_ERR_INVALID_ARG);
    o.cycles = 3, o.valid_every = 0;
    run_checking_lr(&w, a, o);
    cr_assert(exists(w.t.dir, "cy.snap-1.safetensors") && exists(w.t.dir, "cy.snap-3.safetensors") &&
              !exists(w.t.dir, "cy.snap-4.safetensors") && exists(w.t.dir, "cy.ckpt-20.safetensors"));

    /* 2 cycles of 20: snapshots, and a resume from the first cycle's end */
    s2s_model *b = toy_model(&w), *c = toy_model(&w);
    s2s_trainer *tb = NULL, *tc = NULL;
    s2s_trainer_options oa = toy_options(&w, "ca", 40), ob = toy_options(&w, "cb", 40);
    oa.schedule = ob.schedule = S2S_LR_LINEAR, oa.cycles = ob.cycles = 2, oa.keep_last = 3, oa.valid_every = 0;
    s2s_model_free(a);
    a = toy_model(&w);
    run_checking_lr(&w, a, oa);
    size_t na;
    float *wa = tu_weights(a, &na), *s1 = weights_of(&w, "ca.snap-1.safetensors"),
          *k20 = weights_of(&w, "ca.ckpt-20.safetensors"), *s2 = weights_of(&w, "ca.snap-2.safetensors");
    cr_assert(!memcmp(s1, k20, na * sizeof *s1), "snapshot 1 is not the model at step 20");
    cr_assert(!memcmp(s2, wa, na * sizeof *s2), "snapshot 2 is not the final model");
    cr_assert(memcmp(s1, s2, na * sizeof *s1), "the two snapshots are the same model");
    cr_assert(!exists(w.t.dir, "ca.snap-3.safetensors"));
    free(s1), free(k20), free(s2);

    cr_assert_eq(s2s_trainer_create(b, w.t.tok, w.t.tok, w.t.train, w.t.valid, &ob, &tb), S2S_OK);
    cr_assert_eq(s2s_trainer_steps(tb, 20), S2S_OK, "%s", s2s_last_error()); /* stopped at the first cycle's end */
    s2s_trainer_free(tb);
    cr_assert(exists(w.t.dir, "cb.snap-1.safetensors") && !exists(w.t.dir, "cb.snap-2.safetensors"));
    char ck[256], snap1[256];
    snprintf(ck, sizeof ck, "%s/cb.ckpt-20.safetensors", w.t.dir);
    snprintf(snap1, sizeof snap1, "%s/cb.snap-1.safetensors", w.t.dir);
    cr_assert_eq(unlink(snap1), 0);
    cr_assert_eq(s2s_trainer_create(c, w.t.tok, w.t.tok, w.t.train, w.t.valid, &ob, &tc), S2S_OK);
    cr_assert_eq(s2s_trainer_resume(tc, ck), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_trainer_run(tc), S2S_OK, "%s", s2s_last_error());
    s2s_trainer_free(tc);
    cr_assert_eq(differing(wa, na, c), 0, "weights differ after resuming at a cycle's end");
    cr_assert(exists(w.t.dir, "cb.snap-2.safetensors") && !exists(w.t.dir, "cb.snap-1.safetensors"),
              "the resumed run writes only the second cycle's snapshot");
    free(wa);
    s2s_model_free(a), s2s_model_free(b), s2s_model_free(c);
    world_free(&w);
}

/* LINEAR resumes exactly (its progress is in the checkpoint); a checkpoint of trainer-state
 * version 1 (before the schedule existed) still resumes; an unknown version is refused. */
Test(trainer, linear_schedule_resumes_bit_identical_and_old_state_loads, .timeout = 120)
{
    world w;
    world_make(&w);
    s2s_model *a = toy_model(&w), *b = toy_model(&w), *c = toy_model(&w);
    s2s_trainer *ta = NULL, *tb = NULL, *tc = NULL;
    s2s_trainer_options oa = toy_options(&w, "la", 30), ob = toy_options(&w, "lb", 30);
    oa.schedule = ob.schedule = S2S_LR_LINEAR;
    cr_assert_eq(s2s_trainer_create(a, w.t.tok, w.t.tok, w.t.train, w.t.valid, &oa, &ta), S2S_OK, "%s",
                 s2s_last_error());
    cr_assert_eq(s2s_trainer_run(ta), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_trainer_create(b, w.t.tok, w.t.tok, w.t.train, w.t.valid, &ob, &tb), S2S_OK);
    cr_assert_eq(s2s_trainer_steps(tb, 20), S2S_OK, "%s", s2s_last_error()); /* stopped at 20 of 30 */
    s2s_trainer_free(tb);
    char ck[256];
    snprintf(ck, sizeof ck, "%s/lb.ckpt-20.safetensors", w.t.dir);
    cr_assert_eq(s2s_trainer_create(c, w.t.tok, w.t.tok, w.t.train, w.t.valid, &ob, &tc), S2S_OK);
    cr_assert_eq(s2s_trainer_resume(tc, ck), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_trainer_run(tc), S2S_OK, "%s", s2s_last_error());
    size_t na;
    float *wa = tu_weights(a, &na);
    cr_assert_eq(differing(wa, na, c), 0, "weights differ after resuming a linear schedule");
    s2s_trainer_free(tc);
    /* version 1 resumes: its progress is recomputed from the steps, the same run again */
    set_state_version(ck, 1);
    cr_assert_eq(s2s_trainer_create(c, w.t.tok, w.t.tok, w.t.train, w.t.valid, &ob, &tc), S2S_OK);
    cr_assert_eq(s2s_trainer_resume(tc, ck), S2S_OK, "version 1: %s", s2s_last_error());
    cr_assert_eq(s2s_trainer_run(tc), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(differing(wa, na, c), 0, "weights differ after resuming a version-1 state");
    free(wa);
    s2s_trainer_free(tc);
    snprintf(ck, sizeof ck, "%s/la.ckpt-30.safetensors", w.t.dir);
    set_state_version(ck, 9);
    cr_assert_eq(s2s_trainer_create(c, w.t.tok, w.t.tok, w.t.train, w.t.valid, &ob, &tc), S2S_OK);
    cr_assert_eq(s2s_trainer_resume(tc, ck), S2S_ERR_FORMAT);
    cr_assert(strstr(s2s_last_error(), "no trainer state of this version"), "%s", s2s_last_error());
    s2s_trainer_free(tc);
    s2s_trainer_free(ta);
    s2s_model_free(a), s2s_model_free(b), s2s_model_free(c);
    world_free(&w);
}
