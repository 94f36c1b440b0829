#include "optimizers/layer_statistics.h"

#include <fmt/format.h>

namespace ngd {
namespace {

torch::Tensor append_ones(const torch::Tensor& rows) {
  auto shape = rows.sizes().vec();
  shape.back() = 1;
  return torch::cat({rows, torch::ones(shape, rows.options())}, -1);
}

torch::Tensor require(const torch::Tensor& tensor, const char* what) {
  TORCH_CHECK(tensor.defined(), "capture layer has no recorded ", what,
              ": the optimizer must request capture on this step");
  return tensor;
}

// Explicit padding of a conv layer. The padding is a variant whose namespace differs between LibTorch
// 1.13 (c10) and 2.x (std); `visit` is found by argument-dependent lookup in either.
struct ConvPadding {
  std::array<int64_t, 2> operator()(const torch::ExpandingArray<2>& padding) const { return {(*padding)[0], (*padding)[1]}; }
  std::array<int64_t, 2> operator()(const torch::enumtype::kValid&) const { return {0, 0}; }
  std::array<int64_t, 2> operator()(const torch::enumtype::kSame&) const {
    TORCH_CHECK(false, "conv padding 'same' is not supported by curvature capture; give explicit padding");
  }
};

std::array<int64_t, 2> conv_padding(const torch::nn::detail::ConvNdOptions<2>& options) {
  return visit(ConvPadding{}, options.padding());
}

}  // namespace

torch::Tensor input_rows(CaptureLayer& layer) {
  const auto& input = require(layer.input(), "input");
  torch::Tensor rows;
  if (layer.kind() == CaptureLayer::Kind::kLinear) {
    rows = input.reshape({-1, input.size(-1)});
  } else {
    const auto& options = static_cast<CaptureConv2dImpl&>(layer).options();
    TORCH_CHECK(options.groups() == 1, "curvature capture supports groups = 1 only");
    const auto padding = conv_padding(options);
    const auto patches = torch::nn::functional::unfold(
        input, torch::nn::functional::UnfoldFuncOptions({(*options.kernel_size())[0], (*options.kernel_size())[1]})
                   .dilation({(*options.dilation())[0], (*options.dilation())[1]})
                   .padding({padding[0], padding[1]})
                   .stride({(*options.stride())[0], (*options.stride())[1]}));
    rows = patches.transpose(1, 2);  // N, S, C_in·kh·kw
  }
  return layer.has_bias() ? append_ones(rows) : rows.contiguous();
}

torch::Tensor grad_output_rows(CaptureLayer& layer) {
  const auto& grad = require(layer.grad_output(), "output gradient");
  if (layer.kind() == CaptureLayer::Kind::kLinear) return grad.reshape({-1, grad.size(-1)});
  return grad.flatten(2).transpose(1, 2);  // N, S, out
}

torch::Tensor gradient_matrix(CaptureLayer& layer) {
  const auto& weight = layer.weight();
  TORCH_CHECK(weight.grad().defined(), "layer weight has no gradient");
  auto matrix = weight.grad().reshape({weight.size(0), -1});
  return layer.has_bias() ? torch::cat({matrix, layer.bias().grad().unsqueeze(1)}, 1) : matrix;
}

void set_gradient_matrix(CaptureLayer& layer, const torch::Tensor& matrix) {
  auto& weight = layer.weight();
  const int64_t columns = weight.numel() / weight.size(0);
  weight.mutable_grad().copy_(matrix.slice(1, 0, columns).reshape(weight.sizes()));
  if (layer.has_bias()) layer.bias().mutable_grad().copy_(matrix.select(1, columns));
}

torch::Tensor per_sample_gradients(CaptureLayer& layer) {
  const auto inputs = input_rows(layer);
  const auto grads = grad_output_rows(layer);
  if (layer.kind() == CaptureLayer::Kind::kLinear) return torch::einsum("no,ni->noi", {grads, inputs});
  return torch::einsum("nso,nsi->noi", {grads, inputs});
}

}  // namespace ngd
