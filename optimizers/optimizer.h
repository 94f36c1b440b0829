#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/options.h"
#include "base/phase_timer.h"
#include "models/model.h"

namespace ngd {

// Where in training a step happens: what an optimizer may condition its work on.
struct StepInfo {
  int64_t step = 0;               // optimizer steps taken before this one, over the whole run
  int64_t epoch = 0;              // from 0
  int64_t batch_index = 0;        // position of this batch within the epoch, from 0
  int64_t batches_per_epoch = 0;
  torch::Tensor sample_ids;       // dataset indices of the batch's samples (int64, batch order)
  // Mean training loss of this step's batch at the current parameters, without gradients: for line
  // searches. Each call is one extra training-mode forward pass that leaves the model's buffers
  // (BatchNorm running statistics) as they were; call it inside a curvature scope.
  std::function<double()> batch_loss;
};

// Which per-layer statistics the runner records for the optimizer on a step.
enum class Capture {
  kNone,       // no recording: the step costs what plain training costs
  kEmpirical,  // inputs and output gradients of the loss with the true labels
  kSampled,    // inputs, and output gradients of an extra backward pass with labels sampled from the
               // model's predictive distribution (the true Fisher); the runner times it as curvature
};

// Per-sample coefficients c of a step Σ_i c_i ∇ℓ_i: those the step reused and those a fresh solve on
// the same batch gives (sets × batch size each, float64 on the CPU; one set per coefficient set).
struct CoefficientComparison {
  torch::Tensor reused;
  torch::Tensor fresh;
};

// Thrown by a plugin whose curvature turned non-finite (the gradients diverged): the runner records the
// run as "diverged" with the step, not as "failed", and the sweep goes on.
class Diverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One named tensor of an optimizer's state (scalars and counters as 0-d tensors).
struct StateEntry {
  std::string name;
  torch::Tensor value;
};
using OptimizerState = std::vector<StateEntry>;

// An optimizer plugin. The runner owns the training loop; per step it asks capture(), reduces the
// per-sample losses with reduce_loss(), back-propagates, and calls step() with the gradients in
// place and the model's capture layers holding what was recorded.
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  virtual Capture capture(const StepInfo&) const { return Capture::kNone; }

  // The loss to back-propagate from the per-sample losses (mean by default).
  virtual torch::Tensor reduce_loss(const torch::Tensor& per_sample_loss, const StepInfo&) {
    return per_sample_loss.mean();
  }

  // Updates the parameters. Curvature work (statistics, factorisations, solves) goes inside
  // `timer.scope(Phase::kCurvature)` so the results split step time into its parts.
  virtual void step(const StepInfo& info, PhaseTimer& timer) = 0;

  // The runner's schedule sets the learning rate before every step.
  virtual void set_learning_rate(double lr) = 0;

  // Everything the optimizer carries from one step to the next (momentum, Kronecker factors and their
  // decompositions, stored coefficients, subspace bases and sampling state, per-sample buffers kept
  // between steps, counters as 0-d int64 tensors), named, in a fixed order: what a checkpoint saves and
  // what the memory accounts count. The tensors are the plugin's own, not copies. Stateless: {}.
  virtual OptimizerState state() const { return {}; }

  // Restores a state() taken from an optimizer built with the same settings on the same model, so that
  // training goes on bit for bit as if it had never stopped. Throws std::invalid_argument naming the
  // first missing, extra or mis-shaped entry.
  virtual void load_state(const OptimizerState& state) {
    if (!state.empty()) throw std::invalid_argument("this optimizer holds no state, but the checkpoint has '" + state.front().name + "'");
  }

  // Whether the last step() refreshed its curvature (a factor inversion, a coefficient re-solve, a
  // subspace build): the results split step times into refresh steps and ordinary ones.
  virtual bool refreshed_curvature() const { return false; }

  // What the optimizer wants recorded in the result as "optimizer_report" at the end of the run (an
  // object; empty by default). A "phases" list of {"name", "epochs"} splits the run into consecutive
  // phases (the last may omit "epochs": the rest); the runner adds each phase's epochs, time and steps.
  virtual nlohmann::json report() const { return nlohmann::json::object(); }
};

// An optimizer the harness can run: its settings (with defaults) and how to build it for a model.
// Every entry declares "lr", the base learning rate the schedule scales.
struct OptimizerEntry {
  std::string name;
  std::string summary;
  std::vector<OptionInfo> hyperparameters;
  std::function<std::unique_ptr<Optimizer>(CaptureModel&, const Options&)> make;
};

// The table of all optimizers; adding one is one line in optimizers/registry.cpp.
const std::vector<OptimizerEntry>& optimizer_registry();

}  // namespace ngd
