#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <optional>
#include <vector>

#include "harness/run/machine.h"
#include "harness/run/training_step.h"
#include "harness/spec/fidelity_settings.h"
#include "models/model.h"
#include "optimizers/curvature/woodbury.h"
#include "optimizers/optimizer.h"
#include "optimizers/preconditioned_sgd.h"

namespace ngd {

// Fidelity probes: on every `every_steps`-th step, how close an optimizer's direction d is to the exact
// damped natural gradient Δ* = (F + λ_p I)⁻¹ḡ of the same batch at the same parameters, F = UUᵀ/n the
// empirical Fisher of all capture layers jointly (per-sample gradients u_i of the batch-mean loss's
// terms). d and Δ* cover the capture layers' parameters only. See docs/harness.md, "Fidelity probes".

// FNGD's coefficient staleness on one probe: the reused coefficients against a fresh solve.
struct CoefficientStaleness {
  double cosine = 0;             // cos(c_reused, c_fresh) over all sets
  double relative_error = 0;     // ‖c_reused − c_fresh‖ / ‖c_fresh‖
  double negative_fraction = 0;  // fraction of c_reused below 0
  double sum_reused = 0;         // Σ_i c_reused,i (mean over sets)
  double sum_fresh = 0;          // Σ_i c_fresh,i (mean over sets)
};

// One probe's metrics.
struct ProbeMeasurement {
  double damping = 0;                // λ_p
  double cosine = 0;                 // cos(d, Δ*) over all capture layers
  std::vector<double> layer_cosine;  // cos(d_l, Δ*_l) per capture layer
  double norm_ratio = 0;             // ‖d‖ / ‖Δ*‖
  // γ(d)/γ(ḡ), γ(x) = √(xᵀF x)/|xᵀḡ| (Wu et al. 2024's iEF indicator, minimised by F⁻¹ḡ): below 1 is
  // closer to natural gradient than SGD's direction.
  double gamma_ratio = 0;
  std::optional<CoefficientStaleness> staleness;  // optimizers that reuse coefficients (FNGD)
};

// Runs the probes of one training run. The runner calls before_step() after the step's batch is loaded
// and after_step() after Optimizer::step(); neither changes the training: before_step's extra
// forward/backward restores the random generators, the model's buffers (BatchNorm statistics), the
// parameters' gradients and the capture layers' recordings. Both are untimed (end_epoch() says how long
// they took, for the runner to leave out of the epoch's time).
class FidelityProbe {
 public:
  // Probes only a PreconditionedSgd (plain SGD included): the other optimizers' steps are no
  // preconditioned gradient of the batch, or move the parameters themselves and leave .grad raw.
  FidelityProbe(FidelitySettings settings, CaptureModel& model, Optimizer& optimizer, const torch::Device& device);

  bool due(const StepInfo& info) const { return active_ && info.step % settings_.every_steps == 0; }
  // On a due step: Δ*, ḡ and the per-sample gradients at the current parameters, from `forward`.
  void before_step(const StepInfo& info, const ForwardPass& forward);
  // On a due step: d from the gradients step() left, and the metrics.
  void after_step(const StepInfo& info);

  // The last probe's metrics (nullopt before any, or when its Gram was not finite).
  const std::optional<ProbeMeasurement>& last() const { return last_; }

  struct EpochProbes {
    nlohmann::json summary;  // null without probes: {"probes", "damping", each metric's {"mean", "min", "max"}}
    double seconds = 0;      // wall time of the epoch's probes
    double cpu_seconds = 0;  // and the process CPU time they took
    int64_t host_syncs = 0;  // host reads they made
  };
  // This epoch's probes, summarised; starts the next epoch's.
  EpochProbes end_epoch();

 private:
  struct Pending {
    std::vector<SampleGradients> gradients;    // per capture layer
    std::vector<torch::Tensor> grams;          // K_l
    std::vector<torch::Tensor> mean_gradient;  // ḡ_l
    std::vector<torch::Tensor> natural;        // Δ*_l
    double damping = 0;
  };

  void measure(const StepInfo& info);
  void add_cost(const TimingSample& sample);

  FidelitySettings settings_;
  CaptureModel& model_;
  const PreconditionedSgd* probed_;  // null: the optimizer is not probed
  torch::Device device_;
  bool active_;
  WoodburySolver solver_;
  std::optional<Pending> pending_;
  std::optional<ProbeMeasurement> last_;
  std::vector<ProbeMeasurement> epoch_;
  double seconds_ = 0;
  double cpu_seconds_ = 0;
  int64_t host_syncs_ = 0;
};

}  // namespace ngd
