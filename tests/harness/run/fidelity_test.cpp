#include <gtest/gtest.h>

#include "datasets/tokenizer.h"
#include "datasets/translation.h"
#include "harness/run/fidelity.h"
#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "optimizers/fngd.h"
#include "tests/optimizers/woodbury_test_support.h"
#include "tests/support/test_support.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

using testing::Tolerances;
using woodbury_testing::Batch;

// Samples in the test batch.
constexpr int64_t kSamples = 6;
// Damping of the optimizers under test: small against the Grams' diagonal, so directions differ.
constexpr double kDamping = 0.05;

std::shared_ptr<Model> double_conv_net() {
  torch::manual_seed(3);
  auto model = std::make_shared<woodbury_testing::SmallConvNet>(woodbury_testing::ConvShape{1, 1, true},
                                                                woodbury_testing::ConvShape{1, 0, true});
  model->to(torch::kDouble);
  return model;
}

Batch double_batch(uint64_t seed) {
  auto batch = woodbury_testing::random_batch(kSamples, {2, 8, 8}, seed);
  batch.images = batch.images.to(torch::kDouble);
  return batch;
}

// One training step of `optimizer` with a probe around it, as the runner takes it.
ProbeMeasurement probed_step(Model& model, Optimizer& optimizer, const StepInfo& info, const Batch& batch,
                             double probe_damping = 0.3) {
  FidelityProbe probe({1, probe_damping}, model, optimizer, torch::kCPU);
  probe.before_step(info, [&] { return classifier_forward(model, batch.images, batch.labels); });
  woodbury_testing::train_step(model, optimizer, info, batch);
  probe.after_step(info);
  EXPECT_TRUE(probe.last().has_value());
  return probe.last().value_or(ProbeMeasurement{});
}

double dense_cosine(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a * b).sum() / (a.norm() * b.norm())).item<double>();
}

// γ(x) = √(xᵀFx)/|xᵀḡ| with F = UᵀU/n from U's rows and ḡ their mean.
double dense_gamma(const torch::Tensor& rows, const torch::Tensor& x) {
  const auto fisher = rows.t().mm(rows) / static_cast<double>(rows.size(0));
  return std::sqrt(x.dot(fisher.mv(x)).item<double>()) / std::abs(x.dot(rows.mean(0)).item<double>());
}

TEST(Fidelity, NgdHasCosineOneAndRatiosOne) {
  auto model = double_conv_net();
  auto optimizer = make_optimizer("ngd", *model, {{"damping", kDamping}});
  const auto probe = probed_step(*model, *optimizer, woodbury_testing::step_info(0, 0, 1, torch::arange(kSamples)), double_batch(4));
  EXPECT_EQ(probe.damping, kDamping);  // the optimizer's own λ, not the probe's
  EXPECT_NEAR(probe.cosine, 1.0, Tolerances<double>::kExact);
  EXPECT_NEAR(probe.norm_ratio, 1.0, Tolerances<double>::kExact);
  for (double cosine : probe.layer_cosine) EXPECT_NEAR(cosine, 1.0, Tolerances<double>::kExact);
  EXPECT_FALSE(probe.staleness.has_value());
}

TEST(Fidelity, MetricsEqualTheDenseFormulas) {
  // TENGraD's block-diagonal inverse: a direction that is neither ḡ nor Δ*.
  auto model = double_conv_net();
  const auto batch = double_batch(5);
  const auto loop = woodbury_testing::per_sample_gradient_loop(*model, batch);
  const auto rows = torch::cat(loop, 1);
  auto optimizer = make_optimizer("tengrad", *model, {{"damping", kDamping}, {"momentum", 0.0}, {"lr", 0.1}});
  const auto probe = probed_step(*model, *optimizer, woodbury_testing::step_info(0, 0, 1, torch::arange(kSamples)), batch);
  const auto direction = torch::cat(woodbury_testing::layer_gradients(*model));
  const auto natural = woodbury_testing::dense_damped_natural_gradient(rows, kDamping);
  const double tolerance = Tolerances<double>::kExact;
  const double cosine = dense_cosine(direction, natural);
  ASSERT_LT(cosine, 0.999);  // the test needs a direction other than Δ*
  EXPECT_NEAR(probe.cosine, cosine, tolerance);
  EXPECT_NEAR(probe.norm_ratio, (direction.norm() / natural.norm()).item<double>(), tolerance);
  const double gamma_ratio = dense_gamma(rows, direction) / dense_gamma(rows, rows.mean(0));
  ASSERT_GT(std::abs(gamma_ratio - 1), 1e-3);
  EXPECT_NEAR(probe.gamma_ratio, gamma_ratio, tolerance * gamma_ratio);
  ASSERT_EQ(probe.layer_cosine.size(), loop.size());
  int64_t offset = 0;
  for (size_t l = 0; l < loop.size(); ++l) {
    const int64_t width = loop[l].size(1);
    EXPECT_NEAR(probe.layer_cosine[l], dense_cosine(direction.slice(0, offset, offset + width), natural.slice(0, offset, offset + width)),
                tolerance);
    offset += width;
  }
}

