/* mpi_check.h - lets the data-parallel test program (run under mpirun, not Criterion) share the
 * suite's helpers (toy_task.h, model_util.h): their assertions print the rank and the failure
 * and end the whole job. Include it before those headers. */
#ifndef S2S_MPI_CHECK_H
#define S2S_MPI_CHECK_H
#define S2S_TEST_UTIL_H /* test_util.h's Criterion parts are replaced by these */

#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int mc_rank(void)
{
    int r = -1, init = 0;
    MPI_Initialized(&init);
    if (init)
        MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

#define cr_assert(cond, ...)                                                                  \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "FAIL rank %d %s:%d: %s: ", mc_rank(), __FILE__, __LINE__, #cond); \
            fprintf(stderr, " " __VA_ARGS__);                                                 \
            fprintf(stderr, "\n");                                                            \
            MPI_Abort(MPI_COMM_WORLD, 3);                                                     \
        }                                                                                     \
    } while (0)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)

static inline uint64_t tu_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

#endif
