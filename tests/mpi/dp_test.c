/* dp_test.c - data-parallel training under `mpirun -np N` (tests/mpi/run.sh starts each case):
 *
 *   equal    N ranks with 1/N of each batch equal one process with the whole batch: the loss
 *            and every weight after several Adam steps with dropout on, within TOL; the
 *            ranks' weights bit-identical after every step (hashes gathered). "equal tied":
 *            the same with all embeddings tied (the one tensor's bucket reduced only after
 *            the encoder's backward has added its part).
 *   zero     ZeRO-1 (sharded Adam) equals plain data parallel (the same tolerance); run at 3
 *            ranks too, and ("zero odd") at 2 ranks with an odd parameter count, where the
 *            parameter block does not divide by the world size.
 *   resume   phase "a": K steps with a checkpoint at K/2, the final weights written; phase
 *            "b" (another world size) resumes from that checkpoint and must end at the same
 *            weights.
 *   mismatch rank 1 with another learning rate: every rank refuses at start-up naming rank 1.
 *   hang     rank 1 stops answering at step 2: rank 0 fails within the timeout naming rank 1
 *            and ends the job (run.sh checks the message, the exit status and the time).
 *   kill     rank 1 is killed at step 2: the job ends with an error (run.sh checks).
 *   nccl     on a GPU (one per rank; skipped without one, exit status 77): the NCCL
 *            communicator's collectives on device memory (sum, bucketed sums, reduce-scatter,
 *            all-gather, broadcast, host sums) against their definitions, then training
 *            through it equal to training without a communicator (TOL_GPU).
 *
 * Every rank computes its own one-process reference where one is needed. CPU, 1 thread (but
 * nccl). */
#include "mpi_check.h"
#include "comm.h"
#include "model_util.h"
#include "toy_task.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define STEPS 6
/* numpy.allclose's test: |a - b| <= TOL |b| + ATOL (the losses: TOL relative alone). ATOL
 * covers weights near zero, where summing the shards' gradients in another order moves Adam's
 * step by ~1e-7 (measured: 9.8e-8 at most after 6 steps on 2 ranks). */
#define TOL 1e-5
#define ATOL 1e-6
/* nccl: the reference and the NCCL run train on one GPU with the same kernels; at one rank the
 * sums leave the gradients unchanged, so the difference is that of cuBLAS's and atomics' orders */
#define TOL_GPU 1e-4

typedef struct env {
    toy_world t;
    s2s_context *ctx;
    s2s_comm *comm;
    int rank, size;
    s2s_tie tie; /* "equal tied": one embedding for both sides and the output projection */
    int odd;     /* "zero odd": hidden 31 (linear_in's 31 x 31): an odd parameter count */
} env;

static s2s_model *make_model(env *e)
{
    s2s_model_config c = s2s_model_config_default();
    c.hidden = e->odd ? 31 : 32, c.embed = e->tie ? 32 : e->odd ? 15 : 16, c.dropout = 0.3f, c.layers = 2;
    c.tie_embeddings = e->tie;
    c.src_vocab = c.tgt_vocab = s2s_tokenizer_vocab_size(e->t.tok);
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(e->ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
    return m;
}

static s2s_trainer *make_trainer(env *e, s2s_model *m, s2s_comm *comm, int zero, long steps, const char *prefix)
{
    s2s_trainer_options o = s2s_trainer_options_default();
    o.batch_tokens = 300, o.warmup_steps = 2, o.lr = 3e-3f, o.report_every = 1, o.valid_every = 0;
    o.max_steps = steps, o.valid_max = 150, o.comm = comm, o.shard_optimizer = zero, o.out_prefix = prefix;
    o.clip_norm = 1.0f; /* clipping active: the global norm matters */
    s2s_trainer *t = NULL;
    cr_assert_eq(s2s_trainer_create(m, e->t.tok, e->t.tok, e->t.train, e->t.valid, &o, &t), S2S_OK, "%s",
                 s2s_last_error());
    return t;
}

static uint64_t hash_weights(const s2s_model *m)
{
    size_t n;
    float *w = tu_weights(m, &n);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &w[i], 4);
        h = (h ^ b) * 1099511628211ull;
    }
    free(w);
    return h;
}

