/* comm_nccl.c - the communicator over NCCL: one GPU per rank. NCCL is loaded at run time
 * (dlopen of libnccl.so.2: $S2S_NCCL_LIBRARY, the system and the library's run path, the CUDA
 * toolkit's lib64, the nvidia-nccl Python wheel), so the library builds and runs where it is
 * missing; the error then says where it looked. MPI starts the job, broadcasts NCCL's unique id
 * and carries the host values (counts, arrival checks), so this file opens MPI first.
 *
 * Ordering on the device: a gradient bucket's reduction runs on a stream of its own, after an
 * event recorded on the compute stream when the bucket's gradients are complete; wait_all
 * makes the compute stream wait for the last reduction, and polls it from the host with the
 * timeout (aborting the NCCL communicator on expiry, so that no rank waits for ever). nccl.h
 * from the toolkit is used for its types only. */
#include "comm.h"

#if !defined(S2S_HAVE_MPI) || !defined(S2S_HAVE_CUDA)

s2s_status s2s_comm_open_nccl(s2s_comm *c)
{
    return S2S_FAIL(S2S_ERR_UNSUPPORTED, "the NCCL communicator needs a build with CUDA and MPI (this one has %s)",
#ifdef S2S_HAVE_CUDA
                    "CUDA, no MPI: install libopenmpi-dev and rebuild"
#else
                    "no CUDA"
#endif
    );
}

#else

#include "backend_cuda.h"
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <glob.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct nccl_fns {
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*init_rank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*broadcast)(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
    ncclResult_t (*reduce_scatter)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,
                                   cudaStream_t);
    ncclResult_t (*all_gather)(const void *, void *, size_t, ncclDataType_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*destroy)(ncclComm_t);
    ncclResult_t (*abort)(ncclComm_t);
    ncclResult_t (*async_error)(ncclComm_t, ncclResult_t *);
    const char *(*error_string)(ncclResult_t);
} nccl_fns;

typedef struct nccl_impl {
    void *lib;
    nccl_fns f;
    ncclComm_t comm;
    cudaStream_t side;          /* the reductions' stream */
    cudaEvent_t ready, done;    /* compute -> side, side -> compute */
    int started;                /* reductions on `side` not yet waited for */
} nccl_impl;

static nccl_impl *nimpl(s2s_comm *c) { return c->dev; }
static cudaStream_t compute(s2s_comm *c) { return (cudaStream_t)s2s_cuda_stream_of(c->ctx->be); }

#define CUDA_OK(c, call)                                                                                 \
    do {                                                                                                 \
        cudaError_t e_ = (call);                                                                         \
        if (e_ != cudaSuccess)                                                                           \
            return S2S_FAIL(S2S_ERR_CUDA, "rank %d: %s failed: %s", (c)->rank, #call, cudaGetErrorString(e_)); \
    } while (0)

#define NCCL_OK(c, call)                                                                                 \
    do {                                                                                                 \
        ncclResult_t r_ = (call);                                                                        \
        if (r_ != ncclSuccess)                                                                           \
            return S2S_FAIL(S2S_ERR_COMM, "rank %d: NCCL %s failed: %s", (c)->rank, #call,             \
                            nimpl(c)->f.error_string(r_));                                               \
    } while (0)

/* ---- loading ----------------------------------------------------------------------------------- */

static void *open_lib(char *tried, size_t cap)
{
    const char *env = getenv("S2S_NCCL_LIBRARY");
    const char *names[] = {env, "libnccl.so.2", S2S_CUDA_LIB_DIR "/libnccl.so.2"};
    size_t len = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!names[i] || !*names[i])
            continue;
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
        len += (size_t)snprintf(tried + len, len < cap ? cap - len : 0, "%s%s", len ? ", " : "", names[i]);
    }
    glob_t g; /* the nvidia-nccl-cu* wheel */
    void *h = NULL;
    if (glob("/usr/lib/python3*/*-packages/nvidia/nccl/lib/libnccl.so.2", 0, NULL, &g) == 0 ||
        glob("/usr/local/lib/python3*/*-packages/nvidia/nccl/lib/libnccl.so.2", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && !h; i++)
            h = dlopen(g.gl_pathv[i], RTLD_NOW | RTLD_LOCAL);
        globfree(&g);
    }
    if (!h && len < cap)
        snprintf(tried + len, cap - len, ", the nvidia-nccl Python wheel");
    return h;
}

