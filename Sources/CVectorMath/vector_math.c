#include "CVectorMath.h"

#include <math.h>
#include <string.h>

// Sixteen interleaved partial results (lane j takes x[j], x[j+16], …), combined in lane order,
// then the tail: a fixed order whatever the CPU, and sixteen independent operations in flight.
#define DPFT_REDUCTIONS(suffix, attributes)                                           \
    attributes static float sum_##suffix(const float *x, long n) {                   \
        float lanes[16] = {0};                                                       \
        long i = 0;                                                                  \
        for (; i + 16 <= n; i += 16)                                                 \
            for (int j = 0; j < 16; j++) lanes[j] += x[i + j];                       \
        float total = 0;                                                             \
        for (int j = 0; j < 16; j++) total += lanes[j];                              \
        for (; i < n; i++) total += x[i];                                            \
        return total;                                                                \
    }                                                                                \
    attributes static double sum_squares_##suffix(const float *x, long n) {          \
        double lanes[16] = {0};                                                      \
        long i = 0;                                                                  \
        for (; i + 16 <= n; i += 16)                                                 \
            for (int j = 0; j < 16; j++) lanes[j] += (double)x[i + j] * (double)x[i + j]; \
        double total = 0;                                                            \
        for (int j = 0; j < 16; j++) total += lanes[j];                              \
        for (; i < n; i++) total += (double)x[i] * (double)x[i];                     \
        return total;                                                                \
    }                                                                                \
    attributes static float max_##suffix(const float *x, long n) {                   \
        float lanes[16];                                                             \
        int nan[16] = {0};                                                           \
        for (int j = 0; j < 16; j++) lanes[j] = -INFINITY;                           \
        long i = 0;                                                                  \
        for (; i + 16 <= n; i += 16)                                                 \
            for (int j = 0; j < 16; j++) {                                           \
                float v = x[i + j];                                                  \
                nan[j] |= v != v;                                                    \
                lanes[j] = v > lanes[j] ? v : lanes[j];                              \
            }                                                                        \
        float result = -INFINITY;                                                    \
        int sawNaN = 0;                                                              \
        for (int j = 0; j < 16; j++) {                                               \
            sawNaN |= nan[j];                                                        \
            result = lanes[j] > result ? lanes[j] : result;                          \
        }                                                                            \
        for (; i < n; i++) {                                                         \
            sawNaN |= x[i] != x[i];                                                  \
            result = x[i] > result ? x[i] : result;                                  \
        }                                                                            \
        return sawNaN ? NAN : result;                                                \
    }

DPFT_REDUCTIONS(plain, )

#if defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>
#define DPFT_HAS_VECTOR_PATH 1

// libmvec's AVX2 variants (x86-64 vector function ABI, "d" = AVX2, 8 lanes of float). glibc
// documents them as accurate to within 4 ulp, the same bound as its scalar tanhf/expf tests.
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_tanhf(__m256);
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256);

// Chosen once when the library loads (before any caller can run): the functions below are
// called per softmax row, so the CPU check stays out of them.
static int vector_path;

__attribute__((constructor)) static void choose_path(void) {
    __builtin_cpu_init();
    vector_path = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
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
DPFT_REDUCTIONS(avx2, __attribute__((target("avx2,fma"))))

#else
#define DPFT_HAS_VECTOR_PATH 0
static const int vector_path = 0;
#endif

int dpft_vector_math_is_vectorised(void) { return vector_path; }

// Each function: the vector path (`statements`, ending in a return) where the CPU has it,
// else the plain code after it.
#if DPFT_HAS_VECTOR_PATH
#define DPFT_TRY_VECTOR(statements) \
    if (vector_path) { statements; }
#else
#define DPFT_TRY_VECTOR(statements)
#endif

float dpft_sumf(const float *x, long n) {
    DPFT_TRY_VECTOR(return sum_avx2(x, n))
    return sum_plain(x, n);
}

double dpft_sum_squares(const float *x, long n) {
    DPFT_TRY_VECTOR(return sum_squares_avx2(x, n))
    return sum_squares_plain(x, n);
}

float dpft_maxf(const float *x, long n) {
    DPFT_TRY_VECTOR(return max_avx2(x, n))
    return max_plain(x, n);
}

void dpft_tanhf(const float *x, float *y, long n) {
    DPFT_TRY_VECTOR(tanh_avx2(x, y, n); return)
    for (long i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

void dpft_expf(const float *x, float *y, long n) {
    DPFT_TRY_VECTOR(exp_avx2(x, y, n); return)
    for (long i = 0; i < n; i++) y[i] = expf(x[i]);
}
