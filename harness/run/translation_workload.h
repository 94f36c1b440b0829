#pragma once

#include <memory>
#include <string>

#include "datasets/translation.h"
#include "harness/spec/workload_entry.h"
#include "models/model.h"

namespace ngd {

// Machine translation: a TranslationModel trained with label-smoothed cross-entropy on length-batched
// sentence pairs. Per-sample means per sentence: per_sample_loss[i] = Σ_t ℓ_it / T̄ with T̄ the
// batch's mean real target tokens per sentence, so the mean over sentences is the batch's mean
// per-token loss (the usual objective) while each sentence's term is its whole loss (longer
// sentences weigh more, as under the token mean); sample ids are sentence indices in the training
// split. Each epoch records train/validation loss and token accuracy, validation BLEU every
// decoding.bleu_every epochs (and at the last), and keeps the best-BLEU parameters, which score the
// test split at the end. Its data is a TranslationDataset.
WorkloadEntry translation_workload_entry();

// Translations of `split`'s sources (detokenized text, split order) with the decoding settings of a
// resolved "decoding" block, in batches of `batch_size` sentences; the model is put in eval mode.
std::vector<std::string> translate(TranslationModel& model, const TokenizedSplit& split,
                                   const SubwordTokenizer& target_tokenizer, const nlohmann::json& decoding,
                                   int64_t batch_size, const torch::Device& device);

}  // namespace ngd
