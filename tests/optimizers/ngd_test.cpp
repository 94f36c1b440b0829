#include <gtest/gtest.h>

#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "optimizers/ngd.h"
#include "tests/optimizers/woodbury_test_support.h"
#include "tests/support/test_support.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

using testing::Tolerances;
using woodbury_testing::Batch;
using woodbury_testing::expect_close;

// Samples in the test batch.
constexpr int64_t kSamples = 6;
// Small against the Grams' diagonal, so that (F + λI)⁻¹ḡ is far from a multiple of ḡ.
constexpr double kDamping = 0.05;
// Seed of the global generator before the step: it draws the sampled Fisher's labels.
constexpr uint64_t kSamplingSeed = 11;

struct Case {
  const char* model;   // "mlp" (Linear) or "conv" (Conv2d and Linear)
  const char* fisher;  // "empirical" or "sampled"
};

void PrintTo(const Case& value, std::ostream* out) { *out << value.model << " " << value.fisher; }

std::shared_ptr<Model> double_model(const std::string& kind) {
  torch::manual_seed(3);
  std::shared_ptr<Model> model;
  if (kind == "mlp") {
    model = std::make_shared<woodbury_testing::SmallMlp>();
  } else {
    model = std::make_shared<woodbury_testing::SmallConvNet>(woodbury_testing::ConvShape{1, 1, true},
                                                             woodbury_testing::ConvShape{2, 0, false});
  }
  model->to(torch::kDouble);
  return model;
}

Batch double_batch(const std::string& kind, uint64_t seed) {
  return woodbury_testing::random_batch(kSamples, kind == "mlp" ? std::vector<int64_t>{12} : std::vector<int64_t>{2, 8, 8},
                                        seed, torch::kDouble);
}

// lr 1 and no momentum: the step is the rewritten gradient, which the test reads back from .grad.
Options plain_ngd_options(const std::string& fisher) {
  return optimizer_options("ngd", {{"lr", 1.0}, {"momentum", 0.0}, {"damping", kDamping}, {"fisher", fisher}});
}

class NgdDense : public ::testing::TestWithParam<Case> {};

TEST_P(NgdDense, StepIsTheDampedNaturalGradientOfAllCaptureLayersJointly) {
  const std::string kind = GetParam().model, fisher = GetParam().fisher;
  auto model = double_model(kind);
  const auto batch = double_batch(kind, 4);
  const auto rows = torch::cat(woodbury_testing::per_sample_gradient_loop(*model, batch), 1);
  torch::Tensor fisher_rows = rows;
  if (fisher == "sampled") {
    // The labels forward_backward will draw: the same generator state, the same probabilities.
    torch::manual_seed(kSamplingSeed);
    torch::Tensor sampled;
    {
      torch::NoGradGuard no_grad;
      sampled = torch::multinomial(torch::softmax(model->forward(batch.images), 1), 1).squeeze(1);
    }
    ASSERT_FALSE(torch::equal(sampled, batch.labels)) << "the test needs sampled labels other than the true ones";
    fisher_rows = torch::cat(woodbury_testing::per_sample_gradient_loop(*model, {batch.images, sampled}), 1);
  }
  const auto expected = woodbury_testing::dense_damped_solve(fisher_rows, kDamping, rows.mean(0));
  // Not a multiple of ḡ (which the step would be for λ ≫ F): below cosine 0.999 the part of Δ* across ḡ
  // is ≥ 4.5 % of its norm, 10⁷ times the comparison's tolerance, so the test can tell the solve happened.
  const auto mean = rows.mean(0);
  EXPECT_LT((expected * mean).sum().item<double>() / (expected.norm() * mean.norm()).item<double>(), 0.999);

  Ngd optimizer(*model, plain_ngd_options(fisher));
  const auto info = woodbury_testing::step_info(0, 0, 1, torch::arange(kSamples));
  EXPECT_EQ(optimizer.capture(info), fisher == "sampled" ? Capture::kSampled : Capture::kEmpirical);
  torch::manual_seed(kSamplingSeed);
  woodbury_testing::train_step(*model, optimizer, info, batch);
  expect_close(torch::cat(woodbury_testing::layer_gradients(*model)), expected, Tolerances<double>::kExact);
  EXPECT_EQ(optimizer.curvature().counters().grams, static_cast<int64_t>(model->capture_layers().size()));
  EXPECT_EQ(optimizer.curvature().counters().factorizations, 1);  // one joint system, not one per layer
}

INSTANTIATE_TEST_SUITE_P(Ngd, NgdDense,
                         ::testing::Values(Case{"mlp", "empirical"}, Case{"mlp", "sampled"}, Case{"conv", "empirical"},
                                           Case{"conv", "sampled"}));

TEST(Ngd, ARunThatBlowsUpIsRecordedAsDivergedWithItsStepNotAsFailed) {
  auto document = testing::tiny_spec();
  // A step of 10³⁰ natural-gradient units overflows float32 activations or per-sample Grams on the
  // next step: the run diverges, whichever check sees it first.
  document["optimizers"] = nlohmann::json::parse(R"([{"name": "ngd", "hparams": {"lr": 1e30, "damping": 1e-6}}])");
  const auto dataset = testing::synthetic_fashion_mnist(640, 64, 1);
  RunnerOptions options;
  options.progress = false;
  const auto result = train_run(parse_spec(document, "blow-up").runs.at(0), dataset, options);
  EXPECT_EQ(result.status, "diverged") << result.error;
  EXPECT_NE(result.error.find("step"), std::string::npos) << result.error;
}

TEST(Ngd, SolvesFreshEveryStep) {
  auto model = double_model("mlp");
  Ngd optimizer(*model, plain_ngd_options("empirical"));
  for (int64_t step = 0; step < 3; ++step) {
    const auto batch = double_batch("mlp", 10 + static_cast<uint64_t>(step));
    const auto rows = torch::cat(woodbury_testing::per_sample_gradient_loop(*model, batch), 1);
    woodbury_testing::train_step(*model, optimizer, woodbury_testing::step_info(0, step, 3, torch::arange(kSamples)), batch);
    // The step is the exact solve at the parameters it was taken from (lr 1 moved them since).
    expect_close(torch::cat(woodbury_testing::layer_gradients(*model)),
                 woodbury_testing::dense_damped_natural_gradient(rows, kDamping), Tolerances<double>::kExact);
  }
  EXPECT_EQ(optimizer.curvature().counters().factorizations, 3);
}

TEST(Ngd, ParametersOutsideCaptureLayersStepWithTheirGradient) {
  torch::manual_seed(3);
  auto model = std::make_shared<woodbury_testing::SmallMlp>(/*logit_shift=*/true);
  model->to(torch::kDouble);
  const auto batch = double_batch("mlp", 6);
  model->zero_grad();
  torch::nn::functional::cross_entropy(model->forward(batch.images), batch.labels).backward();
  const auto plain = model->logit_shift().grad().clone();
  Ngd optimizer(*model, plain_ngd_options("empirical"));
  woodbury_testing::train_step(*model, optimizer, woodbury_testing::step_info(0, 0, 1, torch::arange(kSamples)), batch);
  expect_close(model->logit_shift().grad(), plain, Tolerances<double>::kExact);
}

TEST(Ngd, SampledFisherNeedsPositiveDamping) {
  auto model = double_model("mlp");
  EXPECT_THROW(Ngd(*model, optimizer_options("ngd", {{"fisher", "sampled"}, {"damping", 0.0}})),
               std::invalid_argument);
}

}  // namespace
}  // namespace ngd
