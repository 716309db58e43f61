#include "CSentencePiece.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <unordered_map>
#include <vector>

struct dpft_spm {
    sentencepiece::SentencePieceProcessor processor;
};

static void write_error(char *error, size_t capacity, const std::string &message) {
    if (error != nullptr && capacity > 0) {
        std::snprintf(error, capacity, "%s", message.c_str());
    }
}

// Swift passes a NULL base address for an empty buffer; std::string(NULL, 0) is undefined.
static std::string make_string(const char *bytes, size_t length) {
    return bytes == nullptr ? std::string() : std::string(bytes, length);
}

// No C++ exception may cross into Swift (it would terminate the process): each entry point
// below turns one into an error message.

extern "C" dpft_spm *dpft_spm_load(const char *bytes, size_t length, char *error,
                                   size_t capacity) {
    try {
        auto *model = new dpft_spm();
        auto status = model->processor.LoadFromSerializedProto(make_string(bytes, length));
        if (!status.ok()) {
            write_error(error, capacity, status.ToString());
            delete model;
            return nullptr;
        }
        return model;
    } catch (const std::exception &e) {
        write_error(error, capacity, e.what());
        return nullptr;
    }
}

extern "C" void dpft_spm_free(dpft_spm *model) { delete model; }

extern "C" int dpft_spm_vocab_size(const dpft_spm *m) { return m->processor.GetPieceSize(); }
extern "C" int dpft_spm_bos_id(const dpft_spm *m) { return m->processor.bos_id(); }
extern "C" int dpft_spm_eos_id(const dpft_spm *m) { return m->processor.eos_id(); }
extern "C" int dpft_spm_pad_id(const dpft_spm *m) { return m->processor.pad_id(); }
extern "C" int dpft_spm_unk_id(const dpft_spm *m) { return m->processor.unk_id(); }

extern "C" int dpft_spm_encode(const dpft_spm *model, const char *text, size_t length,
                               int *ids, int capacity, char *error, size_t error_capacity) {
    try {
        std::vector<int> pieces;
        auto status = model->processor.Encode(make_string(text, length), &pieces);
        if (!status.ok()) {
            write_error(error, error_capacity, status.ToString());
            return -1;
        }
        int count = static_cast<int>(pieces.size());
        for (int i = 0; i < count && i < capacity; i++) ids[i] = pieces[i];
        return count;
    } catch (const std::exception &e) {
        write_error(error, error_capacity, e.what());
        return -1;
    }
}

extern "C" long dpft_spm_decode(const dpft_spm *model, const int *ids, int count, char *text,
                                size_t capacity, char *error, size_t error_capacity) {
    int size = model->processor.GetPieceSize();
    for (int i = 0; i < count; i++) {
        if (ids[i] < 0 || ids[i] >= size) {
            write_error(error, error_capacity,
                        "id " + std::to_string(ids[i]) + " is outside the vocabulary [0, " +
                            std::to_string(size) + ")");
            return -1;
        }
    }
    try {
        std::string out;
        std::vector<int> pieces;
        if (count > 0) pieces.assign(ids, ids + count);
        auto status = model->processor.Decode(pieces, &out);
        if (!status.ok()) {
            write_error(error, error_capacity, status.ToString());
            return -1;
        }
        size_t copied = out.size() < capacity ? out.size() : capacity;
        if (copied > 0) std::memcpy(text, out.data(), copied);
        return static_cast<long>(out.size());
    } catch (const std::exception &e) {
        write_error(error, error_capacity, e.what());
        return -1;
    }
}

extern "C" int dpft_spm_id_to_piece(const dpft_spm *model, int id, char *piece,
                                    size_t capacity) {
    if (id < 0 || id >= model->processor.GetPieceSize()) return -1;
    const std::string &p = model->processor.IdToPiece(id);
    write_error(piece, capacity, p);
    return static_cast<int>(p.size());
}

extern "C" int dpft_spm_train(const char *const *keys, const char *const *values, int count,
                              char *error, size_t capacity) {
    try {
        std::unordered_map<std::string, std::string> options;
        for (int i = 0; i < count; i++) options[keys[i]] = values[i];
        auto status = sentencepiece::SentencePieceTrainer::Train(options);
        if (!status.ok()) {
            write_error(error, capacity, status.ToString());
            return -1;
        }
        return 0;
    } catch (const std::exception &e) {
        write_error(error, capacity, e.what());
        return -1;
    }
}
