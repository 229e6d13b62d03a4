/* test_comm.c - what data-parallel training rests on, in one process (the multi-process cases
 * run under mpirun in tests/mpi/): shards of a batch, with the whole batch's token count and
 * dropout masks, give gradients that add up to the whole batch's; the local communicator; the
 * launcher's environment; clear refusals. CPU only. */
#include "model.h"
#include "model_util.h"
#include "test_util.h"
#include <string.h>

static s2s_context *cpu_ctx(void)
{
    s2s_context_options o = s2s_context_options_default();
    o.device = S2S_DEVICE_CPU, o.seed = 9, o.threads = 1;
    s2s_context *ctx = NULL;
    cr_assert_eq(s2s_context_create(&o, &ctx), S2S_OK);
    return ctx;
}

/* A batch of B rows of mixed lengths over a vocabulary of V. */
typedef struct rows {
    int32_t src[8 * 9], src_len[8], tgt[8 * 7], tgt_len[8];
    s2s_batch b;
} rows;

static void make_rows(rows *r, int B, int V, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    for (int b = 0; b < B; b++) {
        r->src_len[b] = 1 + (int)(tu_next(&seed) % 9);
        r->tgt_len[b] = (int)(tu_next(&seed) % 7);
        for (int i = 0; i < r->src_len[b]; i++)
            r->src[b * 9 + i] = 4 + (int)(tu_next(&seed) % (uint64_t)(V - 4));
        for (int i = 0; i < r->tgt_len[b]; i++)
            r->tgt[b * 7 + i] = 4 + (int)(tu_next(&seed) % (uint64_t)(V - 4));
    }
    r->b = (s2s_batch){B, 9, 7, r->src, r->src_len, r->tgt, r->tgt_len};
}

static s2s_batch shard(const rows *r, int r0, int r1)
{
    return (s2s_batch){r1 - r0, 9, 7, r->src + r0 * 9, r->src_len + r0, r->tgt + r0 * 7, r->tgt_len + r0};
}

/* For several model shapes: the gradient of the whole batch = the sum of its shards' gradients
 * (each normalised by the whole batch's tokens, each drawing the whole batch's dropout masks),
 * within 1e-5 relative + 1e-7 (the shards' weight-gradient GEMMs add rows in another order);
 * without the shard description the masks differ and so does the sum. */
