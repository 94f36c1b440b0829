#pragma once

#include <memory>
#include <vector>

#include "optimizers/preconditioned_sgd.h"

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
  double precondition_s = 0;     // V = G⁻¹ ∇W̄ A⁻¹ (damped)
};

// KFAC (Martens & Grosse 2015; KFC for conv layers, Grosse & Martens 2016) as in
// alecwangcq/KFAC-Pytorch: each capture layer's Fisher block is approximated by G ⊗ A and its
// gradient [∇W | ∇b] replaced by the damped solve; PreconditionedSgd then applies the KL clip and SGD
// (momentum, weight decay) to all parameters. Conventions and hyperparameters: docs/optimizers.md.
class KfacPreconditioner : public Preconditioner {
 public:
  KfacPreconditioner(CaptureModel& model, const Options& options);

  Capture capture(const StepInfo& info, const CurvatureStep& curvature) const override;
  std::vector<torch::Tensor> directions(const StepInfo& info, const CurvatureStep& curvature) override;
  // True after the steps that decomposed or inverted the factors (every inverse_interval-th, from step 0).
  bool refreshed() const override { return refreshed_; }
  // Per layer the factors A, G and what a refresh made of them (eigen: the eigenbases and the
  // reciprocal scale; inverse: the damped inverses), each once it exists.
  void append_state(OptimizerState& state) const override;
  void load_state(StateReader& reader) override;
  // The counters below, for the result's optimizer_report.
  nlohmann::json report() const override;
  // λ is added to the Kronecker factors' eigenvalue products, whose product approximates F
  // (docs/optimizers.md), so it damps on F's scale.
  std::optional<double> damping() const override { return damping_; }

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
  torch::Tensor preconditioned(const LayerState& state, const torch::Tensor& gradient) const;

  std::vector<LayerState> layers_;
  InverseMethod inverse_method_;
  bool true_fisher_;
  bool float64_refresh_;  // refresh_dtype "float64": decompose in float64 always (else in the factors' dtype)
  double damping_;
  double stat_decay_;
  KfacCounters counters_;
  bool refreshed_ = false;
};

using Kfac = PreconditionedSgdOf<KfacPreconditioner>;

OptimizerEntry kfac_entry();

}  // namespace ngd
