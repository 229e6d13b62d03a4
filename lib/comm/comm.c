/* comm.c - s2s_comm's public calls, the choice of implementation, and the local (one process)
 * implementation: sums over one rank are the values themselves. */
#include "comm.h"
#include <stdlib.h>
#include <string.h>

S2S_API s2s_comm_options s2s_comm_options_default(void)
{
    s2s_comm_options o;
    memset(&o, 0, sizeof o);
    o.kind = S2S_COMM_AUTO;
    o.timeout_s = 300.0;
    return o;
}

/* ---- the launcher's environment ------------------------------------------------------------- */

static int env_int(const char *name, int *v)
{
    const char *s = getenv(name);
    char *end;
    if (!s || !*s)
        return 0;
    long x = strtol(s, &end, 10);
    if (*end || x < 0 || x > 1 << 24)
        return 0;
    *v = (int)x;
    return 1;
}

S2S_API int s2s_comm_launcher(int *rank, int *local_rank)
{
    /* Open MPI, MPICH/Hydra (PMI), PMIx, Slurm's srun */
    static const char *const names[][3] = {
        {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"},
        {"PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"},
        {"PMIX_SIZE", "PMIX_RANK", "PMIX_LOCAL_RANK"},
        {"SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"},
    };
    int size = 1, r = 0, lr = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int s;
        if (env_int(names[i][0], &s) && s >= 1) {
            size = s;
            env_int(names[i][1], &r);
            if (!env_int(names[i][2], &lr))
                lr = r;
            break;
        }
    }
    if (rank)
        *rank = r;
    if (local_rank)
        *local_rank = lr;
    return size;
}

/* ---- local: one rank ------------------------------------------------------------------------ */

static s2s_status local_allreduce(s2s_comm *c, float *buf, size_t n) { return S2S_OK; }
static s2s_status local_wait_all(s2s_comm *c) { return S2S_OK; }
static s2s_status local_sum_host(s2s_comm *c, double *v, int n) { return S2S_OK; }
static s2s_status local_arrive(s2s_comm *c, long step) { return S2S_OK; }
static void local_abort(s2s_comm *c, int code) {}
static void local_close(s2s_comm *c) {}

static s2s_status local_gather_host(s2s_comm *c, const void *mine, void *all, size_t bytes)
{
    memmove(all, mine, bytes);
    return S2S_OK;
}

static s2s_status local_broadcast(s2s_comm *c, float *buf, size_t n, int root) { return S2S_OK; }

static s2s_status local_copy(s2s_comm *c, const float *in, float *out, size_t chunk)
{
    s2s_backend *be = c->ctx->be;
    return in == out || chunk == 0 ? S2S_OK : be->ops->copy(be, out, in, chunk * sizeof(float));
}

static const s2s_comm_ops local_ops = {
    .allreduce = local_allreduce,
    .start_allreduce = local_allreduce,
    .wait_all = local_wait_all,
    .sum_host = local_sum_host,
    .gather_host = local_gather_host,
    .broadcast = local_broadcast,
    .reduce_scatter = local_copy,
    .allgather = local_copy,
    .arrive = local_arrive,
    .abort = local_abort,
    .close = local_close,
};

/* ---- public calls --------------------------------------------------------------------------- */

S2S_API s2s_status s2s_comm_create(s2s_context *ctx, const s2s_comm_options *opts, s2s_comm **out)
{
    if (!ctx || !out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_comm_create: context and out must not be NULL");
    *out = NULL;
    s2s_comm_options o = opts ? *opts : s2s_comm_options_default();
    if (!(o.timeout_s > 0) || o.kind < S2S_COMM_AUTO || o.kind > S2S_COMM_NCCL)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_comm_create: kind %d (0..3) and timeout_s %g (> 0)", (int)o.kind,
                        o.timeout_s);
    s2s_comm_kind kind = o.kind;
    if (kind == S2S_COMM_MPI && s2s_context_device(ctx) == S2S_DEVICE_CUDA)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "the MPI communicator sums host memory; a CUDA context needs NCCL "
                                             "(comm kind NCCL, or AUTO)");
    if (kind == S2S_COMM_AUTO)
        kind = s2s_comm_launcher(NULL, NULL) <= 1         ? S2S_COMM_LOCAL
               : s2s_context_device(ctx) == S2S_DEVICE_CUDA ? S2S_COMM_NCCL
                                                            : S2S_COMM_MPI;
    s2s_comm *c = s2s_host_calloc(1, sizeof *c, "the communicator");
    if (!c)
        return S2S_ERR_OUT_OF_MEMORY;
    c->ctx = ctx;
    c->timeout_s = o.timeout_s;
    c->size = 1;
    c->ops = &local_ops;
    c->name = "local";
    s2s_status st = S2S_OK;
    if (kind == S2S_COMM_MPI)
        st = s2s_comm_open_mpi(c);
    else if (kind == S2S_COMM_NCCL)
        st = s2s_comm_open_nccl(c);
    if (st != S2S_OK) {
        free(c);
        return st;
    }
    if (kind != S2S_COMM_LOCAL)
        s2s_log(ctx, S2S_LOG_DEBUG, "communicator: %s, rank %d of %d (local rank %d)", c->name, c->rank, c->size,
                c->local_rank);
    *out = c;
    return S2S_OK;
}

S2S_API void s2s_comm_free(s2s_comm *c)
{
    if (!c)
        return;
    c->ops->close(c);
    free(c);
}

S2S_API int s2s_comm_rank(const s2s_comm *c) { return c ? c->rank : 0; }
S2S_API int s2s_comm_size(const s2s_comm *c) { return c ? c->size : 1; }
S2S_API const char *s2s_comm_name(const s2s_comm *c) { return c ? c->name : "local"; }

S2S_API s2s_status s2s_comm_allreduce(s2s_comm *c, float *buf, size_t n)
{
    if (!c || (!buf && n))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_comm_allreduce: communicator and buffer are needed");
    return c->ops->allreduce(c, buf, n);
}

S2S_API void s2s_comm_abort(s2s_comm *c, int code)
{
    if (c)
        c->ops->abort(c, code);
}
