// TT and Tucker-2 layers against their dense reconstruction (float64): the dense weight against the
// formats' definitions written as loops, forward and backward against the dense map built from it, and a
// curvature optimizer's step on a model made of them.
#include <gtest/gtest.h>

#include "base/phase_timer.h"
#include "harness/run/training_step.h"
#include "models/lowrank/tensorized_layers.h"
#include "optimizers/registry.h"
#include "tests/models/lowrank/lowrank_test_models.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

constexpr double kTolerance = testing::Tolerances<double>::kExact;

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected) {
  ASSERT_EQ(actual.sizes(), expected.sizes());
  const double scale = std::max(1.0, expected.abs().max().item<double>());
  EXPECT_LE((actual - expected).abs().max().item<double>(), kTolerance * scale);
}

// Random float64 parameters (the default initialisation is scaled for training, not for testing).
void randomize(torch::nn::Module& module) {
  module.to(torch::kDouble);
  torch::NoGradGuard no_grad;
  for (auto& parameter : module.parameters()) parameter.normal_();
}

// The gradients of ⟨upstream, f(x)⟩ w.r.t. x and every parameter of `layer`, through the layer's own
// forward and through the dense map rebuilt from dense_weight(): equal if the contraction is right.
template <class DenseForward>
void expect_dense_equivalent(TensorizedLayer& layer, const torch::Tensor& input, DenseForward dense_forward) {
  auto x_layer = input.clone().requires_grad_(true);
  auto x_dense = input.clone().requires_grad_(true);
  const auto y_layer = layer.forward(x_layer);
  const auto y_dense = dense_forward(x_dense, layer.dense_weight(), layer.dense_bias());
  expect_close(y_layer, y_dense);
  const auto upstream = torch::randn_like(y_dense);
  std::vector<torch::Tensor> parameters = layer.parameters();
  std::vector<torch::Tensor> sources{x_layer};
  sources.insert(sources.end(), parameters.begin(), parameters.end());
  const auto through_layer = torch::autograd::grad({(y_layer * upstream).sum()}, sources);
  sources[0] = x_dense;
  const auto through_dense = torch::autograd::grad({(y_dense * upstream).sum()}, sources);
  for (size_t i = 0; i < sources.size(); ++i) expect_close(through_layer[i], through_dense[i]);
}

torch::Tensor linear_map(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  return torch::nn::functional::linear(x, weight, bias);
}

TEST(MatrixLowRankLayer, LinearAndConvEqualTheDenseMapOfUTimesV) {
  torch::manual_seed(4);
  MatrixLowRankLayer linear(LayerShape::linear(6, 4, /*bias=*/true), 3);
  randomize(linear);
  EXPECT_FALSE(linear.v().has_bias());
  EXPECT_TRUE(torch::equal(linear.dense_weight(), linear.u().weight().mm(linear.v().weight())));
  expect_dense_equivalent(linear, torch::randn({5, 6}, torch::kDouble), linear_map);
  const auto options = torch::nn::Conv2dOptions(3, 4, 3).padding(1).stride(2);
  MatrixLowRankLayer conv(LayerShape::conv2d(options), 2);
  randomize(conv);
  EXPECT_EQ(conv.u().weight().sizes(), (std::vector<int64_t>{4, 2, 1, 1}));  // the 1×1 conv
  expect_dense_equivalent(conv, torch::randn({2, 3, 7, 7}, torch::kDouble),
                          [](const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
                            return torch::conv2d(x, weight, bias, {2, 2}, {1, 1});
                          });
}

TEST(TtLinear, DenseWeightIsTheCoreProductEntryByEntry) {
  torch::manual_seed(0);
  TtLinear layer({3, 2}, {2, 4}, {3}, /*bias=*/false);
  randomize(layer);
  const auto weight = layer.dense_weight();
  ASSERT_EQ(weight.sizes(), (std::vector<int64_t>{8, 6}));
  const auto g1 = layer.core(0);  // 1 × 2 × 3 × 3
  const auto g2 = layer.core(1);  // 3 × 4 × 2 × 1
  for (int64_t i1 = 0; i1 < 2; ++i1)
    for (int64_t i2 = 0; i2 < 4; ++i2)
      for (int64_t j1 = 0; j1 < 3; ++j1)
        for (int64_t j2 = 0; j2 < 2; ++j2) {
          double entry = 0.0;
          for (int64_t a = 0; a < 3; ++a) {
            entry += g1[0][i1][j1][a].item<double>() * g2[a][i2][j2][0].item<double>();
          }
          EXPECT_NEAR(weight[i1 * 4 + i2][j1 * 2 + j2].item<double>(), entry, kTolerance);
        }
}

TEST(TtLinear, ForwardAndGradientsEqualTheDenseMap) {
  torch::manual_seed(1);
  TtLinear layer({4, 2, 3}, {3, 2, 2}, {3, 2}, /*bias=*/true);
  randomize(layer);
  expect_dense_equivalent(layer, torch::randn({5, 24}, torch::kDouble), linear_map);
  // Sequence input (batch, tokens, features): the tokens are positions too.
  expect_dense_equivalent(layer, torch::randn({2, 3, 24}, torch::kDouble), linear_map);
}

