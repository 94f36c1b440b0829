#include "harness/run/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <set>

#include "base/atomic_file.h"
#include "base/stable_hash.h"
#include "harness/run/interrupt.h"

namespace ngd {
namespace {

// The first line of every checkpoint; the number changes when the layout does.
const std::string kMagicLine = "ngdbench-checkpoint 1";
// Checkpoints kept per run: the newest, and the one before it in case the newest is found torn.
constexpr size_t kCheckpointsKept = 2;
constexpr int kStepDigits = 12;

nlohmann::json optional_json(const std::optional<double>& value) { return value ? nlohmann::json(*value) : nlohmann::json(); }
nlohmann::json optional_json(const std::optional<int64_t>& value) { return value ? nlohmann::json(*value) : nlohmann::json(); }
template <class T>
std::optional<T> optional_from(const nlohmann::json& value) {
  return value.is_null() ? std::nullopt : std::optional<T>(value.get<T>());
}

// Every field of an EpochRecord, so that a resumed run's records are the ones an uninterrupted run
// would have written (doubles round-trip exactly through nlohmann::json's shortest representation).
nlohmann::json epoch_json(const EpochRecord& e) {
  return {{"epoch", e.epoch},
          {"train_loss", e.train_loss},
          {"train_acc", e.train_acc},
          {"test_loss", e.test_loss},
          {"test_acc", e.test_acc},
          {"train_time_s", e.train_time_s},
          {"cumulative_train_time_s", e.cumulative_train_time_s},
          {"cumulative_steps", e.cumulative_steps},
          {"learning_rate", e.learning_rate},
          {"cpu_time_s", e.cpu_time_s},
          {"load_average", e.load_average},
          {"timing_suspect", e.timing_suspect},
          {"validation", e.validation},
          {"per_epoch_test", e.per_epoch_test},
          {"fidelity", e.fidelity},
          {"step_time_s", e.step_time_s}};
}

EpochRecord epoch_from_json(const nlohmann::json& json) {
  EpochRecord e;
  e.epoch = json.at("epoch").get<int64_t>();
  e.train_loss = json.at("train_loss").get<double>();
  e.train_acc = json.at("train_acc").get<double>();
  e.test_loss = json.at("test_loss").get<double>();
  e.test_acc = json.at("test_acc").get<double>();
  e.train_time_s = json.at("train_time_s").get<double>();
  e.cumulative_train_time_s = json.at("cumulative_train_time_s").get<double>();
  e.cumulative_steps = json.at("cumulative_steps").get<int64_t>();
  e.learning_rate = json.at("learning_rate").get<double>();
  e.cpu_time_s = json.at("cpu_time_s").get<double>();
  e.load_average = json.at("load_average").get<double>();
  e.timing_suspect = json.at("timing_suspect").get<std::string>();
  e.validation = json.at("validation");
  e.per_epoch_test = json.at("per_epoch_test").get<bool>();
  e.fidelity = json.at("fidelity");
  e.step_time_s = json.value("step_time_s", nlohmann::json());  // absent in checkpoints written before it was kept
  return e;
}

nlohmann::json position_json(const RunPosition& p) {
  return {{"epoch", p.epoch},
          {"next_batch", p.next_batch},
          {"steps_per_epoch", p.steps_per_epoch},
          {"step", p.step},
          {"learning_rate", p.learning_rate},
          {"target_step", optional_json(p.target_step)},
          {"epoch_wall_s", p.epoch_wall_s},
          {"epoch_cpu_s", p.epoch_cpu_s},
          {"cumulative_time_s", p.cumulative_time_s},
          {"host_syncs", p.host_syncs},
          {"phase_times_s", p.phase_times_s},
          {"resumes", p.resumes}};
}

RunPosition position_from_json(const nlohmann::json& json) {
  RunPosition p;
  p.epoch = json.at("epoch").get<int64_t>();
  p.next_batch = json.at("next_batch").get<int64_t>();
  p.steps_per_epoch = json.at("steps_per_epoch").get<int64_t>();
  p.step = json.at("step").get<int64_t>();
  p.learning_rate = json.at("learning_rate").get<double>();
  p.target_step = optional_from<int64_t>(json.at("target_step"));
  p.epoch_wall_s = json.at("epoch_wall_s").get<double>();
  p.epoch_cpu_s = json.at("epoch_cpu_s").get<double>();
  p.cumulative_time_s = json.at("cumulative_time_s").get<double>();
  p.host_syncs = json.at("host_syncs").get<int64_t>();
  p.phase_times_s = json.at("phase_times_s");
  p.resumes = json.at("resumes").get<int64_t>();
  return p;
}

// What says which run a checkpoint belongs to: a checkpoint of other settings is refused.
nlohmann::json run_identity(const RunConfig& config) {
  return {{"config_hash", config.config_hash()}, {"seed", config.seed}, {"identity", config.identity()}};
}

// What says which training a shared training belongs to (RunConfig::shared_training_id).
nlohmann::json training_identity(const RunConfig& config) {
  return {{"shared_training", config.shared_training_id()}, {"seed", config.seed}, {"identity", config.training_identity()}};
}

// Flushes a folder's entries (a rename) to disk.
void sync_folder(const std::filesystem::path& folder) {
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // the rename stands; only its durability across a power cut is not forced
  ::fsync(fd);
  ::close(fd);
}

// The run's checkpoint files in its folder, newest (most steps) first.
std::vector<std::filesystem::path> checkpoint_files(const std::string& out_dir, const RunConfig& config) {
  const auto folder = std::filesystem::path(out_dir) / config.experiment;
  const auto prefix = config.run_id() + ".step-";
  const std::string suffix = ".ckpt";
  std::vector<std::pair<int64_t, std::filesystem::path>> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
    const auto name = entry.path().filename().string();
    if (name.size() != prefix.size() + kStepDigits + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    const auto digits = name.substr(prefix.size(), kStepDigits);
    if (!std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return c >= '0' && c <= '9'; })) continue;
    found.emplace_back(std::stoll(digits), entry.path());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::filesystem::path> paths;
  for (auto& [step, path] : found) paths.push_back(std::move(path));
  return paths;
}

// A checkpoint file that does not read back whole (cut short, altered, not a checkpoint).
struct TornCheckpoint : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads and checks a checkpoint file: TornCheckpoint when it is not whole, CheckpointRefused when its
// "run" is not `expected` (another run's) or it is other code's.
Checkpoint read_checkpoint(const std::filesystem::path& path, const nlohmann::json& expected, const nlohmann::json& producer) {
  std::ifstream file(path, std::ios::binary);
  const std::string content((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (!file.good() && !file.eof()) throw TornCheckpoint("cannot be read");
  const size_t magic_end = content.find('\n');
  if (magic_end == std::string::npos || content.compare(0, magic_end, kMagicLine) != 0) {
    throw TornCheckpoint("does not start with \"" + kMagicLine + "\"");
  }
  const size_t header_end = content.find('\n', magic_end + 1);
  if (header_end == std::string::npos) throw TornCheckpoint("its header is cut short");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(content.substr(magic_end + 1, header_end - magic_end - 1));
  } catch (const nlohmann::json::exception& error) {
    throw TornCheckpoint(std::string("its header is not JSON: ") + error.what());
  }
  const auto payload = content.substr(header_end + 1);
  if (!header.contains("payload_bytes") || !header.contains("payload_hash") ||
      header["payload_bytes"] != payload.size() || header["payload_hash"] != stable_hash(payload)) {
    throw TornCheckpoint(fmt::format("its payload has {} bytes and hash {}, its header says {} and {}", payload.size(),
                                     stable_hash(payload), header.value("payload_bytes", nlohmann::json()).dump(),
                                     header.value("payload_hash", nlohmann::json()).dump()));
  }
  if (header.value("run", nlohmann::json()) != expected) {
    const auto& run = header.value("run", nlohmann::json());
    const char* hash_key = expected.contains("config_hash") ? "config_hash" : "shared_training";
    throw CheckpointRefused(fmt::format(
        "{}: a checkpoint of other settings ({} {}, seed {}; this run: {}, {}), not loaded",
        path.string(), hash_key, run.value(hash_key, nlohmann::json()).dump(), run.value("seed", nlohmann::json()).dump(),
        expected[hash_key].dump(), expected["seed"].dump()));
  }
  if (header.value("producer", nlohmann::json()) != producer) {
    throw CheckpointRefused(fmt::format(
        "{}: written by other code or settings ({}; this process: {}), whose numbers could differ: not loaded",
        path.string(), header.value("producer", nlohmann::json()).dump(), producer.dump()));
  }
  Checkpoint checkpoint;
  try {
    checkpoint.position = position_from_json(header.at("position"));
    checkpoint.written_by = header.value("written_by", "");
    for (const auto& epoch : header.at("epochs")) checkpoint.epochs.push_back(epoch_from_json(epoch));
    checkpoint.time_to_target_s = optional_from<double>(header.at("time_to_target_s"));
    checkpoint.epochs_to_target = optional_from<int64_t>(header.at("epochs_to_target"));
    checkpoint.steps_to_target = optional_from<int64_t>(header.at("steps_to_target"));
    checkpoint.optimizer_order = header.at("optimizer_order").get<std::vector<std::string>>();
    checkpoint.device_tensors = header.at("device_tensors").get<std::set<std::string>>();
    const auto tensors = torch::pickle_load(std::vector<char>(payload.begin(), payload.end())).toGenericDict();
    for (const auto& item : tensors) checkpoint.tensors[item.key().toStringRef()] = item.value().toTensor();
  } catch (const std::exception& error) {
    throw TornCheckpoint(std::string("its content does not read back: ") + error.what());
  }
  return checkpoint;
}

// Writes `checkpoint` to `path` atomically, its header saying whose it is (`run`, `written_by`) and
// what wrote it (`producer`), and flushes the folder.
void write_checkpoint_file(const std::string& path, const nlohmann::json& run, const nlohmann::json& producer,
                           const std::string& written_by, const Checkpoint& checkpoint) {
  c10::Dict<std::string, at::Tensor> payload_tensors;
  std::set<std::string> on_device;
  for (const auto& [name, tensor] : checkpoint.tensors) {
    if (!tensor.device().is_cpu()) on_device.insert(name);
    payload_tensors.insert(name, tensor.cpu());
  }
  const auto pickled = torch::pickle_save(payload_tensors);
  const std::string payload(pickled.begin(), pickled.end());
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& epoch : checkpoint.epochs) epochs.push_back(epoch_json(epoch));
  const nlohmann::json header = {{"run", run},
                                 {"written_by", written_by},
                                 {"producer", producer},
                                 {"position", position_json(checkpoint.position)},
                                 {"epochs", epochs},
                                 {"time_to_target_s", optional_json(checkpoint.time_to_target_s)},
                                 {"epochs_to_target", optional_json(checkpoint.epochs_to_target)},
                                 {"steps_to_target", optional_json(checkpoint.steps_to_target)},
                                 {"optimizer_order", checkpoint.optimizer_order},
                                 {"device_tensors", on_device},
                                 {"payload_bytes", payload.size()},
                                 {"payload_hash", stable_hash(payload)}};
  write_file_atomically(path, kMagicLine + "\n" + header.dump() + "\n" + payload);
  sync_folder(std::filesystem::path(path).parent_path());
}

}  // namespace

