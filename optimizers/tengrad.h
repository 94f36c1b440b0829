#pragma once

#include <memory>
#include <vector>

#include "optimizers/curvature/woodbury.h"
#include "optimizers/preconditioned_sgd.h"

namespace ngd {

// TENGraD (Soori et al. 2021; reference §2): every Linear/Conv2d layer's gradient is multiplied by the
// exact inverse of its damped empirical-Fisher block, (λI + UUᵀ/n)⁻¹, through the Woodbury identity.
// The per-sample gradients U and the Cholesky factor of K + nλI are refreshed every `inverse_interval` steps
// and reused in between; PreconditionedSgd then applies momentum and weight decay to the preconditioned
// gradients. Parameters outside capture layers step with their plain gradient (as HyLo does for BN).
class TengradPreconditioner : public Preconditioner {
 public:
  TengradPreconditioner(CaptureModel& model, const Options& options);

  // Per-sample gradients on the refresh steps only.
  Capture capture(const StepInfo& info, const CurvatureStep& curvature) const override;
  std::vector<torch::Tensor> directions(const StepInfo& info, const CurvatureStep& curvature) override;
  // True after the steps that refreshed the per-sample gradients and their factorisation.
  bool refreshed() const override { return refreshed_; }
  // λ, and per layer the per-sample gradients and Cholesky factor of the last refresh.
  void append_state(OptimizerState& state) const override;
  void load_state(StateReader& reader) override;
  // λ as the next refresh will use it.
  std::optional<double> damping() const override { return damping_.value(); }

  const WoodburyCounters& counters() const { return solver_.counters(); }

 private:
  struct Block {
    SampleGradients gradients;
    DampedGram factor;
  };

  void refresh(const StepInfo& info);

  std::vector<std::shared_ptr<CaptureLayer>> layers_;
  WoodburySolver solver_;
  DampingSchedule damping_;
  std::vector<Block> blocks_;  // one per layer, from the last refresh
  bool refreshed_ = false;
};

using Tengrad = PreconditionedSgdOf<TengradPreconditioner>;

OptimizerEntry tengrad_entry();

}  // namespace ngd
