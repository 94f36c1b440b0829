#pragma once

#include <vector>

#include "optimizers/curvature/kronecker_factors.h"
#include "optimizers/optimizer.h"

namespace ngd {

// What a Shampoo optimizer has done so far, for tests.
struct ShampooCounters {
  int64_t steps = 0;
  int64_t root_refreshes = 0;  // steps on which every factor's inverse root was recomputed
  int64_t grafted_steps = 0;   // steps before start_preconditioning_step (the grafted method alone)
};

// Shampoo (Gupta et al. 2018) as facebookresearch/optimizers `distributed_shampoo` runs it with its
// default eigendecomposition: every parameter (weights as matrices, conv weights flattened, vectors
// with one factor) keeps Kronecker factors per block, and its step is the filtered gradient
// preconditioned by their inverse roots, L̂^{-e} Ḡ R̂^{-e}, with each block's norm grafted from Adam.
// Conventions and hyperparameters: docs/optimizers.md.
class Shampoo : public Optimizer {
 public:
  Shampoo(CaptureModel& model, const Options& options);

  void step(const StepInfo& info, PhaseTimer& timer) override;
  void set_learning_rate(double lr) override { lr_ = lr; }
  // The step count, then per parameter its factors, their inverse roots, the filtered gradient and the
  // grafting moment.
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;
  // True after the steps that recomputed the inverse roots.
  bool refreshed_curvature() const override { return refreshed_; }

  const ShampooCounters& counters() const { return counters_; }
  // The factors of parameter `index` (in model.parameters() order).
  const KroneckerFactors& factors(size_t index) const { return parameters_.at(index).factors; }

 private:
  struct ParameterState {
    torch::Tensor parameter;
    KroneckerFactors factors;
    // Per block, (L̂ + εI)^{-e} and (R̂ + εI)^{-e}: identity until the first refresh, undefined on a side
    // without a factor.
    std::vector<torch::Tensor> left_roots, right_roots;
    torch::Tensor filtered_gradient;  // EMA of the gradients (β1)
    torch::Tensor grafting_moment;    // Adam's EMA of the squared gradients (grafting_beta2)
  };

  void refresh_roots(ParameterState& state, double factor_bias_correction) const;
  torch::Tensor preconditioned(const ParameterState& state, const torch::Tensor& gradient) const;

  std::vector<ParameterState> parameters_;
  double lr_;
  double beta1_, beta2_, epsilon_, exponent_;
  int64_t inverse_interval_, start_preconditioning_step_;
  bool grafting_;
  double grafting_beta2_, grafting_epsilon_;
  double weight_decay_;
  ShampooCounters counters_;
  bool refreshed_ = false;
};

OptimizerEntry shampoo_entry();

}  // namespace ngd
