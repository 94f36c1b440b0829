// Decompositions reproduce weights of exactly their rank, and compress_model of a model whose maps are
// exactly low-rank changes no output (float64).
#include <gtest/gtest.h>

#include "models/lowrank/decompose.h"
#include "models/lowrank/tensorized_layers.h"
#include "tests/models/lowrank/lowrank_test_models.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

constexpr double kTolerance = testing::Tolerances<double>::kExact;

double max_difference(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

torch::Tensor rank_r_matrix(int64_t rows, int64_t columns, int64_t rank) {
  return torch::randn({rows, rank}, torch::kDouble).mm(torch::randn({rank, columns}, torch::kDouble));
}

TEST(TruncatedSvd, ReproducesAMatrixOfThatRank) {
  torch::manual_seed(0);
  const auto weight = rank_r_matrix(9, 7, 3);
  const auto factors = truncated_svd(weight, 3);
  ASSERT_EQ(factors.first.sizes(), (std::vector<int64_t>{3, 7}));
  ASSERT_EQ(factors.second.sizes(), (std::vector<int64_t>{9, 3}));
  EXPECT_LE(max_difference(factors.second.mm(factors.first), weight), kTolerance);
  // √σ on each side: both factors carry the same singular values.
  EXPECT_LE(max_difference(torch::linalg_svdvals(factors.first), torch::linalg_svdvals(factors.second)), kTolerance);
}

TEST(TruncatedSvd, OfAConvKernelGivesTheFactoredConvShapes) {
  torch::manual_seed(1);
  const auto weight = rank_r_matrix(6, 4 * 3 * 3, 2).reshape({6, 4, 3, 3});
  const auto factors = truncated_svd(weight, 2);
  ASSERT_EQ(factors.first.sizes(), (std::vector<int64_t>{2, 4, 3, 3}));
  ASSERT_EQ(factors.second.sizes(), (std::vector<int64_t>{6, 2, 1, 1}));
  const auto x = torch::randn({2, 4, 5, 5}, torch::kDouble);
  const auto dense = torch::conv2d(x, weight, {}, {1, 1}, {1, 1});
  const auto factored = torch::conv2d(torch::conv2d(x, factors.first, {}, {1, 1}, {1, 1}), factors.second);
  EXPECT_LE(max_difference(factored, dense), kTolerance);
}

TEST(TruncatedSvd, KeepsTheLeadingSingularValues) {
  torch::manual_seed(2);
  const auto weight = torch::randn({8, 6}, torch::kDouble);
  const auto factors = truncated_svd(weight, 2);
  const auto sigma = torch::linalg_svdvals(weight);
  // Eckart–Young: the residual's spectral norm is σ_3.
  EXPECT_NEAR(torch::linalg_svdvals(weight - factors.second.mm(factors.first))[0].item<double>(), sigma[2].item<double>(),
              kTolerance);
  EXPECT_THROW(truncated_svd(weight, 7), std::invalid_argument);
}

TEST(Tucker2, ReproducesAKernelOfThoseMultilinearRanks) {
  torch::manual_seed(3);
  const auto core = torch::randn({2, 3, 3, 3}, torch::kDouble);
  const auto u_out = torch::randn({7, 2}, torch::kDouble);
  const auto u_in = torch::randn({5, 3}, torch::kDouble);
  const auto kernel = torch::einsum("baxy,ob,ia->oixy", {core, u_out, u_in});
  const auto factors = tucker2(kernel, 3, 2);
  const auto rebuilt = torch::einsum("ob,baxy,ai->oixy", {factors.last.flatten(1), factors.core, factors.first.flatten(1)});
  EXPECT_LE(max_difference(rebuilt, kernel), kTolerance * kernel.abs().max().item<double>());
}

TEST(TtSvd, ReproducesATensorTrainOfThoseRanks) {
  torch::manual_seed(4);
  TtLinear source({4, 3, 2}, {2, 3, 2}, {2, 3}, /*bias=*/false);
  source.to(torch::kDouble);
  const auto weight = source.dense_weight().detach();
  const auto cores = tt_svd(weight, {2, 3, 2}, {4, 3, 2}, 3);
  ASSERT_EQ(cores.size(), 3U);
  EXPECT_EQ(cores[0].sizes(), (std::vector<int64_t>{1, 2, 4, 3}));  // r_1 = min(3, 2·4, 3·3·2·2)
  TtLinear copy({4, 3, 2}, {2, 3, 2}, {3, 3}, /*bias=*/false);
  copy.to(torch::kDouble);
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < cores.size(); ++k) copy.core(k).copy_(cores[k]);
  EXPECT_LE(max_difference(copy.dense_weight(), weight), kTolerance * weight.abs().max().item<double>());
}

