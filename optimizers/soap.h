#pragma once

#include <vector>

#include "optimizers/curvature/kronecker_factors.h"
#include "optimizers/optimizer.h"

namespace ngd {

// What a SOAP optimizer has done so far, for tests.
struct SoapCounters {
  int64_t adam_steps = 0;       // steps that moved parameters (all but the first)
  int64_t basis_refreshes = 0;  // steps with a QR power-iteration refresh of the eigenbases
};

// SOAP (Vyas et al. 2024) as nikhilvyas/SOAP `soap.py`: Adam run in the eigenbasis of Shampoo's
// factors. Every parameter (weights as matrices, conv weights flattened) keeps L = EMA(G Gᵀ) and
// R = EMA(Gᵀ G); the first step only sets the bases Q_L, Q_R from eigh, later steps take Adam on
// Q_Lᵀ G Q_R and map the step back with Q_L · Q_Rᵀ, and every inverse_interval steps one power
// iteration with QR refreshes the bases. Conventions and hyperparameters: docs/optimizers.md.
class Soap : public Optimizer {
 public:
  Soap(CaptureModel& model, const Options& options);

  void step(const StepInfo& info, PhaseTimer& timer) override;
  void set_learning_rate(double lr) override { lr_ = lr; }
  // Per parameter its Adam step count and factors, and once it has started, per block its bases and
  // Adam's moments.
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;
  // True after the first step (bases from eigh) and the steps with a QR power-iteration refresh.
  bool refreshed_curvature() const override { return refreshed_; }

  const SoapCounters& counters() const { return counters_; }
  // Parameter `index` (in model.parameters() order): its factors, and the bases of its (single) block,
  // columns the eigenvectors by decreasing eigenvalue estimate; undefined on a side not rotated.
  const KroneckerFactors& factors(size_t index) const { return parameters_.at(index).factors; }
  const torch::Tensor& left_basis(size_t index) const { return parameters_.at(index).left_bases.at(0); }
  const torch::Tensor& right_basis(size_t index) const { return parameters_.at(index).right_bases.at(0); }

 private:
  struct ParameterState {
    torch::Tensor parameter;
    KroneckerFactors factors;
    std::vector<torch::Tensor> left_bases, right_bases;  // per block Q_L, Q_R
    // Adam's moments per block, in the current bases.
    std::vector<torch::Tensor> first_moments, second_moments;
    int64_t steps = -1;  // Adam steps taken (soap.py's count); -1 before the first step
  };

  void start(ParameterState& state, const torch::Tensor& gradient);
  void refresh_bases(ParameterState& state) const;

  std::vector<ParameterState> parameters_;
  double lr_;
  double beta1_, beta2_, factor_beta_, epsilon_, weight_decay_;
  int64_t inverse_interval_;
  SoapCounters counters_;
  bool refreshed_ = false;
};

OptimizerEntry soap_entry();

}  // namespace ngd
