#include "CVectorMath.h"

#include <string.h>

// The upper triangle of C = A·Aᵀ for book-keeping's ghost norms: one per example and layer,
// A = an example's activations or output gradients (n ≈ 128 rows of k = 256 … 50257 floats).
// Written by hand because OpenBLAS's ssyrk packs A twice per call and then runs its GEMM
// kernel on square blocks, wasting part of every diagonal block: 59–74 GFLOP/s of useful work
// at these shapes on one Zen 4 core, 59 whenever the row stride is a multiple of 4 KiB (its
// packing then thrashes one cache set), against 104 for a large sgemm. Here every entry is a
// dot product of two rows read where they lie: a tile of 4 × 4 (AVX-512) or 4 × 3 (AVX2) row
// pairs keeps its 16 or 12 vector accumulators in registers while both rows stream along k, so
// nothing is packed, a 4-row × 4-row tile needs 8 loads per 16 FMAs, and only tiles that touch
// the upper triangle are computed (2 % waste at n = 128). k is cut into chunks whose rows stay
// in the core's L2 cache while the tiles sweep them.

#if defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>

enum { gram_none = 0, gram_avx2 = 1, gram_avx512 = 2 };

static int best_path;

__attribute__((constructor)) static void choose_gram_path(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        best_path = gram_avx512;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        best_path = gram_avx2;
    } else {
        best_path = gram_none;
    }
}

/// Columns of A per chunk: n rows of it fill at most 512 KiB (half a Zen 4 L2), 256 … 1024
/// columns, a multiple of 16.
static long chunk_columns(long n) {
    long columns = (131072 / (n > 0 ? n : 1)) & ~15L;
    return columns < 256 ? 256 : columns > 1024 ? 1024 : columns;
}

/// Row r of a tile starting at `first`: rows past the last are replaced by `first` itself (its
/// products are computed and dropped), so every load stays inside A.
static const float *tile_row(const float *a, long lda, long first, long r, long n, long p0) {
    return a + (first + r < n ? first + r : first) * lda + p0;
}

#define GRAM_MR 4
#define GRAM_NR_MAX 4  // tile_avx512's NR; tile_avx2's is 3

// out[r][c] = Σ_p rows[r][p]·cols[c][p] for p < kc: NR vector accumulators per row, summed
// lane by lane along p (lane j takes p ≡ j mod width), the last kc mod width columns by a
// masked load, then each accumulator reduced in a fixed order.
__attribute__((target("avx512f"))) static void tile_avx512(const float *const *rows, const float *const *cols,
                                                           long kc, float *out) {
    enum { NR = 4 };
    __m512 acc[GRAM_MR][NR];
    for (int r = 0; r < GRAM_MR; r++)
        for (int c = 0; c < NR; c++) acc[r][c] = _mm512_setzero_ps();
    long p = 0;
    for (; p + 16 <= kc; p += 16) {
        __m512 b[NR];
        for (int c = 0; c < NR; c++) b[c] = _mm512_loadu_ps(cols[c] + p);
        for (int r = 0; r < GRAM_MR; r++) {
            __m512 a = _mm512_loadu_ps(rows[r] + p);
            for (int c = 0; c < NR; c++) acc[r][c] = _mm512_fmadd_ps(a, b[c], acc[r][c]);
        }
    }
    if (p < kc) {
        __mmask16 mask = (__mmask16)((1u << (kc - p)) - 1);
        __m512 b[NR];
        for (int c = 0; c < NR; c++) b[c] = _mm512_maskz_loadu_ps(mask, cols[c] + p);
        for (int r = 0; r < GRAM_MR; r++) {
            __m512 a = _mm512_maskz_loadu_ps(mask, rows[r] + p);
            for (int c = 0; c < NR; c++) acc[r][c] = _mm512_fmadd_ps(a, b[c], acc[r][c]);
        }
    }
    for (int r = 0; r < GRAM_MR; r++)
        for (int c = 0; c < NR; c++) out[r * NR + c] = _mm512_reduce_add_ps(acc[r][c]);
}