Test(comm, shard_gradients_add_up_to_the_whole_batch)
{
    s2s_context *ctx = cpu_ctx();
    struct {
        int bidir, att, layers;
        s2s_cell cell;
    } shapes[] = {{0, S2S_ATTN_GENERAL, 2, S2S_CELL_LSTM}, {1, S2S_ATTN_DOT, 2, S2S_CELL_GRU},
                  {0, S2S_ATTN_NONE, 1, S2S_CELL_RNN_TANH}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        s2s_model_config c = s2s_model_config_default();
        c.hidden = 16, c.embed = 8, c.dropout = 0.4f, c.src_vocab = c.tgt_vocab = 30;
        c.bidirectional = shapes[k].bidir, c.attention = shapes[k].att, c.layers = shapes[k].layers;
        c.cell = shapes[k].cell;
        s2s_model *m = NULL;
        cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK, "%s", s2s_last_error());
        rows r;
        make_rows(&r, 7, 30, 77 + k);
        size_t n = m->params.total;
        float *whole = malloc(n * sizeof(float)), *sum = calloc(n, sizeof(float));
        s2s_loss_options lo = s2s_loss_options_default();
        lo.step = 12, lo.label_smoothing = 0.1f, lo.word_dropout = 0.2f; /* shards draw the batch's words too */
        float loss = 0, l;
        int ntok = 0, nt;
        cr_assert_eq(s2s_model_forward_backward(m, &r.b, &lo, &loss, &ntok), S2S_OK, "%s", s2s_last_error());
        memcpy(whole, m->params.grad, n * sizeof(float));
        const int cut[3] = {0, 3, 7};
        double loss_sum = 0;
        for (int s = 0; s < 2; s++) {
            s2s_batch sb = shard(&r, cut[s], cut[s + 1]);
            lo.norm_tokens = ntok, lo.shard_rows = 7, lo.shard_row0 = cut[s];
            cr_assert_eq(s2s_model_forward_backward(m, &sb, &lo, &l, &nt), S2S_OK, "%s", s2s_last_error());
            loss_sum += (double)l * nt;
            for (size_t i = 0; i < n; i++)
                sum[i] += m->params.grad[i];
        }
        cr_assert(fabs(loss_sum - (double)loss * ntok) <= 1e-5 * loss * ntok, "shape %zu: loss sums %.7g vs %.7g", k,
                  loss_sum, (double)loss * ntok);
        size_t bad = 0, worst_at = 0;
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)sum[i] - whole[i]), tol = 1e-5 * fabs((double)whole[i]) + 1e-7;
            bad += d > tol;
            if (d / tol > worst)
                worst = d / tol, worst_at = i;
        }
        cr_assert_eq(bad, 0, "shape %zu: %zu gradients differ; worst at %zu: %.9g vs %.9g", k, bad, worst_at,
                     sum[worst_at], whole[worst_at]);
        /* the same shards without the shard description draw other masks: the sum differs */
        memset(sum, 0, n * sizeof(float));
        for (int s = 0; s < 2; s++) {
            s2s_batch sb = shard(&r, cut[s], cut[s + 1]);
            lo.norm_tokens = ntok, lo.shard_rows = 0, lo.shard_row0 = 0;
            cr_assert_eq(s2s_model_forward_backward(m, &sb, &lo, &l, &nt), S2S_OK);
            for (size_t i = 0; i < n; i++)
                sum[i] += m->params.grad[i];
        }
        bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += fabs((double)sum[i] - whole[i]) > 1e-5 * fabs((double)whole[i]) + 1e-7;
        cr_assert(bad > n / 100, "shape %zu: masks drawn per shard gave the whole batch's gradient (%zu differ)", k, bad);
        free(whole), free(sum);
        s2s_model_free(m);
    }
    s2s_context_free(ctx);
}

Test(comm, shard_options_out_of_range_are_refused)
{
    s2s_context *ctx = cpu_ctx();
    s2s_model_config c = s2s_model_config_default();
    c.hidden = 8, c.embed = 8, c.src_vocab = c.tgt_vocab = 30;
    s2s_model *m = NULL;
    cr_assert_eq(s2s_model_create(ctx, &c, &m), S2S_OK);
    rows r;
    make_rows(&r, 4, 30, 5);
    s2s_loss_options lo = s2s_loss_options_default();
    lo.shard_rows = 5, lo.shard_row0 = 2; /* rows 2..5 of 5: one too many */
    cr_assert_eq(s2s_model_forward_backward(m, &r.b, &lo, NULL, NULL), S2S_ERR_INVALID_ARG);
    cr_assert(strstr(s2s_last_error(), "does not fit"), "%s", s2s_last_error());
    lo.shard_rows = 0, lo.norm_tokens = -1;
    cr_assert_eq(s2s_model_forward_backward(m, &r.b, &lo, NULL, NULL), S2S_ERR_INVALID_ARG);
    s2s_model_free(m);
    s2s_context_free(ctx);
}

