// Muon against ground truth in float64: the Newton–Schulz iteration against the quintic polynomial applied to
// the singular values of an SVD, and a few steps of the whole optimizer (momentum, orthogonalisation, scale,
// weight decay; AdamW for the other parameters) against a re-implementation written out in the test.
#include <gtest/gtest.h>

#include <cmath>

#include "optimizers/muon.h"
#include "tests/optimizers/woodbury_test_support.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

using testing::Tolerances;
using woodbury_testing::expect_close;

// φ = p∘p∘p∘p∘p for p(x) = a·x + b·x³ + c·x⁵ maps every x in [2·10⁻³, 1] into [0.681, 1.203] (scanned at
// 2·10⁵ log-spaced points; below 2·10⁻³ the lower end falls, to 0.47 at 10⁻³): the bound on the singular
// values of the orthogonalised update of a matrix whose σ_min/‖G‖_F is at least 2·10⁻³.
constexpr double kSmallestNormalisedSingularValue = 2e-3;
constexpr double kOrthogonalisedLow = 0.68;
constexpr double kOrthogonalisedHigh = 1.21;

double quintic_five_times(double x) {
  for (int i = 0; i < 5; ++i) x = kNewtonSchulzA * x + kNewtonSchulzB * x * x * x + kNewtonSchulzC * std::pow(x, 5);
  return x;
}

// U·φ(Σ/(‖G‖_F + 1e-7))·Vᵀ from an SVD of G: what 5 Newton–Schulz steps compute for an odd polynomial.
torch::Tensor polynomial_of_singular_values(const torch::Tensor& matrix) {
  const auto svd = torch::linalg_svd(matrix, /*full_matrices=*/false);
  const auto& u = std::get<0>(svd);
  auto sigma = std::get<1>(svd).clone();
  const auto& vh = std::get<2>(svd);
  const double norm = matrix.norm().item<double>() + kNewtonSchulzNormEps;
  for (int64_t i = 0; i < sigma.size(0); ++i) sigma[i] = quintic_five_times(sigma[i].item<double>() / norm);
  return u.mm(torch::diag(sigma)).mm(vh);
}

TEST(Muon, NewtonSchulzIsTheQuinticPolynomialOfTheSingularValues) {
  torch::manual_seed(5);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{5, 8}, {8, 5}, {6, 6}}) {
    SCOPED_TRACE(shape[0] * 10 + shape[1]);
    const auto matrix = torch::randn(shape, torch::kDouble);
    const auto orthogonalised = newton_schulz_orthogonalise(matrix, 5);
    expect_close(orthogonalised, polynomial_of_singular_values(matrix), Tolerances<double>::kExact);
    // The known matrix is well inside the bound's range, and the bound holds.
    const auto normalised = torch::linalg_svdvals(matrix) / matrix.norm();
    ASSERT_GE(normalised.min().item<double>(), kSmallestNormalisedSingularValue);
    const auto singular_values = torch::linalg_svdvals(orthogonalised);
    EXPECT_GE(singular_values.min().item<double>(), kOrthogonalisedLow);
    EXPECT_LE(singular_values.max().item<double>(), kOrthogonalisedHigh);
  }
}

// Classes of TallNet.
constexpr int64_t kClasses = 4;

// conv(1→6, 2×2) on 1×4×4 images – tanh – linear(54→3) – tanh – linear(3→8) – tanh – linear(8→4) + shift:
// a tall conv filter (6 × 4 flattened, scale √(6/4)), a wide matrix (3 × 54, scale 1), a tall matrix
// (8 × 3, scale √(8/3)), the classifier head, biases, and a parameter outside every capture layer.
class TallNet : public Model {
 public:
  TallNet() {
    conv = add_capture_layer("conv", CaptureConv2d(torch::nn::Conv2dOptions(1, 6, 2)));
    wide = add_capture_layer("wide", CaptureLinear(54, 3));
    tall = add_capture_layer("tall", CaptureLinear(3, 8));
    head = add_capture_layer("head", CaptureLinear(8, kClasses));
    shift = register_parameter("shift", torch::randn({kClasses}));
  }
  torch::Tensor forward(const torch::Tensor& images) override {
    const auto hidden = torch::tanh(tall->forward(torch::tanh(wide->forward(torch::tanh(conv->forward(images)).flatten(1)))));
    return head->forward(hidden) + shift;
  }

  CaptureConv2d conv{nullptr};
  CaptureLinear wide{nullptr}, tall{nullptr}, head{nullptr};
  torch::Tensor shift;
};

// One parameter's state in the test's re-implementation.
struct Reference {
  torch::Tensor theta;
  torch::Tensor momentum;             // Muon
  torch::Tensor first, second;        // AdamW
  bool muon = false;
};

