/* test_killresume.c - a training run killed with SIGKILL at a random moment resumes from its
 * newest surviving checkpoint to the same weights, bit for bit, as a run never interrupted;
 * and every file the killed run left is whole (checkpoints are written atomically). CPU only.
 *
 * A forked child trains 40 steps (checkpoints every 5) through the public API; the parent
 * waits for the first checkpoint, sleeps a random time and kills it. The child's progress
 * callback sleeps a little per step (weights are not affected) so that the kill lands in the
 * middle of the run, checkpoint writes included, however fast the machine. The kill moment is
 * drawn from the seed printed on failure (S2S_TEST_SEED repeats it).
 *   ./build/tests/test_suite --filter killresume/sigkill_at_random_then_resume_is_bit_identical
 */
#include "seq2seq.h"
#include "test_util.h"
#include "toy_task.h"
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { STEPS = 40, VALID_EVERY = 5, STEP_SLEEP_US = 15000 };


/* What every run shares: data and tokenizer (made before the fork: no OpenMP or BLAS thread
 * has run yet, so the child starts clean) and the output directory. */
typedef toy_world world;

static void world_make(world *w) { toy_world_make(w, 11, 300, 20, "killresume"); }

static void world_free(world *w) { toy_world_free(w); }

/* One run: a context, a model and a trainer writing PREFIX = dir/name. NULL on failure (the
 * child cannot use cr_assert: it is not the test process). */
typedef struct run {
    s2s_context *ctx;
    s2s_model *m;
    s2s_trainer *t;
    char prefix[128];
} run;

static void run_free(run *r)
{
    s2s_trainer_free(r->t);
    s2s_model_free(r->m);
    s2s_context_free(r->ctx);
}

static void pause_per_step(const s2s_train_progress *p, void *user)
{
    (void)p, (void)user;
    usleep(STEP_SLEEP_US);
}

static s2s_status run_make(run *r, world *w, const char *name, int slow)
{
    memset(r, 0, sizeof *r);
    s2s_context_options co = s2s_context_options_default();
    co.device = S2S_DEVICE_CPU, co.seed = 5, co.threads = 1;
    s2s_status st = s2s_context_create(&co, &r->ctx);
    if (st != S2S_OK)
        return st;
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 24, c.embed = 16, c.dropout = 0.2f;
    c.src_vocab = c.tgt_vocab = s2s_tokenizer_vocab_size(w->tok);
    if ((st = s2s_model_create(r->ctx, &c, &r->m)) != S2S_OK)
        return st;
    s2s_trainer_options o = s2s_trainer_options_default();
    o.batch_tokens = 250, o.warmup_steps = 5, o.lr = 3e-3f, o.valid_every = VALID_EVERY, o.valid_max = 20;
    o.max_steps = STEPS, o.report_every = 1, o.keep_last = 3;
    snprintf(r->prefix, sizeof r->prefix, "%s/%s", w->dir, name);
    o.out_prefix = r->prefix;
    o.progress = slow ? pause_per_step : NULL;
    return s2s_trainer_create(r->m, w->tok, w->tok, w->train, w->valid, &o, &r->t);
}