TEST(Fidelity, SgdDirectionTendsToTheNaturalGradientAsDampingGrows) {
  auto model = double_conv_net();
  const auto batch = double_batch(6);
  // lr 0: every probe sees the same parameters.
  auto optimizer = make_optimizer("sgd", *model, {{"lr", 0.0}});
  double last_gap = 2;
  for (double damping : {1e-2, 1.0, 1e2, 1e4, 1e6}) {
    const auto probe = probed_step(*model, *optimizer, woodbury_testing::step_info(0, 0, 1, torch::arange(kSamples)), batch, damping);
    const double gap = 1 - probe.cosine;
    EXPECT_LT(gap, last_gap) << "λ = " << damping;
    last_gap = gap;
    EXPECT_NEAR(probe.gamma_ratio, 1.0, Tolerances<double>::kExact);  // d = ḡ
  }
  // 1 − cos = O((‖F‖/λ)²): far below rounding of the cosine at λ = 10⁶.
  EXPECT_LT(last_gap, Tolerances<double>::kExact);
}

Options fngd_options(double lr) {
  return optimizer_options("fngd", {{"lr", lr}, {"momentum", 0.0}, {"damping", kDamping}});
}

TEST(Fidelity, FngdFirstEpochIsExactAndFresh) {
  auto model = double_conv_net();
  Fngd fngd(*model, fngd_options(0.1));
  const auto probe = probed_step(*model, fngd, woodbury_testing::step_info(0, 0, 1, torch::arange(kSamples)), double_batch(7));
  EXPECT_EQ(probe.damping, kDamping);
  EXPECT_NEAR(probe.cosine, 1.0, Tolerances<double>::kExact);
  EXPECT_NEAR(probe.norm_ratio, 1.0, Tolerances<double>::kExact);
  ASSERT_TRUE(probe.staleness.has_value());
  EXPECT_NEAR(probe.staleness->cosine, 1.0, Tolerances<double>::kExact);
  EXPECT_NEAR(probe.staleness->relative_error, 0.0, Tolerances<double>::kExact);
  EXPECT_NEAR(probe.staleness->sum_reused, probe.staleness->sum_fresh, Tolerances<double>::kExact);
}

