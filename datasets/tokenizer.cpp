#include "datasets/tokenizer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/results.h"
#include "harness/stable_hash.h"

namespace ngd {
namespace {

// Bumped when the trainer settings below change, so old caches are not reused.
constexpr int kTokenizerFormatVersion = 1;

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& sentences) : sentences_(sentences) {}
  bool done() const override { return index_ >= sentences_.size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return sentences_[index_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  const std::vector<std::string>& sentences_;
  size_t index_ = 0;
};

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

// A folder we can create and write a file in.
bool writable_folder(const std::filesystem::path& folder) {
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  return !error && ::access(folder.c_str(), W_OK) == 0;
}

std::filesystem::path user_cache_root() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::filesystem::path(xdg) / "ngdbench";
  }
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : ".") / ".cache" / "ngdbench";
}

std::shared_ptr<const SubwordTokenizer> load_or_train(const std::filesystem::path& file,
                                                      const std::vector<std::string>& sentences,
                                                      const TokenizerSettings& settings, bool& trained) {
  if (std::filesystem::exists(file)) {
    return std::make_shared<SubwordTokenizer>(SubwordTokenizer::from_serialized(read_file(file), file.string()));
  }
  auto tokenizer = SubwordTokenizer::train(sentences, settings.vocab_size, settings.model_type);
  write_file_atomically(file.string(), tokenizer.serialized());
  trained = true;
  return std::make_shared<SubwordTokenizer>(std::move(tokenizer));
}

}  // namespace

SubwordTokenizer SubwordTokenizer::train(const std::vector<std::string>& sentences, int64_t vocab_size,
                                         const std::string& model_type) {
  if (sentences.empty()) throw std::runtime_error("tokenizer: no training sentences");
  VectorIterator iterator(sentences);
  const std::unordered_map<std::string, std::string> settings = {
      {"model_type", model_type},
      {"vocab_size", std::to_string(vocab_size)},
      {"hard_vocab_limit", "false"},  // a small corpus gives fewer pieces instead of an error
      {"character_coverage", "1.0"},
      {"pad_id", std::to_string(kPadId)},
      {"unk_id", std::to_string(kUnkId)},
      {"bos_id", std::to_string(kBosId)},
      {"eos_id", std::to_string(kEosId)},
      // Determinism: one thread, every sentence, in order.
      {"num_threads", "1"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"minloglevel", "2"},
  };
  std::string serialized;
  const auto status = sentencepiece::SentencePieceTrainer::Train(settings, &iterator, &serialized);
  if (!status.ok()) throw std::runtime_error(fmt::format("tokenizer: SentencePiece training failed: {}", status.ToString()));
  return from_serialized(serialized, "trained model");
}

SubwordTokenizer SubwordTokenizer::from_serialized(const std::string& bytes, const std::string& source) {
  SubwordTokenizer tokenizer;
  tokenizer.processor_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto status = tokenizer.processor_->LoadFromSerializedProto(bytes);
  if (!status.ok()) throw std::runtime_error(fmt::format("{}: not a SentencePiece model ({})", source, status.ToString()));
  if (tokenizer.processor_->pad_id() != kPadId || tokenizer.processor_->unk_id() != kUnkId ||
      tokenizer.processor_->bos_id() != kBosId || tokenizer.processor_->eos_id() != kEosId) {
    throw std::runtime_error(fmt::format("{}: special ids differ from pad {} unk {} bos {} eos {}", source, kPadId,
                                         kUnkId, kBosId, kEosId));
  }
  tokenizer.serialized_ = bytes;
  return tokenizer;
}

std::vector<int64_t> SubwordTokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = processor_->Encode(text, &ids);
  if (!status.ok()) throw std::runtime_error(fmt::format("tokenizer: cannot encode \"{}\": {}", text, status.ToString()));
  return {ids.begin(), ids.end()};
}

std::string SubwordTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  const auto status = processor_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!status.ok()) throw std::runtime_error(fmt::format("tokenizer: cannot decode: {}", status.ToString()));
  return text;
}

int64_t SubwordTokenizer::vocab_size() const { return processor_->GetPieceSize(); }

TranslationTokenizers load_or_train_tokenizers(const std::vector<std::string>& source_sentences,
                                               const std::vector<std::string>& target_sentences,
                                               const std::string& source_language,
                                               const std::string& target_language, const TokenizerSettings& settings,
                                               const std::string& name, const std::string& corpus_fingerprint,
                                               const std::string& data_root, std::ostream& log) {
  const nlohmann::json key = {{"version", kTokenizerFormatVersion},
                              {"vocab_size", settings.vocab_size},
                              {"joint", settings.joint},
                              {"model_type", settings.model_type},
                              {"corpus", corpus_fingerprint}};
  const auto folder_name = fmt::format("{}-spm-{}", name, stable_hash(key.dump()));
  auto folder = std::filesystem::path(data_root) / "ngdbench-cache" / folder_name;
  if (!writable_folder(folder)) {
    const auto fallback = user_cache_root() / folder_name;
    log << fmt::format("tokenizer: data root {} is not writable; caching tokenizers in {}\n", data_root,
                       fallback.string());
    folder = fallback;
    if (!writable_folder(folder)) throw std::runtime_error(fmt::format("tokenizer: cannot create {}", folder.string()));
  }
  TranslationTokenizers tokenizers;
  tokenizers.cache_folder = folder.string();
  if (settings.joint) {
    auto both = source_sentences;
    both.insert(both.end(), target_sentences.begin(), target_sentences.end());
    tokenizers.source = load_or_train(folder / "joint.model", both, settings, tokenizers.trained);
    tokenizers.target = tokenizers.source;
  } else {
    tokenizers.source = load_or_train(folder / (source_language + ".model"), source_sentences, settings, tokenizers.trained);
    tokenizers.target = load_or_train(folder / (target_language + ".model"), target_sentences, settings, tokenizers.trained);
  }
  return tokenizers;
}

}  // namespace ngd