static void same_on_every_rank(env *e, const s2s_model *m, long step)
{
    uint64_t h = hash_weights(m), all[64];
    cr_assert(e->size <= 64);
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (int r = 1; r < e->size; r++)
        cr_assert(all[r] == all[0], "after step %ld rank %d's weights differ from rank 0's", step, r);
}

/* Trains n steps one at a time, checking after each that every rank holds the same weights. */
static void steps_checked(env *e, s2s_trainer *t, s2s_model *m, long n)
{
    for (long i = 0; i < n; i++) {
        cr_assert_eq(s2s_trainer_steps(t, 1), S2S_OK, "%s", s2s_last_error());
        same_on_every_rank(e, m, s2s_trainer_get_progress(t).step);
    }
}

static void compare(const char *what, const float *a, const float *b, size_t n)
{
    double worst = 0, absmax = 0; /* worst: |a - b| / (TOL |b| + ATOL), at most 1 to pass */
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), r = d / (TOL * fabs((double)b[i]) + ATOL);
        absmax = d > absmax ? d : absmax;
        if (r > worst || r != r)
            worst = r, at = i;
    }
    cr_assert(worst <= 1.0, "%s: element %zu is %.9g, expected %.9g (beyond %g relative + %g)", what, at, a[at], b[at],
              TOL, ATOL);
    if (mc_rank() == 0)
        printf("%s: %zu weights equal within %g relative + %g (largest difference %.3g)\n", what, n, TOL, ATOL,
               absmax);
}

static void compare_models(const char *what, const s2s_model *a, const s2s_model *b)
{
    size_t n, n2;
    float *x = tu_weights(a, &n), *y = tu_weights(b, &n2);
    cr_assert_eq(n, n2);
    compare(what, x, y, n);
    free(x), free(y);
}

