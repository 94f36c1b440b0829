#include <gtest/gtest.h>

#include <fmt/format.h>

#include <functional>

#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "models/capture_layers.h"
#include "models/model.h"
#include "optimizers/curvature/layer_statistics.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

// Samples in each tiny batch.
constexpr int64_t kBatch = 3;

struct ConvShape {
  std::array<int64_t, 2> kernel, stride, padding, dilation;
  bool bias;
};

// One small layer with an input batch, run in double so "equal" can mean equal to round-off.
struct TinyLayer {
  std::string name;
  std::shared_ptr<CaptureLayer> layer;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  torch::Tensor input;
  torch::Tensor target;  // per-sample targets of the loss, shaped like the output
  ConvShape conv = {};   // conv layers only
};

TinyLayer linear_layer(bool bias) {
  CaptureLinear layer(5, 4, bias);
  layer->to(torch::kDouble);
  const auto input = torch::randn({kBatch, 5}, torch::kDouble);
  return {fmt::format("linear bias={}", bias), layer.ptr(),
          [layer](const torch::Tensor& x) mutable { return layer->forward(x); }, input,
          torch::randn({kBatch, 4}, torch::kDouble)};
}

TinyLayer conv_layer(const ConvShape& shape) {
  CaptureConv2d layer(torch::nn::Conv2dOptions(2, 3, torch::ExpandingArray<2>(shape.kernel))
                          .stride(torch::ExpandingArray<2>(shape.stride))
                          .padding(torch::ExpandingArray<2>(shape.padding))
                          .dilation(torch::ExpandingArray<2>(shape.dilation))
                          .bias(shape.bias));
  layer->to(torch::kDouble);
  const auto input = torch::randn({kBatch, 2, 7, 6}, torch::kDouble);
  const auto output_shape = layer->forward(input).sizes().vec();
  return {fmt::format("conv kernel {}×{} stride {}×{} padding {}×{} dilation {}×{} bias={}", shape.kernel[0],
                      shape.kernel[1], shape.stride[0], shape.stride[1], shape.padding[0], shape.padding[1],
                      shape.dilation[0], shape.dilation[1], shape.bias),
          layer.ptr(),
          [layer](const torch::Tensor& x) mutable { return layer->forward(x); },
          input,
          torch::randn(output_shape, torch::kDouble),
          shape};
}

// Linear with and without bias, and conv layers whose stride, padding and dilation differ between
// height and width, so a swapped or ignored setting changes the result.
std::vector<TinyLayer> tiny_layers() {
  torch::manual_seed(7);
  return {
      linear_layer(true),
      linear_layer(false),
      conv_layer({{3, 3}, {1, 1}, {0, 0}, {1, 1}, true}),
      conv_layer({{3, 3}, {2, 2}, {1, 1}, {1, 1}, false}),
      conv_layer({{2, 3}, {1, 2}, {1, 0}, {1, 1}, true}),
      conv_layer({{3, 2}, {2, 1}, {2, 1}, {2, 1}, true}),
      conv_layer({{2, 2}, {1, 1}, {0, 2}, {1, 2}, false}),
  };
}

// Per-sample losses that depend non-linearly on every output entry, so output gradients differ
// between samples and positions.
torch::Tensor per_sample_losses(const TinyLayer& tiny) {
  return 0.5 * (torch::tanh(tiny.forward(tiny.input)) - tiny.target).pow(2).flatten(1).sum(1);
}

// One backward pass of the mean loss, recording inputs and output gradients or not.
void backward_mean_loss(TinyLayer& tiny, bool record) {
  tiny.layer->set_record_input(record);
  tiny.layer->set_record_grad_output(record);
  tiny.layer->zero_grad();
  per_sample_losses(tiny).mean().backward();
}

bool near(const torch::Tensor& actual, const torch::Tensor& expected) {
  return actual.sizes() == expected.sizes() && torch::allclose(actual, expected, 1e-10, 1e-12);
}

TEST(CaptureLayers, GradientMatrixIsTheSumOfPerSampleGradients) {
  for (auto& tiny : tiny_layers()) {
    SCOPED_TRACE(tiny.name);
    backward_mean_loss(tiny, true);
    EXPECT_TRUE(near(per_sample_gradients(*tiny.layer).sum(0), gradient_matrix(*tiny.layer)));
  }
}

