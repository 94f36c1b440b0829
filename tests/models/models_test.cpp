#include <gtest/gtest.h>

#include "base/options.h"
#include "models/model.h"

namespace ngd {
namespace {

std::shared_ptr<Model> make_model(const std::string& name, const nlohmann::json& options, const ModelInput& input) {
  const auto* entry = find_entry(model_registry(), name);
  return entry->make(Options(resolve_options(options, entry->options, name, "model")), input);
}

const ModelInput kFashionMnist{{1, 28, 28}, 10};

TEST(Models, MlpShapesAndParameterCount) {
  auto model = make_model("mlp", {{"hidden", {256, 256}}}, kFashionMnist);
  EXPECT_EQ(model->forward(torch::zeros({3, 1, 28, 28})).sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_EQ(trainable_parameter_count(*model), (784 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10));
  EXPECT_EQ(model->capture_layers().size(), 3u);
}

TEST(Models, ThreeConvOneFcMatchesThePapersNet) {
  auto model = make_model("3c1f", nlohmann::json::object(), kFashionMnist);
  EXPECT_EQ(model->forward(torch::zeros({2, 1, 28, 28})).sizes(), (std::vector<int64_t>{2, 10}));
  // conv 1→128, 128→128, 128→128 (3×3, bias), FC 9·9·128→500, FC 500→10.
  const int64_t expected = (1 * 128 * 9 + 128) + 2 * (128 * 128 * 9 + 128) + (9 * 9 * 128 * 500 + 500) + (500 * 10 + 10);
  EXPECT_EQ(trainable_parameter_count(*model), expected);
  ASSERT_EQ(model->capture_layers().size(), 5u);
  EXPECT_EQ(model->capture_layers()[0]->kind(), CaptureLayer::Kind::kConv2d);
  EXPECT_EQ(model->capture_layers()[4]->kind(), CaptureLayer::Kind::kLinear);
}

TEST(Models, ParametersAreExactlyTheCaptureLayersWeightsAndBiases) {
  auto model = make_model("3c1f", {{"channels", 4}, {"hidden", 8}}, kFashionMnist);
  int64_t in_layers = 0;
  for (const auto& layer : model->capture_layers()) in_layers += layer->weight().numel() + layer->bias().numel();
  EXPECT_EQ(in_layers, trainable_parameter_count(*model));
}

}  // namespace
}  // namespace ngd
