#pragma once

#include <torch/torch.h>

namespace ngd {

// A Linear or Conv2d layer that can record, on the steps an optimizer asks for, its input and the
// gradient of the loss w.r.t. its output. LibTorch modules have no forward/backward hooks, so the
// layers record in forward() and register a hook on their output tensor. Recording never changes
// what the layer computes or the gradients it receives.
class CaptureLayer : public torch::nn::Module {
 public:
  enum class Kind { kLinear, kConv2d };

  virtual Kind kind() const = 0;
  virtual torch::Tensor& weight() = 0;
  virtual torch::Tensor& bias() = 0;  // undefined when the layer has none
  bool has_bias() { return bias().defined(); }

  // Recording of inputs (forward) and output gradients (backward); both off by default.
  void set_record_input(bool on) { record_input_ = on; }
  void set_record_grad_output(bool on) { record_grad_output_ = on; }

  // The input of the last recorded forward pass (detached).
  const torch::Tensor& input() const { return input_; }
  // dLoss/d(output) of the last recorded backward pass, for the loss as back-propagated (so
  // scaled by 1/n under a mean reduction).
  const torch::Tensor& grad_output() const { return grad_output_; }
  // For sequence input (batch, tokens, features): which tokens are real (bool, batch × tokens),
  // recorded with the input so that statistics leave padding out; undefined otherwise.
  const torch::Tensor& token_mask() const { return token_mask_; }
  void clear_captures() {
    input_.reset();
    grad_output_.reset();
    token_mask_.reset();
  }

 protected:
  // Called by subclasses' forward(): records as asked and returns `output` unchanged.
  torch::Tensor record(const torch::Tensor& input, const torch::Tensor& output,
                       const torch::Tensor& token_mask = torch::Tensor());

 private:
  bool record_input_ = false;
  bool record_grad_output_ = false;
  torch::Tensor input_;
  torch::Tensor grad_output_;
  torch::Tensor token_mask_;
};

class CaptureLinearImpl : public CaptureLayer {
 public:
  CaptureLinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  torch::Tensor forward(const torch::Tensor& input);
  // Sequence input (batch, tokens, in) with its token mask (batch, tokens), true at real tokens.
  // (Not a forward() overload: ModuleHolder deduces forward's return type from a single forward.)
  torch::Tensor forward_tokens(const torch::Tensor& input, const torch::Tensor& token_mask);
  Kind kind() const override { return Kind::kLinear; }
  torch::Tensor& weight() override { return linear->weight; }
  torch::Tensor& bias() override { return linear->bias; }

  torch::nn::Linear linear;
};
TORCH_MODULE(CaptureLinear);

class CaptureConv2dImpl : public CaptureLayer {
 public:
  explicit CaptureConv2dImpl(const torch::nn::Conv2dOptions& options);
  torch::Tensor forward(const torch::Tensor& input);
  Kind kind() const override { return Kind::kConv2d; }
  torch::Tensor& weight() override { return conv->weight; }
  torch::Tensor& bias() override { return conv->bias; }
  const torch::nn::detail::ConvNdOptions<2>& options() const { return conv->options; }

  torch::nn::Conv2d conv;
};
TORCH_MODULE(CaptureConv2d);

}  // namespace ngd
