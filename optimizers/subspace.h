#pragma once

#include <functional>

#include "optimizers/optimizer.h"
#include "optimizers/optimizer_state.h"

namespace ngd {

// DLDR (Li et al., TPAMI 2022; nblt/DLDR): train with SGD while sampling the parameter trajectory,
// find its principal directions, then train only in their span (P-SGD, P-BFGS).

// The top principal directions of a parameter trajectory.
struct PcaBasis {
  torch::Tensor components;          // k × D, orthonormal rows, in the snapshots' dtype
  torch::Tensor explained_variance;  // k, descending (double)
  double total_variance = 0;         // over all directions (the ratio's denominator)
};

// Mean-centred PCA of `snapshots` (n flattened parameter vectors of length D) to `dim` directions, or
// fewer when the centred snapshots span fewer (rank ≤ n − 1). Uses the n×n Gram matrix of the centred
// snapshots in double precision, reading D in chunks, so it needs O(n² + k·D) memory beyond them.
PcaBasis pca_basis(const std::vector<torch::Tensor>& snapshots, int64_t dim);

// Backtracking line search with the Armijo rule, DLDR's constants.
struct ArmijoRule {
  double sufficient_decrease = 0.4;  // c in f(θ + t·d) < f(θ) + c·t·gᵀd
  double shrink = 0.4;               // t ← shrink·t after a rejected trial
  int64_t max_trials = 20;
};

struct LineSearchResult {
  double scale = 0;     // t of the accepted trial, or shrink^max_trials when none was accepted (DLDR then
                        // still takes that tiny step)
  int64_t trials = 0;   // loss evaluations
  bool accepted = false;
};

// Tries t = 1, shrink, shrink², … (at most max_trials) and accepts the first t with
// loss_at(t) < loss + c·t·slope, where slope = gᵀd < 0 is the directional derivative at t = 0.
LineSearchResult armijo_backtracking(double loss, double slope, const std::function<double(double)>& loss_at,
                                     const ArmijoRule& rule = {});

// The BFGS inverse-Hessian approximation B on subspace coordinates (double precision), from B₀ = I:
// B ← (I − ρ y sᵀ)ᵀ B (I − ρ y sᵀ) + ρ s sᵀ with ρ = 1/(yᵀs), s the last step and y the change of
// gradient across it; skipped unless yᵀs > 1e-20 (DLDR's guard).
class Bfgs {
 public:
  // B = I (dim × dim, float64) on the device `options` names, where the gradients will be.
  explicit Bfgs(int64_t dim, const torch::TensorOptions& options = torch::kDouble);

  // Updates B with this gradient (when a step has been recorded) and returns the direction −B·g.
  torch::Tensor direction(const torch::Tensor& gradient);
  // The step s taken from the point of the last direction() call.
  void record_step(const torch::Tensor& step) { last_step_ = step.to(torch::kDouble); }

  const torch::Tensor& inverse_hessian() const { return inverse_hessian_; }
  int64_t skipped_updates() const { return skipped_updates_; }

  // B and the last gradient and step (once there are some) as state entries under `prefix`, and back.
  void append_state(OptimizerState& state, const std::string& prefix) const;
  void load_state(StateReader& reader, const std::string& prefix);

 private:
  torch::Tensor inverse_hessian_;
  torch::Tensor last_gradient_;
  torch::Tensor last_step_;
  int64_t skipped_updates_ = 0;
};

OptimizerEntry dldr_psgd_entry();
OptimizerEntry dldr_pbfgs_entry();

}  // namespace ngd