/* Not started by a launcher: AUTO is the local communicator, whose sums are the values. */
Test(comm, local_communicator_and_launcher_environment)
{
    s2s_context *ctx = cpu_ctx();
    s2s_comm *comm = NULL;
    cr_assert_eq(s2s_comm_create(ctx, NULL, &comm), S2S_OK, "%s", s2s_last_error());
    cr_assert_str_eq(s2s_comm_name(comm), "local");
    cr_assert_eq(s2s_comm_size(comm), 1);
    cr_assert_eq(s2s_comm_rank(comm), 0);
    float v[3] = {1.5f, -2.0f, 3.25f};
    cr_assert_eq(s2s_comm_allreduce(comm, v, 3), S2S_OK);
    cr_assert(v[0] == 1.5f && v[1] == -2.0f && v[2] == 3.25f);
    s2s_comm_abort(comm, 1); /* returns for a local communicator */
    s2s_comm_free(comm);
    /* what mpirun (Open MPI) and srun (Slurm) tell a process */
    int rank = -1, local = -1;
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1), setenv("OMPI_COMM_WORLD_RANK", "3", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    cr_assert_eq(s2s_comm_launcher(&rank, &local), 4);
    cr_assert(rank == 3 && local == 1, "rank %d local %d", rank, local);
    unsetenv("OMPI_COMM_WORLD_SIZE"), unsetenv("OMPI_COMM_WORLD_RANK"), unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
    setenv("SLURM_NTASKS", "8", 1), setenv("SLURM_PROCID", "5", 1), setenv("SLURM_LOCALID", "2", 1);
    cr_assert_eq(s2s_comm_launcher(&rank, &local), 8);
    cr_assert(rank == 5 && local == 2, "rank %d local %d", rank, local);
    unsetenv("SLURM_NTASKS"), unsetenv("SLURM_PROCID"), unsetenv("SLURM_LOCALID");
    /* NCCL needs GPUs; MPI on a GPU context is refused likewise (tested where there is one) */
    s2s_comm_options o = s2s_comm_options_default();
    o.kind = S2S_COMM_NCCL;
    cr_assert_neq(s2s_comm_create(ctx, &o, &comm), S2S_OK);
    cr_assert(strstr(s2s_last_error(), "NCCL"), "%s", s2s_last_error());
    o.kind = S2S_COMM_LOCAL, o.timeout_s = 0;
    cr_assert_eq(s2s_comm_create(ctx, &o, &comm), S2S_ERR_INVALID_ARG);
    s2s_context_free(ctx);
}

/* A trainer given the local communicator trains exactly as one without (bit-identical). */
Test(comm, trainer_with_a_local_communicator_is_unchanged)
{
    s2s_context *ctx = cpu_ctx();
    s2s_comm *comm = NULL;
    cr_assert_eq(s2s_comm_create(ctx, NULL, &comm), S2S_OK);
    s2s_corpus *c = NULL;
    cr_assert_eq(s2s_corpus_create(&c), S2S_OK);
    static const char *pairs[][2] = {{"red cat", "cat red"}, {"a big dog", "dog big a"}, {"the bird", "bird the"},
                                     {"blue sees green", "green sees blue"}};
    for (int i = 0; i < 40; i++)
        cr_assert_eq(s2s_corpus_add(c, pairs[i % 4][0], pairs[i % 4][1]), S2S_OK);
    const char *text[8];
    for (int i = 0; i < 4; i++)
        text[2 * i] = pairs[i][0], text[2 * i + 1] = pairs[i][1];
    s2s_tokenizer_options to = s2s_tokenizer_options_default();
    to.vocab_size = 20, to.threads = 1;
    s2s_tokenizer *tok = NULL;
    cr_assert_eq(s2s_tokenizer_train(text, 8, &to, &tok), S2S_OK, "%s", s2s_last_error());
    s2s_model_config mc = s2s_model_config_default();
    mc.hidden = 16, mc.embed = 8, mc.src_vocab = mc.tgt_vocab = s2s_tokenizer_vocab_size(tok);
    s2s_model *m[2];
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(s2s_model_create(ctx, &mc, &m[k]), S2S_OK);
        s2s_trainer_options o = s2s_trainer_options_default();
        o.batch_tokens = 40, o.max_len = 20, o.max_steps = 5, o.valid_every = 0, o.report_every = 1, o.comm = k ? comm : NULL;
        s2s_trainer *t = NULL;
        cr_assert_eq(s2s_trainer_create(m[k], tok, tok, c, NULL, &o, &t), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_trainer_run(t), S2S_OK, "%s", s2s_last_error());
        cr_assert_eq(s2s_trainer_get_progress(t).world_size, 1);
        s2s_trainer_free(t);
    }
    cr_assert_eq(memcmp(m[0]->params.data, m[1]->params.data, m[0]->params.total * sizeof(float)), 0);
    s2s_model_free(m[0]), s2s_model_free(m[1]);
    s2s_tokenizer_free(tok);
    s2s_corpus_free(c);
    s2s_comm_free(comm);
    s2s_context_free(ctx);
}
