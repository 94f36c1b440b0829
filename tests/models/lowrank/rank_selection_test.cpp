// The rank rules on hand-made spectra, each expected rank worked out in the comment beside it.
#include <gtest/gtest.h>

#include "models/lowrank/rank_selection.h"

namespace ngd {
namespace {

torch::Tensor spectrum(std::vector<double> values) { return torch::tensor(values, torch::kDouble); }

// Linear maps whose full rank is the spectrum's length.
LayerShape square(int64_t n) { return LayerShape::linear(n, n, true); }

std::vector<int64_t> ranks(const std::string& kind, double value, const std::vector<torch::Tensor>& spectra,
                           const std::vector<LayerShape>& shapes) {
  return select_ranks(spectra, shapes, {kind, value});
}

TEST(RankRules, Energy) {
  // σ² = 9, 4, 1 (total 14): 0.9·14 = 12.6 needs 9 + 4; 0.5·14 = 7 needs 9; 1.0 needs all three.
  EXPECT_EQ(ranks("energy", 0.9, {spectrum({3, 2, 1})}, {square(3)}), std::vector<int64_t>{2});
  EXPECT_EQ(ranks("energy", 0.5, {spectrum({3, 2, 1})}, {square(3)}), std::vector<int64_t>{1});
  EXPECT_EQ(ranks("energy", 1.0, {spectrum({3, 2, 1})}, {square(3)}), std::vector<int64_t>{3});
  // 0.93 of 14 = 13.02 > 13: the third value is needed.
  EXPECT_EQ(ranks("energy", 0.93, {spectrum({3, 2, 1})}, {square(3)}), std::vector<int64_t>{3});
}

TEST(RankRules, Ratio) {
  // ⌈0.5·3⌉ = 2, ⌈0.25·4⌉ = 1, ⌈0.01·4⌉ = 1 (at least 1).
  EXPECT_EQ(ranks("ratio", 0.5, {spectrum({3, 2, 1}), spectrum({4, 3, 2, 1}), spectrum({4, 3, 2, 1})},
                  {square(3), square(4), square(4)})[0],
            2);
  EXPECT_EQ(ranks("ratio", 0.25, {spectrum({4, 3, 2, 1})}, {square(4)}), std::vector<int64_t>{1});
  EXPECT_EQ(ranks("ratio", 0.01, {spectrum({4, 3, 2, 1})}, {square(4)}), std::vector<int64_t>{1});
  // A conv's full rank is min(C_in·k·k, C_out): 4·9 = 36 vs 6 → 6, ⌈0.5·6⌉ = 3.
  const auto conv = LayerShape::conv2d(torch::nn::Conv2dOptions(4, 6, 3));
  EXPECT_EQ(ranks("ratio", 0.5, {spectrum({6, 5, 4, 3, 2, 1})}, {conv}), std::vector<int64_t>{3});
}

TEST(RankRules, EffectiveRank) {
  // Two equal values and a zero: erank 2; four equal: 4; [2, 1, 1]: 2^1.5 = 2.83 → 3.
  EXPECT_EQ(ranks("effective_rank", 1, {spectrum({1, 1, 0})}, {square(3)}), std::vector<int64_t>{2});
  EXPECT_EQ(ranks("effective_rank", 1, {spectrum({1, 1, 1, 1})}, {square(4)}), std::vector<int64_t>{4});
  EXPECT_EQ(ranks("effective_rank", 1, {spectrum({2, 1, 1})}, {square(3)}), std::vector<int64_t>{3});
  // The value multiplies: 0.5 · 4 = 2; 0.3 · 4 = 1.2 → 1; 0.5 · 2.83 = 1.41 → 1; 2 · 4 = 8, clamped to 4.
  EXPECT_EQ(ranks("effective_rank", 0.5, {spectrum({1, 1, 1, 1})}, {square(4)}), std::vector<int64_t>{2});
  EXPECT_EQ(ranks("effective_rank", 0.3, {spectrum({1, 1, 1, 1})}, {square(4)}), std::vector<int64_t>{1});
  EXPECT_EQ(ranks("effective_rank", 0.5, {spectrum({2, 1, 1})}, {square(3)}), std::vector<int64_t>{1});
  EXPECT_EQ(ranks("effective_rank", 2, {spectrum({1, 1, 1, 1})}, {square(4)}), std::vector<int64_t>{4});
  EXPECT_THROW(ranks("effective_rank", 0, {spectrum({1, 1})}, {square(2)}), std::invalid_argument);
}

TEST(RankRules, BudgetLowersOneThresholdAcrossLayers) {
  // Two 4 → 4 maps (16 dense weights each, 32 in all); matrix weights min(8r, 16).
  const std::vector<torch::Tensor> spectra{spectrum({10, 5, 1, 0.5}), spectrum({8, 6, 2, 0.1})};
  const std::vector<LayerShape> shapes{square(4), square(4)};
  // Rank 1 each costs 16. Budget 0.75·32 = 24: τ = 6 admits B's 6 (B → 2: 8 + 16 = 24); τ = 5 would
  // admit A's 5 (16 + 16 = 32 > 24).
  EXPECT_EQ(ranks("budget", 0.75, spectra, shapes), (std::vector<int64_t>{1, 2}));
  // Budget 0.5·32 = 16: rank 1 each, nothing more.
  EXPECT_EQ(ranks("budget", 0.5, spectra, shapes), (std::vector<int64_t>{1, 1}));
  // The whole budget: every value fits (rank ≥ 2 costs the dense 16).
  EXPECT_EQ(ranks("budget", 1.0, spectra, shapes), (std::vector<int64_t>{4, 4}));
  // Below rank 1 everywhere: refused.
  EXPECT_THROW(ranks("budget", 0.25, spectra, shapes), std::invalid_argument);
}

TEST(RankRules, EqualValuesEnterTogether) {
  // B's 6 and A's 6 are one threshold: both or neither. Budget 24 cannot take both (32), so neither.
  const std::vector<torch::Tensor> spectra{spectrum({10, 6, 1, 0.5}), spectrum({8, 6, 2, 0.1})};
  EXPECT_EQ(ranks("budget", 0.75, spectra, {square(4), square(4)}), (std::vector<int64_t>{1, 1}));
}

TEST(RankRules, BadInputIsRefusedWithTheKnownKinds) {
  try {
    ranks("entropy", 0.5, {spectrum({1})}, {square(1)});
    FAIL() << "no error";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("ratio, energy, effective_rank, budget"), std::string::npos) << error.what();
  }
  EXPECT_THROW(ranks("energy", 1.5, {spectrum({3, 2, 1})}, {square(3)}), std::invalid_argument);
  EXPECT_THROW(ranks("ratio", 0.0, {spectrum({3, 2, 1})}, {square(3)}), std::invalid_argument);
  EXPECT_THROW(ranks("ratio", 0.5, {spectrum({3, 2})}, {square(3)}), std::invalid_argument);
  EXPECT_THROW(ranks("ratio", 0.5, {spectrum({3, 2, 1})}, {square(3), square(3)}), std::invalid_argument);
}

}  // namespace
}  // namespace ngd