__attribute__((target("avx2,fma"))) static float sum_lanes_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// As tile_avx512 with 8 lanes and 4 × 3 accumulators: 12 + 3 + 1 of the 16 ymm registers
// (4 × 4 spills).
__attribute__((target("avx2,fma"))) static void tile_avx2(const float *const *rows, const float *const *cols,
                                                          long kc, float *out) {
    enum { NR = 3 };
    __m256 acc[GRAM_MR][NR];
    for (int r = 0; r < GRAM_MR; r++)
        for (int c = 0; c < NR; c++) acc[r][c] = _mm256_setzero_ps();
    long p = 0;
    for (; p + 8 <= kc; p += 8) {
        __m256 b[NR];
        for (int c = 0; c < NR; c++) b[c] = _mm256_loadu_ps(cols[c] + p);
        for (int r = 0; r < GRAM_MR; r++) {
            __m256 a = _mm256_loadu_ps(rows[r] + p);
            for (int c = 0; c < NR; c++) acc[r][c] = _mm256_fmadd_ps(a, b[c], acc[r][c]);
        }
    }
    if (p < kc) {
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(kc - p)), lane);
        __m256 b[NR];
        for (int c = 0; c < NR; c++) b[c] = _mm256_maskload_ps(cols[c] + p, mask);
        for (int r = 0; r < GRAM_MR; r++) {
            __m256 a = _mm256_maskload_ps(rows[r] + p, mask);
            for (int c = 0; c < NR; c++) acc[r][c] = _mm256_fmadd_ps(a, b[c], acc[r][c]);
        }
    }
    for (int r = 0; r < GRAM_MR; r++)
        for (int c = 0; c < NR; c++) out[r * NR + c] = sum_lanes_avx2(acc[r][c]);
}

typedef void (*tile_fn)(const float *const *, const float *const *, long, float *);

// Tiles of GRAM_MR rows × nr columns over the upper triangle, chunk by chunk along k; each
// entry adds its chunks' sums in chunk order.
static void gram_tiles(tile_fn tile, int nr /* ≤ GRAM_NR_MAX */, long n, long k, const float *a, long lda, float *c, long ldc) {
    for (long i = 0; i < n; i++) memset(c + i * ldc + i, 0, sizeof(float) * (size_t)(n - i));
    long chunk = chunk_columns(n);
    float out[GRAM_MR * GRAM_NR_MAX];
    const float *rows[GRAM_MR], *cols[GRAM_NR_MAX];
    for (long p0 = 0; p0 < k; p0 += chunk) {
        long kc = k - p0 < chunk ? k - p0 : chunk;
        for (long i0 = 0; i0 < n; i0 += GRAM_MR) {
            for (int r = 0; r < GRAM_MR; r++) rows[r] = tile_row(a, lda, i0, r, n, p0);
            for (long j0 = i0 / nr * nr; j0 < n; j0 += nr) {
                for (int s = 0; s < nr; s++) cols[s] = tile_row(a, lda, j0, s, n, p0);
                tile(rows, cols, kc, out);
                for (long r = 0; r < GRAM_MR && i0 + r < n; r++)
                    for (long s = 0; s < nr && j0 + s < n; s++)
                        if (j0 + s >= i0 + r) c[(i0 + r) * ldc + j0 + s] += out[r * nr + s];
            }
        }
    }
}

int dpft_gram_upper_path(int path, long n, long k, const float *a, long lda, float *c, long ldc) {
    if (path <= 0 || path > best_path) return 0;
    if (path == gram_avx512) {
        gram_tiles(tile_avx512, 4, n, k, a, lda, c, ldc);
    } else {
        gram_tiles(tile_avx2, 3, n, k, a, lda, c, ldc);
    }
    return 1;
}

int dpft_gram_best_path(void) { return best_path; }

#else

int dpft_gram_upper_path(int path, long n, long k, const float *a, long lda, float *c, long ldc) {
    (void)path, (void)n, (void)k, (void)a, (void)lda, (void)c, (void)ldc;
    return 0;
}

int dpft_gram_best_path(void) { return 0; }

#endif

int dpft_gram_upper(long n, long k, const float *a, long lda, float *c, long ldc) {
    return dpft_gram_upper_path(dpft_gram_best_path(), n, k, a, lda, c, ldc);
}
