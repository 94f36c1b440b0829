#pragma once

#include <torch/torch.h>

#include <limits>

// Every numerical tolerance of the tests, each with where it comes from (ensmallen keeps `Tolerances<T>`).
// Exact-case comparisons run the code under test and its ground truth in float64, so whatever the BLAS kernel
// they differ by rounding alone. The few float32 tests (the production dtype) compare against a float64 ground
// truth with a tolerance derived from the problem: C·κ·ε₃₂, never a number fitted to one CPU.
namespace ngd::testing {

template <typename T>
struct Tolerances;

template <>
struct Tolerances<double> {
  // Unit roundoff of float64.
  static constexpr double kEpsilon = std::numeric_limits<double>::epsilon();
  // Two float64 computations of the same exact quantity (a per-sample gradient, a Gram, a damped solve) by
  // different operation orders. Each differs from the exact value by ≲ n·κ·ε₆₄ relative, n ≲ 10³ the longest
  // reduction and κ ≲ 10³ the worst condition number of the tests' damped systems (λ ≥ 10⁻³ against a Gram of
  // O(1) entries): 10³·10³·2.2·10⁻¹⁶ ≈ 2·10⁻¹⁰. 10⁻⁹ leaves a factor five on top of that bound.
  static constexpr double kExact = 1e-9;
};

template <>
struct Tolerances<float> {
  // Unit roundoff of float32.
  static constexpr double kEpsilon = std::numeric_limits<float>::epsilon();
  // C in C·κ·ε₃₂ for a damped solve computed in float32 against float64: the inputs (per-sample gradients from
  // a float32 forward/backward, then the Gram) carry a relative error of a few ε₃₂ per entry, summed over
  // reductions of length ≲ 10² with random-walk growth (√10² = 10); perturbation theory multiplies an input
  // error by at most κ. 10 for the reductions × 10 for the few rounding steps per entry gives C = 100.
  static constexpr double kSolveConstant = 100.0;
  // The same forward/backward without a solve (gradients, Grams, Kronecker factors): κ = 1 in C·κ·ε₃₂.
  static constexpr double kUnconditioned = kSolveConstant * kEpsilon;
};

// C·κ·ε: the relative error bound of a computation with condition number κ in a dtype with unit roundoff ε.
inline double derived_tolerance(double constant, double condition_number, double epsilon) {
  return constant * condition_number * epsilon;
}

// κ₂ = λ_max/λ_min of a symmetric positive definite matrix (eigenvalues in float64).
inline double spd_condition_number(const torch::Tensor& matrix) {
  const auto eigenvalues = torch::linalg_eigvalsh(matrix.to(torch::kDouble), "L");
  return (eigenvalues.max() / eigenvalues.min()).item<double>();
}

// κ₂ of the damped Fisher F + λI, F = UᵀU/n from U's n rows, bounded above by (λ_max(F) + λ)/λ since F ⪰ 0
// (equal when the rows are fewer than the columns, as in every test of a Woodbury solve).
inline double damped_fisher_condition_number(const torch::Tensor& rows, double damping) {
  const auto gram = rows.to(torch::kDouble).mm(rows.to(torch::kDouble).t()) / static_cast<double>(rows.size(0));
  const double largest = torch::linalg_eigvalsh(gram, "L").max().item<double>();
  return (largest + damping) / damping;
}

}  // namespace ngd::testing
