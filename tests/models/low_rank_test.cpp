// Low-rank (factorised) layers: full rank reproduces the dense layer; models list the factors.
#include <gtest/gtest.h>

#include "base/spec_error.h"
#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "models/factored_layer.h"
#include "models/model.h"
#include "tests/support/test_support.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

std::shared_ptr<Model> make_model(const std::string& name, const nlohmann::json& options) {
  const auto* entry = find_entry(model_registry(), name);
  return entry->make(Options(resolve_options(options, entry->options, name, "model")), {{1, 28, 28}, 10});
}

// Both sides run in float64: they differ by rounding alone, amplified by κ(R) ≲ 10 (R = N(0,1) + 3I).
constexpr double kTolerance = testing::Tolerances<double>::kExact;

// Converts both layers to float64, then sets the factors so that U·V equals the dense weight: V = R⁻¹W̃,
// U = R for a random invertible R (W̃ the weight as a matrix), and copies the bias.
template <class Layer>
void factorise(FactoredLayer<Layer>& factored, Layer& dense) {
  dense->to(torch::kDouble);
  for (auto& part : factored.parts) part->to(torch::kDouble);
  torch::NoGradGuard no_grad;
  auto& v = factored.parts[0]->weight();
  auto& u = factored.parts[1]->weight();
  const int64_t rank = v.size(0);
  const auto r = torch::randn({rank, rank}, torch::kDouble) + 3 * torch::eye(rank, torch::kDouble);
  v.copy_(torch::linalg_solve(r, dense->weight().reshape({rank, -1}), /*left=*/true).reshape(v.sizes()));
  u.copy_(r.reshape(u.sizes()));
  factored.parts[1]->bias().copy_(dense->bias());
}

// Function and input gradient agree, and the factors' gradients follow the chain rule through W = U·V:
// ∇U = ∇W·Vᵀ, ∇V = Uᵀ·∇W.
template <class Layer>
void expect_same_as_dense(FactoredLayer<Layer>& factored, Layer& dense, const torch::Tensor& input) {
  auto x_dense = input.clone().requires_grad_(true);
  auto x_factored = input.clone().requires_grad_(true);
  const auto y_dense = dense->forward(x_dense);
  const auto y_factored = factored.forward(x_factored);
  EXPECT_TRUE(torch::allclose(y_factored, y_dense, kTolerance, kTolerance));
  const auto upstream = torch::randn_like(y_dense);
  (y_dense * upstream).sum().backward();
  (y_factored * upstream).sum().backward();
  EXPECT_TRUE(torch::allclose(x_factored.grad(), x_dense.grad(), kTolerance, kTolerance));
  const int64_t rank = factored.parts[0]->weight().size(0);
  const auto grad_w = dense->weight().grad().reshape({dense->weight().size(0), -1});
  const auto v = factored.parts[0]->weight().reshape({rank, -1});
  const auto u = factored.parts[1]->weight().reshape({-1, rank});
  EXPECT_TRUE(torch::allclose(factored.parts[1]->weight().grad().reshape({-1, rank}), grad_w.mm(v.t()), kTolerance, kTolerance));
  EXPECT_TRUE(torch::allclose(factored.parts[0]->weight().grad().reshape({rank, -1}), u.t().mm(grad_w), kTolerance, kTolerance));
  EXPECT_TRUE(torch::allclose(factored.parts[1]->bias().grad(), dense->bias().grad(), kTolerance, kTolerance));
}

TEST(LowRank, FullRankLinearFactorsReproduceTheDenseLayer) {
  torch::manual_seed(7);
  CaptureLinear dense(6, 4);
  auto factored = make_linear(6, 4, 4);
  ASSERT_EQ(factored.parts.size(), 2u);
  EXPECT_FALSE(factored.parts[0]->has_bias());
  factorise(factored, dense);
  expect_same_as_dense(factored, dense, torch::randn({5, 6}, torch::kDouble));
}

