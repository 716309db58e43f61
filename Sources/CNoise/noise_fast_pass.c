// Hand-written in C, not Swift, for one reason: the loop below needs the CPU's widest vectors
// and their 32 × 32 → 64-bit products, which Swift can only use when the whole program is compiled
// for one CPU, and dpft runs on whatever CPU it finds (README, "Machines"). Clang's
// target_clones compiles the loop once per instruction set and picks one at load time.

#include "CNoise.h"

#include <math.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "dpft_noise_fast_pass reads the keystream's bytes as little-endian integers"
#endif

// Each product rounds on its own (as Swift's do); a fused multiply-add would change bits.
#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)

#if defined(__x86_64__)
#define DPFT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DPFT_CLONES
#endif

// The snapped value and the noise are added as 32-bit integers and the sum rounded to float
// once: the double sum `(round(x/λ) + k)·λ` rounded to float gives the same bits whenever
// |x/λ| < 2³⁰ (so the sum fits) and λ and 1/λ are normal floats with |sum|·λ < 2¹²⁷ (so the
// scaling by λ is exact). A zero sum is +0 either way: the double path snaps by adding and
// subtracting 1.5·2⁵², which gives +0, never −0, and +0 plus ±0 is +0.
// Lanes outside those bounds are listed as pending: Swift's double path finishes them, and a
// proposal the rectangle test accepts takes no further keystream there, so the noise is the
// same. 32-bit lanes do less vector work per coordinate than the doubles they replace.
static const float fits_limit = 0x1p30f;

// The tag's fields fill its 16 bits exactly; the cell's top bits are few enough that
// q = ⌊p/2³²⌋ + top·cells below stays under 2³² (top < 2³, cells < 2²⁸).
_Static_assert(DPFT_NOISE_CELL_TOP_SHIFT + (DPFT_NOISE_CELL_BITS - 32) == 16, "tag fields must fill 16 bits");
_Static_assert(DPFT_NOISE_CELL_BITS - 32 <= 3, "q < 2³² needs at most three top cell bits");
_Static_assert(DPFT_NOISE_SIGN_BIT < DPFT_NOISE_HALF_BIT && DPFT_NOISE_HALF_BIT < DPFT_NOISE_CELL_TOP_SHIFT
               && DPFT_NOISE_BOX_MASK < (1 << DPFT_NOISE_SIGN_BIT), "tag fields overlap");
enum { top_bits = DPFT_NOISE_CELL_BITS - 32 };

// Four table entries, built in vector registers (see the lookup loop).
typedef uint64_t v4u64 __attribute__((vector_size(32), aligned(8)));

