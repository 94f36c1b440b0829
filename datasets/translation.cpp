#include "datasets/translation.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <numeric>

#include "datasets/dataset.h"

namespace ngd {
namespace {

TokenizedSplit tokenize(const ParallelText& text, const SubwordTokenizer& source, const SubwordTokenizer& target) {
  TokenizedSplit split;
  for (int64_t i = 0; i < text.size(); ++i) {
    auto ids = source.encode(text.source[i]);
    ids.push_back(kEosId);
    split.source.push_back(std::move(ids));
    split.target.push_back(target.encode(text.target[i]));
    split.references.push_back(text.target[i]);
  }
  return split;
}

// `count` lines of `text` chosen by the harness's fixed-seed subset shuffle, in file order.
ParallelText subset(const ParallelText& text, std::optional<int64_t> count, const std::string& what) {
  if (!count) return text;
  if (*count <= 0 || *count > text.size()) {
    throw std::runtime_error(fmt::format("{} = {} is outside 1..{}", what, *count, text.size()));
  }
  const auto indices = balanced_subset_indices(torch::zeros({text.size()}, torch::kInt64), *count, 1);
  ParallelText chosen;
  for (int64_t i = 0; i < indices.size(0); ++i) {
    const auto index = indices[i].item<int64_t>();
    chosen.source.push_back(text.source[index]);
    chosen.target.push_back(text.target[index]);
  }
  return chosen;
}

// The padded length a sentence pair takes in a batch: the longer of source and target + 1 (bos/eos).
int64_t padded_length(const TokenizedSplit& split, int64_t i) {
  return std::max<int64_t>(static_cast<int64_t>(split.source[i].size()), static_cast<int64_t>(split.target[i].size()) + 1);
}

std::string file_size_fingerprint(const std::string& folder, const std::string& source, const std::string& target) {
  std::string fingerprint;
  for (const auto& language : {source, target}) {
    const auto path = std::filesystem::path(folder) / ("train." + language + ".gz");
    fingerprint += fmt::format("{}:{};", language, std::filesystem::file_size(path));
  }
  return fingerprint;
}

}  // namespace

TranslationBatch make_translation_batch(const TokenizedSplit& split, const std::vector<int64_t>& indices) {
  const auto batch = static_cast<int64_t>(indices.size());
  int64_t source_length = 1, target_length = 1;
  for (auto i : indices) {
    source_length = std::max<int64_t>(source_length, static_cast<int64_t>(split.source[i].size()));
    target_length = std::max<int64_t>(target_length, static_cast<int64_t>(split.target[i].size()) + 1);
  }
  auto source = torch::full({batch, source_length}, kPadId, torch::kInt64);
  auto input = torch::full({batch, target_length}, kPadId, torch::kInt64);
  auto output = torch::full({batch, target_length}, kPadId, torch::kInt64);
  auto source_data = source.accessor<int64_t, 2>();
  auto input_data = input.accessor<int64_t, 2>();
  auto output_data = output.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    const auto& src = split.source[indices[b]];
    const auto& tgt = split.target[indices[b]];
    for (size_t t = 0; t < src.size(); ++t) source_data[b][t] = src[t];
    input_data[b][0] = kBosId;
    for (size_t t = 0; t < tgt.size(); ++t) {
      input_data[b][t + 1] = tgt[t];
      output_data[b][t] = tgt[t];
    }
    output_data[b][tgt.size()] = kEosId;
  }
  return {source, input, output, torch::tensor(indices, torch::kInt64)};
}

