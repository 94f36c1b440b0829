#pragma once

#include <torch/torch.h>

namespace ngd {

// A^{1/2} and A^{-1/2} of a symmetric positive definite matrix, and how the iteration that produced
// them went. Computed in A's dtype.
struct MatrixRoots {
  torch::Tensor sqrt;
  torch::Tensor inverse_sqrt;
  int64_t iterations = 0;
  bool converged = false;  // the residual fell below the tolerance (always true for eigh)
};

// Denman–Beavers iteration, Y₀ = A, Z₀ = I, Y ← ½(Y + Z⁻¹), Z ← ½(Z + Y⁻¹) (Y → A^{1/2}, Z → A^{-1/2}),
// in the equivalent product form with determinant scaling (Higham, Functions of Matrices, §6.3), which
// needs one inverse per iteration and converges in a few iterations even for ill-conditioned A:
//   μ = |det M|^{-1/(2n)},  Y ← ½μ·Y(I + μ⁻²M⁻¹),  Z ← ½μ·Z(I + μ⁻²M⁻¹),  M ← ½(I + (μ²M + μ⁻²M⁻¹)/2),
// with M₀ = A and M = Y·Z → I. Stops when ‖M − I‖_F/√n < tolerance.
MatrixRoots denman_beavers_roots(const torch::Tensor& spd, int64_t max_iterations, double tolerance);

// Coupled Newton–Schulz iteration on A/‖A‖_F (matrix products only, no inverses):
//   T = ½(3I − Z·Y),  Y ← Y·T,  Z ← T·Z,  from Y₀ = A/‖A‖_F, Z₀ = I.
// Converges linearly in the smallest eigenvalue of A/‖A‖_F, so it suits well-damped matrices only.
// Stops when ‖Z·Y − I‖_F/√n < tolerance.
MatrixRoots newton_schulz_roots(const torch::Tensor& spd, int64_t max_iterations, double tolerance);

// The roots from a symmetric eigendecomposition (the reference the iterations are tested against).
MatrixRoots eigh_roots(const torch::Tensor& spd);

// Eigendecomposition (ascending eigenvalues, eigenvectors as columns) of a symmetric matrix, computed
// in float64 and returned in the input's dtype. float32 LAPACK fails on factors of a few thousand rows
// (its workspace-size query is returned as a float and rounds, "Argument 8 has illegal value"), as
// KFAC met on ResNet-18's 4609-row input factors.
std::tuple<torch::Tensor, torch::Tensor> symmetric_eigh(const torch::Tensor& symmetric);

}  // namespace ngd