TEST(Muon, StepsMatchMomentumNewtonSchulzScaleAndAdamWForTheRest) {
  const double lr = 0.05, momentum = 0.9, weight_decay = 0.1;
  const double adamw_lr = 0.003, beta1 = 0.8, beta2 = 0.9, eps = 1e-10, adamw_weight_decay = 0.2;
  const double schedule[] = {1.0, 0.5, 0.25};  // factors of the base rates the runner would set
  int bounded_updates = 0;
  for (const bool nesterov : {true, false}) {
    SCOPED_TRACE(nesterov ? "nesterov" : "heavy ball");
    torch::manual_seed(7);
    TallNet net;
    net.to(torch::kDouble);
    Muon muon(net, optimizer_options("muon", {{"lr", lr},
                                              {"momentum", momentum},
                                              {"nesterov", nesterov},
                                              {"weight_decay", weight_decay},
                                              {"adamw_lr", adamw_lr},
                                              {"adamw_beta1", beta1},
                                              {"adamw_beta2", beta2},
                                              {"adamw_eps", eps},
                                              {"adamw_weight_decay", adamw_weight_decay}}));
    const std::vector<torch::Tensor> matrices = {net.conv->weight(), net.wide->weight(), net.tall->weight()};
    const auto chosen = muon.matrix_parameters();
    ASSERT_EQ(chosen.size(), matrices.size());
    for (size_t i = 0; i < matrices.size(); ++i) EXPECT_TRUE(chosen[i].is_same(matrices[i]));
    std::vector<Reference> reference;
    for (const auto& parameter : net.parameters()) {
      Reference state{parameter.detach().clone(), torch::zeros_like(parameter), torch::zeros_like(parameter),
                      torch::zeros_like(parameter)};
      for (const auto& matrix : matrices) state.muon = state.muon || matrix.is_same(parameter);
      reference.push_back(state);
    }
    PhaseTimer timer;
    for (int step = 0; step < 3; ++step) {
      SCOPED_TRACE(step);
      const double factor = schedule[step];
      auto generator = at::detail::createCPUGenerator(20 + step);
      const auto images = torch::randn({5, 1, 4, 4}, generator, torch::kDouble);
      const auto labels = torch::randint(kClasses, {5}, generator, torch::kInt64);
      net.zero_grad();
      torch::nn::functional::cross_entropy(net.forward(images), labels).backward();
      for (size_t i = 0; i < reference.size(); ++i) {
        auto& state = reference[i];
        const auto grad = net.parameters()[i].grad().detach().clone();
        if (state.muon) {
          state.momentum = momentum * state.momentum + (1 - momentum) * grad;
          const auto direction = nesterov ? (1 - momentum) * grad + momentum * state.momentum : state.momentum;
          const auto matrix = direction.reshape({direction.size(0), -1});
          const double scale = std::sqrt(std::max(1.0, static_cast<double>(matrix.size(0)) / matrix.size(1)));
          const auto update = scale * polynomial_of_singular_values(matrix);
          // Where the bound applies, the update's singular values lie within it, scaled.
          if ((torch::linalg_svdvals(matrix) / matrix.norm()).min().item<double>() >= kSmallestNormalisedSingularValue) {
            const auto singular_values = torch::linalg_svdvals(update) / scale;
            EXPECT_GE(singular_values.min().item<double>(), kOrthogonalisedLow);
            EXPECT_LE(singular_values.max().item<double>(), kOrthogonalisedHigh);
            ++bounded_updates;
          }
          state.theta = state.theta * (1 - lr * factor * weight_decay) - lr * factor * update.reshape(grad.sizes());
        } else {
          const double rate = adamw_lr * factor;
          const int t = step + 1;
          state.first = beta1 * state.first + (1 - beta1) * grad;
          state.second = beta2 * state.second + (1 - beta2) * grad * grad;
          const auto m_hat = state.first / (1 - std::pow(beta1, t));
          const auto v_hat = state.second / (1 - std::pow(beta2, t));
          state.theta = state.theta * (1 - rate * adamw_weight_decay) - rate * m_hat / (v_hat.sqrt() + eps);
        }
      }
      muon.set_learning_rate(lr * factor);
      muon.step({step, 0, step, 3, {}, {}}, timer);
      for (size_t i = 0; i < reference.size(); ++i) {
        SCOPED_TRACE(i);
        expect_close(net.parameters()[i], reference[i].theta, Tolerances<double>::kExact);
      }
    }
  }
  EXPECT_GT(bounded_updates, 0);
}

TEST(Muon, HeadSettingMovesTheClassifierBetweenAdamWAndMuon) {
  torch::manual_seed(7);
  TallNet net;
  EXPECT_EQ(Muon(net, optimizer_options("muon", nlohmann::json::object())).matrix_parameters().size(), 3u);
  const auto with_head = Muon(net, optimizer_options("muon", {{"head", "muon"}})).matrix_parameters();
  ASSERT_EQ(with_head.size(), 4u);
  EXPECT_TRUE(with_head.back().is_same(net.head->weight()));
}

}  // namespace
}  // namespace ngd
