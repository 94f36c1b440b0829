#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "harness/results/results.h"
#include "harness/run/workload.h"
#include "harness/spec/compression_settings.h"
#include "models/model.h"
#include "optimizers/optimizer.h"

namespace ngd {

// The runner's compression stage for a run with a "compression" block (docs/compression.md). The
// runner trains config.epochs, calls compress() (untimed), trains fine_tune_epochs() more epochs with
// the optimizer it returns, then calls finish() (untimed). Everything here is evaluation or model
// surgery: the clock of the training loop covers only the fine-tuning steps.
class CompressionStage {
 public:
  CompressionStage(const RunConfig& config, Workload& workload, const torch::Device& device);

  const CompressionSettings& settings() const { return settings_; }
  int64_t fine_tune_epochs() const { return settings_.fine_tune_epochs; }

  // After the last training epoch (`trained`, its record): records the dense model's cost and
  // accuracy, replaces its compressible layers by their `format` decomposition at the rank rule's
  // ranks, evaluates the truncated model, ends a regularized workload's penalty (unless it stays during
  // fine-tuning) and returns the fine-tuning optimizer, built on the new layers.
  std::unique_ptr<Optimizer> compress(const EpochRecord& trained);

  // After the last fine-tuning epoch (`fine_tuned`; the truncation's evaluation when there was none):
  // prunes and quantizes the weights in place (the model is then evaluated as it would be decoded),
  // and returns the result's "compression" record: ranks, parameters and stored bytes against the
  // dense model, accuracies before compression, after truncation, after fine-tuning and after the
  // pipeline, and the fine-tuning optimizer's report.
  nlohmann::json finish(const EpochRecord* fine_tuned, const nlohmann::json& fine_tune_report);

 private:
  // The validation and test metrics of the model as it is now (untimed; the workload's evaluation).
  nlohmann::json evaluate();

  const RunConfig& config_;
  Workload& workload_;
  torch::Device device_;
  CompressionSettings settings_;
  nlohmann::json record_ = nlohmann::json::object();
};

// The workload whose training loss adds weight · Σ_layers measure(σ(W_l)) (a compression_aware block's
// regularizer) to every sample's loss, so that the mean the optimizers reduce to is L + λR; the epoch's
// recorded training loss stays L. Other blocks: `workload` itself. compress() ends the penalty unless the
// regularizer's during_fine_tune keeps it.
std::unique_ptr<Workload> regularized_workload(std::unique_ptr<Workload> workload, const CompressionSettings& settings);

// An optimizer report with the phases of a compression run: the training optimizer's own phases (or
// one "training" phase) over the first `training_epochs`, then "fine_tune" over the rest.
nlohmann::json with_fine_tune_phase(nlohmann::json report, int64_t training_epochs);

// What the model a run ends with costs (every image result's "model_cost"): parameters, multiply-adds
// per sample and ranks per layer and in total, float32 bytes, the same for the model with every
// compressible map dense (and the ratios), and the median wall seconds of a forward pass over one
// evaluation batch (eval mode, no gradients; untimed for training).
nlohmann::json model_cost_record(Model& model, const std::vector<int64_t>& image_shape, int64_t eval_batch_size,
                                 const torch::Device& device);

}  // namespace ngd
