/* comm_mpi.c - the communicator over MPI (Open MPI; CPU ranks): every collective is the
 * non-blocking MPI call, then a wait that polls it until done or until timeout_s has passed,
 * so that no rank waits for ever on one that died or hangs. Polling is also what moves
 * non-blocking collectives along (Open MPI progresses them inside MPI calls).
 *
 * `arrive` is the rank check at the start of each step: every rank sends its step number to
 * every other one; a rank that has not sent within the timeout is named in the error. */
#include "comm.h"
#include <string.h>

#ifndef S2S_HAVE_MPI

s2s_status s2s_comm_open_mpi(s2s_comm *c)
{
    return S2S_FAIL(S2S_ERR_UNSUPPORTED, "this libseq2seq was built without MPI: install Open MPI (Debian: "
                                         "libopenmpi-dev openmpi-bin) and rebuild (make MPI=1)");
}

#else

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TAG_ARRIVE 0x5332
#define MPI_PIECE (1 << 30) /* elements per MPI call (counts are int) */

typedef struct mpi_impl {
    MPI_Comm comm;
    int owns_init;
    MPI_Request pending[S2S_COMM_MAX_PENDING];
    int npending;
    long *arrived;           /* [size]: the step each rank said it reached */
    long sent;               /* this rank's step, the send buffer of arrive */
    MPI_Request *arr_req;    /* [2 * size]: receives, then sends */
} mpi_impl;

static mpi_impl *impl(s2s_comm *c) { return c->impl; }

static s2s_status mpi_fail(s2s_comm *c, int rc, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS)
        snprintf(s, sizeof s, "MPI error %d", rc);
    return S2S_FAIL(S2S_ERR_COMM, "rank %d: MPI %s failed: %s", c->rank, what, s);
}

#define MPI_TRY(c, call, what)                        \
    do {                                              \
        int mpi_rc_ = (call);                         \
        if (mpi_rc_ != MPI_SUCCESS)                   \
            return mpi_fail((c), mpi_rc_, (what));    \
    } while (0)

static void pause_briefly(long spins)
{
    if (spins < 2000)
        return;
    struct timespec ts = {0, spins < 20000 ? 20000 : 200000}; /* 20 us, then 0.2 ms */
    nanosleep(&ts, NULL);
}

/* Polls reqs[n] until all are done; fails after the timeout. */
static s2s_status wait_reqs(s2s_comm *c, MPI_Request *reqs, int n, const char *what)
{
    double t0 = s2s_now_ms();
    for (long spins = 0;; spins++) {
        int done = 0;
        MPI_TRY(c, MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE), what);
        double waited = (s2s_now_ms() - t0) * 1e-3;
        if (done) {
            c->wait_s += waited;
            return S2S_OK;
        }
        if (waited > c->timeout_s)
            return S2S_FAIL(S2S_ERR_COMM,
                            "rank %d: %s did not complete within %g s: another rank died, hangs or called a different "
                            "collective; stopping",
                            c->rank, what, c->timeout_s);
        pause_briefly(spins);
    }
}

static s2s_status wait_one(s2s_comm *c, MPI_Request *req, const char *what) { return wait_reqs(c, req, 1, what); }

static s2s_status mpi_start_allreduce(s2s_comm *c, float *buf, size_t n)
{
    mpi_impl *m = impl(c);
    for (size_t off = 0; off < n; off += MPI_PIECE) {
        if (m->npending == S2S_COMM_MAX_PENDING)
            return S2S_FAIL(S2S_ERR_INTERNAL, "rank %d: more than %d reductions started at once", c->rank,
                            S2S_COMM_MAX_PENDING);
        int cnt = (int)(n - off < MPI_PIECE ? n - off : MPI_PIECE);
        MPI_TRY(c, MPI_Iallreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, m->comm, &m->pending[m->npending]),
                "Iallreduce");
        m->npending++;
    }
    return S2S_OK;
}

static s2s_status mpi_wait_all(s2s_comm *c)
{
    mpi_impl *m = impl(c);
    s2s_status st = wait_reqs(c, m->pending, m->npending, "the gradient sum (Iallreduce)");
    if (st == S2S_OK)
        m->npending = 0;
    return st;
}