TEST(Fidelity, FngdLaterEpochStalenessAgainstAFreshDenseSolve) {
  auto model = double_conv_net();
  const auto batch = double_batch(8);
  Fngd fngd(*model, fngd_options(0.5));
  const auto first = woodbury_testing::step_info(0, 0, 1, torch::arange(kSamples));
  woodbury_testing::train_step(*model, fngd, first, batch);
  const auto reused = fngd.curvature().coefficients(first)[0];
  // The second epoch meets the same batch at the moved parameters.
  const auto later = woodbury_testing::step_info(1, 0, 1, torch::arange(kSamples));
  const auto rows = torch::cat(woodbury_testing::per_sample_gradient_loop(*model, batch), 1);
  const auto fresh = torch::linalg_solve(rows.mm(rows.t()) + kSamples * kDamping * torch::eye(kSamples, torch::kDouble),
                                          torch::ones({kSamples, 1}, torch::kDouble), true)
                         .squeeze(1);
  const auto probe = probed_step(*model, fngd, later, batch);
  const auto direction = torch::cat(woodbury_testing::layer_gradients(*model));
  const double tolerance = Tolerances<double>::kExact;
  // The reused step is Σ_i c_i ∇ℓ_i with the first epoch's c and this epoch's per-sample gradients.
  woodbury_testing::expect_close(direction, rows.t().mv(reused), tolerance);
  ASSERT_LT(dense_cosine(reused, fresh), 0.9999);  // the parameters moved enough to matter
  ASSERT_TRUE(probe.staleness.has_value());
  EXPECT_NEAR(probe.staleness->cosine, dense_cosine(reused, fresh), tolerance);
  EXPECT_NEAR(probe.staleness->relative_error, ((reused - fresh).norm() / fresh.norm()).item<double>(), tolerance);
  EXPECT_EQ(probe.staleness->negative_fraction, (reused < 0).to(torch::kDouble).mean().item<double>());
  EXPECT_NEAR(probe.staleness->sum_reused, reused.sum().item<double>(), tolerance * reused.abs().sum().item<double>());
  EXPECT_NEAR(probe.staleness->sum_fresh, fresh.sum().item<double>(), tolerance * fresh.abs().sum().item<double>());
  EXPECT_NEAR(probe.cosine, dense_cosine(direction, rows.t().mv(fresh)), tolerance);
}

TEST(Fidelity, AdamwOptsOut) {
  auto model = double_conv_net();
  auto adamw = make_optimizer("adamw", *model, nlohmann::json::object());
  FidelityProbe probe({1, 0.3}, *model, *adamw, torch::kCPU);
  EXPECT_FALSE(probe.due(woodbury_testing::step_info(0, 0, 1, torch::arange(kSamples))));
}

// A small BatchNorm network (the probe must put its running statistics back) on synthetic data.
nlohmann::json probed_spec(const std::string& optimizer, const nlohmann::json& hparams) {
  auto spec = testing::tiny_spec();
  spec["model"] = {{"name", "resnet20"}, {"width", 2}};
  spec["batch_size"] = 16;
  spec["optimizers"] = {{{"name", optimizer}, {"hparams", hparams}}};
  spec["fidelity"] = {{"every_steps", 3}};
  return spec;
}

class ProbesLeaveTraining : public ::testing::TestWithParam<const char*> {};

TEST_P(ProbesLeaveTraining, BitIdentical) {
  const std::string name = GetParam();
  const auto dataset = testing::synthetic_fashion_mnist(64, 32);
  // tengrad refreshes on some steps only, kfac (true Fisher) draws labels from the global generator.
  const nlohmann::json hparams = name == "tengrad" ? nlohmann::json{{"inverse_interval", 2}} : nlohmann::json::object();
  const auto run = parse_spec(probed_spec(name, hparams), "probed").runs.at(0);
  RunnerOptions options;
  options.progress = false;
  const auto probed = train_run(run, dataset, options);
  options.fidelity_every = 0;  // the CLI's override turns the spec's probes off
  const auto plain = train_run(run, dataset, options);
  ASSERT_EQ(probed.status, "completed") << probed.error;
  ASSERT_EQ(plain.status, "completed") << plain.error;
  ASSERT_EQ(probed.epochs.size(), plain.epochs.size());
  for (size_t e = 0; e < probed.epochs.size(); ++e) {
    EXPECT_EQ(probed.epochs[e].train_loss, plain.epochs[e].train_loss);  // bitwise
    EXPECT_EQ(probed.epochs[e].train_acc, plain.epochs[e].train_acc);
    EXPECT_EQ(probed.epochs[e].test_loss, plain.epochs[e].test_loss);
    EXPECT_EQ(probed.epochs[e].test_acc, plain.epochs[e].test_acc);
    EXPECT_TRUE(plain.epochs[e].fidelity.is_null());
    ASSERT_FALSE(probed.epochs[e].fidelity.is_null());
    // 4 steps per epoch, probes on steps 0, 3, 6: two in the first epoch, one in the second.
    EXPECT_EQ(probed.epochs[e].fidelity["probes"], e == 0 ? 2 : 1);
    EXPECT_TRUE(probed.epochs[e].fidelity["cosine"]["mean"].is_number());
  }
  EXPECT_EQ(to_json(probed)["fidelity"]["every_steps"], 3);
  EXPECT_FALSE(to_json(plain).contains("fidelity"));
  EXPECT_EQ(to_json(probed)["host_syncs"], to_json(plain)["host_syncs"]);  // the probes' reads are left out
}

