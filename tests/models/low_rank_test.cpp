// Models with a pre-set rank: they factorise only where it saves weights, list the factors, count them.
#include <gtest/gtest.h>

#include "base/spec_error.h"
#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "models/model.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

std::shared_ptr<Model> make_model(const std::string& name, const nlohmann::json& options) {
  const auto* entry = find_entry(model_registry(), name);
  return entry->make(Options(resolve_options(options, entry->options, name, "model")), {{1, 28, 28}, 10});
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