static s2s_status mpi_allreduce(s2s_comm *c, float *buf, size_t n)
{
    S2S_TRY(mpi_start_allreduce(c, buf, n));
    return mpi_wait_all(c);
}

s2s_status s2s_mpi_sum_host(s2s_comm *c, double *v, int n)
{
    MPI_Request r;
    MPI_TRY(c, MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, impl(c)->comm, &r), "Iallreduce");
    return wait_one(c, &r, "a sum of counts (Iallreduce)");
}

s2s_status s2s_mpi_gather_host(s2s_comm *c, const void *mine, void *all, size_t bytes)
{
    if (bytes > INT_MAX)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "gather of %zu bytes per rank (at most %d)", bytes, INT_MAX);
    MPI_Request r;
    MPI_TRY(c, MPI_Iallgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, impl(c)->comm, &r), "Iallgather");
    return wait_one(c, &r, "a gather (Iallgather)");
}

s2s_status s2s_mpi_bcast_host(s2s_comm *c, void *buf, size_t bytes, int root)
{
    MPI_Request r;
    MPI_TRY(c, MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, impl(c)->comm, &r), "Ibcast");
    return wait_one(c, &r, "a broadcast (Ibcast)");
}

static s2s_status mpi_broadcast(s2s_comm *c, float *buf, size_t n, int root)
{
    for (size_t off = 0; off < n; off += MPI_PIECE) {
        MPI_Request r;
        int cnt = (int)(n - off < MPI_PIECE ? n - off : MPI_PIECE);
        MPI_TRY(c, MPI_Ibcast(buf + off, cnt, MPI_FLOAT, root, impl(c)->comm, &r), "Ibcast");
        S2S_TRY(wait_one(c, &r, "the weights' broadcast (Ibcast)"));
    }
    return S2S_OK;
}

static s2s_status mpi_reduce_scatter(s2s_comm *c, const float *in, float *out, size_t chunk)
{
    if (chunk > INT_MAX)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "reduce-scatter of %zu floats per rank (at most %d)", chunk, INT_MAX);
    MPI_Request r;
    MPI_TRY(c, MPI_Ireduce_scatter_block(in, out, (int)chunk, MPI_FLOAT, MPI_SUM, impl(c)->comm, &r),
            "Ireduce_scatter_block");
    return wait_one(c, &r, "the gradient reduce-scatter (Ireduce_scatter_block)");
}

static s2s_status mpi_allgather(s2s_comm *c, const float *in, float *out, size_t chunk)
{
    if (chunk > INT_MAX)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "all-gather of %zu floats per rank (at most %d)", chunk, INT_MAX);
    MPI_Request r;
    const void *send = in == out + (size_t)c->rank * chunk ? MPI_IN_PLACE : (const void *)in;
    MPI_TRY(c, MPI_Iallgather(send, (int)chunk, MPI_FLOAT, out, (int)chunk, MPI_FLOAT, impl(c)->comm, &r),
            "Iallgather");
    return wait_one(c, &r, "the weights' all-gather (Iallgather)");
}

