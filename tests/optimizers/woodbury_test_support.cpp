#include "tests/optimizers/woodbury_test_support.h"

#include <gtest/gtest.h>

#include "harness/run/training_step.h"
#include "optimizers/curvature/layer_statistics.h"

namespace ngd::woodbury_testing {
namespace {

// Classes of the small test models.
constexpr int64_t kClasses = 5;

// A float64 copy that owns its memory: `.to(kDouble)` of a float64 tensor is the tensor itself, and a
// gradient's storage is zeroed in place by the next zero_grad().
torch::Tensor float64_copy(const torch::Tensor& tensor) {
  return tensor.to(torch::kDouble, /*non_blocking=*/false, /*copy=*/true);
}

void set_recording(Model& model, bool on) {
  for (const auto& layer : model.capture_layers()) {
    layer->set_record_input(on);
    layer->set_record_grad_output(on);
  }
}

}  // namespace

void PrintTo(const ConvShape& shape, std::ostream* out) {
  *out << "stride " << shape.stride << " padding " << shape.padding << (shape.bias ? " bias" : " no bias");
}

SmallConvNet::SmallConvNet(ConvShape first, ConvShape second) {
  conv1_ = add_capture_layer(
      "conv1", CaptureConv2d(torch::nn::Conv2dOptions(2, 3, 3).stride(first.stride).padding(first.padding).bias(first.bias)));
  conv2_ = add_capture_layer(
      "conv2", CaptureConv2d(torch::nn::Conv2dOptions(3, 4, 2).stride(second.stride).padding(second.padding).bias(second.bias)));
  torch::NoGradGuard no_grad;
  const int64_t features = torch::tanh(conv2_(torch::tanh(conv1_(torch::zeros({1, 2, 8, 8}))))).numel();
  fc_ = add_capture_layer("fc", CaptureLinear(features, kClasses));
}

torch::Tensor SmallConvNet::forward(const torch::Tensor& input) {
  return fc_(torch::tanh(conv2_(torch::tanh(conv1_(input)))).flatten(1));
}

SmallMlp::SmallMlp(bool logit_shift) {
  fc1_ = add_capture_layer("fc1", CaptureLinear(12, 6));
  fc2_ = add_capture_layer("fc2", CaptureLinear(6, kClasses));
  if (logit_shift) logit_shift_ = register_parameter("logit_shift", torch::randn({kClasses}));
}

torch::Tensor SmallMlp::forward(const torch::Tensor& input) {
  auto logits = fc2_(torch::tanh(fc1_(input)));
  return logit_shift_.defined() ? logits + logit_shift_ : logits;
}

ConvLinearNet::ConvLinearNet() {
  conv = add_capture_layer("conv", CaptureConv2d(torch::nn::Conv2dOptions(2, 3, 3).stride(2).padding(1)));
  fc = add_capture_layer("fc", CaptureLinear(3 * kConvPositions, kClasses));
}

torch::Tensor ConvLinearNet::forward(const torch::Tensor& images) {
  return fc->forward(torch::tanh(conv->forward(images)).flatten(1));
}

torch::Tensor with_ones_column(const torch::Tensor& rows) {
  auto shape = rows.sizes().vec();
  shape.back() = 1;
  return torch::cat({rows, torch::ones(shape, rows.options())}, -1);
}

torch::Tensor weight_bias_matrix(CaptureLayer& layer) {
  return torch::cat({layer.weight().detach().reshape({layer.weight().size(0), -1}), layer.bias().detach().unsqueeze(1)}, 1);
}

torch::Tensor weight_bias_gradient(CaptureLayer& layer) {
  return torch::cat({layer.weight().grad().reshape({layer.weight().size(0), -1}), layer.bias().grad().unsqueeze(1)}, 1);
}

Batch random_batch(int64_t n, std::vector<int64_t> shape, uint64_t seed, torch::Dtype dtype) {
  auto generator = at::detail::createCPUGenerator(seed);
  shape.insert(shape.begin(), n);
  // Drawn in float32 whatever `dtype`, so a float64 batch holds the same values as its float32 twin.
  auto images = torch::randn(shape, generator).to(dtype);
  return {images, torch::randint(kClasses, {n}, generator, torch::kInt64)};
}

std::vector<torch::Tensor> per_sample_gradient_loop(Model& model, const Batch& batch) {
  set_recording(model, false);
  const auto& layers = model.capture_layers();
  std::vector<std::vector<torch::Tensor>> rows(layers.size());
  for (int64_t i = 0; i < batch.images.size(0); ++i) {
    model.zero_grad();
    const auto logits = model.forward(batch.images.slice(0, i, i + 1));
    torch::nn::functional::cross_entropy(logits, batch.labels.slice(0, i, i + 1)).backward();
    for (size_t l = 0; l < layers.size(); ++l) rows[l].push_back(float64_copy(gradient_matrix(*layers[l]).reshape({-1})));
  }
  std::vector<torch::Tensor> per_layer;
  for (const auto& layer_rows : rows) per_layer.push_back(torch::stack(layer_rows));
  return per_layer;
}

torch::Tensor dense_damped_solve(const torch::Tensor& rows, double damping, const torch::Tensor& gradient) {
  const int64_t n = rows.size(0), d = rows.size(1);
  const auto fisher = rows.t().mm(rows) / static_cast<double>(n);
  return torch::linalg_solve(fisher + damping * torch::eye(d, rows.options()), gradient.unsqueeze(1), true).squeeze(1);
}

torch::Tensor dense_damped_natural_gradient(const torch::Tensor& rows, double damping) {
  return dense_damped_solve(rows, damping, rows.mean(0));
}

std::vector<torch::Tensor> layer_gradients(Model& model) {
  std::vector<torch::Tensor> gradients;
  for (const auto& layer : model.capture_layers()) gradients.push_back(float64_copy(gradient_matrix(*layer).reshape({-1})));
  return gradients;
}

void train_step(Model& model, Optimizer& optimizer, const StepInfo& info, const Batch& batch) {
  PhaseTimer timer;
  forward_backward(model, optimizer, info, batch.images, batch.labels, timer);
  optimizer.step(info, timer);
}

StepInfo step_info(int64_t epoch, int64_t batch_index, int64_t batches_per_epoch, torch::Tensor sample_ids) {
  return {epoch * batches_per_epoch + batch_index, epoch, batch_index, batches_per_epoch, std::move(sample_ids), {}};
}

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double tolerance) {
  ASSERT_EQ(actual.sizes(), expected.sizes());
  const auto a = actual.to(torch::kDouble), e = expected.to(torch::kDouble);
  const double scale = e.abs().max().item<double>();
  const double error = (a - e).abs().max().item<double>();
  EXPECT_LE(error, tolerance * scale) << "max error " << error << " vs max |expected| " << scale;
}

}  // namespace ngd::woodbury_testing
