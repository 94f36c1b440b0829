// The sparsity measures on spectra with known values, their scale behaviour, their gradients against
// central finite differences (float64), and the model penalty against the measures of explicit matrices.
#include <gtest/gtest.h>

#include <cmath>

#include "models/lowrank/spectral_measures.h"
#include "tests/models/lowrank/lowrank_test_models.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

constexpr double kTolerance = testing::Tolerances<double>::kExact;
// Central differences: truncation O(h²·f''') ≈ 1e-12 and rounding O(ε/h) ≈ 2e-10 at h = 1e-6, on
// measures and derivatives of order 1–10: 1e-7 absolute leaves a wide margin, yet a wrong gradient
// term (order 1e-2 or more) fails.
constexpr double kStep = 1e-6;
constexpr double kFiniteDifferenceTolerance = 1e-7;

double measure(const std::string& name, const torch::Tensor& sigma) {
  return spectral_measure(name).value(sigma).item<double>();
}

torch::Tensor spectrum(std::vector<double> values) { return torch::tensor(values, torch::kDouble); }

TEST(SpectralMeasures, KnownSpectra) {
  // One non-zero singular value: effective rank 1, Hoyer and Hoyer-Square 0 (‖σ‖_1 = ‖σ‖_2).
  EXPECT_NEAR(measure("effective_rank", spectrum({5, 0, 0, 0})), 1.0, kTolerance);
  EXPECT_NEAR(measure("hoyer", spectrum({5, 0, 0, 0})), 0.0, kTolerance);
  EXPECT_NEAR(measure("hoyer_square", spectrum({5, 0, 0, 0})), 0.0, kTolerance);
  EXPECT_NEAR(measure("l1", spectrum({5, 0, 0, 0})), 5.0, kTolerance);
  // n equal singular values: effective rank n, Hoyer √n − 1, Hoyer-Square n − 1.
  for (const int64_t n : {2, 3, 7}) {
    const auto equal = torch::full({n}, 0.3, torch::kDouble);
    EXPECT_NEAR(measure("effective_rank", equal), static_cast<double>(n), kTolerance) << n;
    EXPECT_NEAR(measure("hoyer", equal), std::sqrt(static_cast<double>(n)) - 1, kTolerance) << n;
    EXPECT_NEAR(measure("hoyer_square", equal), static_cast<double>(n - 1), kTolerance) << n;
  }
  // [2, 1, 1]: p = (1/2, 1/4, 1/4), H = 1.5 ln 2, erank = 2^1.5.
  EXPECT_NEAR(measure("effective_rank", spectrum({2, 1, 1})), std::pow(2.0, 1.5), kTolerance);
  // The identity's singular values: erank(I_5) = 5.
  EXPECT_NEAR(measure("effective_rank", torch::linalg_svdvals(torch::eye(5, torch::kDouble))), 5.0, kTolerance);
}

TEST(SpectralMeasures, OnlyL1GrowsWithScale) {
  torch::manual_seed(0);
  const auto sigma = torch::rand({6}, torch::kDouble) + 0.1;
  for (const auto& entry : spectral_measure_registry()) {
    const double base = entry.value(sigma).item<double>();
    const double scaled = entry.value(7.5 * sigma).item<double>();
    if (entry.scale_invariant) {
      EXPECT_NEAR(scaled, base, kTolerance) << entry.name;
    } else {
      EXPECT_NEAR(scaled, 7.5 * base, kTolerance) << entry.name;
    }
  }
  EXPECT_FALSE(spectral_measure("l1").scale_invariant);
}

TEST(SpectralMeasures, RenyiOrderingAndRankBounds) {
  torch::manual_seed(1);
  for (int trial = 0; trial < 20; ++trial) {
    auto sigma = torch::rand({8}, torch::kDouble);
    sigma.slice(0, 5).zero_();  // rank 5
    const double erank = measure("effective_rank", sigma);
    const double renyi2 = measure("hoyer_square", sigma) + 1;
    const double renyi_infinity = (sigma.sum() / sigma.max()).item<double>();
    EXPECT_LE(renyi_infinity, renyi2 + kTolerance);
    EXPECT_LE(renyi2, erank + kTolerance);
    EXPECT_GE(erank, 1.0 - kTolerance);
    EXPECT_LE(erank, 5.0 + kTolerance);
  }
}

