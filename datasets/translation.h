#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/options.h"
#include "base/workload_data.h"
#include "datasets/multi30k.h"
#include "datasets/tokenizer.h"

namespace ngd {

// One split as token ids: source[i] ends with kEosId; target[i] has neither bos nor eos (batches
// add them); references[i] is the raw target sentence BLEU is scored against.
struct TokenizedSplit {
  std::vector<std::vector<int64_t>> source;
  std::vector<std::vector<int64_t>> target;
  std::vector<std::string> references;
  int64_t size() const { return static_cast<int64_t>(source.size()); }
};

// How training batches are formed: sentences of similar length together, at most `tokens` padded
// tokens (sentences × the longer side's padded length) and/or at most `sentences` sentences per
// batch (0 = no limit of that kind; at least one is set).
struct LengthBatching {
  int64_t tokens = 0;
  int64_t sentences = 0;
};

struct TranslationDataset : WorkloadData {
  std::string name;
  std::string source_language;
  std::string target_language;
  TokenizedSplit train;
  TokenizedSplit val;
  TokenizedSplit test;
  std::shared_ptr<const SubwordTokenizer> source_tokenizer;
  std::shared_ptr<const SubwordTokenizer> target_tokenizer;
  LengthBatching batching;
  std::string tokenizer_cache;  // the folder holding the SentencePiece models
};

// A padded batch (pad = kPadId): source (B, S); target_input = bos + target (B, T); target_output =
// target + eos (B, T); sample_ids (B) the sentences' indices in their split.
struct TranslationBatch {
  torch::Tensor source;
  torch::Tensor target_input;
  torch::Tensor target_output;
  torch::Tensor sample_ids;
  int64_t size() const { return sample_ids.size(0); }
};

TranslationBatch make_translation_batch(const TokenizedSplit& split, const std::vector<int64_t>& indices);

// One epoch's batches (sentence indices): sentences shuffled with `generator`, stably sorted by
// (target length, source length), cut greedily into batches within the limits (a sentence longer
// than the token limit forms a batch alone), and the batch order shuffled. Every sentence is in
// exactly one batch. Without `shuffle` (DataOrder::kNone) neither shuffle happens: file order, sorted,
// batches from the shortest up.
std::vector<std::vector<int64_t>> length_batches(const TokenizedSplit& split, const LengthBatching& batching,
                                                 at::Generator& generator, bool shuffle = true);

// Consecutive batches of `batch_size` sentences in sorted-length order, for evaluation (less padding).
std::vector<std::vector<int64_t>> evaluation_batches(const TokenizedSplit& split, int64_t batch_size);

// The dataset options of translation entries ("source", "target", "vocab_size", ...), with defaults.
std::vector<OptionInfo> translation_options();

// Loads Multi30K from `folder` (a data root's multi30k folder) with resolved translation options;
// `train_subset` / `test_subset` keep that many sentences (a fixed-seed random choice, in file order).
TranslationDataset load_multi30k_translation(const std::string& folder, const Options& options,
                                             std::optional<int64_t> train_subset, std::optional<int64_t> test_subset);

}  // namespace ngd
