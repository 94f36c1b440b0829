#pragma once

#include <memory>
#include <vector>

#include "optimizers/curvature/woodbury.h"
#include "optimizers/torch_optimizer.h"

namespace ngd {

// Exact damped natural gradient over all capture layers jointly: the reference every curvature method
// here approximates. Every step records per-sample gradients u_i of the whole network's capture layers
// (the Gram K = Σ_l K_l, not a block-diagonal one) and replaces the gradient by
//   empirical Fisher F = UUᵀ/n:           Δ = (F + λI)⁻¹ḡ = Σ_i c_i u_i,  c = (K + nλI)⁻¹1;
//   sampled Fisher F_s = U_sU_sᵀ/n (labels drawn from the model):
//                                          Δ = (F_s + λI)⁻¹ḡ = (ḡ − U_s(K_s + nλI)⁻¹U_sᵀḡ)/λ,
// solved fresh every step through the Woodbury machinery; SGD then applies momentum and weight decay.
// Parameters outside capture layers step with their plain gradient (as TENGraD's do). Like ASDL's
// SmwEmpNaturalGradientMaker (kazukiosawa/asdl), without its sum-of-all-modules kernel.
class Ngd : public TorchOptimizer {
 public:
  Ngd(CaptureModel& model, const Options& options);

  Capture capture(const StepInfo& info) const override;
  void step(const StepInfo& info, PhaseTimer& timer) override;
  ProbeDirection probe_direction() const override { return {true, damping_.value()}; }
  // SGD's momentum and λ: the per-sample gradients live for one step only.
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;
  // Every step solves afresh: true once a step has been taken.
  bool refreshed_curvature() const override { return stepped_; }

  const WoodburyCounters& counters() const { return solver_.counters(); }

 private:
  std::vector<std::shared_ptr<CaptureLayer>> layers_;
  bool sampled_;
  WoodburySolver solver_;
  DampingSchedule damping_;
  bool stepped_ = false;
};

OptimizerEntry ngd_entry();

}  // namespace ngd
