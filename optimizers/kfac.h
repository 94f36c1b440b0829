#pragma once

#include <memory>
#include <vector>

#include "optimizers/torch_optimizer.h"

namespace ngd {

// What a KFAC optimizer has done so far, for tests and timing breakdowns. The seconds are wall
// time of work issued on the host (exact on CPU; on an asynchronous device they time the launches).
struct KfacCounters {
  int64_t factor_updates = 0;     // steps on which the Kronecker factors took in new statistics
  int64_t inverse_refreshes = 0;  // steps on which every layer's factors were decomposed or inverted
  int64_t preconditioned_steps = 0;
  int64_t float64_fallbacks = 0;  // factors that LAPACK failed on in their dtype, redone in float64
  double factor_update_s = 0;    // im2col, A/G products and the running averages
  double inverse_refresh_s = 0;  // eigendecompositions or inverses
  double precondition_s = 0;     // V = G⁻¹ ∇W̄ A⁻¹ (damped), KL clip, writing the gradients back
};

// KFAC (Martens & Grosse 2015; KFC for conv layers, Grosse & Martens 2016) as in
// alecwangcq/KFAC-Pytorch: each capture layer's Fisher block is approximated by G ⊗ A and its
// gradient [∇W | ∇b] replaced by the damped solve, then SGD (momentum, weight decay) steps all
// parameters on the rewritten gradients. Conventions and hyperparameters: docs/optimizers.md.
class Kfac : public TorchOptimizer {
 public:
  Kfac(CaptureModel& model, const Options& options);

  Capture capture(const StepInfo& info) const override;
  void step(const StepInfo& info, PhaseTimer& timer) override;
  void set_learning_rate(double lr) override;
  // The counters below, for the result's optimizer_report.
  nlohmann::json report() const override;
  // d includes the KL clip's scale; λ is added to the Kronecker factors' eigenvalue products, whose
  // product approximates F (docs/optimizers.md), so it damps on F's scale.
  ProbeDirection probe_direction() const override { return {true, damping_}; }
  // SGD's momentum, then per layer the factors A, G and what a refresh made of them (eigen: the
  // eigenbases and the reciprocal scale; inverse: the damped inverses), each once it exists.
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;
  // True after the steps that decomposed or inverted the factors (every inverse_interval-th, from step 0).
  bool refreshed_curvature() const override { return refreshed_; }

  const KfacCounters& counters() const { return counters_; }
  // The running factors of capture layer `index` (in Model::capture_layers() order): A over the
  // inputs [a, 1], G over the output gradients.
  const torch::Tensor& input_factor(size_t index) const { return layers_.at(index).input_factor; }
  const torch::Tensor& grad_factor(size_t index) const { return layers_.at(index).grad_factor; }

 private:
  enum class InverseMethod { kEigen, kInverse };

  struct LayerState {
    std::shared_ptr<CaptureLayer> layer;
    torch::Tensor input_factor;  // A, running average from I
    torch::Tensor grad_factor;   // G, running average from I
    // What preconditioning reuses until the next refresh. Eigen: the factors' eigenvectors and the
    // reciprocals 1/(d_G·d_Aᵀ + λ) (out × in), so a step multiplies instead of dividing. Inverse: the
    // damped inverses in `*_basis`, no scale.
    torch::Tensor input_basis, grad_basis;
    torch::Tensor eigen_scale;
  };

  void update_factors();
  void refresh_inverses();
  std::tuple<torch::Tensor, torch::Tensor> eigh_with_fallback(const torch::Tensor& factor);
  torch::Tensor damped_inverse_with_fallback(const torch::Tensor& damped_factor);
  void precondition();
  torch::Tensor preconditioned(const LayerState& state, const torch::Tensor& gradient) const;

  std::vector<LayerState> layers_;
  InverseMethod inverse_method_;
  bool true_fisher_;
  bool float64_refresh_;  // refresh_dtype "float64": decompose in float64 always (else in the factors' dtype)
  double damping_;
  double stat_decay_;
  double kl_clip_;
  int64_t factor_interval_;
  int64_t inverse_interval_;
  double lr_;
  KfacCounters counters_;
  bool refreshed_ = false;
};

OptimizerEntry kfac_entry();

}  // namespace ngd