std::vector<std::vector<int64_t>> length_batches(const TokenizedSplit& split, const LengthBatching& batching,
                                                 at::Generator& generator, bool shuffle) {
  TORCH_CHECK(batching.tokens > 0 || batching.sentences > 0, "length batching needs a token or sentence limit");
  const auto shuffled = shuffle ? torch::randperm(split.size(), generator, torch::kInt64)
                                : torch::arange(split.size(), torch::kInt64);
  std::vector<int64_t> order(shuffled.data_ptr<int64_t>(), shuffled.data_ptr<int64_t>() + split.size());
  std::stable_sort(order.begin(), order.end(), [&split](int64_t a, int64_t b) {
    return std::make_pair(split.target[a].size(), split.source[a].size()) <
           std::make_pair(split.target[b].size(), split.source[b].size());
  });
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> current;
  int64_t longest = 0;
  for (auto i : order) {
    const int64_t length = std::max(longest, padded_length(split, i));
    const auto count = static_cast<int64_t>(current.size()) + 1;
    const bool fits = (batching.tokens == 0 || count * length <= batching.tokens) &&
                      (batching.sentences == 0 || count <= batching.sentences);
    if (!fits && !current.empty()) {
      batches.push_back(std::move(current));
      current.clear();
      longest = 0;
    }
    current.push_back(i);
    longest = std::max(longest, padded_length(split, i));
  }
  if (!current.empty()) batches.push_back(std::move(current));
  if (!shuffle) return batches;
  const auto batch_order = torch::randperm(static_cast<int64_t>(batches.size()), generator, torch::kInt64);
  std::vector<std::vector<int64_t>> shuffled_batches;
  for (int64_t b = 0; b < batch_order.size(0); ++b) shuffled_batches.push_back(std::move(batches[batch_order[b].item<int64_t>()]));
  return shuffled_batches;
}

std::vector<std::vector<int64_t>> evaluation_batches(const TokenizedSplit& split, int64_t batch_size) {
  std::vector<int64_t> order(static_cast<size_t>(split.size()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&split](int64_t a, int64_t b) { return padded_length(split, a) < padded_length(split, b); });
  std::vector<std::vector<int64_t>> batches;
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start),
                         order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + batch_size)));
  }
  return batches;
}

std::vector<OptionInfo> translation_options() {
  return {{"source", "de", "source language", {"de", "en"}},
          {"target", "en", "target language", {"de", "en"}},
          {"vocab_size", 8000, "SentencePiece vocabulary size (an upper bound for small corpora), per model", {}, at_least(8)},
          {"joint_vocab", true, "one SentencePiece model for both languages (else one per language)"},
          {"tokenizer_model", "unigram", "SentencePiece model type", {"unigram", "bpe"}},
          {"batch_tokens", 4096, "training batch limit in padded tokens (sentences × longer side; 0 = none)", {},
           at_least(0)},
          {"batch_sentences", 0, "training batch limit in sentences (0 = none)", {}, at_least(0)},
          {"val_subset", 0, "validation sentences used (a fixed-seed choice; 0 = all 1,014)", {}, at_least(0)}};
}

TranslationDataset load_multi30k_translation(const std::string& folder, const Options& options,
                                             std::optional<int64_t> train_subset, std::optional<int64_t> test_subset) {
  const auto source = options.text("source"), target = options.text("target");
  const LengthBatching batching{options.integer("batch_tokens"), options.integer("batch_sentences")};
  if (batching.tokens == 0 && batching.sentences == 0) {  // each is ≥ 0 (its declared range)
    throw std::runtime_error("dataset.batch_tokens and dataset.batch_sentences: one of them must be > 0");
  }
  const auto text = load_multi30k(folder, source, target);
  const TokenizerSettings settings{options.integer("vocab_size"), options.flag("joint_vocab"),
                                   options.text("tokenizer_model")};
  // Trained on the whole training split, whatever subset trains the model: one cache per setting.
  const auto tokenizers = load_or_train_tokenizers(
      text.train.source, text.train.target, source, target, settings, "multi30k",
      file_size_fingerprint(folder, source, target), std::filesystem::path(folder).parent_path().string(), std::cerr);
  const int64_t val_subset = options.integer("val_subset");
  TranslationDataset dataset;
  dataset.name = "multi30k";
  dataset.source_language = source;
  dataset.target_language = target;
  dataset.train = tokenize(subset(text.train, train_subset, "dataset.train_subset"), *tokenizers.source, *tokenizers.target);
  dataset.val = tokenize(subset(text.val, val_subset > 0 ? std::optional<int64_t>(val_subset) : std::nullopt,
                                "dataset.val_subset"),
                         *tokenizers.source, *tokenizers.target);
  dataset.test = tokenize(subset(text.test, test_subset, "dataset.test_subset"), *tokenizers.source, *tokenizers.target);
  dataset.source_tokenizer = tokenizers.source;
  dataset.target_tokenizer = tokenizers.target;
  dataset.batching = batching;
  dataset.tokenizer_cache = tokenizers.cache_folder;
  return dataset;
}

}  // namespace ngd
