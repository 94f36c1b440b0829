#pragma once

#include <memory>
#include <vector>

#include "optimizers/optimizer.h"

namespace ngd {

// The quintic Newton–Schulz coefficients (a, b, c) of KellerJordan/Muon: p(x) = a·x + b·x³ + c·x⁵,
// chosen there for the largest slope at 0 that still keeps 5 iterations within about [0.7, 1.2].
constexpr double kNewtonSchulzA = 3.4445;
constexpr double kNewtonSchulzB = -4.7750;
constexpr double kNewtonSchulzC = 2.0315;
// Added to ‖G‖_F before dividing by it (the reference's value): a zero gradient stays zero.
constexpr double kNewtonSchulzNormEps = 1e-7;

// `steps` Newton–Schulz iterations X ← aX + (bXXᵀ + c(XXᵀ)²)X from X = G/(‖G‖_F + 1e-7), on the wide
// orientation of the matrix G (transposed while rows > columns): with G = UΣVᵀ the result is
// U·p^∘steps(Σ/(‖G‖_F + 1e-7))·Vᵀ, an approximate orthogonalisation. Computed in G's dtype.
torch::Tensor newton_schulz_orthogonalise(const torch::Tensor& matrix, int64_t steps);

// Muon (KellerJordan/Muon, muon.py): for the weight of every capture layer (Linear; Conv2d flattened to
// out × in·kh·kw), heavy-ball momentum m ← βm + (1−β)g, the update u = (1−β)g + βm (Nesterov) or m,
// orthogonalised by newton_schulz_orthogonalise and scaled by √max(1, rows/columns), then
// θ ← θ·(1 − lr·wd) − lr·u. Every other parameter (biases, parameters outside capture layers such
// as embeddings and norms, and by default the classifier head) is stepped by torch AdamW with its own
// settings, at adamw_lr times the schedule's factor. Conventions: docs/optimizers.md.
class Muon : public Optimizer {
 public:
  Muon(CaptureModel& model, const Options& options);

  void step(const StepInfo& info, PhaseTimer& timer) override;
  void set_learning_rate(double lr) override;
  // The matrices' momenta and the AdamW parameters' LibTorch state.
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;

  // The parameters Muon orthogonalises (the rest go to AdamW).
  std::vector<torch::Tensor> matrix_parameters() const;

 private:
  struct MatrixState {
    torch::Tensor parameter;
    torch::Tensor momentum;
  };

  std::vector<MatrixState> matrices_;
  std::unique_ptr<torch::optim::AdamW> adamw_;  // null when every parameter is a matrix
  double lr_;
  double adamw_lr_per_lr_;  // adamw_lr / lr: the schedule scales both rates by one factor
  double momentum_;
  double weight_decay_;
  bool nesterov_;
  int64_t ns_steps_;
  bool bfloat16_;
};

OptimizerEntry muon_entry();

}  // namespace ngd
