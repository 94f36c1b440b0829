// NAdamW against a scalar re-implementation of AlgoPerf's update, under the harness's warmup + cosine
// schedule, on a network with conv and linear layers (float64).
#include <gtest/gtest.h>

#include <cmath>

#include "base/spec_error.h"
#include "harness/spec/schedule.h"
#include "optimizers/nadamw.h"
#include "tests/optimizers/woodbury_test_support.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

using testing::Tolerances;
using woodbury_testing::ConvShape;
using woodbury_testing::random_batch;
using woodbury_testing::SmallConvNet;

// The run the schedule is built for: 2 epochs of 2 steps, one epoch of warmup.
constexpr int64_t kEpochs = 2;
constexpr int64_t kStepsPerEpoch = 2;
constexpr int64_t kSteps = kEpochs * kStepsPerEpoch;

std::vector<double> values(const torch::Tensor& tensor) {
  const auto flat = tensor.detach().to(torch::kDouble).contiguous().reshape({-1});
  return {flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel()};
}

// AlgoPerf's NAdamW written element by element (reference_algorithms/.../pytorch_nadamw_full_budget.py).
struct ScalarNAdamW {
  double beta1, beta2, eps, weight_decay;
  std::vector<double> theta, m, v;
  int t = 0;

  void step(const std::vector<double>& g, double lr) {
    ++t;
    for (size_t i = 0; i < theta.size(); ++i) {
      theta[i] *= 1 - lr * weight_decay;
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      const double nesterov = beta1 * m[i] + (1 - beta1) * g[i];
      const double m_hat = nesterov / (1 - std::pow(beta1, t));
      const double v_hat = v[i] / (1 - std::pow(beta2, t));
      theta[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

// The harness's cosine schedule with linear warmup, written out: factor (s+1)/W during the W warmup
// steps, times ½(1 + cos(π·s/T)) over the T steps of the run.
double warmup_cosine_factor(int64_t step, double warmup_steps) {
  const double cosine = 0.5 * (1 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(kSteps)));
  return cosine * std::min(1.0, static_cast<double>(step + 1) / warmup_steps);
}

TEST(NAdamW, StepsWithWarmupCosineMatchAScalarReimplementation) {
  const double lr = 0.01, beta1 = 0.9, beta2 = 0.99, eps = 1e-8, weight_decay = 0.1;
  torch::manual_seed(3);
  SmallConvNet net(ConvShape{2, 1, true}, ConvShape{1, 0, false});
  net.to(torch::kDouble);
  NAdamW optimizer(net.parameters(), optimizer_options("nadamw", {{"lr", lr},
                                                                  {"beta1", beta1},
                                                                  {"beta2", beta2},
                                                                  {"eps", eps},
                                                                  {"weight_decay", weight_decay}}));
  const auto schedule = make_schedule(resolve_schedule({{"name", "cosine"}, {"warmup_epochs", 1.0}}, "schedule"),
                                      kEpochs, kStepsPerEpoch);
  std::vector<ScalarNAdamW> reference;
  for (const auto& parameter : net.parameters()) {
    const auto theta = values(parameter);
    reference.push_back({beta1, beta2, eps, weight_decay, theta, std::vector<double>(theta.size()),
                         std::vector<double>(theta.size())});
  }
  PhaseTimer timer;
  for (int64_t step = 0; step < kSteps; ++step) {
    SCOPED_TRACE(step);
    const double scheduled = lr * schedule(step);
    ASSERT_NEAR(scheduled, lr * warmup_cosine_factor(step, kStepsPerEpoch), 1e-15);
    const auto batch = random_batch(4, {2, 8, 8}, 10 + step);
    net.zero_grad();
    torch::nn::functional::cross_entropy(net.forward(batch.images.to(torch::kDouble)), batch.labels).backward();
    for (size_t i = 0; i < reference.size(); ++i) reference[i].step(values(net.parameters()[i].grad()), scheduled);
    optimizer.set_learning_rate(scheduled);
    optimizer.step({step, step / kStepsPerEpoch, step % kStepsPerEpoch, kStepsPerEpoch, {}, {}}, timer);
    for (size_t i = 0; i < reference.size(); ++i) {
      const auto actual = values(net.parameters()[i]);
      double error = 0, scale = 0;
      for (size_t j = 0; j < actual.size(); ++j) {
        error = std::max(error, std::abs(actual[j] - reference[i].theta[j]));
        scale = std::max(scale, std::abs(reference[i].theta[j]));
      }
      EXPECT_LE(error, Tolerances<double>::kExact * scale) << "parameter " << i;
    }
  }
}

// The look-ahead is what separates NAdamW from AdamW: on the first step with g = 1 everywhere and no
// weight decay, AdamW moves by lr·m̂/(√v̂+ε) = lr, NAdamW by lr·(β₁(1−β₁) + (1−β₁))/(1−β₁)/(1+ε) = lr·(1+β₁)/(1+ε).
TEST(NAdamW, FirstStepCarriesTheNesterovLookAhead) {
  const double lr = 0.1, beta1 = 0.8, eps = 1e-8;
  auto parameter = torch::zeros({3}, torch::kDouble).requires_grad_();
  NAdamW optimizer({parameter}, optimizer_options("nadamw", {{"lr", lr}, {"beta1", beta1}, {"eps", eps}, {"weight_decay", 0.0}}));
  parameter.mutable_grad() = torch::ones({3}, torch::kDouble);
  PhaseTimer timer;
  optimizer.step({}, timer);
  for (const double value : values(parameter)) EXPECT_NEAR(value, -lr * (1 + beta1) / (1 + eps), 1e-15);
}

TEST(NAdamW, RejectsBetasOutsideTheUnitInterval) {
  // Rejected by the settings' declared ranges when they are resolved (as a spec is parsed).
  EXPECT_THROW(optimizer_options("nadamw", {{"beta1", 1.0}}), SpecError);
  EXPECT_THROW(optimizer_options("nadamw", {{"beta2", -0.1}}), SpecError);
}

}  // namespace
}  // namespace ngd