INSTANTIATE_TEST_SUITE_P(Fidelity, ProbesLeaveTraining, ::testing::Values("sgd", "kfac", "tengrad", "fngd", "ngd"));

// Dropout draws from the global generator in every forward pass: a probe that did not put it back would
// shift every later mask.
TEST(Fidelity, ProbesLeaveDropoutTranslationTrainingBitIdentical) {
  if (!subword_tokenizers_available()) GTEST_SKIP() << "no SentencePiece in sanitizer builds";
  testing::TempDir root;
  testing::write_synthetic_multi30k(root.path(), 64, 16, 16);
  auto spec = testing::tiny_translation_spec();
  spec["model"]["dropout"] = 0.1;
  spec["optimizers"] = {{{"name", "ngd"}, {"hparams", {{"lr", 0.01}}}}};
  spec["fidelity"] = {{"every_steps", 2}};
  const auto run = parse_spec(spec, "probed").runs.at(0);
  const auto dataset = load_translation_dataset(run.dataset, {root.path()});
  RunnerOptions options;
  options.progress = false;
  const auto probed = train_run(run, dataset, options);
  options.fidelity_every = 0;
  const auto plain = train_run(run, dataset, options);
  ASSERT_EQ(probed.status, "completed") << probed.error;
  ASSERT_EQ(plain.status, "completed") << plain.error;
  for (size_t e = 0; e < probed.epochs.size(); ++e) {
    EXPECT_EQ(probed.epochs[e].train_loss, plain.epochs[e].train_loss);
    EXPECT_EQ(probed.epochs[e].validation, plain.epochs[e].validation);
    ASSERT_FALSE(probed.epochs[e].fidelity.is_null());
    // ngd's step is the probe's Δ* (same λ) up to float32 rounding; dropout masks are the step's own.
    EXPECT_GT(probed.epochs[e].fidelity["cosine"]["min"].get<double>(), 0.99);
  }
  EXPECT_EQ(probed.final_evaluation, plain.final_evaluation);
}

TEST(Fidelity, CommandLineOverrideProbesASpecWithoutABlock) {
  const auto dataset = testing::synthetic_fashion_mnist(64, 32);
  auto spec = testing::tiny_spec();
  spec["epochs"] = 1;
  const auto run = parse_spec(spec, "tiny").runs.at(0);
  RunnerOptions options;
  options.progress = false;
  options.fidelity_every = 1;
  const auto result = train_run(run, dataset, options);
  ASSERT_EQ(result.status, "completed") << result.error;
  EXPECT_EQ(result.epochs[0].fidelity["probes"], 2);  // 64 samples in batches of 32
  EXPECT_EQ(result.epochs[0].fidelity["damping"], 0.3);  // sgd has no damping: the probe's default
  EXPECT_NEAR(result.epochs[0].fidelity["gamma_ratio"]["mean"].get<double>(), 1.0, 1e-6);  // d = ḡ (float32)
}

TEST(Fidelity, SpecBlockIsValidated) {
  auto spec = testing::tiny_spec();
  spec["fidelity"] = {{"every_steps", 0}};
  EXPECT_THROW(
      {
        try {
          parse_spec(spec, "bad.json");
        } catch (const std::runtime_error& error) {
          EXPECT_NE(std::string(error.what()).find("fidelity.every_steps"), std::string::npos) << error.what();
          throw;
        }
      },
      std::runtime_error);
  spec["fidelity"] = {{"every", 5}};
  EXPECT_THROW(parse_spec(spec, "bad.json"), std::runtime_error);
  spec["fidelity"] = {{"every_steps", 5}};
  const auto run = parse_spec(spec, "good.json").runs.at(0);
  EXPECT_EQ(run.fidelity["every_steps"], 5);
  EXPECT_EQ(run.fidelity["damping"], 0.3);
  auto plain = testing::tiny_spec();
  EXPECT_EQ(run.config_hash(), parse_spec(plain, "plain.json").runs.at(0).config_hash());  // not identity
}

}  // namespace
}  // namespace ngd
