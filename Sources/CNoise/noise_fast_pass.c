// Hand-written in C, not Swift, for one reason: the loop below needs the CPU's vector gathers
// and 64-bit integer conversions, which Swift can only use when the whole program is compiled
// for one CPU, and dpft runs on whatever CPU it finds (README, "Machines"). Clang's
// target_clones compiles the loop once per instruction set and picks one at load time.

#include "CNoise.h"

#include <math.h>

// a·b + c must stay two roundings (the Swift loop's); a fused multiply-add would change bits.
#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)

// Round to nearest, ties to even, for |x| < 2⁵¹ (as GaussianSampler.roundToEven).
static inline double round_small(double x) { return (x + 0x1.8p52) - 0x1.8p52; }

#if defined(__x86_64__)
#define DPFT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DPFT_CLONES
#endif

DPFT_CLONES
size_t dpft_noise_fast_pass(float *restrict values, const uint64_t *restrict words, size_t count,
                            const uint64_t *restrict inner_limit, const double *restrict strip_scale,
                            double inverse_spacing, double spacing,
                            uint32_t *restrict pending_index, uint64_t *restrict pending_word) {
    if (count > DPFT_NOISE_PASS) __builtin_trap();
    uint8_t outside[DPFT_NOISE_PASS + 8];
    size_t outside_count = 0;
    for (size_t j = 0; j < count; j++) {
        uint64_t word = words[j];
        size_t strip = (size_t)(word & 0xFF);
        uint64_t sign = (word & 0x100) << 55;
        uint64_t u = word >> 11;
        double magnitude = round_small((double)(int64_t)u * strip_scale[strip]);
        union { double d; uint64_t b; } k = { .d = magnitude };
        k.b |= sign;
        double scaled = (double)values[j] * inverse_spacing;
        double snapped = fabs(scaled) < 0x1p51 ? round_small(scaled) : __builtin_roundeven(scaled);
        int inside = u < inner_limit[strip];
        float noisy = (float)((snapped + k.d) * spacing);
        values[j] = inside ? noisy : values[j];
        outside[j] = (uint8_t)!inside;
        outside_count += (size_t)!inside;
    }
    if (outside_count == 0) return 0;
    __builtin_memset(outside + count, 0, 8);  // the last 8-flag read may pass `count`
    // ≈ 1.5 % of points are outside: test eight flags at a time.
    size_t listed = 0;
    for (size_t group = 0; group < count; group += 8) {
        uint64_t flags = 0;
        __builtin_memcpy(&flags, outside + group, 8);
        if (flags == 0) continue;
        for (size_t j = group; j < group + 8 && j < count; j++) {
            if (!outside[j]) continue;
            pending_index[listed] = (uint32_t)j;
            pending_word[listed] = words[j];
            listed++;
        }
    }
    return listed;
}
