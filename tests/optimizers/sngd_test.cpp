// SNGD (reconstruction) and the official code's RFIM variant against dense formulas.
#include <gtest/gtest.h>

#include "harness/models/model.h"
#include "harness/runner.h"
#include "harness/spec.h"
#include "optimizers/layer_statistics.h"
#include "optimizers/matrix_roots.h"
#include "optimizers/optimizer.h"
#include "optimizers/registry.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

std::shared_ptr<Model> make_model(const std::string& name, const nlohmann::json& options, const ModelInput& input) {
  torch::manual_seed(0);
  const auto* entry = find_entry(model_registry(), name);
  auto model = entry->make(Options(resolve_options(options, entry->options, name, "model")), input);
  model->to(torch::kDouble);  // tight comparisons
  return model;
}

// The runner's work before a step with empirical capture: record, forward, mean cross-entropy, backward.
torch::Tensor forward_backward(Model& model, const torch::Tensor& images, const torch::Tensor& labels) {
  for (const auto& layer : model.capture_layers()) {
    layer->set_record_input(true);
    layer->set_record_grad_output(true);
  }
  model.zero_grad();
  const auto logits = model.forward(images);
  torch::nn::functional::cross_entropy(logits, labels).backward();
  return logits.detach();
}

torch::Tensor weights_and_bias(CaptureLayer& layer) {
  const auto weight = layer.weight().detach().reshape({layer.weight().size(0), -1});
  return layer.has_bias() ? torch::cat({weight, layer.bias().detach().unsqueeze(1)}, 1) : weight.clone();
}

torch::Tensor with_ones(const torch::Tensor& rows) { return torch::cat({rows, torch::ones({rows.size(0), 1}, rows.options())}, 1); }

torch::Tensor damped(const torch::Tensor& factor, double damping) {
  return factor + damping * factor.trace() / static_cast<double>(factor.size(0)) * torch::eye(factor.size(0), factor.options());
}

// (A ⊗ G)⁻¹ vec(∇) for the column-stacking vec, i.e. G⁻¹ ∇ A⁻¹, by a dense solve.
torch::Tensor dense_kronecker_solve(const torch::Tensor& a, const torch::Tensor& g, const torch::Tensor& gradient) {
  const auto solution = torch::linalg_solve(torch::kron(a, g), gradient.t().reshape({-1, 1}), /*left=*/true);
  return solution.reshape({gradient.size(1), gradient.size(0)}).t();
}

torch::Tensor random_spd(int64_t n, double smallest, double largest) {
  const auto q = std::get<0>(torch::linalg_qr(torch::randn({n, n}, torch::kDouble)));
  const auto eigenvalues = torch::logspace(std::log10(smallest), std::log10(largest), n, 10.0, torch::kDouble);
  return (q * eigenvalues).mm(q.t());
}

TEST(SngdMatrixRoots, DenmanBeaversMatchesTheEigendecomposition) {
  torch::manual_seed(1);
  const auto a = random_spd(30, 1e-4, 1e2);
  const auto reference = eigh_roots(a);
  const auto roots = denman_beavers_roots(a, 50, 1e-12);
  EXPECT_TRUE(roots.converged);
  EXPECT_LT(roots.iterations, 15);  // determinant scaling: a few iterations even at condition 1e6
  EXPECT_TRUE(torch::allclose(roots.sqrt, reference.sqrt, 1e-8, 1e-10));
  EXPECT_TRUE(torch::allclose(roots.inverse_sqrt, reference.inverse_sqrt, 1e-8, 1e-8));
  EXPECT_TRUE(torch::allclose(roots.sqrt.mm(roots.sqrt), a, 1e-8, 1e-10));
}

TEST(SngdMatrixRoots, NewtonSchulzMatchesTheEigendecompositionWhenWellConditioned) {
  torch::manual_seed(2);
  const auto a = random_spd(20, 0.5, 3.0);
  const auto reference = eigh_roots(a);
  const auto roots = newton_schulz_roots(a, 100, 1e-12);
  EXPECT_TRUE(roots.converged);
  EXPECT_TRUE(torch::allclose(roots.sqrt, reference.sqrt, 1e-8, 1e-10));
  EXPECT_TRUE(torch::allclose(roots.inverse_sqrt, reference.inverse_sqrt, 1e-8, 1e-10));
}

TEST(SngdMatrixRoots, NewtonSchulzReportsNonConvergenceAtItsLimit) {
  torch::manual_seed(3);
  const auto roots = newton_schulz_roots(random_spd(10, 1e-6, 1.0), 5, 1e-12);
  EXPECT_FALSE(roots.converged);
  EXPECT_EQ(roots.iterations, 5);
}

// One step from this step's statistics alone (no average with the initial I), no KL clip, no momentum.
const nlohmann::json kExactSngd = {{"lr", 0.5},          {"momentum", 0.0},       {"fisher", "empirical"},
                                   {"damping", 0.1},     {"stat_decay", 0.0},      {"kl_clip", 0.0},
                                   {"stat_interval", 1}, {"inverse_interval", 1}, {"root_iterations", 60},
                                   {"root_tolerance", 1e-12}};

