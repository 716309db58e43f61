// Elementwise transcendental functions over arrays, eight lanes at a time through glibc's
// vector math library (libmvec, part of libc6) where the CPU has AVX2 and FMA, else glibc's
// scalar functions. Written in C because Swift cannot name libmvec's vector-ABI entry points.
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

#ifdef __cplusplus
}
#endif
#endif