static void case_equal(env *e)
{
    s2s_model *ref = make_model(e), *dp = make_model(e);
    s2s_trainer *tr = make_trainer(e, ref, NULL, 0, STEPS, NULL), *td = make_trainer(e, dp, e->comm, 0, STEPS, NULL);
    for (long s = 1; s <= STEPS; s++) {
        cr_assert_eq(s2s_trainer_steps(tr, 1), S2S_OK, "%s", s2s_last_error());
        steps_checked(e, td, dp, 1);
        float lr = s2s_trainer_get_progress(tr).loss, ld = s2s_trainer_get_progress(td).loss;
        cr_assert(fabsf(lr - ld) <= TOL * fabsf(lr), "step %ld: loss %.9g at %d ranks, %.9g alone", s, ld, e->size, lr);
        if (e->rank == 0)
            printf("step %ld: loss %.7f alone, %.7f at %d ranks\n", s, lr, ld, e->size);
    }
    compare_models("data parallel vs one process", dp, ref);
    /* validation split over the ranks (batches r, r+N, ...; sums added) = one process's, on the
     * same weights: the same loss within TOL, the same BLEU (greedy outputs are the same) */
    tu_copy_weights(dp, ref);
    float l1, p1, b1, l2, p2, b2;
    cr_assert_eq(s2s_trainer_validate(tr, &l1, &p1, &b1), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(s2s_trainer_validate(td, &l2, &p2, &b2), S2S_OK, "%s", s2s_last_error());
    cr_assert(fabsf(l1 - l2) <= TOL * l1 && b1 == b2, "validation: loss %.9g BLEU %.4f at %d ranks, %.9g %.4f alone", l2,
              b2, e->size, l1, b1);
    if (e->rank == 0)
        printf("validation: loss %.7f BLEU %.2f alone, %.7f %.2f at %d ranks\n", l1, b1, l2, b2, e->size);
    s2s_trainer_free(tr), s2s_trainer_free(td);
    s2s_model_free(ref), s2s_model_free(dp);
}

static void case_zero(env *e)
{
    s2s_model *plain = make_model(e), *zero = make_model(e);
    size_t total = s2s_model_param_numel(zero);
    cr_assert(!e->odd || total % 2 == 1, "an odd parameter count was asked for, the model has %zu", total);
    if (e->rank == 0)
        printf("%zu parameters over %d ranks (remainder %zu)\n", total, e->size, total % (size_t)e->size);
    s2s_trainer *tp = make_trainer(e, plain, e->comm, 0, STEPS, NULL), *tz = make_trainer(e, zero, e->comm, 1, STEPS, NULL);
    steps_checked(e, tp, plain, STEPS);
    steps_checked(e, tz, zero, STEPS);
    compare_models("ZeRO-1 vs plain data parallel", zero, plain);
    s2s_trainer_free(tp), s2s_trainer_free(tz);
    s2s_model_free(plain), s2s_model_free(zero);
}

/* dir/ckpt.safetensors at step STEPS/2 and dir/final.bin (the weights after STEPS) from phase a. */
static void case_resume(env *e, const char *phase, const char *dir, int zero)
{
    char ckpt[512], fin[512];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", dir);
    snprintf(fin, sizeof fin, "%s/final.bin", dir);
    s2s_model *m = make_model(e);
    s2s_trainer *t = make_trainer(e, m, e->comm, zero, STEPS, NULL);
    size_t n;
    if (!strcmp(phase, "a")) {
        steps_checked(e, t, m, STEPS / 2);
        cr_assert_eq(s2s_trainer_checkpoint(t, ckpt), S2S_OK, "%s", s2s_last_error());
        steps_checked(e, t, m, STEPS - STEPS / 2);
        float *w = tu_weights(m, &n);
        if (e->rank == 0) {
            FILE *f = fopen(fin, "wb");
            cr_assert(f && fwrite(w, sizeof(float), n, f) == n && fclose(f) == 0, "writing %s", fin);
        }
        free(w);
    } else {
        MPI_Barrier(MPI_COMM_WORLD);
        cr_assert_eq(s2s_trainer_resume(t, ckpt), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_trainer_get_progress(t).step, 0); /* nothing reported yet */
        steps_checked(e, t, m, STEPS - STEPS / 2);
        float *w = tu_weights(m, &n), *want = malloc(n * sizeof(float));
        FILE *f = fopen(fin, "rb");
        cr_assert(f && fread(want, sizeof(float), n, f) == n, "reading %s", fin);
        fclose(f);
        char what[128];
        snprintf(what, sizeof what, "resumed at %d rank%s vs the uninterrupted run", e->size, e->size > 1 ? "s" : "");
        compare(what, w, want, n);
        free(w), free(want);
    }
    s2s_trainer_free(t);
    s2s_model_free(m);
}

static void case_mismatch(env *e)
{
    s2s_model *m = make_model(e);
    s2s_trainer_options o = s2s_trainer_options_default();
    o.batch_tokens = 300, o.max_steps = 2, o.comm = e->comm;
    o.lr = e->rank == 1 ? 2e-3f : 1e-3f;
    s2s_trainer *t = NULL;
    s2s_status st = s2s_trainer_create(m, e->t.tok, e->t.tok, e->t.train, e->t.valid, &o, &t);
    cr_assert_eq(st, S2S_ERR_COMM, "status %d", (int)st);
    cr_assert(strstr(s2s_last_error(), "rank 1's trainer options or seed differs"), "message: %s", s2s_last_error());
    if (e->rank == 0)
        printf("refused: %s\n", s2s_last_error());
    s2s_model_free(m);
}

/* rank 1 stops answering (hang) or dies (kill) before step 3; rank 0's failure ends the job. */
static void case_fault(env *e, int kill_it)
{
    s2s_model *m = make_model(e);
    s2s_trainer *t = make_trainer(e, m, e->comm, 0, 100, NULL);
    for (long s = 0; s < 100; s++) {
        if (e->rank == 1 && s == 2) {
            if (kill_it)
                raise(SIGKILL);
            sleep(120);
        }
        s2s_status st = s2s_trainer_steps(t, 1);
        if (st != S2S_OK) {
            fprintf(stderr, "rank %d: %s\n", e->rank, s2s_last_error());
            s2s_comm_abort(e->comm, 2);
        }
    }
    cr_assert(0, "the other rank never failed");
}

/* n floats of device memory holding v(i) */
static float *dev_floats(env *e, size_t n, float (*v)(env *, size_t))
{
    s2s_backend *be = e->ctx->be;
    float *h = malloc(n * sizeof(float)), *d = NULL;
    for (size_t i = 0; i < n; i++)
        h[i] = v(e, i);
    cr_assert_eq(be->ops->alloc(be, n * sizeof(float), (void **)&d), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(be->ops->to_device(be, d, h, n * sizeof(float)), S2S_OK, "%s", s2s_last_error());
    free(h);
    return d;
}

/* d[i] == want(i) for every i (exact: small integers sum exactly in fp32) */
static void expect_floats(env *e, const char *what, const float *d, size_t n, float (*want)(env *, size_t))
{
    float *h = malloc(n * sizeof(float));
    cr_assert_eq(e->ctx->be->ops->to_host(e->ctx->be, h, d, n * sizeof(float)), S2S_OK, "%s", s2s_last_error());
    for (size_t i = 0; i < n; i++)
        cr_assert(h[i] == want(e, i), "%s: element %zu is %g, expected %g", what, i, h[i], want(e, i));
    free(h);
}

static float mine(env *e, size_t i) { return (float)(i % 1000) + e->rank; }
/* the sum over ranks of mine(i) */
static float summed(env *e, size_t i) { return (float)(e->size * (i % 1000)) + e->size * (e->size - 1) / 2.0f; }
static float root1(env *e, size_t i) { return (float)(i % 1000) + (e->size > 1); } /* rank 1's (or 0's) */

static void case_nccl(env *e)
{
    s2s_comm *c = e->comm;
    s2s_backend *be = e->ctx->be;
    enum { N = 3 << 20 }; /* 12 MB: NCCL's large-message path */
    float *a = dev_floats(e, N, mine);
    cr_assert_eq(c->ops->allreduce(c, a, N), S2S_OK, "%s", s2s_last_error());
    expect_floats(e, "allreduce", a, N, summed);
    be->ops->release(be, a);
    /* buckets as backward starts them: several in flight, then one wait */
    float *b = dev_floats(e, N, mine);
    size_t cut[] = {0, 1000, 1000 + (1 << 20), N};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(c->ops->start_allreduce(c, b + cut[i], cut[i + 1] - cut[i]), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(c->ops->wait_all(c), S2S_OK, "%s", s2s_last_error());
    expect_floats(e, "bucketed allreduce", b, N, summed);
    be->ops->release(be, b);
    /* reduce-scatter: this rank's chunk of the sums; all-gather puts the chunks back in order */
    size_t chunk = N / (size_t)e->size;
    float *in = dev_floats(e, chunk * e->size, mine), *out = NULL, *all = NULL;
    cr_assert_eq(be->ops->alloc(be, chunk * sizeof(float), (void **)&out), S2S_OK);
    cr_assert_eq(be->ops->alloc(be, chunk * e->size * sizeof(float), (void **)&all), S2S_OK);
    cr_assert_eq(c->ops->reduce_scatter(c, in, out, chunk), S2S_OK, "%s", s2s_last_error());
    cr_assert_eq(c->ops->allgather(c, out, all, chunk), S2S_OK, "%s", s2s_last_error());
    expect_floats(e, "reduce-scatter then all-gather", all, chunk * e->size, summed);
    be->ops->release(be, in), be->ops->release(be, out), be->ops->release(be, all);
    float *r = dev_floats(e, 4096, mine);
    cr_assert_eq(c->ops->broadcast(c, r, 4096, e->size > 1), S2S_OK, "%s", s2s_last_error());
    expect_floats(e, "broadcast", r, 4096, root1);
    be->ops->release(be, r);
    double v[2] = {1.0, e->rank};
    cr_assert_eq(c->ops->sum_host(c, v, 2), S2S_OK, "%s", s2s_last_error());
    cr_assert(v[0] == e->size && v[1] == e->size * (e->size - 1) / 2.0, "sum_host: %g %g", v[0], v[1]);
    if (e->rank == 0)
        printf("nccl: allreduce, buckets, reduce-scatter, all-gather, broadcast, host sums on %d rank%s: exact\n",
               e->size, e->size > 1 ? "s" : "");
    /* training through NCCL (plain, then ZeRO-1) against no communicator on the same GPU */
    for (int zero = 0; zero < 2; zero++) {
        s2s_model *ref = make_model(e), *dp = make_model(e);
        s2s_trainer *tr = make_trainer(e, ref, NULL, 0, STEPS, NULL), *td = make_trainer(e, dp, c, zero, STEPS, NULL);
        for (long s = 1; s <= STEPS; s++) {
            cr_assert_eq(s2s_trainer_steps(tr, 1), S2S_OK, "%s", s2s_last_error());
            steps_checked(e, td, dp, 1);
            float lr = s2s_trainer_get_progress(tr).loss, ld = s2s_trainer_get_progress(td).loss;
            cr_assert(fabsf(lr - ld) <= TOL_GPU * fabsf(lr), "step %ld: loss %.9g through NCCL, %.9g alone", s, ld, lr);
        }
        size_t n, n2;
        float *x = tu_weights(dp, &n), *y = tu_weights(ref, &n2);
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)x[i] - y[i]) / (TOL_GPU * fabs((double)y[i]) + 10 * ATOL);
            worst = d > worst || d != d ? d : worst;
        }
        cr_assert(n == n2 && worst <= 1.0, "%s through NCCL vs alone: worst |a-b| / (%g |b| + %g) = %g",
                  zero ? "ZeRO-1" : "plain", TOL_GPU, 10 * ATOL, worst);
        if (e->rank == 0)
            printf("nccl: %d steps %s through NCCL equal training alone: %zu weights within %g relative + %g\n",
                   STEPS, zero ? "with ZeRO-1" : "plain", n, TOL_GPU, 10 * ATOL);
        free(x), free(y);
        s2s_trainer_free(tr), s2s_trainer_free(td);
        s2s_model_free(ref), s2s_model_free(dp);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: dp_test equal|zero|resume a|b DIR [zero]|mismatch|hang|kill|nccl\n");
        return 2;
    }
    env e;
    memset(&e, 0, sizeof e);
    int gpu = !strcmp(argv[1], "nccl"), local_rank = 0;
    s2s_comm_launcher(NULL, &local_rank);
    s2s_context_options co = s2s_context_options_default();
    co.device = gpu ? S2S_DEVICE_CUDA : S2S_DEVICE_CPU, co.seed = 5, co.threads = 1;
    co.cuda_device = local_rank;
    s2s_status cst = s2s_context_create(&co, &e.ctx);
    if (gpu && (cst == S2S_ERR_NO_DEVICE || cst == S2S_ERR_UNSUPPORTED)) {
        printf("skipped: no GPU (%s)\n", s2s_last_error());
        return 77;
    }
    if (cst != S2S_OK) {
        fprintf(stderr, "%s\n", s2s_last_error());
        return 1;
    }
    s2s_comm_options o = s2s_comm_options_default();
    o.kind = gpu ? S2S_COMM_NCCL : S2S_COMM_MPI;
    o.timeout_s = !strcmp(argv[1], "hang") ? 3.0 : 60.0;
    if (s2s_comm_create(e.ctx, &o, &e.comm) != S2S_OK) {
        fprintf(stderr, "%s\n", s2s_last_error());
        return 1;
    }
    e.rank = s2s_comm_rank(e.comm), e.size = s2s_comm_size(e.comm);
    toy_world_make(&e.t, 1, 300, 150, "dp"); /* validation: several batches */
    e.tie = argc >= 3 && !strcmp(argv[2], "tied") ? S2S_TIE_ALL : S2S_TIE_NONE;
    e.odd = argc >= 3 && !strcmp(argv[2], "odd");
    if (!strcmp(argv[1], "equal"))
        case_equal(&e);
    else if (!strcmp(argv[1], "zero"))
        case_zero(&e);
    else if (!strcmp(argv[1], "resume") && argc >= 4)
        case_resume(&e, argv[2], argv[3], argc >= 5 && !strcmp(argv[4], "zero"));
    else if (!strcmp(argv[1], "mismatch"))
        case_mismatch(&e);
    else if (!strcmp(argv[1], "hang") || !strcmp(argv[1], "kill"))
        case_fault(&e, !strcmp(argv[1], "kill"));
    else if (gpu)
        case_nccl(&e);
    else
        cr_assert(0, "unknown case %s", argv[1]);
    toy_world_free(&e.t);
    s2s_comm_free(e.comm);
    s2s_context_free(e.ctx);
    return 0;
}
