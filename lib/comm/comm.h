/* comm.h - the communicator behind s2s_comm (DESIGN: the communicator layer): data-parallel
 * training's collectives behind one op table. Implementations: local (one process; no-ops and
 * copies, comm.c), MPI (CPU ranks, comm_mpi.c), NCCL (one GPU per rank, loaded with dlopen,
 * host values and bootstrap through MPI, comm_nccl.c).
 *
 * Float buffers live where the context's backend keeps memory (host for the CPU, device for
 * CUDA); "host" values (counts, losses, hashes) are host memory. Every rank must call the same
 * collectives in the same order. Every wait is bounded by timeout_s and fails with
 * S2S_ERR_COMM naming what did not complete. */
#ifndef S2S_COMM_H
#define S2S_COMM_H

#include "backend.h"
#include "internal.h"

#define S2S_COMM_MAX_PENDING 16 /* reductions started and not yet waited for */

typedef struct s2s_comm_ops {
    /* buf[n] = the sum over ranks (blocking for the host; ordered on the device stream) */
    s2s_status (*allreduce)(s2s_comm *c, float *buf, size_t n);
    /* starts the sum of buf[n] in place (a gradient bucket); buf must not change until wait_all */
    s2s_status (*start_allreduce)(s2s_comm *c, float *buf, size_t n);
    /* completes every started reduction */
    s2s_status (*wait_all)(s2s_comm *c);
    /* v[n] (host) = the sum over ranks, in double */
    s2s_status (*sum_host)(s2s_comm *c, double *v, int n);
    /* all[r * bytes ..] = rank r's mine (host), for every r */
    s2s_status (*gather_host)(s2s_comm *c, const void *mine, void *all, size_t bytes);
    /* buf[n] = rank root's buf */
    s2s_status (*broadcast)(s2s_comm *c, float *buf, size_t n, int root);
    /* out[chunk] = the sum over ranks of in[rank * chunk ..] (in holds size * chunk) */
    s2s_status (*reduce_scatter)(s2s_comm *c, const float *in, float *out, size_t chunk);
    /* out[r * chunk ..] = rank r's in[chunk], for every r */
    s2s_status (*allgather)(s2s_comm *c, const float *in, float *out, size_t chunk);
    /* every rank has reached `step`: fails naming the ranks that did not within the timeout */
    s2s_status (*arrive)(s2s_comm *c, long step);
    void (*abort)(s2s_comm *c, int code);
    void (*close)(s2s_comm *c);
} s2s_comm_ops;

struct s2s_comm {
    const s2s_comm_ops *ops;
    const char *name;
    s2s_context *ctx;
    int rank, size, local_rank;
    double timeout_s;
    double wait_s; /* seconds spent in waits on other ranks (statistics, never reset here) */
    void *impl; /* MPI's state (MPI and NCCL) */
    void *dev;  /* NCCL's state */
};

/* Fill c->ops, c->name, c->impl, rank and size, or fail saying what is missing. */
s2s_status s2s_comm_open_mpi(s2s_comm *c);
s2s_status s2s_comm_open_nccl(s2s_comm *c);

/* The MPI implementation's host-side ops, which NCCL's table shares (NCCL opens MPI first and
 * keeps it in c->impl), and its bootstrap broadcast of host bytes. */
s2s_status s2s_mpi_sum_host(s2s_comm *c, double *v, int n);
s2s_status s2s_mpi_gather_host(s2s_comm *c, const void *mine, void *all, size_t bytes);
s2s_status s2s_mpi_arrive(s2s_comm *c, long step);
s2s_status s2s_mpi_bcast_host(s2s_comm *c, void *buf, size_t bytes, int root);
void s2s_mpi_abort(s2s_comm *c, int code);
void s2s_mpi_close(s2s_comm *c);

#endif