// Sets every map of `net` (dense) to the dense weight of a random map of `format` at `rank`, so that
// the format's decomposition at that rank is exact.
void make_exactly_low_rank(lowrank_testing::TinyLowRankNet& net, const std::string& format, int64_t rank) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, layer] : net.compressible_layers()) {
    auto source = low_rank_format(format).make(layer->shape(), rank);
    source->to(torch::kDouble);
    for (auto& parameter : source->parameters()) parameter.normal_();
    layer->layer().dense_weight().copy_(source->dense_weight());
    layer->layer().dense_bias().normal_();
  }
}

class CompressExactlyLowRank : public ::testing::TestWithParam<std::string> {};

TEST_P(CompressExactlyLowRank, LosesNothingAndListsTheFactorsAsCaptureLayers) {
  torch::manual_seed(5);
  lowrank_testing::TinyLowRankNet net(lowrank_testing::settings("dense", 0));
  net.to(torch::kDouble);
  make_exactly_low_rank(net, GetParam(), 2);
  const auto x = torch::randn({3, lowrank_testing::kTinyChannels, lowrank_testing::kTinySide, lowrank_testing::kTinySide},
                              torch::kDouble);
  const auto before = net.forward(x).detach();
  const auto dense_parameters = trainable_parameter_count(net);
  compress_model(net, {2, 2, 2}, GetParam());
  const auto after = net.forward(x).detach();
  EXPECT_LE(max_difference(after, before), 1e-10 * std::max(1.0, before.abs().max().item<double>()));
  EXPECT_LT(trainable_parameter_count(net), dense_parameters);
  size_t parts = 0;
  for (const auto& [name, layer] : net.compressible_layers()) {
    EXPECT_EQ(layer->format(), GetParam()) << name;
    parts += layer->layer().capture_layers().size();
    for (const auto& parameter : layer->parameters()) EXPECT_EQ(parameter.scalar_type(), torch::kDouble);
  }
  EXPECT_EQ(net.capture_layers().size(), parts);
  EXPECT_GT(parts, 3U);
  // The model's parameters are the new factors: a gradient reaches them.
  net.forward(x).sum().backward();
  for (const auto& parameter : net.parameters()) EXPECT_TRUE(parameter.grad().defined());
}

INSTANTIATE_TEST_SUITE_P(Formats, CompressExactlyLowRank, ::testing::Values("matrix", "tt", "tucker2"));

TEST(CompressModel, RankZeroKeepsALayerDenseAndBadInputIsRefused) {
  torch::manual_seed(6);
  lowrank_testing::TinyLowRankNet net(lowrank_testing::settings("dense", 0));
  net.to(torch::kDouble);
  const auto x = torch::randn({2, 4, 8, 8}, torch::kDouble);
  const auto before = net.forward(x).detach();
  compress_model(net, {0, 0, 0}, "matrix");
  EXPECT_LE(max_difference(net.forward(x).detach(), before), kTolerance);
  for (const auto& [name, layer] : net.compressible_layers()) EXPECT_EQ(layer->format(), "dense") << name;
  EXPECT_THROW(compress_model(net, {1, 1}, "matrix"), std::invalid_argument);
  EXPECT_THROW(compress_model(net, {1, 1, 1}, "cp"), std::invalid_argument);
}

}  // namespace
}  // namespace ngd
