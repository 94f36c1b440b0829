#include <gtest/gtest.h>

#include "base/options.h"
#include "models/model.h"

namespace ngd {
namespace {

std::shared_ptr<Model> make_model(const std::string& name, const nlohmann::json& options, int64_t classes) {
  const auto* entry = find_entry(model_registry(), name);
  return entry->make(Options(resolve_options(options, entry->options, name, "model")), {{3, 32, 32}, classes});
}

struct PublishedSize {
  const char* model;
  int64_t classes;
  double millions;  // the count papers and reference implementations quote
};

class VisionModelSize : public ::testing::TestWithParam<PublishedSize> {};

TEST_P(VisionModelSize, ForwardShapeAndParameterCountMatchPublished) {
  const auto& size = GetParam();
  auto model = make_model(size.model, nlohmann::json::object(), size.classes);
  model->eval();
  EXPECT_EQ(model->forward(torch::randn({2, 3, 32, 32})).sizes(), (std::vector<int64_t>{2, size.classes}));
  EXPECT_NEAR(trainable_parameter_count(*model) / 1e6, size.millions, 0.01 * size.millions) << size.model;
}

INSTANTIATE_TEST_SUITE_P(Published, VisionModelSize,
                         ::testing::Values(PublishedSize{"resnet18", 100, 11.22}, PublishedSize{"resnet20", 10, 0.27},
                                           PublishedSize{"resnet32", 10, 0.46}, PublishedSize{"resnet110", 10, 1.73},
                                           PublishedSize{"vgg16_bn", 10, 14.73}),
                         [](const auto& info) { return std::string(info.param.model); });

// Parameters of a CIFAR ResNet counted by hand from its layers: 3×3 convs without bias, two BN
// parameters per channel, option-A shortcuts (no parameters), a linear classifier.
int64_t cifar_resnet_parameters(int64_t depth, int64_t width, int64_t classes) {
  const int64_t blocks_per_stage = (depth - 2) / 6;
  int64_t count = 3 * 9 * width + 2 * width;  // stem conv + BN
  int64_t channels = width;
  for (int64_t stage = 0; stage < 3; ++stage) {
    const int64_t stage_width = width << stage;
    for (int64_t b = 0; b < blocks_per_stage; ++b) {
      count += 9 * channels * stage_width + 9 * stage_width * stage_width + 4 * stage_width;
      channels = stage_width;
    }
  }
  return count + channels * classes + classes;
}

TEST(VisionModels, WidthOptionScalesEveryStage) {
  for (const int64_t width : {16, 8}) {
    auto model = make_model("resnet20", {{"width", width}}, 10);
    EXPECT_EQ(trainable_parameter_count(*model), cifar_resnet_parameters(20, width, 10)) << width;
  }
  auto narrow = make_model("resnet18", {{"width", 16}}, 100);
  narrow->eval();
  EXPECT_EQ(narrow->forward(torch::randn({2, 3, 32, 32})).sizes(), (std::vector<int64_t>{2, 100}));
  EXPECT_EQ(narrow->capture_layers().back()->weight().size(1), 8 * 16);  // the last stage has 8·width channels
}

TEST(VisionModels, DenseNetBcOfTheTengradSettingHasTwoBottlenecksPerBlock) {
  auto model = make_model("densenet_bc", nlohmann::json::object(), 100);
  model->eval();
  EXPECT_EQ(model->forward(torch::randn({2, 3, 32, 32})).sizes(), (std::vector<int64_t>{2, 100}));
  // stem + 3 blocks × 2 bottlenecks × 2 convs + 2 transitions + fc.
  EXPECT_EQ(model->capture_layers().size(), 1u + 12u + 2u + 1u);
  // Channels: 200 → +200 = 400 → /2 = 200 → 400 → 200 → 400 into the FC layer.
  EXPECT_EQ(model->capture_layers().back()->weight().size(1), 400);
}

TEST(VisionModels, SmallCnnAndEveryConvAndLinearIsACaptureLayer) {
  auto model = make_model("cnn", nlohmann::json::object(), 10);
  EXPECT_EQ(model->forward(torch::randn({4, 3, 32, 32})).sizes(), (std::vector<int64_t>{4, 10}));
  for (const auto* name : {"resnet20", "resnet18", "vgg16_bn", "densenet_bc", "cnn"}) {
    auto vision = make_model(name, nlohmann::json::object(), 10);
    int64_t conv_and_linear = 0;
    for (const auto& module : vision->modules(/*include_self=*/false)) {
      conv_and_linear += module->as<torch::nn::Conv2d>() != nullptr || module->as<torch::nn::Linear>() != nullptr;
    }
    EXPECT_EQ(static_cast<int64_t>(vision->capture_layers().size()), conv_and_linear) << name;
  }
}

TEST(VisionModels, RejectsInvalidDepths) {
  EXPECT_THROW(make_model("densenet_bc", {{"depth", 20}}, 10), std::invalid_argument);
}

}  // namespace
}  // namespace ngd
