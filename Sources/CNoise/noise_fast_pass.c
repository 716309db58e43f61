// Hand-written in C, not Swift, for one reason: the loop below needs the CPU's vector gathers
// and 64-bit integer arithmetic, which Swift can only use when the whole program is compiled
// for one CPU, and dpft runs on whatever CPU it finds (README, "Machines"). Clang's
// target_clones compiles the loop once per instruction set and picks one at load time.

#include "CNoise.h"

#include <math.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "dpft_noise_fast_pass reads the keystream's bytes as little-endian integers"
#endif

// a·b + c must stay two roundings (the Swift code's); a fused multiply-add would change bits.
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
size_t dpft_noise_fast_pass(float *restrict values, const void *restrict keystream, size_t count,
                            const uint64_t *restrict bounds, double inverse_spacing, double spacing, float scale,
                            uint32_t *restrict pending_index, uint64_t *restrict pending_proposal) {
    if (count > DPFT_NOISE_PASS) __builtin_trap();
    const unsigned char *cell_bits = keystream;
    const unsigned char *tags = cell_bits + 4 * count;
    uint8_t outside[DPFT_NOISE_PASS + 8];
    size_t outside_count = 0;
    for (size_t j = 0; j < count; j++) {
        uint32_t bits;
        uint16_t tag;
        memcpy(&bits, cell_bits + 4 * j, 4);
        memcpy(&tag, tags + 2 * j, 2);
        uint64_t bound = bounds[tag & 0xFF];
        uint32_t cells = (uint32_t)bound;
        int64_t inner = (int64_t)(bound >> 32);
        // Lemire's multiply-shift on the 38 bits (bits · 2⁶ + tag's top six) · cells < 2⁶³.
        uint64_t product = ((uint64_t)bits * cells << 6) + (uint64_t)((uint32_t)(tag >> 10) * cells);
        int64_t cell = (int64_t)(product >> 38);
        int64_t low = (int64_t)(product & ((1ull << 38) - 1));
        int inside = (low >= (int64_t)cells) & (cell < inner);
        union { double d; uint64_t b; } k = { .d = (double)(int32_t)(cell + ((tag >> 9) & 1)) };
        k.b |= (uint64_t)(tag & 0x100) << 55;
        double scaled = (double)values[j] * inverse_spacing;
        double snapped = fabs(scaled) < 0x1p51 ? round_small(scaled) : __builtin_roundeven(scaled);
        float noisy = (float)((snapped + k.d) * spacing);
        values[j] = inside ? noisy * scale : values[j];
        outside[j] = (uint8_t)!inside;
        outside_count += (size_t)!inside;
    }
    if (outside_count == 0) return 0;
    __builtin_memset(outside + count, 0, 8);  // the last 8-flag read may pass `count`
    // ≈ 1.5 % of proposals are outside: test eight flags at a time.
    size_t listed = 0;
    for (size_t group = 0; group < count; group += 8) {
        uint64_t flags = 0;
        __builtin_memcpy(&flags, outside + group, 8);
        if (flags == 0) continue;
        for (size_t j = group; j < group + 8 && j < count; j++) {
            if (!outside[j]) continue;
            uint32_t bits;
            uint16_t tag;
            memcpy(&bits, cell_bits + 4 * j, 4);
            memcpy(&tag, tags + 2 * j, 2);
            pending_index[listed] = (uint32_t)j;
            pending_proposal[listed] = (uint64_t)bits << 32 | tag;
            listed++;
        }
    }
    return listed;
}
