#include "optimizers/curvature/layer_statistics.h"

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

// The im2col patches of `input` (N, C_in, H, W) as conv layer `layer` sees them, (N, C_in·kh·kw, S),
// matching its stride, padding and dilation.
torch::Tensor conv_patches(CaptureLayer& layer, const torch::Tensor& input) {
  const auto& options = static_cast<CaptureConv2dImpl&>(layer).options();
  TORCH_CHECK(options.groups() == 1, "curvature capture supports groups = 1 only");
  const auto padding = conv_padding(options);
  return torch::nn::functional::unfold(
      input, torch::nn::functional::UnfoldFuncOptions({(*options.kernel_size())[0], (*options.kernel_size())[1]})
                 .dilation({(*options.dilation())[0], (*options.dilation())[1]})
                 .padding({padding[0], padding[1]})
                 .stride({(*options.stride())[0], (*options.stride())[1]}));
}

// The patches of the layer's recorded input.
torch::Tensor conv_patches(CaptureLayer& layer) { return conv_patches(layer, require(layer.input(), "input")); }

bool is_sequence(CaptureLayer& layer) {
  return layer.kind() == CaptureLayer::Kind::kLinear && require(layer.input(), "input").dim() == 3;
}

// Rows (N, S, columns) with the padded tokens of a sequence layer zeroed.
torch::Tensor mask_padding(CaptureLayer& layer, const torch::Tensor& rows) {
  if (!layer.token_mask().defined()) return rows;
  return rows * layer.token_mask().unsqueeze(2).to(rows.scalar_type());
}

// The real tokens of a sequence layer as a 0-d tensor on the recordings' device (no read-back).
torch::Tensor real_row_count(CaptureLayer& layer) {
  const auto& input = layer.input();
  if (layer.token_mask().defined()) return layer.token_mask().sum().to(input.scalar_type());
  return torch::scalar_tensor(static_cast<double>(input.size(0) * input.size(1)), input.options());
}

}  // namespace

bool has_positions(CaptureLayer& layer) { return layer.kind() == CaptureLayer::Kind::kConv2d || is_sequence(layer); }

int64_t real_token_count(CaptureLayer& layer) {
  const auto& input = require(layer.input(), "input");
  if (!is_sequence(layer)) return input.size(0);
  return layer.token_mask().defined() ? layer.token_mask().sum().item<int64_t>() : input.size(0) * input.size(1);
}

torch::Tensor input_rows(CaptureLayer& layer) {
  torch::Tensor rows;
  if (layer.kind() == CaptureLayer::Kind::kLinear) {
    const auto& input = require(layer.input(), "input");
    rows = input.dim() == 3 ? input : input.reshape({-1, input.size(-1)});
  } else {
    rows = conv_patches(layer).transpose(1, 2);  // N, S, C_in·kh·kw
  }
  rows = layer.has_bias() ? append_ones(rows) : rows.contiguous();
  return is_sequence(layer) ? mask_padding(layer, rows) : rows;
}

torch::Tensor grad_output_rows(CaptureLayer& layer) {
  const auto& grad = require(layer.grad_output(), "output gradient");
  if (is_sequence(layer)) return mask_padding(layer, grad);
  if (layer.kind() == CaptureLayer::Kind::kLinear) return grad.reshape({-1, grad.size(-1)});
  return grad.flatten(2).transpose(1, 2);  // N, S, out
}

torch::Tensor gradient_matrix(CaptureLayer& layer) {
  const auto& weight = layer.weight();
  TORCH_CHECK(weight.grad().defined(), "layer weight has no gradient");
  auto matrix = weight.grad().reshape({weight.size(0), -1});
  return layer.has_bias() ? torch::cat({matrix, layer.bias().grad().unsqueeze(1)}, 1) : matrix;
}

std::vector<int64_t> gradient_matrix_shape(CaptureLayer& layer) {
  const auto& weight = layer.weight();
  return {weight.size(0), weight.numel() / weight.size(0) + (layer.has_bias() ? 1 : 0)};
}