// Autograd's gradient of each measure against central differences, at a spectrum with distinct values.
TEST(SpectralMeasures, GradientsMatchFiniteDifferences) {
  torch::manual_seed(2);
  const auto sigma = torch::rand({5}, torch::kDouble) + 0.05;
  for (const auto& entry : spectral_measure_registry()) {
    auto x = sigma.clone().requires_grad_(true);
    entry.value(x).backward();
    for (int64_t j = 0; j < sigma.numel(); ++j) {
      auto plus = sigma.clone();
      auto minus = sigma.clone();
      plus[j] += kStep;
      minus[j] -= kStep;
      const double numeric = (entry.value(plus).item<double>() - entry.value(minus).item<double>()) / (2 * kStep);
      EXPECT_NEAR(x.grad()[j].item<double>(), numeric, kFiniteDifferenceTolerance) << entry.name << " σ_" << j;
    }
  }
}

// The closed form ∂erank/∂σ_j = −erank·(ln p_j + H)/S (a second derivation, not autograd's).
TEST(SpectralMeasures, EffectiveRankGradientHasTheClosedForm) {
  const auto sigma = spectrum({3.0, 1.5, 0.7, 0.2});
  auto x = sigma.clone().requires_grad_(true);
  spectral_measure("effective_rank").value(x).backward();
  const double total = sigma.sum().item<double>();
  const auto p = sigma / total;
  const double entropy = -(p * p.log()).sum().item<double>();
  const double erank = std::exp(entropy);
  for (int64_t j = 0; j < 4; ++j) {
    const double expected = -erank * (std::log(p[j].item<double>()) + entropy) / total;
    EXPECT_NEAR(x.grad()[j].item<double>(), expected, 1e-10) << j;
  }
  // Scale invariance: the gradient is orthogonal to σ.
  EXPECT_NEAR((x.grad() * sigma).sum().item<double>(), 0.0, 1e-10);
}

// Through the SVD: the gradient w.r.t. a weight matrix (distinct singular values) against differences.
TEST(SpectralMeasures, GradientThroughTheWeightMatchesFiniteDifferences) {
  torch::manual_seed(3);
  const auto weight = torch::randn({4, 3}, torch::kDouble);
  for (const auto& entry : spectral_measure_registry()) {
    auto w = weight.clone().requires_grad_(true);
    entry.value(torch::linalg_svdvals(w)).backward();
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 3; ++j) {
        auto plus = weight.clone();
        auto minus = weight.clone();
        plus[i][j] += kStep;
        minus[i][j] -= kStep;
        const double numeric = (entry.value(torch::linalg_svdvals(plus)).item<double>() -
                                entry.value(torch::linalg_svdvals(minus)).item<double>()) / (2 * kStep);
        EXPECT_NEAR(w.grad()[i][j].item<double>(), numeric, kFiniteDifferenceTolerance) << entry.name;
      }
  }
}

TEST(SpectralPenalty, SumsTheMeasureOverTheLayersDenseMatrices) {
  torch::manual_seed(4);
  lowrank_testing::TinyLowRankNet net(lowrank_testing::settings("matrix", 2));
  net.to(torch::kDouble);
  const auto& measure = spectral_measure("effective_rank");
  double expected = 0.0;
  for (const auto& [name, layer] : net.compressible_layers()) {
    // The explicit product of the factors' weight matrices, U·V (C_out × C_in·k·k for a conv).
    const auto parts = layer->layer().capture_layers();
    ASSERT_EQ(parts.size(), 2U) << name;
    const auto v = parts[0]->weight().detach().reshape({parts[0]->weight().size(0), -1});
    const auto u = parts[1]->weight().detach().reshape({parts[1]->weight().size(0), -1});
    expected += measure.value(torch::linalg_svdvals(u.mm(v))).item<double>();
  }
  const auto penalty = spectral_penalty(net, measure);
  EXPECT_NEAR(penalty.item<double>(), expected, kTolerance);
  penalty.backward();
  for (const auto& parameter : net.parameters()) {
    if (parameter.dim() >= 2) EXPECT_TRUE(parameter.grad().defined());
  }
}

TEST(SpectralMeasures, UnknownNameListsTheMeasures) {
  try {
    spectral_measure("nuclear");
    FAIL() << "no error";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("l1, hoyer, hoyer_square, effective_rank"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace ngd
