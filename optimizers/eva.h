#pragma once

#include <memory>
#include <vector>

#include "optimizers/preconditioned_sgd.h"

namespace ngd {

// Eva (Zhang et al., ICLR 2023; lzhangbv/eva, kfac/eva.py): KFAC with the Kronecker factors replaced by
// Kronecker vectors. Each capture layer keeps running means ā of its input rows [a, 1] and ḡ of its
// output gradients (layer_statistics.h: mean_input_row, mean_grad_output_row), and its gradient
// ∇W̄ = [∇W | ∇b] is replaced by the Sherman–Morrison closed form of the damped rank-one solve
//   V = (ḡḡᵀ ⊗ āāᵀ + λI)⁻¹ vec ∇W̄ = (∇W̄ − (ḡᵀ∇W̄ā / (‖ā‖²‖ḡ‖² + λ))·ḡāᵀ) / λ,
// then PreconditionedSgd applies KFAC's KL clip over all layers and SGD (momentum, weight decay) on the
// rewritten gradients. Conventions and hyperparameters: docs/optimizers.md.
class EvaPreconditioner : public Preconditioner {
 public:
  EvaPreconditioner(CaptureModel& model, const Options& options);

  Capture capture(const StepInfo& info, const CurvatureStep& curvature) const override;
  std::vector<torch::Tensor> directions(const StepInfo& info, const CurvatureStep& curvature) override;
  // True after the steps that took new statistics into the Kronecker vectors (every stat_interval-th).
  bool refreshed() const override { return refreshed_; }
  // Per layer the running vectors ā, ḡ once the first capture has started them.
  void append_state(OptimizerState& state) const override;
  void load_state(StateReader& reader) override;
  // λ damps the rank-one Kronecker approximation of F on F's scale.
  std::optional<double> damping() const override { return damping_; }

  // The running Kronecker vectors of capture layer `index` (Model::capture_layers() order).
  const torch::Tensor& input_vector(size_t index) const { return layers_.at(index).input_vector; }
  const torch::Tensor& grad_vector(size_t index) const { return layers_.at(index).grad_vector; }

 private:
  struct LayerState {
    std::shared_ptr<CaptureLayer> layer;
    torch::Tensor input_vector;  // ā, undefined until the first capture
    torch::Tensor grad_vector;   // ḡ
  };

  void update_vectors();

  std::vector<LayerState> layers_;
  double damping_;
  double stat_decay_;
  bool refreshed_ = false;
};

using Eva = PreconditionedSgdOf<EvaPreconditioner>;

OptimizerEntry eva_entry();

}  // namespace ngd
