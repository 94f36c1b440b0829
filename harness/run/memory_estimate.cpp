#include "harness/run/memory_estimate.h"

#include <fmt/format.h>
#include <ATen/CPUGeneratorImpl.h>

#include <array>
#include <cctype>
#include <cmath>
#include <fstream>
#include <stdexcept>
#include <utility>

#include "datasets/dataset.h"
#include "harness/run/memory.h"
#include "harness/spec/workload_entry.h"
#include "optimizers/registry.h"

namespace ngd {
namespace {

// A capture layer's output for its recorded input (the layer's own module, without recording again).
torch::Tensor layer_output(CaptureLayer& layer) {
  if (layer.kind() == CaptureLayer::Kind::kConv2d) {
    return static_cast<CaptureConv2dImpl&>(layer).conv->forward(layer.input());
  }
  return static_cast<CaptureLinearImpl&>(layer).linear->forward(layer.input());
}

// Puts LibTorch's default CPU generator back as it was when built.
class CpuGeneratorRestorer {
 public:
  CpuGeneratorRestorer() : generator_(at::detail::getDefaultCPUGenerator()), state_(generator_.get_state()) {}
  ~CpuGeneratorRestorer() { generator_.set_state(state_); }
  CpuGeneratorRestorer(const CpuGeneratorRestorer&) = delete;
  CpuGeneratorRestorer& operator=(const CpuGeneratorRestorer&) = delete;

 private:
  at::Generator generator_;
  at::Tensor state_;
};

}  // namespace

int64_t MemoryEstimate::total_bytes() const {
  return parameter_bytes + gradient_bytes + activation_bytes + capture_bytes + optimizer_state_bytes;
}

std::pair<std::string, int64_t> MemoryEstimate::dominant_term() const {
  const std::array<std::pair<std::string, int64_t>, 5> terms = {{{"parameters", parameter_bytes},
                                                                  {"gradients", gradient_bytes},
                                                                  {"activations", activation_bytes},
                                                                  {"captures", capture_bytes},
                                                                  {"optimizer state", optimizer_state_bytes}}};
  auto dominant = terms[0];
  for (const auto& term : terms) {
    if (term.second > dominant.second) dominant = term;
  }
  return dominant;
}

nlohmann::json MemoryEstimate::to_json() const {
  return {{"total_bytes", total_bytes()},
          {"parameter_bytes", parameter_bytes},
          {"gradient_bytes", gradient_bytes},
          {"activation_bytes", activation_bytes},
          {"capture_bytes", capture_bytes},
          {"optimizer_state_bytes", optimizer_state_bytes},
          {"dominant", dominant_term().first}};
}

MemoryEstimate estimate_memory(Model& model, const Optimizer& optimizer, const std::vector<int64_t>& image_shape,
                               int64_t batch_size) {
  MemoryEstimate estimate;
  estimate.parameter_bytes = parameter_bytes(model);
  estimate.gradient_bytes = estimate.parameter_bytes;
  int64_t input_bytes = 0, output_bytes = 0;  // per sample, over the capture layers
  {
    torch::NoGradGuard no_grad;
    const BufferCopy buffers(model);  // a training-mode pass moves BatchNorm's running statistics
    std::vector<int64_t> batch_shape{1};
    batch_shape.insert(batch_shape.end(), image_shape.begin(), image_shape.end());
    const auto parameter = model.parameters().front();
    for (const auto& layer : model.capture_layers()) layer->set_record_input(true);
    model.forward(torch::zeros(batch_shape, parameter.options()));
    for (const auto& layer : model.capture_layers()) {
      layer->set_record_input(false);
      input_bytes += tensor_bytes(layer->input());
      output_bytes += tensor_bytes(layer_output(*layer));
      layer->clear_captures();
    }
    buffers.restore();
  }
  estimate.activation_bytes = (input_bytes + output_bytes) * batch_size;
  StepInfo first_step;
  first_step.batches_per_epoch = 1;
  estimate.capture_bytes = optimizer.capture(first_step) == Capture::kNone ? 0 : output_bytes * batch_size;
  estimate.optimizer_state_bytes = state_bytes(optimizer.state());
  return estimate;
}

MemoryEstimate estimate_run_memory(const RunConfig& config, const ModelInput& input) {
  const CpuGeneratorRestorer restore_generator;
  const auto* model_entry = find_entry(model_registry(), config.model);
  if (model_entry == nullptr || !model_entry->make) {
    throw std::invalid_argument(fmt::format("memory estimate: '{}' is not an image model", config.model));
  }
  const auto model = model_entry->make(Options(config.model_options), input);
  const auto optimizer = make_optimizer(config.optimizer, *model, config.hparams);
  return estimate_memory(*model, *optimizer, input.image_shape, config.batch_size);
}

MemoryLimit parse_memory_limit(const std::string& text) {
  if (text == "none") return {MemoryLimit::Kind::kNone, 0};
  if (text == "available") return {MemoryLimit::Kind::kAvailable, 0};
  const auto bad = [&text] {
    return std::invalid_argument(fmt::format(
        "--memory-limit: '{}' is not a size (bytes, or a number with K, M, G or T: 8G, 512M, 1.5G), 'available' or 'none'",
        text));
  };
  size_t end = 0;
  double number = 0;
  try {
    number = std::stod(text, &end);
  } catch (const std::exception&) {
    throw bad();
  }
  double scale = 1;
  if (end + 1 == text.size()) {
    const std::string suffixes = "KMGT";
    const auto position = suffixes.find(static_cast<char>(std::toupper(static_cast<unsigned char>(text[end]))));
    if (position == std::string::npos) throw bad();
    scale = std::pow(1024.0, static_cast<double>(position + 1));
  } else if (end != text.size()) {
    throw bad();
  }
  const double bytes = number * scale;
  if (!std::isfinite(bytes) || bytes < 1 || bytes > 9.2e18) throw bad();
  return {MemoryLimit::Kind::kBytes, static_cast<int64_t>(bytes)};
}

std::optional<int64_t> available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    try {
      return std::stoll(line.substr(13)) * 1024;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string format_bytes(int64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const std::array<const char*, 4> units = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < units.size()) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.{}f} {}", value, value < 10 ? 2 : 1, units[unit]);
}

