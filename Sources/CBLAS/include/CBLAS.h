// A minimal CBLAS binding that loads OpenBLAS at run time.
//
// OpenBLAS reads OPENBLAS_CORETYPE once, when the shared library loads. Debian's 0.3.21 does
// not recognise recent Xeons and falls back to its slow `Prescott` kernels, so dpft picks the
// best kernel the CPU supports (cpuid) and sets the variable *before* dlopen — unless the user
// already set it. Loading lazily makes this work in every process: the CLI, tests, benchmarks.
#ifndef DPFT_CBLAS_H
#define DPFT_CBLAS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum DPFTBlasTranspose { DPFTBlasNoTrans = 111, DPFTBlasTrans = 112 };

/// Loads OpenBLAS once (thread-safe). Returns 0 on success; otherwise writes a message to
/// `error` (at most `capacity` bytes, NUL-terminated) and returns -1.
int dpft_blas_load(char *error, size_t capacity);

/// The OPENBLAS_CORETYPE value dpft would choose from this CPU's features ("SkylakeX",
/// "Haswell") or NULL when the library's own detection should be left alone.
const char *dpft_blas_preferred_coretype(void);

/// Whether OPENBLAS_CORETYPE was set by dpft (1) or by the user / not at all (0).
int dpft_blas_coretype_was_chosen_by_dpft(void);

/// The core name OpenBLAS reports (e.g. "SkylakeX", "Prescott"); requires a loaded library.
const char *dpft_blas_corename(void);
int dpft_blas_num_threads(void);
void dpft_blas_set_num_threads(int n);

/// Row-major C = alpha * op(A) op(B) + beta * C, forwarded to cblas_sgemm.
void dpft_sgemm(enum DPFTBlasTranspose transA, enum DPFTBlasTranspose transB,
                int m, int n, int k, float alpha, const float *a, int lda,
                const float *b, int ldb, float beta, float *c, int ldc);

/// Row-major upper triangle of C = A Aᵀ (A is n×k), forwarded to cblas_ssyrk; the strictly
/// lower triangle of C is left as it was.
void dpft_ssyrk_upper(int n, int k, const float *a, int lda, float *c, int ldc);

#ifdef __cplusplus
}
#endif
#endif
