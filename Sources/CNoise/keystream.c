// The ChaCha20 keystream of the DP noise (NoiseSource), through Debian's OpenSSL libcrypto.
// Chosen over swift-crypto's ChaCha20 (BoringSSL's AVX2 code, ≈ 2.9 GB/s per core on the
// 2-core AMD EPYC of DESIGN.md §8) because OpenSSL also has an AVX-512 path (≈ 5.1 GB/s there,
// `openssl speed -evp chacha20`) and picks its code from the CPU at run time; ChaCha20 was
// ≈ 48 % of the noise's time. The keystream is RFC 8439's either way (NoiseSamplerTests
// compares it with the RFC's vector and with swift-crypto's over several chunks).

#include "CNoise.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

static EVP_CIPHER *chacha20;
static pthread_once_t chacha20_once = PTHREAD_ONCE_INIT;

// Never written: its pages stay the kernel's shared zero page, so reading it costs no memory
// traffic (a memset of the output first cost ≈ 2.6 % of the noise's time).
static uint8_t zeros[DPFT_KEYSTREAM_WORDS_MAX * 8];

static void fetch_chacha20(void) { chacha20 = EVP_CIPHER_fetch(NULL, "ChaCha20", NULL); }

int dpft_chacha20_keystream(uint64_t *words, size_t count, const uint8_t key[32], uint32_t counter,
                            const uint8_t nonce[12]) {
    pthread_once(&chacha20_once, fetch_chacha20);
    if (chacha20 == NULL || count > DPFT_KEYSTREAM_WORDS_MAX) return 0;
    // OpenSSL's ChaCha20 IV: the 32-bit block counter (little-endian), then the 96-bit nonce.
    uint8_t iv[16];
    for (int i = 0; i < 4; i++) iv[i] = (uint8_t)(counter >> (8 * i));
    memcpy(iv + 4, nonce, 12);
    EVP_CIPHER_CTX *context = EVP_CIPHER_CTX_new();
    if (context == NULL) return 0;
    // The keystream is the encryption of zeros.
    int written = 0;
    int ok = EVP_EncryptInit_ex2(context, chacha20, key, iv, NULL) == 1
        && EVP_EncryptUpdate(context, (uint8_t *)words, &written, zeros, (int)(count * 8)) == 1
        && written == (int)(count * 8);
    EVP_CIPHER_CTX_free(context);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < count; i++) words[i] = __builtin_bswap64(words[i]);
#endif
    return ok;
}