TEST(CaptureLayers, PerSampleGradientsMatchABackwardPassPerSample) {
  for (auto& tiny : tiny_layers()) {
    SCOPED_TRACE(tiny.name);
    backward_mean_loss(tiny, true);
    const auto from_captures = per_sample_gradients(*tiny.layer);
    tiny.layer->set_record_input(false);
    tiny.layer->set_record_grad_output(false);
    for (int64_t i = 0; i < kBatch; ++i) {
      tiny.layer->zero_grad();
      (per_sample_losses(tiny)[i] / kBatch).backward();  // sample i's term of the mean loss
      EXPECT_TRUE(near(from_captures[i], gradient_matrix(*tiny.layer))) << "sample " << i;
    }
  }
}

TEST(CaptureLayers, ConvInputRowsAreThePatchesUnderEachOutputPosition) {
  for (auto& tiny : tiny_layers()) {
    if (tiny.layer->kind() != CaptureLayer::Kind::kConv2d) continue;
    SCOPED_TRACE(tiny.name);
    backward_mean_loss(tiny, true);
    const auto& shape = tiny.conv;
    auto expected =
        testing::conv_patches_by_loops(tiny.input, shape.kernel, shape.stride, shape.padding, shape.dilation);
    if (tiny.layer->has_bias()) {
      expected = torch::cat({expected, torch::ones({kBatch, expected.size(1), 1}, expected.options())}, 2);
    }
    EXPECT_TRUE(near(input_rows(*tiny.layer), expected));
  }
}

TEST(CaptureLayers, RecordingLeavesGradientsUnchanged) {
  for (auto& tiny : tiny_layers()) {
    SCOPED_TRACE(tiny.name);
    backward_mean_loss(tiny, false);
    const auto plain = gradient_matrix(*tiny.layer).clone();
    backward_mean_loss(tiny, true);
    EXPECT_TRUE(torch::equal(gradient_matrix(*tiny.layer), plain));
  }
}

TEST(CaptureLayers, RecordingLeavesAWholeModelsGradientsUnchanged) {
  torch::manual_seed(3);
  auto model = find_entry(model_registry(), "3c1f")
                   ->make(Options(nlohmann::json{{"channels", 2}, {"hidden", 8}}), {{1, 28, 28}, 10});
  const auto images = torch::randn({4, 1, 28, 28});
  const auto labels = torch::tensor({1, 7, 3, 3}, torch::kInt64);
  std::vector<std::vector<torch::Tensor>> gradients;
  for (const bool record : {false, true}) {
    for (const auto& layer : model->capture_layers()) {
      layer->set_record_input(record);
      layer->set_record_grad_output(record);
    }
    model->zero_grad();
    torch::nn::functional::cross_entropy(model->forward(images), labels).backward();
    gradients.emplace_back();
    for (const auto& parameter : model->parameters()) gradients.back().push_back(parameter.grad().clone());
    for (const auto& layer : model->capture_layers()) {
      EXPECT_EQ(layer->input().defined(), record);
      EXPECT_EQ(layer->grad_output().defined(), record);
    }
  }
  for (size_t i = 0; i < gradients[0].size(); ++i) EXPECT_TRUE(torch::equal(gradients[0][i], gradients[1][i])) << i;
}

// The runner must leave output gradients recorded on capture steps of either kind: KFAC reads them
// on every such step and fails the run if they are missing.
TEST(RunnerCapture, EmpiricalAndSampledCaptureStepsRecordOutputGradients) {
  const auto dataset = testing::synthetic_fashion_mnist(128, 32);
  auto document = testing::tiny_spec();
  document["epochs"] = 1;
  document["optimizers"] = nlohmann::json::parse(
      R"([{"name": "kfac", "hparams": {"fisher": ["sampled", "empirical"], "stat_interval": 1, "inverse_interval": 2}}])");
  RunnerOptions options;
  options.progress = false;
  for (const auto& run : parse_spec(document, "capture_test").runs) {
    const auto result = train_run(run, dataset, options);
    EXPECT_EQ(result.status, "completed") << run.label() << ": " << result.error;
  }
}

}  // namespace
}  // namespace ngd