void capture_parts(const CheckpointedParts& parts, Checkpoint& checkpoint) {
  auto& tensors = checkpoint.tensors;
  for (const auto& item : parts.model.named_parameters()) tensors["model.parameter/" + item.key()] = item.value().detach();
  for (const auto& item : parts.model.named_buffers()) tensors["model.buffer/" + item.key()] = item.value().detach();
  checkpoint.optimizer_order.clear();
  for (const auto& entry : parts.optimizer.state()) {
    tensors["optimizer/" + entry.name] = entry.value.detach();
    checkpoint.optimizer_order.push_back(entry.name);
  }
  for (const auto& [name, tensor] : parts.workload.state()) tensors["workload/" + name] = tensor.detach();
  at::Generator cpu = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    tensors["generator/cpu"] = cpu.get_state();
  }
  if (parts.device.is_cuda()) {
    at::Generator cuda = at::globalContext().defaultGenerator(parts.device);
    std::lock_guard<std::mutex> lock(cuda.mutex());
    tensors["generator/cuda"] = cuda.get_state();
  }
}

void restore_parts(const Checkpoint& checkpoint, const CheckpointedParts& parts) {
  const auto& tensors = checkpoint.tensors;
  torch::NoGradGuard no_grad;
  const auto copy_into = [&tensors](const std::string& name, torch::Tensor& target) {
    const auto& saved = named_tensor(tensors, name);
    if (saved.sizes() != target.sizes() || saved.scalar_type() != target.scalar_type()) {
      throw std::runtime_error(fmt::format("the checkpoint's '{}' is {} {}, the model's {} {}", name,
                                           c10::toString(saved.scalar_type()), c10::str(saved.sizes()),
                                           c10::toString(target.scalar_type()), c10::str(target.sizes())));
    }
    target.copy_(saved);
  };
  size_t model_tensors = 0;
  for (auto& item : parts.model.named_parameters()) {
    copy_into("model.parameter/" + item.key(), item.value());
    ++model_tensors;
  }
  for (auto& item : parts.model.named_buffers()) {
    copy_into("model.buffer/" + item.key(), item.value());
    ++model_tensors;
  }
  if (tensors_under(tensors, "model.parameter/").size() + tensors_under(tensors, "model.buffer/").size() != model_tensors) {
    throw std::runtime_error("the checkpoint's model has other parameters or buffers than this run's");
  }
  OptimizerState optimizer_state;
  for (const auto& name : checkpoint.optimizer_order) {
    const auto key = "optimizer/" + name;
    const auto& saved = named_tensor(tensors, key);
    optimizer_state.push_back({name, checkpoint.device_tensors.count(key) ? saved.to(parts.device) : saved});
  }
  parts.optimizer.load_state(optimizer_state);
  parts.workload.load_state(tensors_under(tensors, "workload/"));
  at::Generator cpu = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_state(named_tensor(tensors, "generator/cpu"));
  }
  if (parts.device.is_cuda()) {
    at::Generator cuda = at::globalContext().defaultGenerator(parts.device);
    std::lock_guard<std::mutex> lock(cuda.mutex());
    cuda.set_state(named_tensor(tensors, "generator/cuda"));
  }
}

