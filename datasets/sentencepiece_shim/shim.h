// C interface of the SentencePiece shim library (ngdbench_spm). The harness loads it with dlopen(...,
// RTLD_LOCAL | RTLD_DEEPBIND): Debian's libsentencepiece bundles and exports its own protobuf-lite,
// which clashes with the libprotobuf LibTorch loads (a crash in static initialisation when both are
// linked into one program). Loaded into its own symbol scope, each library keeps its own protobuf.
// Every function returns 0 on success, or non-zero with *error set to a message the caller frees
// with ngd_spm_free.
#pragma once

#include <cstddef>

extern "C" {

// Trains a model on `count` sentences with SentencePiece trainer settings given as key/value pairs;
// *model receives the serialized model (free with ngd_spm_free).
int ngd_spm_train(const char* const* sentences, const size_t* sizes, size_t count, const char* const* keys,
                  const char* const* values, size_t settings, char** model, size_t* model_size, char** error);

// Loads a serialized model; *handle is released with ngd_spm_destroy.
int ngd_spm_load(const char* model, size_t size, void** handle, char** error);
void ngd_spm_destroy(void* handle);

// The vocabulary size and the special ids of a loaded model.
void ngd_spm_info(void* handle, int* pieces, int* pad, int* unk, int* bos, int* eos);

// Text → ids (*ids freed with ngd_spm_free) and ids → text (*text, *size).
int ngd_spm_encode(void* handle, const char* text, size_t size, int** ids, size_t* count, char** error);
int ngd_spm_decode(void* handle, const int* ids, size_t count, char** text, size_t* size, char** error);

void ngd_spm_free(void* buffer);
}
