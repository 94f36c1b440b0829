#pragma once

#include <memory>
#include <vector>

#include "optimizers/curvature/woodbury.h"
#include "optimizers/preconditioned_sgd.h"

namespace ngd {

// Exact damped natural gradient over all capture layers jointly: the reference every curvature method
// here approximates. Every step records per-sample gradients u_i of the whole network's capture layers
// (the Gram K = Σ_l K_l, not a block-diagonal one) and replaces the gradient by
//   empirical Fisher F = UUᵀ/n:           Δ = (F + λI)⁻¹ḡ = Σ_i c_i u_i,  c = (K + nλI)⁻¹1;
//   sampled Fisher F_s = U_sU_sᵀ/n (labels drawn from the model):
//                                          Δ = (F_s + λI)⁻¹ḡ = (ḡ − U_s(K_s + nλI)⁻¹U_sᵀḡ)/λ,
// solved fresh every step through the Woodbury machinery; PreconditionedSgd then applies momentum and
// weight decay.
// Parameters outside capture layers step with their plain gradient (as TENGraD's do). Like ASDL's
// SmwEmpNaturalGradientMaker (kazukiosawa/asdl), without its sum-of-all-modules kernel.
class NgdPreconditioner : public Preconditioner {
 public:
  NgdPreconditioner(CaptureModel& model, const Options& options);

  Capture capture(const StepInfo& info, const CurvatureStep& curvature) const override;
  std::vector<torch::Tensor> directions(const StepInfo& info, const CurvatureStep& curvature) override;
  // Every step solves afresh: true once a step has been taken.
  bool refreshed() const override { return stepped_; }
  // λ: the per-sample gradients live for one step only.
  void append_state(OptimizerState& state) const override;
  void load_state(StateReader& reader) override;
  std::optional<double> damping() const override { return damping_.value(); }

  const WoodburyCounters& counters() const { return solver_.counters(); }

 private:
  std::vector<std::shared_ptr<CaptureLayer>> layers_;
  bool sampled_;
  WoodburySolver solver_;
  DampingSchedule damping_;
  bool stepped_ = false;
};

using Ngd = PreconditionedSgdOf<NgdPreconditioner>;

OptimizerEntry ngd_entry();

}  // namespace ngd
