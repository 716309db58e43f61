// Open MPI through dlopen, as CBLAS loads OpenBLAS: the library is touched only under mpirun,
// so a dpft started without it runs exactly as before and does not need MPI installed.
// Written by hand because no mirrored package binds MPI and linking libmpi would make every
// dpft process depend on it.

#define _GNU_SOURCE
#include "CMPI.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef void *handle_t;  // MPI_Comm, MPI_Datatype and MPI_Op are pointers in Open MPI
typedef int (*init_thread_fn)(int *, char ***, int, int *);
typedef int (*comm_int_fn)(handle_t, int *);
typedef int (*reduce_fn)(const void *, void *, int, handle_t, handle_t, int, handle_t);
typedef int (*allreduce_fn)(const void *, void *, int, handle_t, handle_t, handle_t);
typedef int (*bcast_fn)(void *, int, handle_t, int, handle_t);
typedef int (*comm_fn)(handle_t);
typedef int (*abort_fn)(handle_t, int);
typedef int (*void_fn)(void);

static struct {
    init_thread_fn init_thread;
    comm_int_fn comm_rank, comm_size;
    reduce_fn reduce;
    allreduce_fn allreduce;
    bcast_fn bcast;
    comm_fn barrier;
    abort_fn abort;
    void_fn finalize;
    handle_t world, float_type, double_type, byte_type, sum;
} mpi;

#define MPI_IN_PLACE_VALUE ((void *)1)  // Open MPI's MPI_IN_PLACE
#define THREAD_FUNNELED 1               // Open MPI's MPI_THREAD_FUNNELED
#define CHUNK ((size_t)1 << 28)         // elements per call: MPI counts are int

int dpft_mpi_launched_by_mpirun(void) {
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    return size != NULL && size[0] != '\0';
}

static int resolve(void *library, const char *name, void **slot, char *error, size_t capacity) {
    *slot = dlsym(library, name);
    if (*slot == NULL) snprintf(error, capacity, "libmpi has no symbol %s: is it Open MPI 4 or newer?", name);
    return *slot == NULL;
}

int dpft_mpi_init(char *error, size_t capacity) {
    // RTLD_GLOBAL: Open MPI's own plugins, loaded later, resolve their symbols against libmpi.
    void *library = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);
    if (library == NULL) library = dlopen("libmpi.so", RTLD_NOW | RTLD_GLOBAL);
    if (library == NULL) {
        snprintf(error, capacity, "cannot load Open MPI (libmpi.so.40): %s — install openmpi-bin and "
                 "libopenmpi-dev (`make test` and `make demo` do this)", dlerror());
        return 1;
    }
    struct { const char *name; void **slot; } symbols[] = {
        {"MPI_Init_thread", (void **)&mpi.init_thread}, {"MPI_Comm_rank", (void **)&mpi.comm_rank},
        {"MPI_Comm_size", (void **)&mpi.comm_size}, {"MPI_Reduce", (void **)&mpi.reduce},
        {"MPI_Allreduce", (void **)&mpi.allreduce}, {"MPI_Bcast", (void **)&mpi.bcast},
        {"MPI_Barrier", (void **)&mpi.barrier}, {"MPI_Abort", (void **)&mpi.abort},
        {"MPI_Finalize", (void **)&mpi.finalize}, {"ompi_mpi_comm_world", &mpi.world},
        {"ompi_mpi_float", &mpi.float_type}, {"ompi_mpi_double", &mpi.double_type},
        {"ompi_mpi_byte", &mpi.byte_type}, {"ompi_mpi_op_sum", &mpi.sum},
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        if (resolve(library, symbols[i].name, symbols[i].slot, error, capacity)) return 1;
    }
    int provided = 0;
    if (mpi.init_thread(NULL, NULL, THREAD_FUNNELED, &provided) != 0) {
        snprintf(error, capacity, "MPI_Init_thread failed");
        return 1;
    }
    return 0;
}

int dpft_mpi_rank(void) {
    int rank = 0;
    mpi.comm_rank(mpi.world, &rank);
    return rank;
}

int dpft_mpi_size(void) {
    int size = 1;
    mpi.comm_size(mpi.world, &size);
    return size;
}

int dpft_mpi_reduce_sum_float(float *values, size_t count, int root) {
    int is_root = dpft_mpi_rank() == root;
    for (size_t start = 0; start < count; start += CHUNK) {
        int n = (int)(count - start < CHUNK ? count - start : CHUNK);
        const void *send = is_root ? MPI_IN_PLACE_VALUE : values + start;
        int status = mpi.reduce(send, is_root ? values + start : NULL, n, mpi.float_type, mpi.sum, root, mpi.world);
        if (status != 0) return status;
    }
    return 0;
}

int dpft_mpi_allreduce_sum_double(double *values, int count) {
    return mpi.allreduce(MPI_IN_PLACE_VALUE, values, count, mpi.double_type, mpi.sum, mpi.world);
}

int dpft_mpi_broadcast(void *buffer, size_t bytes, int root) {
    for (size_t start = 0; start < bytes; start += CHUNK) {
        int n = (int)(bytes - start < CHUNK ? bytes - start : CHUNK);
        int status = mpi.bcast((char *)buffer + start, n, mpi.byte_type, root, mpi.world);
        if (status != 0) return status;
    }
    return 0;
}

int dpft_mpi_barrier(void) { return mpi.barrier(mpi.world); }

void dpft_mpi_abort(int code) {
    mpi.abort(mpi.world, code);
    exit(code);
}

int dpft_mpi_finalize(void) { return mpi.finalize(); }
