#pragma once

#include <vector>

#include "optimizers/optimizer.h"

namespace ngd {

// NAdamW, AlgoPerf's baseline (mlcommons/algorithmic-efficiency, NAdamW in
// reference_algorithms/qualification_baselines): Adam with Nesterov's look-ahead on the first moment
// (Dozat 2016, as in Table 1 of arXiv:1910.05446) and decoupled weight decay. Per parameter, at its
// t-th step with gradient g:
//   θ ← θ·(1 − lr·wd),  m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,
//   θ ← θ − lr/(1−β₁ᵗ) · (β₁m + (1−β₁)g) / (√v/√(1−β₂ᵗ) + ε).
class NAdamW : public Optimizer {
 public:
  NAdamW(std::vector<torch::Tensor> parameters, const Options& options);

  void step(const StepInfo& info, PhaseTimer& timer) override;
  void set_learning_rate(double lr) override { lr_ = lr; }
  // Per parameter m, v and t.
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;

 private:
  struct ParameterState {
    torch::Tensor parameter;
    torch::Tensor first_moment, second_moment;  // m, v
    int64_t steps = 0;                          // t: steps this parameter had a gradient
  };

  std::vector<ParameterState> states_;
  double lr_;
  double beta1_, beta2_, eps_, weight_decay_;
};

OptimizerEntry nadamw_entry();

}  // namespace ngd
