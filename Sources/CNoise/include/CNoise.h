#ifndef DPFT_CNOISE_H
#define DPFT_CNOISE_H

#include <stddef.h>
#include <stdint.h>

/// Coordinates per call of `dpft_noise_fast_pass` at most.
#define DPFT_NOISE_PASS 256

/// The common path of the ziggurat noise sampler (GaussianSampler.fastPass in Swift, whose doc
/// comment has the construction): for j < count, with word = words[j], strip = word & 0xFF,
/// u = word >> 11 and sign = bit 8, where u < inner_limit[strip] sets
///     values[j] = (float)((roundeven(values[j] * inverse_spacing) ± roundeven(u * strip_scale[strip])) * spacing)
/// and otherwise leaves values[j] and appends j to `pending_index` and the word to
/// `pending_word`. Returns how many were appended. `count` ≤ DPFT_NOISE_PASS.
/// Every operation is a correctly rounded IEEE double operation with no contraction, so the
/// result is bit-identical to the Swift loop on every CPU; the loop is compiled for AVX-512,
/// AVX2 and baseline x86-64 and the best one the CPU has is picked at load time.
size_t dpft_noise_fast_pass(float *values, const uint64_t *words, size_t count,
                            const uint64_t *inner_limit, const double *strip_scale,
                            double inverse_spacing, double spacing,
                            uint32_t *pending_index, uint64_t *pending_word);

/// Words per call of `dpft_chacha20_keystream` at most (1 MiB of keystream).
#define DPFT_KEYSTREAM_WORDS_MAX (1 << 17)

/// Writes `count` 64-bit words of the ChaCha20 keystream (RFC 8439) under the 256-bit `key` and
/// 96-bit `nonce`, starting at block `counter`, each word read from its 8 keystream bytes in
/// little-endian order. Returns 1, or 0 when OpenSSL cannot provide ChaCha20 or `count` is
/// over DPFT_KEYSTREAM_WORDS_MAX. Safe to call from several threads at once.
int dpft_chacha20_keystream(uint64_t *words, size_t count, const uint8_t key[32], uint32_t counter,
                            const uint8_t nonce[12]);

#endif