void set_gradient_matrix(CaptureLayer& layer, const torch::Tensor& matrix) {
  auto& weight = layer.weight();
  const int64_t columns = weight.numel() / weight.size(0);
  weight.mutable_grad().copy_(matrix.slice(1, 0, columns).reshape(weight.sizes()));
  if (layer.has_bias()) layer.bias().mutable_grad().copy_(matrix.select(1, columns));
}

torch::Tensor per_sample_gradients(CaptureLayer& layer) {
  if (is_sequence(layer)) return torch::bmm(grad_output_rows(layer).transpose(1, 2), input_rows(layer));
  if (layer.kind() == CaptureLayer::Kind::kLinear) {
    return torch::einsum("no,ni->noi", {grad_output_rows(layer), input_rows(layer)});
  }
  // Conv: contract the patches as unfold lays them out, without input_rows()'s ones column (a copy as
  // large as the patches, which would cost as much as the unfold); the bias column is Σ_s g_s.
  const auto grads = require(layer.grad_output(), "output gradient").flatten(2);  // N, out, S
  const auto weights = torch::bmm(grads, conv_patches(layer).transpose(1, 2));
  return layer.has_bias() ? torch::cat({weights, grads.sum(2, /*keepdim=*/true)}, 2) : weights;
}

torch::Tensor mean_input_row(CaptureLayer& layer) {
  const auto& input = require(layer.input(), "input");
  if (is_sequence(layer)) return input_rows(layer).sum(torch::IntArrayRef{0, 1}) / real_row_count(layer);
  torch::Tensor mean;
  if (layer.kind() == CaptureLayer::Kind::kLinear) {
    mean = input.reshape({-1, input.size(-1)}).mean(0);
  } else {
    // Patches are linear in the image: the mean patch is a patch of the mean image, one image to unfold.
    mean = conv_patches(layer, input.mean(0, /*keepdim=*/true)).mean(torch::IntArrayRef{0, 2});
  }
  return layer.has_bias() ? append_ones(mean) : mean;
}

torch::Tensor mean_grad_output_row(CaptureLayer& layer) {
  if (is_sequence(layer)) return grad_output_rows(layer).sum(torch::IntArrayRef{0, 1}) / real_row_count(layer);
  const auto& grad = require(layer.grad_output(), "output gradient");
  if (layer.kind() == CaptureLayer::Kind::kLinear) return grad.reshape({-1, grad.size(-1)}).mean(0);
  return grad.mean({0, 2, 3});
}

KroneckerStatistics kronecker_statistics(CaptureLayer& layer, bool with_grad) {
  const auto inputs = input_rows(layer);
  const double samples = static_cast<double>(real_token_count(layer));
  const double positions = layer.kind() == CaptureLayer::Kind::kConv2d ? static_cast<double>(inputs.size(1)) : 1.0;
  const auto input_matrix = inputs.reshape({-1, inputs.size(-1)});
  KroneckerStatistics statistics;
  statistics.positions = positions;
  statistics.input = input_matrix.t().mm(input_matrix).div_(samples * positions);
  if (with_grad) {
    const auto grads = grad_output_rows(layer);
    const auto grad_matrix = grads.reshape({-1, grads.size(-1)});
    statistics.grad = grad_matrix.t().mm(grad_matrix).mul_(samples);
  }
  return statistics;
}

void blend_into(torch::Tensor& running, const torch::Tensor& statistic, double decay) {
  if (!running.defined()) running = torch::eye(statistic.size(0), statistic.options());
  running.mul_(decay).add_(statistic, 1 - decay);
}

torch::Tensor kl_clip_factor(const torch::Tensor& alignment, double kl_clip, double learning_rate) {
  const auto one = torch::ones_like(alignment);
  if (kl_clip <= 0) return one;
  const auto predicted_change = learning_rate * learning_rate * alignment;
  return torch::where(predicted_change > 0, torch::clamp_max(torch::sqrt(kl_clip / predicted_change), 1.0), one);
}

}  // namespace ngd
