// The AES-256-CTR keystream of the DP noise (NoiseSource). Two implementations of one function:
//
// - Debian's OpenSSL libcrypto, which picks its AES code from the CPU at run time (AES-NI where
//   present; constant time everywhere). Chosen over ChaCha20, which the noise used before: on
//   the 2-core AMD EPYC of DESIGN.md §8 `openssl speed -evp` gives 8.3 GB/s per core for
//   AES-256-CTR against 5.3 for ChaCha20.
// - A hand-written loop over the VAES instructions (AES rounds on four blocks per AVX-512
//   instruction), used when the CPU has them. Written by hand because OpenSSL 3.0's CTR mode
//   runs one 128-bit block per AES instruction even on such CPUs, and the keystream was ≈ 30 %
//   of the noise's time: on the same EPYC it writes 32 KiB chunks at ≈ 15 GB/s per core
//   against OpenSSL's 7.7 (one run, alternated). Only the round instructions are the CPU's; the
//   key schedule is FIPS-197 §5.2 through AESKEYGENASSIST. Both are constant time. Tests
//   compare it with NIST SP 800-38A, with OpenSSL and with swift-crypto (NoiseSamplerTests).
//
// swift-crypto has no raw AES-CTR outside `_CryptoExtras`, whose BoringSSL code the tests use
// as the third reference.

#include "CNoise.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static EVP_CIPHER *aes256ctr;
static pthread_once_t aes256ctr_once = PTHREAD_ONCE_INIT;

// Never written: its pages stay the kernel's shared zero page, so reading it costs no memory
// traffic (a memset of the output first cost ≈ 2.6 % of the noise's time).
static uint8_t zeros[DPFT_KEYSTREAM_WORDS_MAX * 8];

static void fetch_aes256ctr(void) { aes256ctr = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL); }

int dpft_aes256ctr_keystream_openssl(uint64_t *words, size_t count, const uint8_t key[32],
                                     const uint8_t counter_block[16]) {
    pthread_once(&aes256ctr_once, fetch_aes256ctr);
    if (aes256ctr == NULL || count > DPFT_KEYSTREAM_WORDS_MAX) return 0;
    EVP_CIPHER_CTX *context = EVP_CIPHER_CTX_new();
    if (context == NULL) return 0;
    // The keystream is the encryption of zeros.
    int written = 0;
    int ok = EVP_EncryptInit_ex2(context, aes256ctr, key, counter_block, NULL) == 1
        && EVP_EncryptUpdate(context, (uint8_t *)words, &written, zeros, (int)(count * 8)) == 1
        && written == (int)(count * 8);
    EVP_CIPHER_CTX_free(context);
    return ok;
}

#if defined(__x86_64__)

// FIPS-197 §5.2 for Nk = 8: each new word is the word 8 back XOR the previous one, which is
// first rotated, substituted and XORed with the round constant (every 8th word) or only
// substituted (every 4th). AESKEYGENASSIST computes those transforms of a 128-bit half; the
// shifts and XORs chain the four words of a round key.
__attribute__((target("aes,sse2")))
static __m128i chain(__m128i previous, __m128i assisted) {
    previous = _mm_xor_si128(previous, _mm_slli_si128(previous, 4));
    previous = _mm_xor_si128(previous, _mm_slli_si128(previous, 4));
    previous = _mm_xor_si128(previous, _mm_slli_si128(previous, 4));
    return _mm_xor_si128(previous, assisted);
}

#define DPFT_EXPAND_PAIR(i, rcon)                                                                  \
    low = chain(low, _mm_shuffle_epi32(_mm_aeskeygenassist_si128(high, rcon), 0xFF));            \
    round_keys[i] = low;                                                                           \
    if (i < 14) {                                                                                  \
        high = chain(high, _mm_shuffle_epi32(_mm_aeskeygenassist_si128(low, 0), 0xAA));          \
        round_keys[i + 1] = high;                                                                  \
    }

__attribute__((target("aes,sse2")))
static void expand_key(const uint8_t key[32], __m128i round_keys[15]) {
    __m128i low = _mm_loadu_si128((const __m128i *)key), high = _mm_loadu_si128((const __m128i *)(key + 16));
    round_keys[0] = low;
    round_keys[1] = high;
    DPFT_EXPAND_PAIR(2, 0x01) DPFT_EXPAND_PAIR(4, 0x02) DPFT_EXPAND_PAIR(6, 0x04) DPFT_EXPAND_PAIR(8, 0x08)
    DPFT_EXPAND_PAIR(10, 0x10) DPFT_EXPAND_PAIR(12, 0x20) DPFT_EXPAND_PAIR(14, 0x40)
}

