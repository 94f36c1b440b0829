#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace ngd {

// The settings of an optimizer entry's "compression" block (docs/compression.md): what the runner's
// compression stage (harness/run/compression_stage.h) does after the entry's training epochs.
//   pre_train:         train dense, decompose by the rank rule, fine-tune, then the storage pipeline;
//   compression_aware: train with loss + weight · Σ_layers measure(σ(W_l)), then the same.
// Pre-set low rank (a model built factored) needs no block: the model options low_rank_format, rank.
struct CompressionSettings {
  std::string mode;    // "pre_train" | "compression_aware"
  std::string format;  // decomposition of the compressible layers (models/lowrank/tensorized_layers.h)
  std::string rank_rule_kind;  // models/lowrank/rank_selection.h
  double rank_rule_value = 0;
  std::string measure;     // compression_aware: the spectral measure penalised (models/lowrank/spectral_measures.h)
  double regularizer_weight = 0;
  bool penalty_during_fine_tune = false;  // false: fine-tuning minimises L alone
  int64_t fine_tune_epochs = 0;
  std::string fine_tune_optimizer;
  nlohmann::json fine_tune_hparams;  // resolved against the fine-tune optimizer's settings
  double prune_fraction = 0;         // of each compressed weight's entries, smallest magnitudes first
  int64_t quantize_bits = 0;         // 0: stored as float32
  bool entropy_coding = false;       // code the quantized symbols (needs quantize_bits)
};

// Validates an entry's "compression" block at `json_path` and returns it with every default filled in
// (the form stored in a run's identity). Throws SpecError at the offending path, listing valid values.
nlohmann::json resolve_compression(const nlohmann::json& block, const std::string& json_path);

// The settings of a resolved block (resolve_compression's output).
CompressionSettings compression_settings(const nlohmann::json& resolved);

// The part of a resolved block that shapes training (mode, the regularizer but its during_fine_tune):
// runs whose blocks differ only in what follows training (format, rank rule, fine-tuning, pipeline)
// train the same model.
nlohmann::json training_part(const nlohmann::json& resolved);

}  // namespace ngd