DPFT_CLONES
size_t dpft_noise_fast_pass(float *restrict values, const void *restrict keystream, size_t count,
                            const uint64_t *restrict bounds, double inverse_spacing, double spacing, float scale,
                            uint32_t *restrict pending_index, uint64_t *restrict pending_proposal) {
    if (count > DPFT_NOISE_PASS) __builtin_trap();
    const unsigned char *cell_bits = keystream;
    const unsigned char *tags = cell_bits + 4 * count;
    // Outside [2⁻¹²⁶, 2⁹⁶] every lane goes to the double path (a limit no value is below).
    int normal_grid = spacing >= 0x1p-126 && spacing <= 0x1p96;
    // sum·λ is exact (λ a power of two, the sum below 2³¹), so (sum·λ)·scale and sum·(λ·scale)
    // round the same real once: one product instead of two, where λ·scale is itself exact (for
    // any scale a step uses; otherwise every lane goes to the double path too).
    float step_scale = (float)spacing * scale;
    normal_grid = normal_grid && (double)step_scale == spacing * (double)scale;
    float inverse = normal_grid ? (float)inverse_spacing : 1;
    float limit = normal_grid ? fits_limit : 0;
    uint8_t outside[DPFT_NOISE_PASS + 8];
    // Asks for the values eight passes on (8 KiB ahead, a 64-byte line per 16 floats): the value
    // loads below otherwise wait on memory when a step's gradient is far larger than the caches
    // (GPT-2 small's 124 M coordinates: 1.76 → 1.63 CPU ns per draw, medians of 12 alternated
    // calls on one core of the 2-core AMD EPYC). The address is formed as an integer because it
    // may lie past the end of `values`; a prefetch never faults.
    uintptr_t ahead = (uintptr_t)values + 8 * count * sizeof(float);
    for (size_t l = 0; l < count; l += 16) __builtin_prefetch((const void *)(ahead + l * sizeof(float)), 1, 3);
    // The table entries, looked up with plain loads into a buffer: Zen 4's vector gathers are
    // many micro-ops that compete with the arithmetic below (a gather per 8 lanes: 1.52 CPU ns
    // per draw with the keystream; one load and one store per entry: 1.47, medians of alternated
    // calls on one core). That loop was bound by its stores; four entries built in vector
    // registers take two 16-byte stores (1.44 → 1.37 with the 32-bit-lane Lemire below; eight per
    // 64-byte store: 1.39).
    uint64_t looked[DPFT_NOISE_PASS];
    size_t looked_count = 0;
    for (; looked_count + 4 <= count; looked_count += 4) {
        uint64_t four;
        memcpy(&four, tags + 2 * looked_count, 8);
        v4u64 entries = {bounds[four & DPFT_NOISE_BOX_MASK], bounds[(four >> 16) & DPFT_NOISE_BOX_MASK],
                         bounds[(four >> 32) & DPFT_NOISE_BOX_MASK], bounds[(four >> 48) & DPFT_NOISE_BOX_MASK]};
        memcpy(looked + looked_count, &entries, sizeof entries);
    }
#pragma clang loop vectorize(disable)
    for (; looked_count < count; looked_count++) {  // the last pass's last three at most
        uint16_t tag;
        memcpy(&tag, tags + 2 * looked_count, 2);
        looked[looked_count] = bounds[tag & DPFT_NOISE_BOX_MASK];
    }
    // Four vectors in flight: with clang's default interleaving this loop ran ≈ 4 % slower.
#pragma clang loop interleave_count(4)
    for (size_t j = 0; j < count; j++) {
        uint32_t bits;
        uint16_t tag;
        memcpy(&bits, cell_bits + 4 * j, 4);
        memcpy(&tag, tags + 2 * j, 2);
        uint64_t bound = looked[j];
        uint32_t cells = (uint32_t)bound;
        uint32_t inner = (uint32_t)(bound >> 32);
        // Lemire's multiply-shift on the 35 bits u = (tag >> 13)·2³² + bits: with p = bits·cells,
        // u·cells = q·2³² + (p mod 2³²) for q = ⌊p/2³²⌋ + (tag >> 13)·cells < 9·2²⁸, so the
        // cell is q >> 3 and the product's low 35 bits are (q mod 8)·2³² + (p mod 2³²), which
        // are ≥ cells (< 2²⁸) when q mod 8 ≠ 0 or p mod 2³² ≥ cells. One 64-bit product per
        // lane, the rest in 32-bit lanes (the form bits·2³ + tag's top three took twice the
        // 64-bit operations: 1.47 → 1.45 CPU ns per draw).
        uint64_t p = (uint64_t)bits * cells;
        uint32_t q = (uint32_t)(p >> 32) + (uint32_t)(tag >> DPFT_NOISE_CELL_TOP_SHIFT) * cells;
        uint32_t cell = q >> top_bits;  // < cells
        int lemire = ((q & ((1u << top_bits) - 1)) != 0) | ((uint32_t)p >= cells);
        int32_t magnitude = (int32_t)(cell + ((tag >> DPFT_NOISE_HALF_BIT) & 1));
        int32_t k = (tag >> DPFT_NOISE_SIGN_BIT & 1) ? -magnitude : magnitude;
        float scaled = values[j] * inverse;  // exact, or below 2⁻¹²⁶ where it snaps to 0 anyway
        int fits = fabsf(scaled) < limit;    // false for NaN
        int32_t sum = (fits ? (int32_t)__builtin_rintf(scaled) : 0) + k;
        int inside = lemire & (cell < inner) & fits;
        values[j] = inside ? (float)sum * step_scale : values[j];
        outside[j] = (uint8_t)!inside;
    }
    __builtin_memset(outside + count, 0, 8);  // the last 8-flag read may pass `count`
    // ≈ 0.25 % of proposals are outside: test eight flags at a time.
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
