#include "harness/results/results.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "base/atomic_file.h"
#include "base/options.h"
#include "harness/spec/workload_entry.h"

namespace ngd {
namespace {

template <class T>
nlohmann::json optional_json(const std::optional<T>& value) { return value ? nlohmann::json(*value) : nlohmann::json(); }

// Why `result` cannot be read as a schema_version 2 result file (what the resume logic and `ngdbench
// regress` read), or nullopt. Older versions are refused before this (load_finished_result).
std::optional<std::string> result_shape_problem(const nlohmann::json& result) {
  if (!result.is_object()) return "not a JSON object";
  if (result.value("schema_version", nlohmann::json()) != kResultSchemaVersion) {
    return fmt::format("\"schema_version\" is not {}", kResultSchemaVersion);
  }
  for (const auto* key : {"experiment", "status", "config_hash", "label", "workload"}) {
    if (!result.contains(key) || !result[key].is_string()) return fmt::format("\"{}\" is not a string", key);
  }
  const auto* workload = find_entry(workload_registry(), result["workload"].get<std::string>());
  if (workload == nullptr) {
    return fmt::format("\"workload\" is none of {}", join_names(workload_registry()));
  }
  if (!result.contains("identity") || !result["identity"].is_object()) return "\"identity\" is not an object";
  if (!result.contains("seed") || !result["seed"].is_number_integer()) return "\"seed\" is not an integer";
  const auto time_to_target = result.find("time_to_target_s");
  if (time_to_target == result.end() || !(time_to_target->is_null() || time_to_target->is_number())) {
    return "\"time_to_target_s\" is neither null nor a number";
  }
  if (!result.contains("epochs") || !result["epochs"].is_array()) return "\"epochs\" is not a list";
  for (const auto& key : workload->final_numbers) {
    const auto final = result.find("final");
    if (final == result.end() || !final->is_object() || !final->contains(key) || !(*final)[key].is_number()) {
      return fmt::format("\"final.{}\" is not a number", key);
    }
  }
  std::vector<std::string> epoch_numbers = {"train_loss", "train_time_s"};
  epoch_numbers.insert(epoch_numbers.end(), workload->epoch_numbers.begin(), workload->epoch_numbers.end());
  for (const auto& epoch : result["epochs"]) {
    if (!epoch.is_object()) return "an epoch is not an object";
    for (const auto& key : epoch_numbers) {
      if (!epoch.contains(key) || !epoch[key].is_number()) return fmt::format("an epoch's \"{}\" is not a number", key);
    }
  }
  return std::nullopt;
}

nlohmann::json target_json(const std::optional<Target>& target) {
  if (!target) return nullptr;
  nlohmann::json json{{"metric", target->metric}, {"value", target->value}};
  if (target->check_every_steps > 0) json["check_every_steps"] = target->check_every_steps;
  return json;
}

// Sets `result`'s target and its *_to_target fields from the stored epochs: the first epoch whose
// metric reaches `target`, as the runner marks it during training.
void measure_target(nlohmann::json& result, const std::optional<Target>& target) {
  result["target"] = target_json(target);
  result["time_to_target_s"] = result["epochs_to_target"] = result["steps_to_target"] = nullptr;
  if (!target) return;
  for (const auto& epoch : result["epochs"]) {
    const auto value = epoch.find(target->metric);
    if (value == epoch.end() || !value->is_number() || !target->reached(value->get<double>())) continue;
    // Null where a (hand-made) result lacks the field: the shape check does not require them.
    result["time_to_target_s"] = epoch.value("cumulative_train_time_s", nlohmann::json());
    result["epochs_to_target"] = epoch.value("epoch", nlohmann::json());
    result["steps_to_target"] = epoch.value("cumulative_steps", nlohmann::json());
    return;
  }
}

}  // namespace

nlohmann::json to_json(const RunResult& result) {
  nlohmann::json epochs = nlohmann::json::array();
  bool timing_suspect = false;
  for (const auto& e : result.epochs) {
    timing_suspect = timing_suspect || !e.timing_suspect.empty();
    nlohmann::json epoch = {{"epoch", e.epoch},
                            {"train_loss", e.train_loss},
                            {"train_acc", e.train_acc},
                            {"train_time_s", e.train_time_s},
                            {"cumulative_train_time_s", e.cumulative_train_time_s},
                            {"cumulative_steps", e.cumulative_steps},
                            {"learning_rate", e.learning_rate},
                            {"cpu_time_s", e.cpu_time_s},
                            {"load_average", e.load_average},
                            {"timing_suspect", e.timing_suspect.empty() ? nlohmann::json() : nlohmann::json(e.timing_suspect)}};
    if (e.per_epoch_test) {
      epoch["test_loss"] = e.test_loss;
      epoch["test_acc"] = e.test_acc;
    }
    if (!e.validation.is_null()) epoch.update(e.validation);
    if (!e.fidelity.is_null()) epoch["fidelity"] = e.fidelity;
    if (!e.step_time_s.is_null()) epoch["step_time_s"] = e.step_time_s;
    epochs.push_back(std::move(epoch));
  }
  const auto& config = result.config;
  nlohmann::json json = {{"schema_version", kResultSchemaVersion},
          {"experiment", config.experiment},
          {"workload", config.workload},
          {"scale", config.scale},
          {"run_id", config.run_id()},
          {"config_hash", config.config_hash()},
          {"label", config.label()},
          {"dataset", config.identity()["dataset"]},
          {"model", config.identity()["model"]},
          {"optimizer", config.optimizer},
          {"variant", config.variant_name()},
          {"hparams", config.hparams},
          {"schedule", config.schedule},
          {"grid_values", config.grid_values},
          {"epochs_planned", config.epochs},
          {"batch_size", config.batch_size},
          {"data_order", data_order_name(config.data_order)},
          {"eval_batch_size", config.eval_batch_size},
          {"seed", config.seed},
          {"study", config.study},
          {"trial", config.trial},
          {"tuning", config.tuning},
          {"target", target_json(config.target)},
          {"status", result.status},
          {"error", result.error.empty() ? nlohmann::json() : nlohmann::json(result.error)},
          {"epochs", epochs},
          {"phase_times_s", result.phase_times_s},
          {"timing_suspect", timing_suspect},
          {"host_syncs", result.host_syncs},
          {"time_to_target_s", optional_json(result.time_to_target_s)},
          {"epochs_to_target", optional_json(result.epochs_to_target)},
          {"steps_to_target", optional_json(result.steps_to_target)},
          {"identity", config.identity()},
          {"meta", result.meta},
          {"optimizer_report", result.optimizer_report}};
  if (!result.final_evaluation.is_null()) json["final"] = result.final_evaluation;
  if (!config.decoding.is_null()) json["decoding"] = config.decoding;
  if (!config.fidelity.is_null()) json["fidelity"] = config.fidelity;
  if (!result.memory.is_null()) json["memory"] = result.memory;
  if (!result.step_time_s.is_null()) json["step_time_s"] = result.step_time_s;
  if (!result.model_cost.is_null()) json["model_cost"] = result.model_cost;
  if (!result.compression.is_null()) json["compression"] = result.compression;
  return json;
}

std::optional<double> epoch_metric(const EpochRecord& epoch, const std::string& metric) {
  if (metric == "train_loss") return epoch.train_loss;
  if (metric == "train_acc") return epoch.train_acc;
  if (epoch.per_epoch_test) {
    if (metric == "test_loss") return epoch.test_loss;
    if (metric == "test_acc") return epoch.test_acc;
  }
  if (epoch.validation.is_null()) return std::nullopt;
  const auto value = epoch.validation.find(metric);
  if (value == epoch.validation.end() || value->is_null()) return std::nullopt;
  return value->get<double>();
}

nlohmann::json complete_phases(nlohmann::json report, const std::vector<EpochRecord>& epochs) {
  if (!report.contains("phases")) return report;
  size_t next = 0;  // index of the first epoch not yet given to a phase
  int64_t steps_before = 0;
  for (auto& phase : report["phases"]) {
    const size_t planned = phase.contains("epochs") ? phase["epochs"].get<size_t>() : epochs.size();
    const size_t end = std::min(epochs.size(), next + planned);
    double time = 0;
    for (size_t e = next; e < end; ++e) time += epochs[e].train_time_s;
    const bool ran = end > next;
    phase["first_epoch"] = ran ? nlohmann::json(epochs[next].epoch) : nlohmann::json();
    phase["last_epoch"] = ran ? nlohmann::json(epochs[end - 1].epoch) : nlohmann::json();
    phase["epochs_run"] = end - next;
    phase["train_time_s"] = time;
    phase["steps"] = ran ? epochs[end - 1].cumulative_steps - steps_before : 0;
    phase["final_train_loss"] = ran ? nlohmann::json(epochs[end - 1].train_loss) : nlohmann::json();
    phase["final_test_acc"] =
        ran && epochs[end - 1].per_epoch_test ? nlohmann::json(epochs[end - 1].test_acc) : nlohmann::json();
    if (ran) steps_before = epochs[end - 1].cumulative_steps;
    next = end;
  }
  return report;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

std::string result_path(const std::string& out_dir, const RunConfig& config) {
  return (std::filesystem::path(out_dir) / config.experiment / (config.run_id() + ".json")).string();
}

void check_result_location(const std::string& path) {
  std::error_code error;
  const auto status = std::filesystem::symlink_status(path, error);
  if (status.type() == std::filesystem::file_type::not_found || status.type() == std::filesystem::file_type::regular) {
    return;
  }
  const char* kind = status.type() == std::filesystem::file_type::directory ? "a folder"
                     : status.type() == std::filesystem::file_type::symlink ? "a symbolic link"
                                                                             : "not a regular file";
  throw std::runtime_error(fmt::format("{}: is {}, not a result file; move it away and rerun", path, kind));
}

std::optional<nlohmann::json> load_finished_result(const std::string& out_dir, const RunConfig& config) {
  const auto path = result_path(out_dir, config);
  std::ifstream file(path);
  if (!file) return std::nullopt;
  nlohmann::json result;
  try {
    result = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    std::cerr << fmt::format("warning: {}: unreadable result ({}); rerunning it\n", path, error.what());
    return std::nullopt;
  }
  if (const auto version = result.is_object() ? result.find("schema_version") : result.end();
      version != result.end() && version->is_number_integer() && version->get<int64_t>() < kResultSchemaVersion) {
    throw std::runtime_error(fmt::format(
        "{}: a schema_version {} result file (before the \"workload\" field); migrate the results folder once with "
        "`python3 scripts/migrate-results-v2.py {}` and rerun (or move the file away to train the run again)",
        path, version->get<int64_t>(), out_dir));
  }
  if (const auto problem = result_shape_problem(result)) {
    std::cerr << fmt::format("warning: {}: not a result file ({}); rerunning it\n", path, *problem);
    return std::nullopt;
  }
  const auto status = result["status"].get<std::string>();
  if (status != "completed" && status != "diverged") return std::nullopt;
  if (result.value("identity", nlohmann::json()) != config.identity() || result.value("seed", -1) != config.seed) {
    std::cerr << fmt::format("warning: {}: holds another configuration; rerunning it\n", path);
    return std::nullopt;
  }
  // A target is read off the epochs, not trained for: after a spec's target changed, the result is
  // measured against the new one and rewritten instead of trained again.
  if (result.value("target", nlohmann::json()) != target_json(config.target)) {
    if (config.target && config.target->check_every_steps > 0) {
      std::cerr << fmt::format("note: {}: the spec's target changed and is checked inside epochs, which the stored "
                               "epochs cannot show; rerunning it\n", path);
      return std::nullopt;
    }
    measure_target(result, config.target);
    write_file_atomically(path, result.dump(2) + "\n");
    std::cerr << fmt::format("note: {}: the spec's target changed to {}; time to target measured again from its epochs\n",
                             path, result["target"].dump());
  }
  return result;
}

}  // namespace ngd
