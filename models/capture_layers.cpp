#include "models/capture_layers.h"

namespace ngd {

torch::Tensor CaptureLayer::record(const torch::Tensor& input, const torch::Tensor& output,
                                   const torch::Tensor& token_mask) {
  if (record_input_) {
    input_ = input.detach();
    token_mask_ = token_mask;
  }
  if (record_grad_output_ && output.requires_grad()) {
    // The hook outlives no layer: the autograd graph is freed before the model.
    output.register_hook([this](torch::Tensor grad) {
      if (record_grad_output_) grad_output_ = grad.detach();
    });
  }
  return output;
}

CaptureLinearImpl::CaptureLinearImpl(int64_t in_features, int64_t out_features, bool bias)
    : linear(register_module("linear", torch::nn::Linear(torch::nn::LinearOptions(in_features, out_features).bias(bias)))) {}

torch::Tensor CaptureLinearImpl::forward(const torch::Tensor& input) { return record(input, linear(input)); }

torch::Tensor CaptureLinearImpl::forward_tokens(const torch::Tensor& input, const torch::Tensor& token_mask) {
  TORCH_CHECK(input.dim() == 3 && token_mask.sizes() == input.sizes().slice(0, 2),
              "CaptureLinear: a token mask needs input (batch, tokens, features) and mask (batch, tokens)");
  return record(input, linear(input), token_mask);
}

CaptureConv2dImpl::CaptureConv2dImpl(const torch::nn::Conv2dOptions& options)
    : conv(register_module("conv", torch::nn::Conv2d(options))) {}

torch::Tensor CaptureConv2dImpl::forward(const torch::Tensor& input) { return record(input, conv(input)); }

}  // namespace ngd