TEST(TtConv2d, ForwardAndGradientsEqualTheDenseConv) {
  torch::manual_seed(2);
  const auto options = torch::nn::Conv2dOptions(6, 4, 3).stride(2).padding(1);
  TtConv2d layer(options, {3, 2}, {2, 2}, {3, 2});
  randomize(layer);
  expect_dense_equivalent(layer, torch::randn({2, 6, 7, 7}, torch::kDouble),
                          [](const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
                            return torch::conv2d(x, weight, bias, {2, 2}, {1, 1});
                          });
}

TEST(Tucker2Conv2d, DenseWeightIsTheTuckerProductAndTheMapsAgree) {
  torch::manual_seed(3);
  const auto options = torch::nn::Conv2dOptions(5, 6, 3).padding(1);
  Tucker2Conv2d layer(options, 3, 2);
  randomize(layer);
  // K = Σ_{a,b} U_out[:, b] ⊗ U_in[:, a] ⊗ core[b, a] (outer products, one rank pair at a time).
  const auto u_out = layer.last().weight().flatten(1);       // 6 × 2
  const auto u_in = layer.first().weight().flatten(1).t();   // 5 × 3
  auto expected = torch::zeros({6, 5, 3, 3}, torch::kDouble);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t a = 0; a < 3; ++a) {
      expected += torch::outer(u_out.select(1, b), u_in.select(1, a)).unsqueeze(2).unsqueeze(3) *
                  layer.core().weight()[b][a];
    }
  expect_close(layer.dense_weight(), expected.detach());
  expect_dense_equivalent(layer, torch::randn({2, 5, 6, 6}, torch::kDouble),
                          [](const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
                            return torch::conv2d(x, weight, bias, {1, 1}, {1, 1});
                          });
}

TEST(BalancedModes, SplitsIntoNearlyEqualFactors) {
  EXPECT_EQ(balanced_modes(784, 4), (std::vector<int64_t>{7, 7, 4, 4}));
  EXPECT_EQ(balanced_modes(256, 4), (std::vector<int64_t>{4, 4, 4, 4}));
  EXPECT_EQ(balanced_modes(7, 3), (std::vector<int64_t>{7, 1, 1}));
  EXPECT_EQ(balanced_modes(128, 3), (std::vector<int64_t>{8, 4, 4}));
}

TEST(LowRankFormats, UnknownNameListsTheFormats) {
  try {
    low_rank_format("cp");
    FAIL() << "no error";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("dense, matrix, tt, tucker2"), std::string::npos) << error.what();
  }
}

TEST(LowRankFormats, FactoryKeepsMapsDenseWhereTheFormatSavesNothing) {
  // 128 → 12 at matrix rank 11: 11·140 = 1540 ≥ 1536 dense weights.
  lowrank_testing::OneLayerNet net(LayerShape::linear(128, 12, true), lowrank_testing::settings("matrix", 11));
  EXPECT_EQ(net.compressible_layers()[0].second->format(), "dense");
  lowrank_testing::OneLayerNet factored(LayerShape::linear(128, 12, true), lowrank_testing::settings("matrix", 10));
  EXPECT_EQ(factored.compressible_layers()[0].second->format(), "matrix");
  EXPECT_EQ(factored.capture_layers().size(), 2U);
}

// A curvature optimizer steps on TT and Tucker-2 layers: their cores are capture layers (TT cores see
// positions, as Linear layers on sequences), so KFAC builds factors for each and moves every weight.
class CurvatureOnTensorizedLayers : public ::testing::TestWithParam<std::string> {};

TEST_P(CurvatureOnTensorizedLayers, KfacTakesAFiniteStep) {
  torch::manual_seed(4);
  lowrank_testing::TinyLowRankNet net(lowrank_testing::settings(GetParam(), 2));
  for (const auto& [name, layer] : net.compressible_layers()) EXPECT_EQ(layer->format(), GetParam()) << name;
  auto optimizer = make_optimizer("kfac", net, {{"lr", 0.1}});
  std::vector<torch::Tensor> before;
  for (const auto& parameter : net.parameters()) before.push_back(parameter.detach().clone());
  const auto images = torch::randn({6, lowrank_testing::kTinyChannels, lowrank_testing::kTinySide, lowrank_testing::kTinySide});
  const auto labels = torch::randint(lowrank_testing::kTinyClasses, {6}, torch::kLong);
  StepInfo info;
  info.batches_per_epoch = 1;
  info.sample_ids = torch::arange(6);
  PhaseTimer timer;
  forward_backward(net, *optimizer, info, images, labels, timer);
  optimizer->step(info, timer);
  const auto after = net.parameters();
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_TRUE(torch::isfinite(after[i]).all().item<bool>());
    EXPECT_FALSE(torch::equal(after[i], before[i])) << "parameter " << i << " did not move";
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, CurvatureOnTensorizedLayers, ::testing::Values("tt", "tucker2"));

}  // namespace
}  // namespace ngd
