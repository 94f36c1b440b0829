#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/workload_data.h"
#include "harness/spec/spec.h"
#include "models/model.h"
#include "optimizers/optimizer.h"

namespace ngd {

// What a run's tensors are expected to take, by term, in bytes (docs/harness.md#memory-estimate).
struct MemoryEstimate {
  int64_t parameter_bytes = 0;
  int64_t gradient_bytes = 0;         // the parameters' .grad
  // Kept for backward: per sample, every capture layer's input and output, times the batch size. The
  // pieces between capture layers (activation functions, normalisation, pooling) keep tensors of about
  // these sizes, so this counts the chain once per layer boundary; an MLP's pre-activation outputs,
  // which ReLU does not keep, make it an over-count there.
  int64_t activation_bytes = 0;
  // What the optimizer's first step records beyond them: the capture layers' output gradients (the
  // recorded inputs are the tensors kept for backward); 0 for an optimizer that captures nothing.
  int64_t capture_bytes = 0;
  // state() of the optimizer as built, before its first step: plugins that allocate their state at the
  // first step count 0 here (the result's measured optimizer_state_bytes has the real size).
  int64_t optimizer_state_bytes = 0;

  int64_t total_bytes() const;
  // The largest term's name ("parameters", "gradients", "activations", "captures", "optimizer state")
  // and bytes.
  std::pair<std::string, int64_t> dominant_term() const;
  // {"total_bytes", "parameter_bytes", "gradient_bytes", "activation_bytes", "capture_bytes",
  //  "optimizer_state_bytes", "dominant"}
  nlohmann::json to_json() const;
};

// The estimate for `model` (its input one image of `image_shape`), trained by `optimizer` in batches of
// `batch_size`. Runs one forward pass of a zero image without gradients; leaves the model's buffers as
// they were.
MemoryEstimate estimate_memory(Model& model, const Optimizer& optimizer, const std::vector<int64_t>& image_shape,
                               int64_t batch_size);

// The estimate of an image run: builds its model and optimizer on the CPU (LibTorch's default CPU
// generator is left as it was found, so the run's random numbers do not move) and estimates them.
MemoryEstimate estimate_run_memory(const RunConfig& config, const ModelInput& input);

// The memory a run may take before it is refused (RunnerOptions::memory_limit, `--memory-limit`).
struct MemoryLimit {
  enum class Kind {
    kAvailable,  // MemAvailable of /proc/meminfo when the run starts, for runs on the CPU (the default)
    kNone,       // no check ("none")
    kBytes,      // `bytes`, on any device
  };
  Kind kind = Kind::kAvailable;
  int64_t bytes = 0;
};

// A --memory-limit value: "none", "available", or a size: a number of bytes with an optional binary
// suffix K, M, G, T (×1024ⁿ; "8G", "512M", "1.5G"). Throws std::invalid_argument naming the text.
MemoryLimit parse_memory_limit(const std::string& text);

// MemAvailable of /proc/meminfo in bytes; nullopt where it cannot be read.
std::optional<int64_t> available_memory_bytes();

// Bytes for people: "512 B", "3.0 KiB", "1.50 GiB".
std::string format_bytes(int64_t bytes);

// Why a run must not start: its estimate exceeds the limit that applies on `device` (a message naming the
// estimate, the limit and where it comes from, and the dominant term); nullopt when it fits or no limit
// applies.
std::optional<std::string> memory_refusal(const MemoryEstimate& estimate, const MemoryLimit& limit,
                                          const std::string& device);

// --dry-run's estimates: each dataset is loaded once (the image shape and class count the models are
// built for), each dataset × model × batch size × optimizer and settings is estimated once.
class DryRunEstimates {
 public:
  DryRunEstimates(std::vector<std::string> data_roots, MemoryLimit limit);
  // The line printed under `run` (on `device`): its estimate by term and whether the limit refuses it,
  // or why there is none (a workload without an estimate, such as translation; a dataset in no data root).
  std::string describe(const RunConfig& run, const std::string& device);

 private:
  std::vector<std::string> data_roots_;
  MemoryLimit limit_;
  // The last dataset loaded and its identity: a spec's runs share one, so one is held at a time.
  std::string loaded_key_;
  std::shared_ptr<const WorkloadData> loaded_;
  std::map<std::string, std::string> missing_;         // datasets not found: why
  std::map<std::string, std::string> lines_;           // by what the estimate depends on, and the device
};

}  // namespace ngd