TEST(LowRank, FullRankConvFactorsReproduceTheDenseLayer) {
  torch::manual_seed(8);
  const auto options = torch::nn::Conv2dOptions(3, 4, 3).padding(1).stride(2);
  CaptureConv2d dense(options);
  auto factored = make_conv2d(options, 4);
  ASSERT_EQ(factored.parts.size(), 2u);
  EXPECT_EQ(factored.parts[1]->weight().sizes(), (std::vector<int64_t>{4, 4, 1, 1}));  // the 1×1 conv
  factorise(factored, dense);
  expect_same_as_dense(factored, dense, torch::randn({2, 3, 7, 7}, torch::kDouble));
}

TEST(LowRank, ModelsFactoriseOnlyWhereItSavesWeightsAndListTheFactors) {
  // fc1 784→64 and fc2 64→10 through rank 8: 8·(784+64) < 784·64 and 8·(64+10) < 64·10.
  auto mlp = make_model("mlp", {{"hidden", {64}}, {"rank", 8}});
  EXPECT_EQ(mlp->capture_layers().size(), 4u);
  EXPECT_EQ(trainable_parameter_count(*mlp), 784 * 8 + (8 * 64 + 64) + 64 * 8 + (8 * 10 + 10));
  // With rank 9 the classifier stays dense: 9·(64+10) = 666 > 640.
  EXPECT_EQ(make_model("mlp", {{"hidden", {64}}, {"rank", 9}})->capture_layers().size(), 3u);

  auto conv = make_model("3c1f", {{"channels", 16}, {"hidden", 32}, {"rank", 4}});
  // conv1 (fan-in 9, 16 out): 4·25 < 144, factorised; all others too.
  EXPECT_EQ(conv->capture_layers().size(), 10u);
  EXPECT_EQ(conv->forward(torch::zeros({2, 1, 28, 28})).sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_THROW(make_model("mlp", {{"rank", -1}}), SpecError);  // the option's declared range
  EXPECT_THROW(make_model("mlp", {{"rank", int64_t{1} << 21}}), SpecError);
  // A rank at least a layer's smaller side leaves it dense, however large (no overflow of rank·(in + out)).
  EXPECT_EQ(saving_rank(784, 64, 64), 0);
  EXPECT_EQ(saving_rank(784, 64, int64_t{4600000000000000000}), 0);
  EXPECT_EQ(make_model("mlp", {{"hidden", {64}}, {"rank", 1048576}})->capture_layers().size(), 2u);
}

TEST(LowRank, FlopsPerSampleCountTheMultiplyAddsOfEveryLayer) {
  EXPECT_EQ(flops_per_sample(*make_model("mlp", {{"hidden", {256, 256}}}), {1, 28, 28}),
            2 * (784 * 256 + 256 * 256 + 256 * 10));
  // 3C1F: three 3×3 convs on 28×28 maps, FC 9·9·c → h, FC h → 10.
  const int64_t c = 8, h = 20;
  EXPECT_EQ(flops_per_sample(*make_model("3c1f", {{"channels", c}, {"hidden", h}}), {1, 28, 28}),
            2 * (28 * 28 * (c * 9 + 2 * c * c * 9) + 81 * c * h + h * 10));
  // Factorised: the 1×1 conv runs at every position too.
  const int64_t r = 2;
  EXPECT_EQ(flops_per_sample(*make_model("3c1f", {{"channels", c}, {"hidden", h}, {"rank", r}}), {1, 28, 28}),
            2 * (28 * 28 * (r * 9 + r * c + 2 * (r * c * 9 + r * c)) + r * (81 * c + h) + r * (h + 10)));
}

TEST(LowRank, ResultsRecordTheModelSize) {
  const auto dataset = testing::synthetic_fashion_mnist(64, 32);
  auto document = testing::tiny_spec();
  document.merge_patch({{"epochs", 1}, {"model", {{"hidden", {32}}, {"rank", 4}}}});
  RunnerOptions options;
  options.progress = false;
  const auto result = train_run(parse_spec(document, "tiny").runs.at(0), dataset, options);
  ASSERT_EQ(result.status, "completed") << result.error;
  // Both layers factorised: 784→4→32 and 32→4→10.
  EXPECT_EQ(result.meta["model_parameters"], 784 * 4 + (4 * 32 + 32) + 32 * 4 + (4 * 10 + 10));
  EXPECT_EQ(result.meta["model_flops_per_sample"], 2 * (784 * 4 + 4 * 32 + 32 * 4 + 4 * 10));
}

}  // namespace
}  // namespace ngd
