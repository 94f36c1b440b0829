#pragma once

#include <memory>
#include <vector>

#include "optimizers/curvature/woodbury.h"
#include "optimizers/torch_optimizer.h"

namespace ngd {

// TENGraD (Soori et al. 2021; reference §2): every Linear/Conv2d layer's gradient is multiplied by the
// exact inverse of its damped empirical-Fisher block, (λI + UUᵀ/n)⁻¹, through the Woodbury identity.
// The per-sample gradients U and the Cholesky factor of K + nλI are refreshed every `inverse_interval` steps
// and reused in between; SGD then applies momentum and weight decay to the preconditioned gradients.
// Parameters outside capture layers step with their plain gradient (as HyLo does for BN).
class Tengrad : public TorchOptimizer {
 public:
  Tengrad(CaptureModel& model, const Options& options);

  Capture capture(const StepInfo& info) const override;
  void step(const StepInfo& info, PhaseTimer& timer) override;

  ProbeDirection probe_direction() const override { return {true, damping_.value()}; }
  // SGD's momentum, λ, and per layer the per-sample gradients and Cholesky factor of the last refresh.
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;
  // True after the steps that refreshed the per-sample gradients and their factorisation.
  bool refreshed_curvature() const override { return refreshed_; }

  const WoodburyCounters& counters() const { return solver_.counters(); }
  double damping() const { return damping_.value(); }

 private:
  struct Block {
    SampleGradients gradients;
    DampedGram factor;
  };

  bool refreshes(const StepInfo& info) const { return info.step % inverse_interval_ == 0; }
  void refresh(const StepInfo& info);

  std::vector<std::shared_ptr<CaptureLayer>> layers_;
  int64_t inverse_interval_;
  WoodburySolver solver_;
  DampingSchedule damping_;
  std::vector<Block> blocks_;  // one per layer, from the last refresh
  bool refreshed_ = false;
};

OptimizerEntry tengrad_entry();

}  // namespace ngd