static s2s_status load(nccl_impl *n)
{
    char tried[512] = "";
    n->lib = open_lib(tried, sizeof tried);
    if (!n->lib)
        return S2S_FAIL(S2S_ERR_UNSUPPORTED, "NCCL not found (tried %s): install the CUDA toolkit's NCCL or "
                                             "set S2S_NCCL_LIBRARY to libnccl.so.2's path",
                        tried);
    struct {
        void **fn;
        const char *name;
    } syms[] = {
        {(void **)&n->f.get_unique_id, "ncclGetUniqueId"}, {(void **)&n->f.init_rank, "ncclCommInitRank"},
        {(void **)&n->f.all_reduce, "ncclAllReduce"},      {(void **)&n->f.broadcast, "ncclBroadcast"},
        {(void **)&n->f.reduce_scatter, "ncclReduceScatter"}, {(void **)&n->f.all_gather, "ncclAllGather"},
        {(void **)&n->f.destroy, "ncclCommDestroy"},       {(void **)&n->f.abort, "ncclCommAbort"},
        {(void **)&n->f.async_error, "ncclCommGetAsyncError"}, {(void **)&n->f.error_string, "ncclGetErrorString"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
        if (!(*syms[i].fn = dlsym(n->lib, syms[i].name)))
            return S2S_FAIL(S2S_ERR_UNSUPPORTED, "the NCCL library found lacks %s (NCCL 2.7 or newer is needed)",
                            syms[i].name);
    return S2S_OK;
}

/* ---- ops --------------------------------------------------------------------------------------- */

static s2s_status nccl_start_allreduce(s2s_comm *c, float *buf, size_t n)
{
    nccl_impl *p = nimpl(c);
    CUDA_OK(c, cudaEventRecord(p->ready, compute(c)));
    CUDA_OK(c, cudaStreamWaitEvent(p->side, p->ready, 0));
    NCCL_OK(c, p->f.all_reduce(buf, buf, n, ncclFloat32, ncclSum, p->comm, p->side));
    p->started++;
    return S2S_OK;
}

static s2s_status nccl_wait_all(s2s_comm *c)
{
    nccl_impl *p = nimpl(c);
    if (!p->started)
        return S2S_OK;
    CUDA_OK(c, cudaEventRecord(p->done, p->side));
    CUDA_OK(c, cudaStreamWaitEvent(compute(c), p->done, 0));
    double t0 = s2s_now_ms();
    for (;;) {
        cudaError_t q = cudaEventQuery(p->done);
        if (q == cudaSuccess)
            break;
        if (q != cudaErrorNotReady)
            return S2S_FAIL(S2S_ERR_CUDA, "rank %d: the gradient sum failed on the GPU: %s", c->rank,
                            cudaGetErrorString(q));
        ncclResult_t async = ncclSuccess;
        if (p->f.async_error(p->comm, &async) == ncclSuccess && async != ncclSuccess)
            return S2S_FAIL(S2S_ERR_COMM, "rank %d: NCCL reports %s", c->rank, p->f.error_string(async));
        if ((s2s_now_ms() - t0) * 1e-3 > c->timeout_s) {
            p->f.abort(p->comm);
            p->comm = NULL;
            return S2S_FAIL(S2S_ERR_COMM, "rank %d: the gradient sum (ncclAllReduce) did not complete within %g s: "
                                          "another rank died or hangs; NCCL aborted",
                            c->rank, c->timeout_s);
        }
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    c->wait_s += (s2s_now_ms() - t0) * 1e-3;
    p->started = 0;
    return S2S_OK;
}

static s2s_status nccl_allreduce(s2s_comm *c, float *buf, size_t n)
{
    S2S_TRY(nccl_start_allreduce(c, buf, n));
    return nccl_wait_all(c);
}

static s2s_status nccl_broadcast(s2s_comm *c, float *buf, size_t n, int root)
{
    NCCL_OK(c, nimpl(c)->f.broadcast(buf, buf, n, ncclFloat32, root, nimpl(c)->comm, compute(c)));
    return S2S_OK;
}

static s2s_status nccl_reduce_scatter(s2s_comm *c, const float *in, float *out, size_t chunk)
{
    NCCL_OK(c, nimpl(c)->f.reduce_scatter(in, out, chunk, ncclFloat32, ncclSum, nimpl(c)->comm, compute(c)));
    return S2S_OK;
}

static s2s_status nccl_allgather(s2s_comm *c, const float *in, float *out, size_t chunk)
{
    NCCL_OK(c, nimpl(c)->f.all_gather(in, out, chunk, ncclFloat32, nimpl(c)->comm, compute(c)));
    return S2S_OK;
}

static void nccl_abort(s2s_comm *c, int code)
{
    nccl_impl *p = nimpl(c);
    if (p && p->comm) {
        p->f.abort(p->comm);
        p->comm = NULL;
    }
    s2s_mpi_abort(c, code);
}

static void nccl_close(s2s_comm *c)
{
    nccl_impl *p = nimpl(c);
    if (p) {
        if (p->comm)
            p->f.destroy(p->comm);
        if (p->side)
            cudaStreamDestroy(p->side);
        if (p->ready)
            cudaEventDestroy(p->ready);
        if (p->done)
            cudaEventDestroy(p->done);
        if (p->lib)
            dlclose(p->lib);
        free(p);
        c->dev = NULL;
    }
    s2s_mpi_close(c);
}

static const s2s_comm_ops nccl_ops = {
    .allreduce = nccl_allreduce,
    .start_allreduce = nccl_start_allreduce,
    .wait_all = nccl_wait_all,
    .sum_host = s2s_mpi_sum_host,
    .gather_host = s2s_mpi_gather_host,
    .broadcast = nccl_broadcast,
    .reduce_scatter = nccl_reduce_scatter,
    .allgather = nccl_allgather,
    .arrive = s2s_mpi_arrive,
    .abort = nccl_abort,
    .close = nccl_close,
};

static s2s_status nccl_init(s2s_comm *c, nccl_impl *p)
{
    S2S_TRY(load(p));
    CUDA_OK(c, cudaStreamCreateWithFlags(&p->side, cudaStreamNonBlocking));
    CUDA_OK(c, cudaEventCreateWithFlags(&p->ready, cudaEventDisableTiming));
    CUDA_OK(c, cudaEventCreateWithFlags(&p->done, cudaEventDisableTiming));
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (c->rank == 0)
        NCCL_OK(c, p->f.get_unique_id(&id));
    S2S_TRY(s2s_mpi_bcast_host(c, &id, sizeof id, 0));
    NCCL_OK(c, p->f.init_rank(&p->comm, c->size, id, c->rank));
    return S2S_OK;
}

s2s_status s2s_comm_open_nccl(s2s_comm *c)
{
    if (s2s_context_device(c->ctx) != S2S_DEVICE_CUDA)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "the NCCL communicator needs a CUDA context (one GPU per rank); use MPI "
                                             "for CPU ranks");
    S2S_TRY(s2s_comm_open_mpi(c));
    nccl_impl *p = s2s_host_calloc(1, sizeof *p, "the NCCL communicator");
    if (!p) {
        s2s_mpi_close(c);
        return S2S_ERR_OUT_OF_MEMORY;
    }
    c->dev = p;
    c->ops = &nccl_ops;
    c->name = "nccl";
    s2s_status st = nccl_init(c, p);
    if (st != S2S_OK)
        nccl_close(c);
    return st;
}

#endif