NamedTensors tensors_under(const NamedTensors& tensors, const std::string& prefix) {
  NamedTensors found;
  for (auto it = tensors.lower_bound(prefix); it != tensors.end() && it->first.compare(0, prefix.size(), prefix) == 0;
       ++it) {
    found[it->first.substr(prefix.size())] = it->second;
  }
  return found;
}

std::string checkpoint_path(const std::string& out_dir, const RunConfig& config, int64_t step) {
  return (std::filesystem::path(out_dir) / config.experiment /
          fmt::format("{}.step-{:0{}d}.ckpt", config.run_id(), step, kStepDigits))
      .string();
}

nlohmann::json checkpoint_producer(const nlohmann::json& meta) {
  return {{"git_commit", meta.value("git_commit", "unknown")},
          {"git_diff_sha256", meta.value("git_diff_sha256", "")},
          {"torch_version", meta.value("torch_version", "")},
          {"blas", meta.value("blas", nlohmann::json())},
          {"device", meta.value("device", "")},
          {"threads", meta.value("threads", 0)}};
}

RunCheckpoints::RunCheckpoints(const RunConfig& config, std::string out_dir, CheckpointSettings settings,
                               nlohmann::json producer, bool mid_epoch)
    : config_(config),
      out_dir_(std::move(out_dir)),
      settings_(settings),
      producer_(std::move(producer)),
      mid_epoch_(mid_epoch) {}

