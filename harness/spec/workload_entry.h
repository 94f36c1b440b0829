#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/workload_data.h"

namespace ngd {

struct RunConfig;
struct RunnerOptions;
struct DatasetRequest;
struct MemoryEstimate;
class Workload;
class CaptureModel;

// A workload: what a run trains, on what, and how it is scored (AlgoPerf's workload, one table entry).
// A dataset entry and a model entry name the workload they belong to; the spec parser, the runner, the
// result files and the dry run ask the run's entry instead of switching on a kind. Adding a workload:
// a Workload class and its entry in one file under harness/run/, and one line in workload_registry()
// (harness/run/workload_registry.cpp). Declared here, in the spec layer that reads the rules; the
// table lives with the Workload classes it builds.
struct WorkloadEntry {
  std::string name;  // what datasets and models name; a result's "workload"
  std::string summary;

  // --- The spec: what a run of this workload may and must say.
  // Epoch-record metrics a target may name. A fair comparison targets a validation metric
  // (docs/protocol.md); the test split only reports.
  std::vector<std::string> target_metrics;
  // The metric a target may also check inside epochs (Target::check_every_steps); "" = none.
  std::string in_epoch_target_metric;
  // Carves its validation set from the training split (dataset.validation_subset, part of a run's
  // identity); else `own_validation_split` says where its validation set comes from.
  bool carves_validation = false;
  std::string own_validation_split;
  // The spec's top-level keys only this workload reads (batch_size; a translation's "decoding"): a
  // spec of another workload that has one is refused.
  std::vector<std::string> spec_keys;
  // Reads them into `run` (SpecErrors at their JSON paths).
  std::function<void(const nlohmann::json& spec, RunConfig& run)> parse_settings;
  int64_t default_eval_batch_size = 0;  // samples per evaluation batch when a spec gives none
  // Why an entry's "compression" block is refused; "" = this workload takes one.
  std::string compression_refusal;

  // --- Its result files: the numbers they hold beside every workload's train_loss and train_time_s.
  std::vector<std::string> epoch_numbers;  // in every epoch record
  std::vector<std::string> final_numbers;  // in the "final" object (none: it may be null)

  // --- Running it.
  // The spec's dataset (one load serves every run of the spec); throws DatasetNotFound when no data
  // root holds it.
  std::function<std::shared_ptr<const WorkloadData>(const DatasetRequest& dataset,
                                                    const std::vector<std::string>& data_roots)>
      load;
  // One run's Workload on loaded data (`meta`: the result's machine block, for what the workload adds).
  std::function<std::unique_ptr<Workload>(const RunConfig& run, const WorkloadData& data, const RunnerOptions& options,
                                          nlohmann::json& meta)>
      make;
  // Optional: the run's memory estimate before training (a run over --memory-limit is refused).
  std::function<MemoryEstimate(const RunConfig& run, const WorkloadData& data)> estimate_memory;
  // Optional: the trained model's cost record (a result's "model_cost"; harness/run/compression_stage.h).
  std::function<nlohmann::json(CaptureModel& model, const RunConfig& run, const WorkloadData& data,
                               const torch::Device& device)>
      model_cost;
};

// Every workload, in the order `ngdbench list` shows them.
const std::vector<WorkloadEntry>& workload_registry();

// The entry named `name`; throws std::runtime_error listing the registered names.
const WorkloadEntry& workload_entry(const std::string& name);

}  // namespace ngd
