#ifndef DPFT_CMPI_H
#define DPFT_CMPI_H

#include <stddef.h>

/// Open MPI, loaded at run time (dlopen) only when dpft was launched by `mpirun`, so that dpft
/// without mpirun needs no MPI library at all (README, "Training on several processes").
/// Handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, …) are the addresses of Open MPI's predefined
/// objects, as Open MPI's own mpi.h defines them; every call works on MPI_COMM_WORLD and is
/// made from one thread (MPI_THREAD_FUNNELED). Functions return 0 on success; MPI's default
/// error handler ends the whole job on a communication error.

/// 1 when the environment says this process was started by Open MPI's mpirun.
int dpft_mpi_launched_by_mpirun(void);

/// Loads libmpi and calls MPI_Init_thread; on failure writes a message into `error`.
int dpft_mpi_init(char *error, size_t error_capacity);

int dpft_mpi_rank(void);
int dpft_mpi_size(void);

/// Sums `count` floats over all ranks into `values` of rank `root` (others keep theirs).
int dpft_mpi_reduce_sum_float(float *values, size_t count, int root);
/// Sums `count` doubles over all ranks, in place on every rank.
int dpft_mpi_allreduce_sum_double(double *values, int count);
/// Copies `bytes` bytes of rank `root` into `buffer` on every rank.
int dpft_mpi_broadcast(void *buffer, size_t bytes, int root);
int dpft_mpi_barrier(void);
/// Ends every rank of the job with `code` (MPI_Abort); does not return.
void dpft_mpi_abort(int code);
int dpft_mpi_finalize(void);

#endif