std::optional<Checkpoint> RunCheckpoints::newest() {
  for (const auto& path : checkpoint_files(out_dir_, config_)) {
    try {
      auto checkpoint = read_checkpoint(path, run_identity(config_), producer_);
      last_step_written_ = checkpoint.position.step;
      return checkpoint;
    } catch (const CheckpointRefused& error) {
      throw CheckpointRefused(std::string(error.what()) + "; remove it, or rerun with --force to train the run afresh");
    } catch (const TornCheckpoint& error) {
      std::cerr << fmt::format("warning: {}: skipped, not a whole checkpoint ({})\n", path.string(), error.what());
    }
  }
  return std::nullopt;
}

bool RunCheckpoints::due(int64_t step) const {
  if (checkpoint_requested()) return true;
  if (settings_.every_steps > 0 && step / settings_.every_steps > last_step_written_ / settings_.every_steps) return true;
  return settings_.every_minutes > 0 &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - last_written_).count() >=
             60 * settings_.every_minutes;
}

bool RunCheckpoints::due_mid_epoch(int64_t step) const { return mid_epoch_ && due(step); }

bool RunCheckpoints::due_at_epoch_end(int64_t step) const { return settings_.at_epoch_end || due(step); }

std::string RunCheckpoints::write(const Checkpoint& checkpoint) {
  const auto path = checkpoint_path(out_dir_, config_, checkpoint.position.step);
  write_checkpoint_file(path, run_identity(config_), producer_, config_.run_id(), checkpoint);
  last_written_ = std::chrono::steady_clock::now();
  last_step_written_ = checkpoint.position.step;
  const auto files = checkpoint_files(out_dir_, config_);
  for (size_t i = kCheckpointsKept; i < files.size(); ++i) {
    std::error_code error;
    std::filesystem::remove(files[i], error);  // one left behind is only older, never loaded first
  }
  return path;
}

