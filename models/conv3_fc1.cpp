#include "models/conv3_fc1.h"

namespace ngd {
namespace {

// The papers' pooling window (and stride): 28×28 maps become 9×9.
constexpr int64_t kPoolSize = 3;
// The papers' convolutions are 3×3 with padding 1, keeping the map size.
constexpr int64_t kKernelSize = 3;

LayerShape conv3x3(int64_t in_channels, int64_t out_channels) {
  return LayerShape::conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, kKernelSize).padding(1));
}

}  // namespace

Conv3Fc1::Conv3Fc1(int64_t channels, int64_t hidden, const LowRankSettings& low_rank, const ModelInput& input) {
  const int64_t pooled_h = input.image_shape[1] / kPoolSize;
  const int64_t pooled_w = input.image_shape[2] / kPoolSize;
  conv1_ = add_compressible_layer("conv1", conv3x3(input.image_shape[0], channels), low_rank);
  conv2_ = add_compressible_layer("conv2", conv3x3(channels, channels), low_rank);
  conv3_ = add_compressible_layer("conv3", conv3x3(channels, channels), low_rank);
  fc1_ = add_compressible_layer("fc1", LayerShape::linear(pooled_h * pooled_w * channels, hidden, /*bias=*/true), low_rank);
  fc2_ = add_compressible_layer("fc2", LayerShape::linear(hidden, input.num_classes, /*bias=*/true), low_rank);
}

torch::Tensor Conv3Fc1::forward(const torch::Tensor& input) {
  auto x = torch::relu(conv1_->forward(input));
  x = torch::relu(conv2_->forward(x));
  x = torch::relu(conv3_->forward(x));
  x = torch::max_pool2d(x, kPoolSize).flatten(1);
  return fc2_->forward(torch::relu(fc1_->forward(x)));
}

}  // namespace ngd