// A single Linear layer 3 → 2, one SNGD step with `hparams`; returns the dense expectation's pieces.
struct LinearStep {
  torch::Tensor before, after, a, g, gradient;
};

LinearStep linear_step(const nlohmann::json& hparams) {
  auto model = make_model("mlp", {{"hidden", nlohmann::json::array()}}, {{1, 1, 3}, 2});
  auto optimizer = make_optimizer("sngd", *model, hparams);
  auto& layer = *model->capture_layers()[0];
  const auto images = torch::randn({6, 1, 1, 3}, torch::kDouble);
  const auto labels = torch::tensor({0, 1, 1, 0, 1, 0}, torch::kLong);
  const auto logits = forward_backward(*model, images, labels);
  const auto before = weights_and_bias(layer);
  const auto gradient = gradient_matrix(layer).clone();

  // Independent of the capture: ā = [x, 1], per-sample logit gradients D = softmax(z) − onehot(y).
  const double n = 6;
  const auto inputs = with_ones(images.reshape({6, 3}));
  const auto d = torch::softmax(logits, 1) - torch::one_hot(labels, 2).to(torch::kDouble);
  EXPECT_TRUE(torch::allclose(gradient, d.t().mm(inputs) / n));
  const auto a = damped(inputs.t().mm(inputs) / n, 0.1);
  const auto g = damped(d.t().mm(d) / n, 0.1);

  PhaseTimer timer;
  optimizer->step({0, 0, 0, 1, {}, {}}, timer);
  return {before, weights_and_bias(layer), a, g, gradient};
}

TEST(Sngd, OneStepOnALinearLayerEqualsTheDenseKroneckerSolve) {
  const auto step = linear_step(kExactSngd);
  EXPECT_TRUE(torch::allclose(step.after, step.before - 0.5 * dense_kronecker_solve(step.a, step.g, step.gradient), 1e-9, 1e-10));
}

TEST(Sngd, InputOnlyLocalFisherWhitensTheInputsOnly) {
  auto hparams = kExactSngd;
  hparams["local_fisher"] = "input";
  const auto step = linear_step(hparams);
  const auto expected = torch::linalg_solve(step.a, step.gradient.t(), /*left=*/true).t();  // ∇ A⁻¹
  EXPECT_TRUE(torch::allclose(step.after, step.before - 0.5 * expected, 1e-9, 1e-10));
}

TEST(Sngd, KlClipScalesTheStepToTheBudget) {
  auto hparams = kExactSngd;
  hparams["kl_clip"] = 1e-6;
  const auto step = linear_step(hparams);
  const auto natural = dense_kronecker_solve(step.a, step.g, step.gradient);
  const double scale = std::sqrt(1e-6 / (0.5 * 0.5 * (natural * step.gradient).sum().item<double>()));
  ASSERT_LT(scale, 1);
  EXPECT_TRUE(torch::allclose(step.after, step.before - 0.5 * scale * natural, 1e-9, 1e-12));
}

TEST(Sngd, OneStepOnAConvLayerEqualsTheDenseKroneckerSolve) {
  auto model = make_model("3c1f", {{"channels", 3}, {"hidden", 16}}, {{1, 6, 6}, 3});
  auto optimizer = make_optimizer("sngd", *model, kExactSngd);
  auto& conv = *model->capture_layers()[0];
  const auto images = torch::randn({4, 1, 6, 6}, torch::kDouble);
  forward_backward(*model, images, torch::tensor({0, 1, 2, 1}, torch::kLong));
  const auto before = weights_and_bias(conv);
  const auto gradient = gradient_matrix(conv).clone();

  // KFC's normalisation: A averages ā āᵀ over samples and the S = 36 positions; G sums D Dᵀ over
  // positions and averages over samples, D = N·(recorded output gradient).
  const double n = 4, positions = 36;
  const auto patches = torch::nn::functional::unfold(images, torch::nn::functional::UnfoldFuncOptions({3, 3}).padding(1));
  const auto inputs = with_ones(patches.transpose(1, 2).reshape({-1, 9}));
  const auto d = conv.grad_output().permute({0, 2, 3, 1}).reshape({-1, 3}) * n;
  ASSERT_GT(d.abs().sum().item<double>(), 0) << "a dead network tests nothing";
  const auto a = damped(inputs.t().mm(inputs) / (n * positions), 0.1);
  const auto g = damped(d.t().mm(d) / n, 0.1);

  PhaseTimer timer;
  optimizer->step({0, 0, 0, 1, {}, {}}, timer);
  EXPECT_TRUE(torch::allclose(weights_and_bias(conv), before - 0.5 * dense_kronecker_solve(a, g, gradient), 1e-9, 1e-10));
}

