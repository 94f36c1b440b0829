#include <gtest/gtest.h>

#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "optimizers/tengrad.h"
#include "tests/optimizers/woodbury_test_support.h"
#include "tests/support/test_support.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

using woodbury_testing::expect_close;
using woodbury_testing::step_info;

// Samples per test batch.
constexpr int64_t kSamples = 6;
// The model, its batches and the per-sample loops all run in float64: they agree to rounding.
constexpr double kTolerance = testing::Tolerances<double>::kExact;

std::shared_ptr<Model> small_conv_net() {
  torch::manual_seed(4);
  auto model = std::make_shared<woodbury_testing::SmallConvNet>(woodbury_testing::ConvShape{2, 1, true},
                                                                woodbury_testing::ConvShape{1, 0, false});
  model->to(torch::kDouble);
  return model;
}

woodbury_testing::Batch random_batch(std::vector<int64_t> shape, uint64_t seed) {
  return woodbury_testing::random_batch(kSamples, std::move(shape), seed, torch::kDouble);
}

TEST(Tengrad, PreconditionedGradientIsEachLayersDampedNaturalGradient) {
  auto model = small_conv_net();
  const auto batch = random_batch({2, 8, 8}, 1);
  const auto loop = woodbury_testing::per_sample_gradient_loop(*model, batch);
  Tengrad tengrad(*model, optimizer_options("tengrad", {{"lr", 0.0}, {"damping", 0.1}}));
  woodbury_testing::train_step(*model, tengrad, step_info(0, 0, 1, torch::arange(kSamples)), batch);
  const auto gradients = woodbury_testing::layer_gradients(*model);
  for (size_t l = 0; l < loop.size(); ++l) {
    expect_close(gradients[l], woodbury_testing::dense_damped_natural_gradient(loop[l], 0.1), kTolerance);
  }
}

TEST(Tengrad, UncapturedParametersStepWithTheirPlainGradient) {
  torch::manual_seed(6);
  woodbury_testing::SmallMlp model(/*logit_shift=*/true);
  model.to(torch::kDouble);
  const auto batch = random_batch({12}, 12);
  model.zero_grad();
  torch::nn::functional::cross_entropy(model.forward(batch.images), batch.labels).backward();
  const auto plain = model.logit_shift().grad().clone();
  Tengrad tengrad(model, optimizer_options("tengrad", {{"lr", 0.0}, {"damping", 0.1}}));
  woodbury_testing::train_step(model, tengrad, step_info(0, 0, 1, torch::arange(kSamples)), batch);
  expect_close(model.logit_shift().grad(), plain, kTolerance);
}

TEST(Tengrad, ReusesStatisticsAndFactorBetweenRefreshes) {
  constexpr int64_t kFreq = 3;
  constexpr int64_t kSteps = 7;  // refreshes at steps 0, 3, 6
  auto model = small_conv_net();
  const int64_t layers = static_cast<int64_t>(model->capture_layers().size());
  Tengrad tengrad(*model, optimizer_options("tengrad", {{"lr", 0.0}, {"damping", 0.1}, {"inverse_interval", kFreq}}));
  std::vector<torch::Tensor> refresh_loop;
  for (int64_t step = 0; step < kSteps; ++step) {
    const auto batch = random_batch({2, 8, 8}, 100 + step);
    const auto info = step_info(0, step, kSteps, torch::arange(kSamples) + step * kSamples);
    const auto loop = woodbury_testing::per_sample_gradient_loop(*model, batch);
    EXPECT_EQ(tengrad.capture(info), step % kFreq == 0 ? Capture::kEmpirical : Capture::kNone) << "step " << step;
    if (step % kFreq == 0) refresh_loop = loop;
    woodbury_testing::train_step(*model, tengrad, info, batch);
    if (step % kFreq == 0) continue;
    // Between refreshes: this batch's mean gradient, the last refresh's Fisher block.
    const auto gradients = woodbury_testing::layer_gradients(*model);
    for (size_t l = 0; l < loop.size(); ++l) {
      const auto expected = woodbury_testing::dense_damped_solve(refresh_loop[l], 0.1, loop[l].mean(0));
      expect_close(gradients[l], expected, kTolerance);
      const auto with_this_batch = woodbury_testing::dense_damped_natural_gradient(loop[l], 0.1);
      EXPECT_GT((expected - with_this_batch).norm().item<double>(), 0.05 * expected.norm().item<double>());
    }
  }
  EXPECT_EQ(tengrad.curvature().counters().grams, 3 * layers);
  EXPECT_EQ(tengrad.curvature().counters().factorizations, 3 * layers);
  EXPECT_EQ(tengrad.curvature().counters().solves, kSteps * layers);
}

TEST(Tengrad, DampingDecaysByHyLosRuleAfterWarmup) {
  torch::manual_seed(5);
  woodbury_testing::SmallMlp model;
  model.to(torch::kDouble);
  Tengrad tengrad(model, optimizer_options("tengrad", {{"lr", 0.0},
                                                                          {"inverse_interval", 1},
                                                                          {"damping", 1.0},
                                                                          {"damping_target", 0.1},
                                                                          {"damping_decay_steps", 10},
                                                                          {"damping_warmup_epochs", 1}}));
  const double alpha = 2 * std::log10(1.0 / 0.1) / 10;
  double expected = 1.0;
  for (int64_t step = 0; step < 5; ++step) {
    const auto batch = random_batch({12}, step);
    woodbury_testing::train_step(model, tengrad, step_info(step / 2, step % 2, 2, torch::arange(kSamples)), batch);
    if (step >= 2) expected = (1 - alpha) * expected + alpha * 0.1;  // warm-up: the first epoch's 2 steps
    EXPECT_NEAR(tengrad.curvature().damping().value(), expected, 1e-12) << "after step " << step;
  }
}

TEST(Tengrad, RejectsDampingItCannotUse) {
  woodbury_testing::SmallMlp model;
  EXPECT_THROW(Tengrad(model, optimizer_options("tengrad", {{"damping", 0.0}})), std::invalid_argument);
  EXPECT_THROW(Tengrad(model, optimizer_options("tengrad", {{"damping", 0.1}, {"damping_target", 0.5}})),
               std::invalid_argument);
}

TEST(Tengrad, TrainsThroughTheRunner) {
  auto document = testing::tiny_spec();
  document["epochs"] = 3;
  document["optimizers"] = nlohmann::json::parse(R"([{"name": "tengrad", "hparams": {"lr": 0.03, "damping": 1.0, "inverse_interval": 5}}])");
  const auto spec = parse_spec(document, "tengrad-test");
  const auto dataset = testing::synthetic_fashion_mnist(640, 320, 2);
  RunnerOptions options;
  options.progress = false;
  const auto result = train_run(spec.runs.at(0), dataset, options);
  ASSERT_EQ(result.status, "completed") << result.error;
  // Kernel matrix (scripts/kernel-matrix.py: 5 OpenBLAS kernels x ATen default/avx2, 2026-12-07):
  // test accuracy 1.0 in every combination (margin 0.1, spread 0).
  EXPECT_TRUE(testing::outcome_at_least("test_acc", result.epochs.back().test_acc, 0.9));
  EXPECT_GT(result.phase_times_s.at("curvature").get<double>(), 0.0);
}

}  // namespace
}  // namespace ngd
