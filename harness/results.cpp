#include "harness/results.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

namespace ngd {
namespace {

// Tries at creating a temporary with a fresh random name before giving up (a clash is a 2⁻³² event,
// or a planted file or link, which is never opened).
constexpr int kTemporaryNameAttempts = 8;
// Bytes written (and removed) by check_writable_folder: room for a result file, which takes a few
// KB to a few hundred KB; a disk with less free space stops the sweep before a run trains.
constexpr size_t kResultRoomProbeBytes = size_t{1} << 20;

template <class T>
nlohmann::json optional_json(const std::optional<T>& value) { return value ? nlohmann::json(*value) : nlohmann::json(); }

std::string host_name() {
  std::array<char, 256> host{};
  ::gethostname(host.data(), host.size() - 1);
  return host.data();
}

// Why `result` cannot be read as a result file (what print_summary and the resume logic read), or
// nullopt.
std::optional<std::string> result_shape_problem(const nlohmann::json& result) {
  if (!result.is_object()) return "not a JSON object";
  for (const auto* key : {"status", "config_hash", "label"}) {
    if (!result.contains(key) || !result[key].is_string()) return fmt::format("\"{}\" is not a string", key);
  }
  if (!result.contains("identity") || !result["identity"].is_object()) return "\"identity\" is not an object";
  if (!result.contains("seed") || !result["seed"].is_number_integer()) return "\"seed\" is not an integer";
  const auto time_to_target = result.find("time_to_target_s");
  if (time_to_target == result.end() || !(time_to_target->is_null() || time_to_target->is_number())) {
    return "\"time_to_target_s\" is neither null nor a number";
  }
  if (!result.contains("epochs") || !result["epochs"].is_array()) return "\"epochs\" is not a list";
  const bool translation = result.contains("final");
  if (translation && !(result["final"].is_object() && result["final"].contains("test_bleu") &&
                       result["final"]["test_bleu"].is_number())) {
    return "\"final.test_bleu\" is not a number";
  }
  for (const auto& epoch : result["epochs"]) {
    if (!epoch.is_object()) return "an epoch is not an object";
    for (const auto* key : {"train_loss", "train_time_s"}) {
      if (!epoch.contains(key) || !epoch[key].is_number()) return fmt::format("an epoch's \"{}\" is not a number", key);
    }
    if (!translation && !(epoch.contains("test_acc") && epoch["test_acc"].is_number())) {
      return "an epoch's \"test_acc\" is not a number";
    }
  }
  return std::nullopt;
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
  if (!config.fidelity.is_null()) json["fidelity"] = config.fidelity;
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
  // Host and process in the name say whose it is (remove_stale_temporaries); the random part makes it
  // unpredictable, and O_EXCL|O_NOFOLLOW create a new file or fail: a file or link planted there by
  // someone sharing the folder is never opened, let alone written through.
  static thread_local std::mt19937_64 generator{std::random_device{}()};
  const auto prefix = fmt::format("{}.tmp.{}.{}.", path, host_name(), ::getpid());
  std::string temporary;
  int fd = -1;
  for (int attempt = 0; attempt < kTemporaryNameAttempts && fd < 0; ++attempt) {
    temporary = prefix + fmt::format("{:08x}", static_cast<uint32_t>(generator()));
    fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
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
  const auto probe = std::filesystem::path(folder) / ".ngdbench-write-check";
  write_file_atomically(probe.string(), std::string(kResultRoomProbeBytes, ' '));
  std::filesystem::remove(probe);
}

size_t remove_stale_temporaries(const std::string& folder) {
  std::error_code error;
  std::filesystem::directory_iterator entries(folder, error);
  if (error) return 0;  // no folder yet: nothing left behind
  const auto marker = ".tmp." + host_name() + ".";
  size_t removed = 0;
  for (const auto& entry : entries) {
    // NAME.tmp.HOST.PID.RANDOM (write_file_atomically's names) of this host.
    const auto name = entry.path().filename().string();
    const auto at = name.rfind(marker);
    if (at == std::string::npos) continue;
    const auto rest = name.substr(at + marker.size());
    const auto dot = rest.find('.');
    if (dot == std::string::npos || dot == 0 || dot > 9 ||
        !std::all_of(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(dot),
                     [](unsigned char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    const auto pid = static_cast<pid_t>(std::stol(rest.substr(0, dot)));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // its writer may still be at work
    if (std::filesystem::remove(entry.path(), error)) ++removed;
  }
  return removed;
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
  return result;
}

}  // namespace ngd