TEST(SngdRfim, PerUnitPreconditioningEqualsADensePerUnitSolve) {
  // fc1 (first) and fc3 (last) take the input-covariance metric, fc2 (hidden) one metric per unit.
  auto model = make_model("mlp", {{"hidden", {4, 3}}}, {{1, 1, 3}, 2});
  const double lr = 0.3, l2 = 1e-3, decay = 0.995, damping = 1e-4;
  auto optimizer = make_optimizer("sngd-rfim", *model, {{"lr", lr}, {"l2", l2}, {"inverse_interval", 1}});
  const auto& layers = model->capture_layers();
  PhaseTimer timer;

  // Step 0 is plain GD (metrics start at I); its batch's statistics, at the step-0 parameters, make the
  // metrics that precondition step 1.
  const auto images = torch::randn({5, 1, 1, 3}, torch::kDouble);
  forward_backward(*model, images, torch::tensor({0, 1, 1, 0, 1}, torch::kLong));
  std::vector<torch::Tensor> inputs, preactivations;
  auto x = images.reshape({5, 3});
  for (size_t l = 0; l < layers.size(); ++l) {
    inputs.push_back(with_ones(x));
    preactivations.push_back(inputs.back().mm(weights_and_bias(*layers[l]).t()));
    x = torch::relu(preactivations.back());
  }
  optimizer->step({0, 0, 0, 2, {}, {}}, timer);

  forward_backward(*model, torch::randn({5, 1, 1, 3}, torch::kDouble), torch::tensor({1, 1, 0, 0, 1}, torch::kLong));
  std::vector<torch::Tensor> before, gradients;
  for (const auto& layer : layers) {
    before.push_back(weights_and_bias(*layer));
    auto gradient = gradient_matrix(*layer).clone();
    gradient.slice(1, 0, gradient.size(1) - 1) += l2 * before.back().slice(1, 0, gradient.size(1) - 1);
    gradients.push_back(gradient);
  }
  optimizer->step({1, 0, 1, 2, {}, {}}, timer);

  const auto metric_inverse_solve = [&](const torch::Tensor& batch_metric, const torch::Tensor& rhs) {
    const auto identity = torch::eye(batch_metric.size(0), torch::kDouble);
    const auto metric = decay * identity + (1 - decay) * batch_metric;
    return torch::linalg_solve(metric + damping * metric.trace() * identity, rhs, /*left=*/true);
  };
  for (size_t l : {size_t{0}, size_t{2}}) {
    const auto expected_step = metric_inverse_solve(inputs[l].t().mm(inputs[l]) / 5.0, gradients[l].t()).t();
    EXPECT_TRUE(torch::allclose(weights_and_bias(*layers[l]), before[l] - lr * expected_step, 1e-9, 1e-12)) << "layer " << l;
  }
  const auto gate = torch::sigmoid(preactivations[1]).pow(2);
  for (int64_t unit = 0; unit < 3; ++unit) {
    const auto weighted = inputs[1] * gate.select(1, unit).unsqueeze(1);
    const auto expected_step = metric_inverse_solve(weighted.t().mm(inputs[1]) / 5.0, gradients[1][unit]);
    EXPECT_TRUE(torch::allclose(weights_and_bias(*layers[1])[unit], before[1][unit] - lr * expected_step, 1e-9, 1e-12))
        << "unit " << unit;
  }
}

TEST(SngdRfim, RefusesConvolutionalModels) {
  auto model = make_model("3c1f", {{"channels", 2}, {"hidden", 3}}, {{1, 6, 6}, 3});
  EXPECT_THROW(make_optimizer("sngd-rfim", *model, nlohmann::json::object()), std::invalid_argument);
}

RunConfig tiny_run(const nlohmann::json& patch) {
  auto document = testing::tiny_spec();
  document.merge_patch(patch);
  return parse_spec(document, "tiny").runs.at(0);
}

RunnerOptions quiet() {
  RunnerOptions options;
  options.progress = false;
  return options;
}

// Trains the tiny spec's MLP (dense, then with rank-8 factor layers) with `optimizer` through the runner.
void expect_learns_on_dense_and_low_rank_models(const nlohmann::json& optimizer) {
  const auto dataset = testing::synthetic_fashion_mnist(512, 128);
  for (const int64_t rank : {0, 8}) {
    const auto result = train_run(
        tiny_run({{"model", {{"hidden", {32}}, {"rank", rank}}}, {"optimizers", {optimizer}}}), dataset, quiet());
    ASSERT_EQ(result.status, "completed") << "rank " << rank << ": " << result.error;
    EXPECT_TRUE(testing::outcome_at_least("test_acc_rank" + std::to_string(rank), result.epochs.back().test_acc, 0.8));
    EXPECT_GT(result.phase_times_s["curvature"].get<double>(), 0);
    EXPECT_FALSE(result.optimizer_report.empty());
  }
}

TEST(Sngd, LearnsThroughTheRunnerOnDenseAndLowRankModels) {
  expect_learns_on_dense_and_low_rank_models(
      {{"name", "sngd"}, {"hparams", {{"inverse_interval", 16}, {"stat_interval", 2}, {"momentum", 0.9}}}});
}

TEST(SngdRfim, LearnsThroughTheRunnerOnDenseAndLowRankModels) {
  expect_learns_on_dense_and_low_rank_models({{"name", "sngd-rfim"}, {"hparams", {{"lr", 0.1}, {"inverse_interval", 5}}}});
}

}  // namespace
}  // namespace ngd