// 16 blocks per iteration, four per register: four independent chains hide the rounds'
// latency (eight were no faster). `first` is the big-endian number in the counter block's last
// four bytes; the caller makes sure first + blocks does not pass 2³², so no carry reaches
// byte 11. The last partial group goes through a buffer on the stack.
__attribute__((target("avx512f,avx512bw,vaes,aes")))
static void ctr_vaes(uint8_t *out, size_t bytes, const __m128i round_keys[15], const uint8_t counter_block[16],
                     uint32_t first) {
    __m512i keys[15];
    for (int r = 0; r < 15; r++) keys[r] = _mm512_broadcast_i32x4(round_keys[r]);
    const __m512i prefix = _mm512_broadcast_i32x4(_mm_insert_epi32(_mm_loadu_si128((const __m128i *)counter_block), 0, 3));
    const __m512i to_big_endian = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 15, 14, 13, 12));
    __m512i counters = _mm512_add_epi32(_mm512_set1_epi32((int)first),
                                        _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3));
    counters = _mm512_and_si512(counters, _mm512_setr_epi32(0, 0, 0, -1, 0, 0, 0, -1, 0, 0, 0, -1, 0, 0, 0, -1));
    const __m512i four = _mm512_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4);
    for (size_t done = 0; done < bytes; done += 256) {
        __m512i x[4];
        for (int q = 0; q < 4; q++) {
            x[q] = _mm512_xor_si512(_mm512_or_si512(prefix, _mm512_shuffle_epi8(counters, to_big_endian)), keys[0]);
            counters = _mm512_add_epi32(counters, four);
        }
        for (int r = 1; r < 14; r++)
            for (int q = 0; q < 4; q++) x[q] = _mm512_aesenc_epi128(x[q], keys[r]);
        for (int q = 0; q < 4; q++) x[q] = _mm512_aesenclast_epi128(x[q], keys[14]);
        if (bytes - done >= 256) {
            for (int q = 0; q < 4; q++) _mm512_storeu_si512(out + done + 64 * q, x[q]);
        } else {
            uint8_t last[256];
            for (int q = 0; q < 4; q++) _mm512_storeu_si512(last + 64 * q, x[q]);
            memcpy(out + done, last, bytes - done);
            OPENSSL_cleanse(last, sizeof last);
        }
    }
    // The broadcast round keys are spilled to the stack (the calls above clobber registers):
    // wiped like the caller's schedule.
    OPENSSL_cleanse(keys, sizeof keys);
}

static int vaes;
static pthread_once_t vaes_once = PTHREAD_ONCE_INIT;

static void detect_vaes(void) {
    __builtin_cpu_init();
    vaes = __builtin_cpu_supports("vaes") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("aes");
}

int dpft_keystream_uses_vaes(void) {
    pthread_once(&vaes_once, detect_vaes);  // the noise's threads may ask at once
    return vaes;
}

#else
int dpft_keystream_uses_vaes(void) { return 0; }
#endif

int dpft_aes256ctr_keystream(uint64_t *words, size_t count, const uint8_t key[32], const uint8_t counter_block[16]) {
    if (count > DPFT_KEYSTREAM_WORDS_MAX) return 0;
    int ok = 0;
#if defined(__x86_64__)
    uint32_t first = (uint32_t)counter_block[12] << 24 | (uint32_t)counter_block[13] << 16
        | (uint32_t)counter_block[14] << 8 | counter_block[15];
    uint64_t blocks = (count + 1) / 2;
    if (dpft_keystream_uses_vaes() && (uint64_t)first + blocks <= (1ull << 32)) {
        __m128i round_keys[15];
        expand_key(key, round_keys);
        ctr_vaes((uint8_t *)words, count * 8, round_keys, counter_block, first);
        OPENSSL_cleanse(round_keys, sizeof round_keys);
        ok = 1;
    } else
#endif
        ok = dpft_aes256ctr_keystream_openssl(words, count, key, counter_block);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < count; i++) words[i] = __builtin_bswap64(words[i]);
#endif
    return ok;
}
