// Parameters and multiply-adds of one map of each kind against hand counts.
#include <gtest/gtest.h>

#include "models/lowrank/model_cost.h"
#include "tests/models/lowrank/lowrank_test_models.h"

namespace ngd {
namespace {

struct HandCount {
  std::string format;
  bool conv;  // conv 4 → 8, 3×3, padding 1 on 4 × 8 × 8; else Linear 128 → 12
  std::string kind;
  int64_t parameters;
  int64_t multiply_adds;
  std::vector<int64_t> ranks;
};

// Every map at rank 2. TT modes: Linear in 8·4·4, out 3·2·2; conv channels in 2·2, out 4·2, then the
// 3×3 spatial mode (in 9, out 1); TT-ranks (2, 2). Multiply-adds of a TT map, contracting the last core
// first: core k costs (positions it sees) × r_{k−1}·n_k·m_k·r_k.
const std::vector<HandCount> kHandCounts = {
    // 128·12 + 12; 128·12.
    {"dense", false, "dense linear", 1548, 1536, {}},
    // 2·128 + 12·2 + 12; 2·128 + 12·2.
    {"matrix", false, "matrix linear", 292, 280, {2}},
    // Cores 1·3·8·2 + 2·2·4·2 + 2·2·4·1 = 96, + 12. Core 3 at 8·4 positions × 16, core 2 at 8·2 × 32,
    // core 1 at 2·2 × 48: 512 + 512 + 192.
    {"tt", false, "tt linear", 108, 1216, {2, 2}},
    // 8·4·9 + 8; 64 positions × 288.
    {"dense", true, "dense conv2d", 296, 18432, {}},
    // 2·4·9 + 8·2 + 8; 64 × (72 + 16).
    {"matrix", true, "matrix conv2d", 96, 5632, {2}},
    // 4·2 + 2·2·9 + 2·8 + 8; 64 × (8 + 36 + 16).
    {"tucker2", true, "tucker2 conv2d", 68, 3840, {2, 2}},
    // Cores 1·4·2·2 + 2·2·2·2 + 2·1·9·1 = 50, + 8. Core 3 at 64·2·2 positions × 18, core 2 at 64·2·1 × 16,
    // core 1 at 64·1·2 × 16: 4608 + 2048 + 2048.
    {"tt", true, "tt conv2d", 58, 8704, {2, 2}},
};

class ModelCostByHand : public ::testing::TestWithParam<HandCount> {};

TEST_P(ModelCostByHand, MatchesTheHandCount) {
  const auto& expected = GetParam();
  const auto shape = expected.conv ? LayerShape::conv2d(torch::nn::Conv2dOptions(4, 8, 3).padding(1))
                                   : LayerShape::linear(128, 12, true);
  lowrank_testing::OneLayerNet net(shape, lowrank_testing::settings(expected.format, expected.format == "dense" ? 0 : 2));
  const auto costs = model_cost(net, expected.conv ? std::vector<int64_t>{4, 8, 8} : std::vector<int64_t>{128});
  ASSERT_EQ(costs.size(), 1U);
  EXPECT_EQ(costs[0].name, "layer");
  EXPECT_EQ(costs[0].kind, expected.kind);
  EXPECT_EQ(costs[0].parameters, expected.parameters);
  EXPECT_EQ(costs[0].multiply_adds_per_sample, expected.multiply_adds);
  EXPECT_EQ(costs[0].ranks, expected.ranks);
  EXPECT_EQ(costs[0].parameters, trainable_parameter_count(net));
}

INSTANTIATE_TEST_SUITE_P(Kinds, ModelCostByHand, ::testing::ValuesIn(kHandCounts),
                         [](const ::testing::TestParamInfo<HandCount>& info) {
                           return info.param.format + (info.param.conv ? "_conv2d" : "_linear");
                         });

TEST(ModelCost, ListsEachCompressibleLayerOnceInForwardOrder) {
  lowrank_testing::TinyLowRankNet net(lowrank_testing::settings("tt", 2));
  const auto costs = model_cost(net, {lowrank_testing::kTinyChannels, lowrank_testing::kTinySide, lowrank_testing::kTinySide});
  ASSERT_EQ(costs.size(), 3U);
  EXPECT_EQ(costs[0].name, "conv1");
  EXPECT_EQ(costs[1].name, "conv2");
  EXPECT_EQ(costs[2].name, "fc");
  int64_t parameters = 0;
  for (const auto& cost : costs) parameters += cost.parameters;
  EXPECT_EQ(parameters, trainable_parameter_count(net));
}

}  // namespace
}  // namespace ngd
