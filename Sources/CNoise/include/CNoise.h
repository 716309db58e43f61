#ifndef DPFT_CNOISE_H
#define DPFT_CNOISE_H

#include <stddef.h>
#include <stdint.h>

/// Coordinates per call of `dpft_noise_fast_pass` at most.
#define DPFT_NOISE_PASS 256

/// A proposal's 16-bit tag, read by the kernel below and by GaussianSampler's field helpers in
/// Swift: bits 0–10 pick one of the ziggurat's 2048 boxes, bit 11 is the sign, bit 12 the half
/// of the cell, and bits 13–15 are the top three of the 35 cell bits (the other 32 are a
/// keystream word of their own).
#define DPFT_NOISE_BOX_MASK 0x7FF
#define DPFT_NOISE_SIGN_BIT 11
#define DPFT_NOISE_HALF_BIT 12
#define DPFT_NOISE_CELL_TOP_SHIFT 13
#define DPFT_NOISE_CELL_BITS 35

/// The common path of the noise sampler (GaussianSampler.fastPass in Swift, whose doc comment
/// has the construction). Proposal j (< count ≤ DPFT_NOISE_PASS) reads `bits`, the
/// little-endian 32-bit integer at byte 4j of `keystream`, and `tag`, the 16-bit one at byte
/// 4·count + 2j (fields above; bounds has DPFT_NOISE_BOX_MASK + 1 entries), and with bounds[box] = cells | inner << 32
/// the cell is ((tag >> 13)·2³² + bits)·cells >> 35
/// (Lemire). When the product's low 35 bits are ≥ cells and cell < inner it sets
///     values[j] = (float)((roundeven(values[j] * inverse_spacing) ± (cell + half)) * spacing) * scale
/// (a zero sum gives +0, as GaussianSampler.roundToEven's snapping does)
/// and otherwise leaves values[j] and appends j to `pending_index` and bits << 32 | tag to
/// `pending_proposal`. It computes the sum in 32-bit integers, so it also lists (and leaves) a
/// coordinate whose |values[j]·inverse_spacing| is not below 2³⁰ or is NaN, and every
/// coordinate when spacing is outside [2⁻¹²⁶, 2⁹⁶] or spacing·scale is not exact in float: the caller
/// finishes those in double precision, where a proposal the test above accepts reads no more
/// keystream. Returns how many were appended. The float product with `scale` comes after
/// the noisy value's rounding to float: a later pass `values[j] *= scale` gives the same bits.
/// Every operation is exact integer arithmetic or a correctly rounded IEEE operation with no
/// contraction, so the result is bit-identical to Swift's double path on every CPU; the loop is
/// compiled for AVX-512, AVX2 and baseline x86-64 and the best one the CPU has is picked at
/// load time.
size_t dpft_noise_fast_pass(float *values, const void *keystream, size_t count, const uint64_t *bounds,
                            double inverse_spacing, double spacing, float scale,
                            uint32_t *pending_index, uint64_t *pending_proposal);

/// Words per call of `dpft_aes256ctr_keystream` at most (1 MiB of keystream, 2¹⁶ blocks).
#define DPFT_KEYSTREAM_WORDS_MAX (1 << 17)

/// Writes `count` 64-bit words of the AES-256 counter-mode keystream (NIST SP 800-38A: the
/// encryption of the 128-bit counter block, then of that block plus 1, 2, … as a big-endian
/// integer) under the 256-bit `key`, each word read from its 8 keystream bytes in
/// little-endian order. Uses the CPU's VAES instructions where it has them (and the counter's
/// last 32 bits do not wrap), OpenSSL's libcrypto otherwise. Returns 1, or 0 when OpenSSL cannot
/// provide AES-256-CTR or `count` is over DPFT_KEYSTREAM_WORDS_MAX. Safe to call from several
/// threads at once.
int dpft_aes256ctr_keystream(uint64_t *words, size_t count, const uint8_t key[32], const uint8_t counter_block[16]);

/// The same keystream from OpenSSL's libcrypto alone, in bytes (no byte-order swap): the
/// reference the tests hold the VAES loop to.
int dpft_aes256ctr_keystream_openssl(uint64_t *words, size_t count, const uint8_t key[32],
                                     const uint8_t counter_block[16]);

/// 1 when `dpft_aes256ctr_keystream` runs the VAES loop on this CPU.
int dpft_keystream_uses_vaes(void);

#endif