std::optional<std::string> memory_refusal(const MemoryEstimate& estimate, const MemoryLimit& limit,
                                          const std::string& device) {
  int64_t limit_bytes = 0;
  std::string source;
  if (limit.kind == MemoryLimit::Kind::kNone) return std::nullopt;
  if (limit.kind == MemoryLimit::Kind::kBytes) {
    limit_bytes = limit.bytes;
    source = "--memory-limit";
  } else {
    // The GPU's free memory needs CUDA's API, which ngdbench does not compile against: on a GPU only an
    // explicit --memory-limit applies.
    const auto available = available_memory_bytes();
    if (device != "cpu" || !available) return std::nullopt;
    limit_bytes = *available;
    source = "MemAvailable of /proc/meminfo";
  }
  if (estimate.total_bytes() <= limit_bytes) return std::nullopt;
  const auto [term, term_bytes] = estimate.dominant_term();
  return fmt::format("refused before training: the memory estimate {} exceeds the limit {} ({}); the largest term is "
                     "{}, {} (parameters {}, gradients {}, activations {}, captures {}, optimizer state {}); a smaller "
                     "batch size or model, or --memory-limit, changes this",
                     format_bytes(estimate.total_bytes()), format_bytes(limit_bytes), source, term,
                     format_bytes(term_bytes), format_bytes(estimate.parameter_bytes),
                     format_bytes(estimate.gradient_bytes), format_bytes(estimate.activation_bytes),
                     format_bytes(estimate.capture_bytes), format_bytes(estimate.optimizer_state_bytes));
}

DryRunEstimates::DryRunEstimates(std::vector<std::string> data_roots, MemoryLimit limit)
    : data_roots_(std::move(data_roots)), limit_(limit) {}

std::string DryRunEstimates::describe(const RunConfig& run, const std::string& device) {
  const auto& workload = workload_entry(run.workload);
  if (!workload.estimate_memory) return fmt::format("memory estimate: none for {} runs", workload.name);
  const auto identity = run.identity();
  const auto dataset_key = identity["dataset"].dump();
  if (const auto missing = missing_.find(dataset_key); missing != missing_.end()) return missing->second;
  if (loaded_key_ != dataset_key) {
    try {
      loaded_key_.clear();
      loaded_.reset();  // before the next one is read
      loaded_ = workload.load(run.dataset, data_roots_);
      loaded_key_ = dataset_key;
    } catch (const std::exception& error) {  // not found, or unreadable: the dry run goes on
      return missing_[dataset_key] = fmt::format("memory estimate: needs the dataset ({})", error.what());
    }
  }
  const auto key = nlohmann::json{{"dataset", identity["dataset"]}, {"model", identity["model"]},
                                  {"batch_size", run.batch_size}, {"optimizer", run.optimizer},
                                  {"hparams", run.hparams}, {"device", device}}.dump();
  if (const auto known = lines_.find(key); known != lines_.end()) return known->second;
  const auto estimate = workload.estimate_memory(run, *loaded_);
  const auto refusal = memory_refusal(estimate, limit_, device);
  return lines_[key] = fmt::format(
             "memory estimate {} (parameters {}, gradients {}, activations {}, captures {}, optimizer state {}): {}",
             format_bytes(estimate.total_bytes()), format_bytes(estimate.parameter_bytes),
             format_bytes(estimate.gradient_bytes), format_bytes(estimate.activation_bytes),
             format_bytes(estimate.capture_bytes), format_bytes(estimate.optimizer_state_bytes),
             refusal ? *refusal : "fits");
}

}  // namespace ngd
