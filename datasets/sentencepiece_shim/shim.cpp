#include "datasets/sentencepiece_shim/shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

char* copy(const std::string& text) {
  auto* buffer = static_cast<char*>(std::malloc(text.size() + 1));
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  return buffer;
}

int fail(const sentencepiece::util::Status& status, char** error) {
  *error = copy(status.ToString());
  return 1;
}

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(std::vector<std::string> sentences) : sentences_(std::move(sentences)) {}
  bool done() const override { return index_ >= sentences_.size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return sentences_[index_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  std::vector<std::string> sentences_;
  size_t index_ = 0;
};

}  // namespace

extern "C" {

int ngd_spm_train(const char* const* sentences, const size_t* sizes, size_t count, const char* const* keys,
                  const char* const* values, size_t settings, char** model, size_t* model_size, char** error) {
  std::vector<std::string> lines;
  for (size_t i = 0; i < count; ++i) lines.emplace_back(sentences[i], sizes[i]);
  std::unordered_map<std::string, std::string> arguments;
  for (size_t i = 0; i < settings; ++i) arguments[keys[i]] = values[i];
  VectorIterator iterator(std::move(lines));
  std::string serialized;
  const auto status = sentencepiece::SentencePieceTrainer::Train(arguments, &iterator, &serialized);
  if (!status.ok()) return fail(status, error);
  *model = static_cast<char*>(std::malloc(serialized.size()));
  std::memcpy(*model, serialized.data(), serialized.size());
  *model_size = serialized.size();
  return 0;
}

int ngd_spm_load(const char* model, size_t size, void** handle, char** error) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const auto status = processor->LoadFromSerializedProto(std::string(model, size));
  if (!status.ok()) {
    delete processor;
    return fail(status, error);
  }
  *handle = processor;
  return 0;
}

void ngd_spm_destroy(void* handle) { delete static_cast<sentencepiece::SentencePieceProcessor*>(handle); }

void ngd_spm_info(void* handle, int* pieces, int* pad, int* unk, int* bos, int* eos) {
  const auto* processor = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
  *pieces = processor->GetPieceSize();
  *pad = processor->pad_id();
  *unk = processor->unk_id();
  *bos = processor->bos_id();
  *eos = processor->eos_id();
}

int ngd_spm_encode(void* handle, const char* text, size_t size, int** ids, size_t* count, char** error) {
  std::vector<int> result;
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(std::string(text, size), &result);
  if (!status.ok()) return fail(status, error);
  *ids = static_cast<int*>(std::malloc(std::max<size_t>(1, result.size()) * sizeof(int)));
  std::memcpy(*ids, result.data(), result.size() * sizeof(int));
  *count = result.size();
  return 0;
}

int ngd_spm_decode(void* handle, const int* ids, size_t count, char** text, size_t* size, char** error) {
  std::string result;
  const auto status =
      static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(std::vector<int>(ids, ids + count), &result);
  if (!status.ok()) return fail(status, error);
  *text = copy(result);
  *size = result.size();
  return 0;
}

void ngd_spm_free(void* buffer) { std::free(buffer); }
}
