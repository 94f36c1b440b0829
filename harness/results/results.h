#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "harness/spec/spec.h"

namespace ngd {

// Version of the result-file layout; bump it when a field changes meaning or is removed. Version 2
// (docs/harness.md, "Result file") states the run's "workload" ("image" or "translation") and always has
// "variant" and "study"; scripts/migrate-results-v2.py migrates version 1 files once.
constexpr int kResultSchemaVersion = 2;

struct EpochRecord {
  int64_t epoch = 0;  // from 1
  double train_loss = 0;
  double train_acc = 0;
  double test_loss = 0;
  double test_acc = 0;
  double train_time_s = 0;             // this epoch's training, evaluation excluded
  double cumulative_train_time_s = 0;
  int64_t cumulative_steps = 0;
  double learning_rate = 0;            // at the epoch's last step
  double cpu_time_s = 0;               // process CPU time (all threads) during train_time_s
  double load_average = 0;             // 1-minute load average at the epoch's end
  std::string timing_suspect;          // why train_time_s is suspect (harness/run/machine.h, TimingSample); "" if clean
  // The validation split's metrics, written beside the others: image runs {"val_loss", "val_acc"}
  // (null without a validation set); translation runs {"val_loss", "val_acc", "val_bleu" (null when
  // not computed this epoch)}, whose train_loss/train_acc are the mean per-token loss as optimised and
  // the token accuracy.
  nlohmann::json validation;
  // Image runs evaluate the test split every epoch (test_loss, test_acc); translation runs score it
  // once after training (RunResult::final_evaluation) and leave these unset.
  bool per_epoch_test = true;
  // The fidelity probes' summary of this epoch (FidelityProbe::end_epoch); null when none ran.
  nlohmann::json fidelity;
  // The epoch's step times (harness/run/step_times.h): {"steps", "p50", "p90", "p99", "max"}; null when none.
  nlohmann::json step_time_s;
};

// An epoch's value of a target metric: train_loss, train_acc, val_loss, val_acc, test_loss, test_acc
// (image runs) or val_loss, val_acc, val_bleu (translation runs); nullopt when the epoch has none.
std::optional<double> epoch_metric(const EpochRecord& epoch, const std::string& metric);

struct RunResult {
  RunConfig config;
  std::string status;  // completed | diverged | failed
  std::string error;   // why a run diverged or failed
  std::vector<EpochRecord> epochs;
  nlohmann::json phase_times_s = nlohmann::json::object();  // phase -> seconds over the whole run ({} untimed)
  nlohmann::json host_syncs = nullptr;  // {"total", "per_step"}: device→host reads inside training steps
  std::optional<double> time_to_target_s;
  std::optional<int64_t> epochs_to_target;
  std::optional<int64_t> steps_to_target;
  nlohmann::json meta = nlohmann::json::object();
  nlohmann::json optimizer_report = nlohmann::json::object();  // Optimizer::report(), phases completed
  // Translation runs: {"test_bleu", "test_bleu_tokenized", "best_epoch", "checkpoint_metric"}, the
  // best-validation checkpoint scored on the test split after training; null for image runs.
  nlohmann::json final_evaluation;
  // The run's memory (harness/run/memory.h, docs/harness.md#memory) and step times over all epochs with
  // the refresh/ordinary split (harness/run/step_times.h); null when not measured (written without them).
  nlohmann::json memory;
  nlohmann::json step_time_s;
  // Image runs: what the model the run ends with costs (harness/run/compression_stage.h,
  // model_cost_record); null for translation runs and runs that did not complete.
  nlohmann::json model_cost;
  // Runs with a "compression" block: the compression stage's record (CompressionStage::finish).
  nlohmann::json compression;
};

nlohmann::json to_json(const RunResult& result);

// The median of `values` (non-empty): how the regression check aggregates over seeds.
double median(std::vector<double> values);

// An optimizer's report with each entry of its "phases" list completed from the recorded epochs:
// phases take consecutive epochs ("epochs" of them; one without "epochs" takes the rest) and get
// `first_epoch`, `last_epoch` (null when the run ended before the phase), `epochs_run`, `train_time_s`,
// `steps`, `final_train_loss` and `final_test_acc`. A report without phases is returned as it is.
nlohmann::json complete_phases(nlohmann::json report, const std::vector<EpochRecord>& epochs);

// The result file of `config` under `out_dir`: OUT/<experiment>/<run-id>.json.
std::string result_path(const std::string& out_dir, const RunConfig& config);

// Throws std::runtime_error "PATH: is a folder, not a result file; ..." when something other than a
// regular file (a folder, a symbolic link, a device) is at a result path, so a sweep stops before
// training a run it could not save; nothing there or a regular file passes.
void check_result_location(const std::string& path);

// The stored result of `config` if a finished one (completed or diverged) with the same identity and
// seed is on disk; nullopt if absent, unreadable or not shaped like a schema_version 2 result (both
// reported on stderr with the path), or from another configuration. A result of an older schema_version
// throws std::runtime_error naming the file and the migration (scripts/migrate-results-v2.py): the sweep
// stops instead of training over it.
std::optional<nlohmann::json> load_finished_result(const std::string& out_dir, const RunConfig& config);

}  // namespace ngd
