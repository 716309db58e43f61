// A small C API over SentencePiece's C++ processor and trainer, for Swift.
#ifndef DPFT_CSENTENCEPIECE_H
#define DPFT_CSENTENCEPIECE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dpft_spm dpft_spm;

/// Loads a model from serialized bytes. Returns NULL and fills `error` on failure.
dpft_spm *dpft_spm_load(const char *bytes, size_t length, char *error, size_t capacity);
void dpft_spm_free(dpft_spm *model);

int dpft_spm_vocab_size(const dpft_spm *model);
int dpft_spm_bos_id(const dpft_spm *model);
int dpft_spm_eos_id(const dpft_spm *model);
int dpft_spm_pad_id(const dpft_spm *model);
int dpft_spm_unk_id(const dpft_spm *model);

/// Encodes UTF-8 text. Writes up to `capacity` ids and returns the total count (which may
/// exceed `capacity`: call again with a larger buffer), or -1 on error.
int dpft_spm_encode(const dpft_spm *model, const char *text, size_t length,
                    int *ids, int capacity, char *error, size_t error_capacity);

/// Decodes ids to UTF-8. Writes up to `capacity` bytes (not NUL-terminated) and returns the
/// total length, or -1 on error (e.g. an id out of range).
long dpft_spm_decode(const dpft_spm *model, const int *ids, int count,
                     char *text, size_t capacity, char *error, size_t error_capacity);

/// The piece for one id, copied into `piece` (NUL-terminated); returns its length or -1.
int dpft_spm_id_to_piece(const dpft_spm *model, int id, char *piece, size_t capacity);

/// Trains a model from `count` key/value options (SentencePiece's trainer flags without
/// the leading dashes, e.g. "input" → "corpus.txt"). Returns 0 on success, otherwise -1 and
/// fills `error`.
int dpft_spm_train(const char *const *keys, const char *const *values, int count,
                   char *error, size_t capacity);

#ifdef __cplusplus
}
#endif
#endif
