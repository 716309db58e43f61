#define _GNU_SOURCE
#include "CBLAS.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// CBLAS's own enum values (cblas.h): CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112.
typedef void (*sgemm_fn)(int order, int transA, int transB, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta,
                         float *c, int ldc);
typedef void (*ssyrk_fn)(int order, int uplo, int trans, int n, int k, float alpha,
                         const float *a, int lda, float beta, float *c, int ldc);
typedef char *(*corename_fn)(void);
typedef int (*get_threads_fn)(void);
typedef void (*set_threads_fn)(int);

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static sgemm_fn p_sgemm;
static ssyrk_fn p_ssyrk;
static corename_fn p_corename;
static get_threads_fn p_get_threads;
static set_threads_fn p_set_threads;
static char load_error[512];
static int chose_coretype;

const char *dpft_blas_preferred_coretype(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

int dpft_blas_coretype_was_chosen_by_dpft(void) { return chose_coretype; }

static void load_library(void) {
    const char *current = getenv("OPENBLAS_CORETYPE");
    if (current == NULL || current[0] == '\0') {
        const char *preferred = dpft_blas_preferred_coretype();
        if (preferred != NULL) {
            setenv("OPENBLAS_CORETYPE", preferred, 1);
            chose_coretype = 1;
        }
    }
    // An idle OpenBLAS worker spins (sched_yield) for 2^28 cycles before it sleeps. dpft runs
    // many products on its own threads with OpenBLAS set to one thread (per-example norms), and
    // on a 2-core machine the spinning workers took their cores: with 2^4 cycles they sleep at
    // once, and the private reference step's norm phase took 30 % less time (non-private steps
    // unchanged). A value the user set is kept.
    const char *timeout = getenv("OPENBLAS_THREAD_TIMEOUT");
    if (timeout == NULL || timeout[0] == '\0') setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
    const char *candidates[] = {"libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"};
    void *handle = NULL;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && handle == NULL; i++) {
        handle = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
    }
    if (handle == NULL) {
        snprintf(load_error, sizeof load_error,
                 "cannot load OpenBLAS (libopenblas.so.0): %s — install libopenblas-dev "
                 "(`make test` and `make demo` do this)", dlerror());
        return;
    }
    p_sgemm = (sgemm_fn)dlsym(handle, "cblas_sgemm");
    p_ssyrk = (ssyrk_fn)dlsym(handle, "cblas_ssyrk");
    p_corename = (corename_fn)dlsym(handle, "openblas_get_corename");
    p_get_threads = (get_threads_fn)dlsym(handle, "openblas_get_num_threads");
    p_set_threads = (set_threads_fn)dlsym(handle, "openblas_set_num_threads");
    if (p_sgemm == NULL || p_ssyrk == NULL) {
        snprintf(load_error, sizeof load_error, "OpenBLAS loaded but has no cblas_sgemm or cblas_ssyrk");
        p_sgemm = NULL;
    }
}

int dpft_blas_load(char *error, size_t capacity) {
    pthread_once(&load_once, load_library);
    if (p_sgemm != NULL) return 0;
    if (error != NULL && capacity > 0) {
        snprintf(error, capacity, "%s", load_error);
    }
    return -1;
}

const char *dpft_blas_corename(void) {
    return p_corename != NULL ? p_corename() : "unknown";
}

int dpft_blas_num_threads(void) { return p_get_threads != NULL ? p_get_threads() : 1; }

void dpft_blas_set_num_threads(int n) {
    if (p_set_threads != NULL) p_set_threads(n);
}

void dpft_sgemm(enum DPFTBlasTranspose transA, enum DPFTBlasTranspose transB,
                int m, int n, int k, float alpha, const float *a, int lda,
                const float *b, int ldb, float beta, float *c, int ldc) {
    p_sgemm(101, (int)transA, (int)transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void dpft_ssyrk_upper(int n, int k, const float *a, int lda, float *c, int ldc) {
    // CblasRowMajor = 101, CblasUpper = 121, CblasNoTrans = 111: C = A Aᵀ, upper triangle.
    p_ssyrk(101, 121, 111, n, k, 1.0f, a, lda, 0.0f, c, ldc);
}
