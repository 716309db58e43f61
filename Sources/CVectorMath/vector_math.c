#include "CVectorMath.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>

// libmvec's AVX2 variants (x86-64 vector function ABI, "d" = AVX2, 8 lanes of float). glibc
// documents them as accurate to within 4 ulp, the same bound as its scalar tanhf/expf tests.
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_tanhf(__m256);
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256);

int dpft_vector_math_is_vectorised(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// The last n % 8 elements go through the vector function too (padded with zeros in a copy),
// so that each element's result is the same wherever it sits.
#define DPFT_VECTOR_APPLY(name, vector_function)                                    \
    __attribute__((target("avx2,fma"))) static void name(const float *x, float *y, long n) { \
        long i = 0;                                                                  \
        for (; i + 8 <= n; i += 8) {                                                 \
            _mm256_storeu_ps(y + i, vector_function(_mm256_loadu_ps(x + i)));       \
        }                                                                            \
        if (i < n) {                                                                 \
            float lanes[8] = {0};                                                    \
            memcpy(lanes, x + i, (size_t)(n - i) * sizeof(float));                   \
            _mm256_storeu_ps(lanes, vector_function(_mm256_loadu_ps(lanes)));        \
            memcpy(y + i, lanes, (size_t)(n - i) * sizeof(float));                   \
        }                                                                            \
    }

DPFT_VECTOR_APPLY(tanh_avx2, _ZGVdN8v_tanhf)
DPFT_VECTOR_APPLY(exp_avx2, _ZGVdN8v_expf)

void dpft_tanhf(const float *x, float *y, long n) {
    if (dpft_vector_math_is_vectorised()) {
        tanh_avx2(x, y, n);
        return;
    }
    for (long i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

void dpft_expf(const float *x, float *y, long n) {
    if (dpft_vector_math_is_vectorised()) {
        exp_avx2(x, y, n);
        return;
    }
    for (long i = 0; i < n; i++) y[i] = expf(x[i]);
}

#else

int dpft_vector_math_is_vectorised(void) { return 0; }

void dpft_tanhf(const float *x, float *y, long n) {
    for (long i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

void dpft_expf(const float *x, float *y, long n) {
    for (long i = 0; i < n; i++) y[i] = expf(x[i]);
}

#endif
