#include "datasets/tokenizer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/atomic_file.h"
#include "base/stable_hash.h"
#include "datasets/sentencepiece_shim/shim.h"

namespace ngd {
namespace {

// Bumped when the trainer settings below change, so old caches are not reused.
constexpr int kTokenizerFormatVersion = 1;

// The shim's functions, resolved once.
struct Shim {
  decltype(&ngd_spm_train) train;
  decltype(&ngd_spm_load) load;
  decltype(&ngd_spm_destroy) destroy;
  decltype(&ngd_spm_info) info;
  decltype(&ngd_spm_encode) encode;
  decltype(&ngd_spm_decode) decode;
  decltype(&ngd_spm_free) free;
};

template <class Function>
Function symbol(void* library, const char* name) {
  void* address = ::dlsym(library, name);
  if (address == nullptr) throw std::runtime_error(fmt::format("tokenizer: {} missing from {}", name, NGDBENCH_SPM_SHIM));
  return reinterpret_cast<Function>(address);
}

const Shim& shim() {
#ifdef NGDBENCH_NO_DEEPBIND
  throw std::runtime_error("tokenizer: SentencePiece is unavailable in sanitizer builds (they refuse RTLD_DEEPBIND)");
#else
  static const Shim loaded = [] {
    void* library = ::dlopen(NGDBENCH_SPM_SHIM, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (library == nullptr) {
      throw std::runtime_error(fmt::format("tokenizer: cannot load the SentencePiece shim: {}", ::dlerror()));
    }
    return Shim{symbol<decltype(&ngd_spm_train)>(library, "ngd_spm_train"),
                symbol<decltype(&ngd_spm_load)>(library, "ngd_spm_load"),
                symbol<decltype(&ngd_spm_destroy)>(library, "ngd_spm_destroy"),
                symbol<decltype(&ngd_spm_info)>(library, "ngd_spm_info"),
                symbol<decltype(&ngd_spm_encode)>(library, "ngd_spm_encode"),
                symbol<decltype(&ngd_spm_decode)>(library, "ngd_spm_decode"),
                symbol<decltype(&ngd_spm_free)>(library, "ngd_spm_free")};
  }();
  return loaded;
#endif
}

// Throws `what`: the shim's message when `status` is an error (the message is freed).
void check(int status, char* error, const std::string& what) {
  if (status == 0) return;
  const std::string message = error != nullptr ? error : "unknown error";
  shim().free(error);
  throw std::runtime_error(fmt::format("{}: {}", what, message));
}

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

bool subword_tokenizers_available() {
#ifdef NGDBENCH_NO_DEEPBIND
  return false;
#else
  return true;
#endif
}

SubwordTokenizer SubwordTokenizer::train(const std::vector<std::string>& sentences, int64_t vocab_size,
                                         const std::string& model_type) {
  if (sentences.empty()) throw std::runtime_error("tokenizer: no training sentences");
  const std::vector<std::pair<std::string, std::string>> settings = {
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
  std::vector<const char*> texts, keys, values;
  std::vector<size_t> sizes;
  for (const auto& sentence : sentences) {
    texts.push_back(sentence.data());
    sizes.push_back(sentence.size());
  }
  for (const auto& [key, value] : settings) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  char* model = nullptr;
  char* error = nullptr;
  size_t model_size = 0;
  check(shim().train(texts.data(), sizes.data(), texts.size(), keys.data(), values.data(), keys.size(), &model,
                     &model_size, &error),
        error, "tokenizer: SentencePiece training failed");
  const std::string serialized(model, model_size);
  shim().free(model);
  return from_serialized(serialized, "trained model");
}

SubwordTokenizer SubwordTokenizer::from_serialized(const std::string& bytes, const std::string& source) {
  void* handle = nullptr;
  char* error = nullptr;
  check(shim().load(bytes.data(), bytes.size(), &handle, &error), error, source + ": not a SentencePiece model");
  SubwordTokenizer tokenizer;
  tokenizer.processor_ = std::shared_ptr<void>(handle, shim().destroy);
  int pieces = 0, pad = 0, unk = 0, bos = 0, eos = 0;
  shim().info(handle, &pieces, &pad, &unk, &bos, &eos);
  if (pad != kPadId || unk != kUnkId || bos != kBosId || eos != kEosId) {
    throw std::runtime_error(fmt::format("{}: special ids differ from pad {} unk {} bos {} eos {}", source, kPadId,
                                         kUnkId, kBosId, kEosId));
  }
  tokenizer.serialized_ = bytes;
  tokenizer.vocab_size_ = pieces;
  return tokenizer;
}

std::vector<int64_t> SubwordTokenizer::encode(const std::string& text) const {
  int* ids = nullptr;
  size_t count = 0;
  char* error = nullptr;
  check(shim().encode(processor_.get(), text.data(), text.size(), &ids, &count, &error), error,
        fmt::format("tokenizer: cannot encode \"{}\"", text));
  std::vector<int64_t> result(ids, ids + count);
  shim().free(ids);
  return result;
}

std::string SubwordTokenizer::decode(const std::vector<int64_t>& ids) const {
  const std::vector<int> narrow(ids.begin(), ids.end());
  char* text = nullptr;
  size_t size = 0;
  char* error = nullptr;
  check(shim().decode(processor_.get(), narrow.data(), narrow.size(), &text, &size, &error), error,
        "tokenizer: cannot decode");
  std::string result(text, size);
  shim().free(text);
  return result;
}

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