size_t remove_checkpoints(const std::string& out_dir, const RunConfig& config) {
  size_t removed = 0;
  for (const auto& path : checkpoint_files(out_dir, config)) {
    std::error_code error;
    if (std::filesystem::remove(path, error)) ++removed;
  }
  return removed;
}

std::string shared_training_path(const std::string& out_dir, const RunConfig& config) {
  return (std::filesystem::path(out_dir) / config.experiment / (config.shared_training_id() + ".ckpt")).string();
}

void write_shared_training(const std::string& out_dir, const RunConfig& config, const nlohmann::json& producer,
                           const Checkpoint& checkpoint) {
  write_checkpoint_file(shared_training_path(out_dir, config), training_identity(config), producer, config.run_id(),
                        checkpoint);
}

std::optional<Checkpoint> read_shared_training(const std::string& out_dir, const RunConfig& config,
                                               const nlohmann::json& producer) {
  const auto path = shared_training_path(out_dir, config);
  if (!std::filesystem::exists(path)) return std::nullopt;
  try {
    return read_checkpoint(path, training_identity(config), producer);
  } catch (const std::runtime_error& error) {  // torn, or of other code: a cache miss, the run trains
    std::cerr << fmt::format("warning: {}: not used, the run trains ({})\n", path, error.what());
    return std::nullopt;
  }
}

size_t remove_shared_training(const std::string& out_dir, const RunConfig& config) {
  std::error_code error;
  return std::filesystem::remove(shared_training_path(out_dir, config), error) ? 1 : 0;
}

void add_earlier_pieces(RunResult& result, const RunPosition& resumed_from) {
  for (const auto& [phase, seconds] : resumed_from.phase_times_s.items()) {
    if (result.phase_times_s.contains(phase)) result.phase_times_s[phase] = result.phase_times_s[phase].get<double>() + seconds.get<double>();
  }
  result.meta["resumes"] = resumed_from.resumes;
}

}  // namespace ngd