s2s_status s2s_mpi_arrive(s2s_comm *c, long step)
{
    mpi_impl *m = impl(c);
    int P = c->size, n = 0;
    if (P == 1)
        return S2S_OK;
    m->sent = step;
    for (int r = 0; r < P; r++) {
        if (r == c->rank)
            continue;
        m->arrived[r] = -1;
        MPI_TRY(c, MPI_Irecv(&m->arrived[r], 1, MPI_LONG, r, TAG_ARRIVE, m->comm, &m->arr_req[n]), "Irecv");
        MPI_TRY(c, MPI_Isend(&m->sent, 1, MPI_LONG, r, TAG_ARRIVE, m->comm, &m->arr_req[P - 1 + n]), "Isend");
        n++;
    }
    double t0 = s2s_now_ms();
    for (long spins = 0;; spins++) {
        int done = 0;
        MPI_TRY(c, MPI_Testall(2 * n, m->arr_req, &done, MPI_STATUSES_IGNORE), "Testall");
        double waited = (s2s_now_ms() - t0) * 1e-3;
        if (done) {
            c->wait_s += waited;
            break;
        }
        if (waited > c->timeout_s) {
            char who[256] = "";
            size_t len = 0;
            int missing = 0;
            for (int r = 0, k = 0; r < P; r++) {
                if (r == c->rank)
                    continue;
                int got = 0;
                MPI_Test(&m->arr_req[k++], &got, MPI_STATUS_IGNORE);
                if (!got && len < sizeof who - 16) {
                    len += (size_t)snprintf(who + len, sizeof who - len, "%s%d", missing ? ", " : "", r);
                    missing++;
                }
            }
            return S2S_FAIL(S2S_ERR_COMM,
                            "rank %d: rank%s %s did not reach step %ld within %g s (the process died or hangs); "
                            "stopping",
                            c->rank, missing > 1 ? "s" : "", missing ? who : "?", step, c->timeout_s);
        }
        pause_briefly(spins);
    }
    for (int r = 0; r < P; r++)
        if (r != c->rank && m->arrived[r] != step)
            return S2S_FAIL(S2S_ERR_COMM, "rank %d is at step %ld and rank %d at step %ld: the ranks are out of step",
                            r, m->arrived[r], c->rank, step);
    return S2S_OK;
}

void s2s_mpi_abort(s2s_comm *c, int code) { MPI_Abort(impl(c)->comm, code); }

void s2s_mpi_close(s2s_comm *c)
{
    mpi_impl *m = impl(c);
    if (!m)
        return;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) {
        MPI_Comm_free(&m->comm);
        if (m->owns_init)
            MPI_Finalize();
    }
    free(m->arrived);
    free(m->arr_req);
    free(m);
    c->impl = NULL;
}

static const s2s_comm_ops mpi_ops = {
    .allreduce = mpi_allreduce,
    .start_allreduce = mpi_start_allreduce,
    .wait_all = mpi_wait_all,
    .sum_host = s2s_mpi_sum_host,
    .gather_host = s2s_mpi_gather_host,
    .broadcast = mpi_broadcast,
    .reduce_scatter = mpi_reduce_scatter,
    .allgather = mpi_allgather,
    .arrive = s2s_mpi_arrive,
    .abort = s2s_mpi_abort,
    .close = s2s_mpi_close,
};

s2s_status s2s_comm_open_mpi(s2s_comm *c)
{
    int inited = 0, fin = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&fin);
    if (fin)
        return S2S_FAIL(S2S_ERR_UNSUPPORTED, "MPI has already been finalized in this process (a communicator was "
                                             "freed); MPI allows one start per process");
    mpi_impl *m = s2s_host_calloc(1, sizeof *m, "the MPI communicator");
    if (!m)
        return S2S_ERR_OUT_OF_MEMORY;
    if (!inited) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            free(m);
            return S2S_FAIL(S2S_ERR_COMM, "MPI_Init_thread failed (error %d): start the job with mpirun or srun", rc);
        }
        m->owns_init = 1;
    }
    c->impl = m;
    c->ops = &mpi_ops;
    c->name = "mpi";
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    s2s_status st = S2S_OK;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    if (rc != MPI_SUCCESS) {
        m->comm = MPI_COMM_NULL;
        st = mpi_fail(c, rc, "Comm_dup");
    }
    if (st == S2S_OK) {
        MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
        MPI_Comm_rank(m->comm, &c->rank);
        MPI_Comm_size(m->comm, &c->size);
        MPI_Comm node;
        c->local_rank = c->rank;
        if (MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
            MPI_Comm_rank(node, &c->local_rank);
            MPI_Comm_free(&node);
        }
        m->arrived = calloc((size_t)c->size, sizeof *m->arrived);
        m->arr_req = calloc(2 * (size_t)c->size, sizeof *m->arr_req);
        if (!m->arrived || !m->arr_req)
            st = S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "arrival buffers for %d ranks", c->size);
    }
    if (st != S2S_OK) {
        if (m->comm != MPI_COMM_NULL)
            MPI_Comm_free(&m->comm);
        if (m->owns_init)
            MPI_Finalize();
        free(m->arrived);
        free(m->arr_req);
        free(m);
        c->impl = NULL;
    }
    return st;
}

#endif
