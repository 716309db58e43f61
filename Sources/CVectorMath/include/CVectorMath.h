// Elementwise transcendental functions over arrays, eight lanes at a time through glibc's
// vector math library (libmvec, part of libc6) where the CPU has AVX2 and FMA, else glibc's
// scalar functions. Written in C because Swift cannot name libmvec's vector-ABI entry points.
// Also the Gram matrices of book-keeping's ghost norms (gram.c), in AVX-512 / AVX2 intrinsics.
#ifndef DPFT_CVECTORMATH_H
#define DPFT_CVECTORMATH_H

#ifdef __cplusplus
extern "C" {
#endif

/// y[i] = tanh(x[i]) for i < n (y may be x). Every element takes the same path whatever n and
/// its place in the array, so a result never depends on how an array was split into calls.
void dpft_tanhf(const float *x, float *y, long n);

/// y[i] = exp(x[i]) for i < n (y may be x), with the same guarantee.
void dpft_expf(const float *x, float *y, long n);

/// Σ x[i] for i < n in a fixed order of sixteen interleaved partial sums (the same on every
/// CPU; not the order of a plain loop).
float dpft_sumf(const float *x, long n);

/// Σ x[i]² for i < n, each square and the sum in double, in a fixed order of sixteen interleaved
/// partial sums (the same on every CPU): book-keeping's per-example squared norms. They are
/// reductions of many terms of mixed size: a float square loses the low bits of x·x, a float
/// sum loses small terms next to a large one (the square of a float is exact in double).
double dpft_sum_squares(const float *x, long n);

/// max x[i] for i < n (−∞ when n = 0, NaN when any element is NaN).
float dpft_maxf(const float *x, long n);

/// 1 when the vector path (libmvec, AVX2) is in use, 0 for glibc's scalar functions.
int dpft_vector_math_is_vectorised(void);

/// The upper triangle of the Gram matrix C = A·Aᵀ (n × n) of the n × k matrix `a` (row stride
/// `lda`) into `c` (row stride `ldc`): C[i][j] for j ≥ i; entries below the diagonal are not
/// written. Returns 1, or 0 without touching `c` when the CPU has neither AVX-512 nor AVX2 with
/// FMA (the caller then uses BLAS's ssyrk). Each entry's sums run in a fixed order for a given
/// path, whatever the pointers' alignment: the same inputs give the same bits on one CPU.
int dpft_gram_upper(long n, long k, const float *a, long lda, float *c, long ldc);

/// `dpft_gram_upper` on a chosen path (1 = AVX2 with FMA, 2 = AVX-512) so that tests can check
/// every path the CPU has; returns 0 for a path it lacks.
int dpft_gram_upper_path(int path, long n, long k, const float *a, long lda, float *c, long ldc);

/// The path `dpft_gram_upper` takes on this CPU: 2 (AVX-512), 1 (AVX2 with FMA) or 0 (none).
int dpft_gram_best_path(void);

#ifdef __cplusplus
}
#endif
#endif
