#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "base/special_tokens.h"

namespace ngd {

// A SentencePiece subword model: raw text ↔ ids. SentencePiece runs in the ngdbench_spm shim library,
// loaded on first use into its own symbol scope (see datasets/sentencepiece_shim/shim.h for why).
class SubwordTokenizer {
 public:
  // Trains on `sentences` deterministically (one thread, every sentence, no shuffling): the same
  // sentences and settings give the same model bytes. `model_type` is "unigram" or "bpe";
  // `vocab_size` is an upper bound (a small corpus may give fewer pieces).
  static SubwordTokenizer train(const std::vector<std::string>& sentences, int64_t vocab_size,
                                const std::string& model_type);
  // A model from the bytes serialized() returned; throws when they are not a model.
  static SubwordTokenizer from_serialized(const std::string& bytes, const std::string& source);

  std::vector<int64_t> encode(const std::string& text) const;
  // The text of `ids`; special ids decode to nothing.
  std::string decode(const std::vector<int64_t>& ids) const;
  int64_t vocab_size() const { return vocab_size_; }
  const std::string& serialized() const { return serialized_; }

 private:
  std::shared_ptr<void> processor_;  // the shim's handle
  std::string serialized_;
  int64_t vocab_size_ = 0;
};

// Whether SentencePiece can be used in this build: false in sanitizer builds, whose runtime refuses
// the RTLD_DEEPBIND the shim needs (the tokenizer then throws saying so).
bool subword_tokenizers_available();

struct TokenizerSettings {
  int64_t vocab_size = 8000;
  bool joint = true;                    // one model for both languages, or one per language
  std::string model_type = "unigram";  // SentencePiece's unigram LM or BPE
};

// Source and target tokenizers (the same object when joint), and where they are cached.
struct TranslationTokenizers {
  std::shared_ptr<const SubwordTokenizer> source;
  std::shared_ptr<const SubwordTokenizer> target;
  std::string cache_folder;
  bool trained = false;  // false: read from the cache
};

// Loads the tokenizers for a parallel corpus from the cache, or trains them on its training split
// and caches them. The cache folder is DATA_ROOT/ngdbench-cache/<name>-spm-<hash>, the hash covering
// the settings, the languages and `corpus_fingerprint` (e.g. the data files' sizes); when DATA_ROOT
// is not writable it is $XDG_CACHE_HOME/ngdbench (or ~/.cache/ngdbench) instead, which is said on
// `log`. Throws naming the folder when no cache folder can be written.
TranslationTokenizers load_or_train_tokenizers(const std::vector<std::string>& source_sentences,
                                               const std::vector<std::string>& target_sentences,
                                               const std::string& source_language,
                                               const std::string& target_language, const TokenizerSettings& settings,
                                               const std::string& name, const std::string& corpus_fingerprint,
                                               const std::string& data_root, std::ostream& log);

}  // namespace ngd