/* The child: trains until killed (exit 0 if it ever finishes, 1 on an error). */
static void child_train(world *w)
{
    run r;
    s2s_status st = run_make(&r, w, "killed", 1);
    if (st == S2S_OK)
        st = s2s_trainer_run(r.t);
    if (st != S2S_OK)
        fprintf(stderr, "killresume child: %s\n", s2s_last_error());
    _exit(st == S2S_OK ? 0 : 1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Waits for path to appear (the child still running); 0 on timeout or child exit. */
static int wait_for_file(const char *path, pid_t child, double timeout_s)
{
    double t0 = now_s();
    while (now_s() - t0 < timeout_s) {
        if (access(path, F_OK) == 0)
            return 1;
        if (waitpid(child, NULL, WNOHANG) == child)
            return 0;
        usleep(2000);
    }
    return 0;
}

/* The checkpoint steps of PREFIX "killed" in dir, newest first; their count. Also counts
 * leftover temporary files (a write cut short by the kill). */
static int list_checkpoints(const char *dir, long *steps, int cap, int *temps)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    *temps = 0;
    for (struct dirent *e; (e = readdir(d));) {
        long s;
        char tail[32];
        if (strstr(e->d_name, ".tmp."))
            (*temps)++;
        else if (sscanf(e->d_name, "killed.ckpt-%ld.safetensor%31s", &s, tail) == 2 && !strcmp(tail, "s") && n < cap)
            steps[n++] = s;
    }
    closedir(d);
    for (int i = 0; i < n; i++) /* newest first */
        for (int j = i + 1; j < n; j++)
            if (steps[j] > steps[i]) {
                long x = steps[i];
                steps[i] = steps[j], steps[j] = x;
            }
    return n;
}

static void assert_file_whole(const char *path)
{
    static char report[16384];
    size_t len;
    s2s_status st = s2s_model_file_report(path, report, sizeof report, &len);
    cr_assert_eq(st, S2S_OK, "%s does not load after the kill (a torn file): %s\n%s", path, s2s_last_error(), report);
}

static float *all_weights(s2s_model *m, size_t *n)
{
    *n = s2s_model_param_numel(m);
    float *v = malloc(*n * sizeof(float)), *p = v;
    for (int i = 0; i < s2s_model_param_count(m); i++) {
        s2s_param_info info;
        s2s_model_param_info_at(m, i, &info);
        cr_assert_eq(s2s_model_param_get(m, info.name, p, info.numel), S2S_OK);
        p += info.numel;
    }
    return v;
}

/* Kills the child at a random moment after its first checkpoint; returns the delay used. */
static double kill_child_after_first_checkpoint(world *w, pid_t child, uint64_t seed)
{
    char first[256];
    snprintf(first, sizeof first, "%s/killed.ckpt-%d.safetensors", w->dir, VALID_EVERY);
    int appeared = wait_for_file(first, child, 60.0);
    if (!appeared)
        kill(child, SIGKILL);
    cr_assert(appeared, "the child made no first checkpoint %s", first);
    /* Uniform over most of the remaining run: at least STEPS - VALID_EVERY sleeps remain. */
    uint64_t s = seed;
    double span = 0.9 * (STEPS - VALID_EVERY) * STEP_SLEEP_US * 1e-6, delay = tu_uniform(&s, 0.0f, (float)span);
    usleep((useconds_t)(delay * 1e6));
    kill(child, SIGKILL);
    int status = 0;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the child was not killed mid-run (status 0x%x, delay %.3f s, seed %llu)", status, delay,
              (unsigned long long)seed);
    return delay;
}

Test(killresume, sigkill_at_random_then_resume_is_bit_identical, .timeout = 120)
{
    uint64_t seed = tu_seed();
    world w;
    world_make(&w);
    fflush(NULL);
    pid_t child = fork();
    cr_assert_neq(child, -1, "fork: %s", strerror(errno));
    if (child == 0)
        child_train(&w);
    double delay = kill_child_after_first_checkpoint(&w, child, seed);

    /* every file the killed run left is whole; the newest checkpoint is where to resume */
    long steps[64];
    int temps = 0, n = list_checkpoints(w.dir, steps, 64, &temps);
    cr_assert(n >= 1 && n <= 3, "%d checkpoints after the kill (keep_last 3)", n);
    char path[256];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/killed.ckpt-%ld.safetensors", w.dir, steps[i]);
        assert_file_whole(path);
    }
    snprintf(path, sizeof path, "%s/killed.best.safetensors", w.dir);
    if (access(path, F_OK) == 0)
        assert_file_whole(path);
    cr_log_info("killed %.3f s after the first checkpoint: newest checkpoint step %ld, %d left, %d temporary file(s) "
                "(seed %llu)", delay, steps[0], n, temps, (unsigned long long)seed);

    /* uninterrupted reference, then the resumed run into the killed run's prefix */
    run ref, res;
    cr_assert_eq(run_make(&ref, &w, "ref", 0), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_trainer_run(ref.t), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(run_make(&res, &w, "killed", 0), S2S_OK, "%s", s2s_last_error());
    snprintf(path, sizeof path, "%s/killed.ckpt-%ld.safetensors", w.dir, steps[0]);
    cr_assert_eq(s2s_trainer_resume(res.t, path), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_trainer_run(res.t), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_trainer_get_progress(res.t).step, STEPS);
    size_t na, nb;
    float *a = all_weights(ref.m, &na), *b = all_weights(res.m, &nb);
    cr_assert_eq(na, nb);
    size_t diff = 0, first = 0;
    for (size_t i = na; i-- > 0;)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            diff++, first = i;
    cr_assert_eq(diff, 0, "%zu of %zu weights differ after resuming from step %ld (first at %zu: %.9g vs %.9g; "
                 "seed %llu)", diff, na, steps[0], first, (double)a[first], (double)b[first], (unsigned long long)seed);
    free(a), free(b);
    run_free(&ref);
    run_free(&res);
    world_free(&w);
}
