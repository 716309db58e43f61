// The AES-256-CTR keystream of the DP noise (NoiseSource), through Debian's OpenSSL libcrypto,
// which picks its AES code from the CPU at run time (AES-NI and VAES where present; constant
// time everywhere). Chosen over ChaCha20, which the noise used before: on the 2-core AMD EPYC
// of DESIGN.md §8 `openssl speed -evp` gives 8.3 GB/s per core for AES-256-CTR against 5.3
// for ChaCha20, and the keystream was ≈ 40 % of the noise's time (124 M draws of GPT-2 small:
// 195 → 160 ms on two cores). swift-crypto has no raw AES-CTR outside `_CryptoExtras`, whose
// BoringSSL code the tests use as the second reference (NoiseSamplerTests).

#include "CNoise.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

static EVP_CIPHER *aes256ctr;
static pthread_once_t aes256ctr_once = PTHREAD_ONCE_INIT;

// Never written: its pages stay the kernel's shared zero page, so reading it costs no memory
// traffic (a memset of the output first cost ≈ 2.6 % of the noise's time).
static uint8_t zeros[DPFT_KEYSTREAM_WORDS_MAX * 8];

static void fetch_aes256ctr(void) { aes256ctr = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL); }

int dpft_aes256ctr_keystream(uint64_t *words, size_t count, const uint8_t key[32], const uint8_t counter_block[16]) {
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
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < count; i++) words[i] = __builtin_bswap64(words[i]);
#endif
    return ok;
}
