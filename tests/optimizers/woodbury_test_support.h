#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <ostream>
#include <string>
#include <vector>

#include "base/options.h"
#include "models/model.h"
#include "optimizers/optimizer.h"
#include "optimizers/registry.h"

// Ground truth for the Woodbury optimizers' tests: small models and per-sample gradients by brute force.
namespace ngd::woodbury_testing {

// Stride, padding and bias of one conv layer of SmallConvNet.
struct ConvShape {
  int64_t stride = 1;
  int64_t padding = 0;
  bool bias = true;
};
void PrintTo(const ConvShape& shape, std::ostream* out);  // for readable test names

// conv(2→3, 3×3) – tanh – conv(3→4, 2×2) – tanh – linear(→5) on 2×8×8 images: both layer kinds,
// with the conv layers' stride, padding and bias as given.
class SmallConvNet : public Model {
 public:
  SmallConvNet(ConvShape first, ConvShape second);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  CaptureConv2d conv1_{nullptr}, conv2_{nullptr};
  CaptureLinear fc_{nullptr};
};

// linear(12→6) – tanh – linear(6→5), plus, with `logit_shift`, a parameter outside any capture
// layer added to the logits (as a BN parameter would be).
class SmallMlp : public Model {
 public:
  explicit SmallMlp(bool logit_shift = false);
  torch::Tensor forward(const torch::Tensor& input) override;
  torch::Tensor& logit_shift() { return logit_shift_; }

 private:
  CaptureLinear fc1_{nullptr}, fc2_{nullptr};
  torch::Tensor logit_shift_;
};

// conv(2→3, 3×3, stride 2, padding 1) – tanh – flatten – linear(27→4) on 2×6×6 images, both layers with a
// bias and public, so that a test can run the forward pass itself and retain the layers' output gradients.
class ConvLinearNet : public Model {
 public:
  static constexpr int64_t kImageSize = 6;
  static constexpr int64_t kConvPositions = 9;  // 3·3 output positions of the conv layer
  static constexpr int64_t kClasses = 4;

  ConvLinearNet();
  torch::Tensor forward(const torch::Tensor& images) override;

  CaptureConv2d conv{nullptr};
  CaptureLinear fc{nullptr};
};

// `rows` with a column of ones appended (the bias's input).
torch::Tensor with_ones_column(const torch::Tensor& rows);
// A capture layer's [W.view(out, −1) | b] (detached), and its gradient laid out the same way.
torch::Tensor weight_bias_matrix(CaptureLayer& layer);
torch::Tensor weight_bias_gradient(CaptureLayer& layer);

// A batch of `n` random inputs of `shape` (per sample) in `dtype` and labels in [0, 5). Exact-case
// tests use float64 models and batches (`model->to(torch::kDouble)`): then the code under test and the
// loops below agree to rounding whatever the BLAS kernel (tests/support/tolerances.h).
struct Batch {
  torch::Tensor images;
  torch::Tensor labels;
};
Batch random_batch(int64_t n, std::vector<int64_t> shape, uint64_t seed, torch::Dtype dtype = torch::kFloat);

// Per capture layer, U as n × (out·in[+1]) rows cast to float64: row i is the gradient of sample i's
// cross-entropy alone, from its own backward pass (nothing recorded), in the model's dtype.
std::vector<torch::Tensor> per_sample_gradient_loop(Model& model, const Batch& batch);

// (λI + F)⁻¹ g by a dense d×d solve, F = UᵀU/n the empirical Fisher of U's n rows (float64).
torch::Tensor dense_damped_solve(const torch::Tensor& rows, double damping, const torch::Tensor& gradient);
// The same for g = ḡ, the mean of U's rows: the damped natural gradient.
torch::Tensor dense_damped_natural_gradient(const torch::Tensor& rows, double damping);

// The capture layers' current gradients, flattened like per_sample_gradient_loop's rows (float64).
std::vector<torch::Tensor> layer_gradients(Model& model);

// One training step as harness/run/runner.cpp takes it: forward_backward (harness/run/training_step.h), then step.
void train_step(Model& model, Optimizer& optimizer, const StepInfo& info, const Batch& batch);

// The StepInfo of step `batch_index` of `epoch`, all epochs `batches_per_epoch` long, for a batch
// holding the dataset samples `sample_ids`.
StepInfo step_info(int64_t epoch, int64_t batch_index, int64_t batches_per_epoch, torch::Tensor sample_ids);

// Expects max |actual − expected| ≤ tolerance·max |expected| (both cast to float64).
void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double tolerance);

}  // namespace ngd::woodbury_testing
