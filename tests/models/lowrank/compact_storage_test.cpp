// Pruning, per-channel quantization and the entropy coder against their definitions.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "models/lowrank/compact_storage.h"
#include "tests/models/lowrank/lowrank_test_models.h"

namespace ngd {
namespace {

TEST(MagnitudePrune, ZeroesTheSmallestMagnitudes) {
  const auto x = torch::tensor({-4.0, 1.0, -2.0, 3.0, 0.5, -6.0}, torch::kDouble);
  // ⌊0.5·6⌋ = 3 smallest |x|: 0.5, 1, 2.
  EXPECT_TRUE(torch::equal(magnitude_prune(x, 0.5), torch::tensor({-4.0, 0.0, 0.0, 3.0, 0.0, -6.0}, torch::kDouble)));
  EXPECT_TRUE(torch::equal(magnitude_prune(x, 0.0), x));
  EXPECT_EQ(magnitude_prune(x, 1.0).abs().sum().item<double>(), 0.0);
  EXPECT_THROW(magnitude_prune(x, 1.5), std::invalid_argument);
}

TEST(Quantize, ErrorIsAtMostHalfAStepPerChannel) {
  torch::manual_seed(0);
  auto weight = torch::randn({5, 3, 3, 3}, torch::kDouble);
  weight[1] *= 100;  // channels of very different ranges keep their own steps
  weight[3].zero_();
  for (const int bits : {2, 4, 8}) {
    const auto quantized = quantize(weight, bits);
    const double levels = std::ldexp(1.0, bits - 1) - 1;
    ASSERT_EQ(quantized.scales.size(), 5U);
    const auto restored = dequantize(quantized);
    ASSERT_EQ(restored.sizes(), weight.sizes());
    for (int64_t c = 0; c < 5; ++c) {
      const double step = quantized.scales[c];
      EXPECT_NEAR(step, weight[c].abs().max().item<double>() / levels, 1e-12 * std::max(1.0, step));
      EXPECT_LE((restored[c] - weight[c]).abs().max().item<double>(), step / 2 + 1e-12 * std::max(1.0, step))
          << bits << " bits, channel " << c;
    }
    for (const int32_t code : quantized.codes) EXPECT_LE(std::abs(code), levels);
    // The zero channel stays exactly zero.
    EXPECT_EQ(restored[3].abs().sum().item<double>(), 0.0);
  }
  EXPECT_THROW(quantize(weight, 1), std::invalid_argument);
}

// A skewed i.i.d. source: P(k − 7) ∝ 2^{−k} for k = 0…14 (entropy ≈ 2 bits).
std::vector<int32_t> skewed_symbols(size_t count, uint32_t seed) {
  std::vector<double> weights;
  for (int k = 0; k <= 14; ++k) weights.push_back(std::ldexp(1.0, -k));
  std::mt19937 generator(seed);
  std::discrete_distribution<int> draw(weights.begin(), weights.end());
  std::vector<int32_t> symbols(count);
  for (auto& symbol : symbols) symbol = draw(generator) - 7;
  return symbols;
}

TEST(EntropyCode, RoundTripsWithinAFewPercentOfTheEmpiricalEntropy) {
  const auto symbols = skewed_symbols(200000, 1);
  const auto code = entropy_code(symbols);
  EXPECT_EQ(entropy_decode(code), symbols);
  const double bound_bytes = empirical_entropy_bits(symbols) / 8;
  // On dyadic probabilities a Huffman code meets the entropy; what remains is deflate's block headers
  // and code tables (zlib's Python binding measures 0.3% on this source): 2%, plus the alphabet header.
  EXPECT_LE(static_cast<double>(code.size()), 1.02 * bound_bytes + 256) << bound_bytes;
  // A symbol-wise code cannot beat the zeroth-order entropy by more than what adapting per block gains.
  EXPECT_GE(static_cast<double>(code.size()), 0.98 * bound_bytes);
}

TEST(EntropyCode, EmpiricalEntropyOfKnownCounts) {
  // Two equally likely symbols: 1 bit each; one symbol: 0 bits.
  EXPECT_DOUBLE_EQ(empirical_entropy_bits({3, -1, 3, -1}), 4.0);
  EXPECT_DOUBLE_EQ(empirical_entropy_bits({5, 5, 5}), 0.0);
  // p = (1/2, 1/4, 1/4): 1.5 bits each.
  EXPECT_DOUBLE_EQ(empirical_entropy_bits({0, 0, 1, 2}), 6.0);
}

TEST(EntropyCode, RefusesWideAlphabetsAndMalformedCodes) {
  std::vector<int32_t> wide(300);
  for (size_t i = 0; i < wide.size(); ++i) wide[i] = static_cast<int32_t>(i);
  EXPECT_THROW(entropy_code(wide), std::invalid_argument);
  EXPECT_EQ(entropy_decode(entropy_code({})), std::vector<int32_t>{});
  auto code = entropy_code({1, 2, 3, 1, 1});
  code.resize(code.size() - 3);
  EXPECT_THROW(entropy_decode(code), std::runtime_error);
  EXPECT_THROW(entropy_decode({1, 2, 3}), std::runtime_error);
}

TEST(StoredSize, CountsEachStageAsDocumented) {
  torch::manual_seed(2);
  lowrank_testing::OneLayerNet net(LayerShape::linear(128, 12, true), lowrank_testing::settings("dense", 0));
  const auto size = stored_size(net, 4, 0.5);
  // 1536 weights + 12 biases.
  EXPECT_EQ(size.dense_float32_bytes, 4 * (1536 + 12));
  // ⌈1536·4/8⌉ = 768, 12 scales and 12 biases at 4 bytes.
  EXPECT_EQ(size.quantized_bytes, 768 + 4 * 12 + 4 * 12);
  const auto& weight = net.compressible_layers()[0].second->layer().dense_weight();
  const auto codes = quantize(magnitude_prune(weight, 0.5), 4).codes;
  EXPECT_NEAR(size.entropy_bound_bytes, empirical_entropy_bits(codes) / 8 + 96, 1e-9);
  EXPECT_EQ(size.coded_bytes, static_cast<int64_t>(entropy_code(codes).size()) + 96);
  EXPECT_THROW(stored_size(net, 12, 0.0), std::invalid_argument);
}

}  // namespace
}  // namespace ngd
