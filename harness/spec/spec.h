#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "datasets/data_order.h"
#include "datasets/dataset.h"
#include "harness/spec/checkpoint_settings.h"

namespace ngd {

// The metric whose first crossing of `value` marks "time to target". Accuracies must reach at least
// the value, losses at most.
struct Target {
  std::string metric;  // one of the workload entry's target_metrics
  double value = 0;
  // 0: checked at epoch ends. N: a train_loss target is also checked every N steps on the mean loss of
  // the last epoch's worth of steps (at an epoch's end, exactly that epoch's train_loss), so that a
  // kernel's rounding moves steps to target by a fraction of an epoch instead of a whole one.
  int64_t check_every_steps = 0;
  bool lower_is_better() const { return metric.size() > 5 && metric.compare(metric.size() - 5, 5, "_loss") == 0; }
  // Whether `metric`'s value `measured` has reached the target.
  bool reached(double measured) const { return lower_is_better() ? measured <= value : measured >= value; }
};

// The settings of a translation spec's "decoding" block, with defaults.
std::vector<OptionInfo> decoding_options();

// One training run: a point of the spec's grid with one seed.
struct RunConfig {
  std::string experiment;
  std::string scale;  // the spec's scale the run was expanded at ("" = the spec as written)
  DatasetRequest dataset;
  std::string model;
  nlohmann::json model_options;  // resolved: every declared option present
  int64_t epochs = 0;
  std::string workload = "image";                // the dataset's workload entry (harness/spec/workload_entry.h)
  int64_t batch_size = 0;                        // image runs; translation batches by dataset.batch_tokens/_sentences
  DataOrder data_order = DataOrder::kReshuffle;  // the spec's "data_order"
  int64_t eval_batch_size = 0;
  int64_t seed = 0;
  std::optional<Target> target;
  std::string optimizer;
  // The entry's "variant": a name of its own for an optimizer with fixed settings (e.g. "fngd-clamp"),
  // so that the report selects and compares it apart from the optimizer's other entries. "" = none.
  // Not part of the identity: the settings are.
  std::string variant;
  nlohmann::json hparams;      // resolved: every declared hyperparameter present
  nlohmann::json schedule;     // resolved
  nlohmann::json decoding;     // translation runs: the resolved "decoding" block; null for image runs
  nlohmann::json grid_values;  // the grid axes' (or drawn settings') values of this point (for labels)
  // The tuning protocol (docs/protocol.md): study k trains with the spec's k-th seed, and its trials
  // are the grid points or, with a "tuning" block, the settings drawn for that study. Not part of the
  // identity: two trials with the same settings and seed are the same run.
  int64_t study = 0;
  int64_t trial = 0;
  nlohmann::json tuning;  // the entry's tuning budget (TuningPlan::describe()); null for a grid
  // The resolved "fidelity" block (harness/spec/fidelity_settings.h); null: no probes. Not part of
  // identity(): probes do not change a run's numbers.
  nlohmann::json fidelity;
  // The entry's resolved "compression" block (harness/spec/compression_settings.h); null: none.
  nlohmann::json compression;

  // Everything that determines the run's numbers except the seed; two runs with equal identity and
  // seed are the same run.
  nlohmann::json identity() const;
  // 8 hex digits hashing identity(): the same for every seed of one configuration.
  std::string config_hash() const;
  // "<optimizer>-<config_hash>-s<seed>": the result file's name.
  std::string run_id() const;
  // A run with a compression block: identity() with the block cut to its training_part, which the
  // runs that differ only after training share (their training runs once: docs/compression.md).
  // Null without a block.
  nlohmann::json training_identity() const;
  // "<optimizer>-<hash of training_identity()>-s<seed>.trained"; "" without a compression block.
  std::string shared_training_id() const;
  // The variant, or the optimizer's name when the entry has none.
  const std::string& variant_name() const;
  // "sgd lr=0.05 momentum=0.9": the variant name and its grid axes' values, for people.
  std::string label() const;
};

struct Spec {
  std::string path;
  std::string name;
  std::string scale;
  std::string description;
  std::string device;  // "cpu", "cuda" or "cuda:N" as the spec asks; "" = not given. Not part of a run's identity.
  std::optional<CheckpointSettings> checkpoint;  // the spec's "checkpoint" block; nullopt: none. Not part of a run's identity.
  std::vector<RunConfig> runs;  // the expanded grid: seed-major (study), then optimizer, then grid point or trial
};

// Reads, validates and expands a spec file. Every problem throws std::runtime_error reading
// "PATH: JSON.PATH: what is wrong (valid: ...)". A spec may define named scales ("scales": {"cpu":
// {...}, "paper": {...}}), each a JSON merge patch over the rest of the spec; `scale` picks one
// ("" = the spec as written; a spec without scales ignores it).
Spec load_spec(const std::string& path, const std::string& scale = "");

// The same for a spec's text; `source` names it in messages.
Spec parse_spec_text(const std::string& text, const std::string& source, const std::string& scale = "");

// The same for an already parsed document.
Spec parse_spec(const nlohmann::json& document, const std::string& source, const std::string& scale = "");

}  // namespace ngd
