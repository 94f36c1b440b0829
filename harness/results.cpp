#include "harness/results.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace ngd {
namespace {

template <class T>
nlohmann::json optional_json(const std::optional<T>& value) { return value ? nlohmann::json(*value) : nlohmann::json(); }

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
    if (e.validation.is_null()) {
      epoch["test_loss"] = e.test_loss;
      epoch["test_acc"] = e.test_acc;
    } else {
      epoch.update(e.validation);
    }
    epochs.push_back(std::move(epoch));
  }
  const auto& config = result.config;
  nlohmann::json json = {{"schema_version", kResultSchemaVersion},
          {"experiment", config.experiment},
          {"scale", config.scale},
          {"run_id", config.run_id()},
          {"config_hash", config.config_hash()},
          {"label", config.label()},
          {"dataset", config.identity()["dataset"]},
          {"model", config.identity()["model"]},
          {"optimizer", config.optimizer},
          {"hparams", config.hparams},
          {"schedule", config.schedule},
          {"grid_values", config.grid_values},
          {"epochs_planned", config.epochs},
          {"batch_size", config.batch_size},
          {"eval_batch_size", config.eval_batch_size},
          {"seed", config.seed},
          {"target", config.target ? nlohmann::json{{"metric", config.target->metric}, {"value", config.target->value}}
                                   : nlohmann::json()},
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
  return json;
}

std::optional<double> epoch_metric(const EpochRecord& epoch, const std::string& metric) {
  if (metric == "train_loss") return epoch.train_loss;
  if (metric == "train_acc") return epoch.train_acc;
  if (epoch.validation.is_null()) {
    if (metric == "test_loss") return epoch.test_loss;
    if (metric == "test_acc") return epoch.test_acc;
    return std::nullopt;
  }
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
        ran && epochs[end - 1].validation.is_null() ? nlohmann::json(epochs[end - 1].test_acc) : nlohmann::json();
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

void write_file_atomically(const std::string& path, const std::string& content) {
  // Every failure names `path` and the system's reason, removes the temporary file, and leaves an
  // existing file at `path` as it was.
  const auto fail = [&path](const char* what, int error) {
    return std::runtime_error(fmt::format("{}: {} ({}); the previous file, if any, is unchanged", path, what,
                                          std::strerror(error)));
  };
  const auto target = std::filesystem::path(path);
  if (target.has_parent_path()) {
    std::error_code error;
    std::filesystem::create_directories(target.parent_path(), error);
    if (error) {
      throw std::runtime_error(fmt::format("{}: cannot create the folder {} ({})", path, target.parent_path().string(),
                                           error.message()));
    }
  }
  // Host and process in the name: workers on several machines may share the folder (and a pid).
  std::array<char, 256> host{};
  ::gethostname(host.data(), host.size() - 1);
  const auto temporary = fmt::format("{}.tmp.{}.{}", path, host.data(), ::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw fail("cannot create a file next to it", errno);
  // `error` is passed in, read before close and unlink can change errno.
  const auto abandon = [&](const char* what, int error) {
    ::unlink(temporary.c_str());
    return fail(what, error);
  };
  const auto close_and_abandon = [&](int error) {
    ::close(fd);
    return abandon("write failed", error);
  };
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t count = ::write(fd, content.data() + written, content.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) throw close_and_abandon(errno);
    written += static_cast<size_t>(count);
  }
  if (::fsync(fd) != 0) throw close_and_abandon(errno);
  if (::close(fd) != 0) throw abandon("write failed", errno);  // a delayed write error (network file systems)
  if (std::rename(temporary.c_str(), path.c_str()) != 0) throw abandon("cannot replace", errno);
}

void check_writable_folder(const std::string& folder) {
  write_file_atomically((std::filesystem::path(folder) / ".ngdbench-write-check").string(), "");
  std::filesystem::remove(std::filesystem::path(folder) / ".ngdbench-write-check");
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
  const auto status = result.value("status", "");
  if (status != "completed" && status != "diverged") return std::nullopt;
  if (result.value("identity", nlohmann::json()) != config.identity() || result.value("seed", -1) != config.seed) {
    std::cerr << fmt::format("warning: {}: holds another configuration; rerunning it\n", path);
    return std::nullopt;
  }
  return result;
}

}  // namespace ngd
