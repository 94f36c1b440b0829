#include "models/conv3_fc1.h"

namespace ngd {
namespace {

// The papers' pooling window (and stride): 28×28 maps become 9×9.
constexpr int64_t kPoolSize = 3;
// The papers' convolutions are 3×3 with padding 1, keeping the map size.
constexpr int64_t kKernelSize = 3;

torch::nn::Conv2dOptions conv3x3(int64_t in_channels, int64_t out_channels) {
  return torch::nn::Conv2dOptions(in_channels, out_channels, kKernelSize).padding(1);
}

FactoredLayer<CaptureConv2d> make_conv3x3(int64_t in_channels, int64_t out_channels, int64_t rank) {
  return make_conv2d(conv3x3(in_channels, out_channels), saving_rank(in_channels * kKernelSize * kKernelSize, out_channels, rank));
}

FactoredLayer<CaptureLinear> make_fc(int64_t in_features, int64_t out_features, int64_t rank) {
  return make_linear(in_features, out_features, saving_rank(in_features, out_features, rank));
}

}  // namespace

Conv3Fc1::Conv3Fc1(int64_t channels, int64_t hidden, int64_t rank, const ModelInput& input) {
  const int64_t pooled_h = input.image_shape[1] / kPoolSize;
  const int64_t pooled_w = input.image_shape[2] / kPoolSize;
  conv1_ = add_factored_layer("conv1", make_conv3x3(input.image_shape[0], channels, rank));
  conv2_ = add_factored_layer("conv2", make_conv3x3(channels, channels, rank));
  conv3_ = add_factored_layer("conv3", make_conv3x3(channels, channels, rank));
  fc1_ = add_factored_layer("fc1", make_fc(pooled_h * pooled_w * channels, hidden, rank));
  fc2_ = add_factored_layer("fc2", make_fc(hidden, input.num_classes, rank));
}

torch::Tensor Conv3Fc1::forward(const torch::Tensor& input) {
  auto x = torch::relu(conv1_.forward(input));
  x = torch::relu(conv2_.forward(x));
  x = torch::relu(conv3_.forward(x));
  x = torch::max_pool2d(x, kPoolSize).flatten(1);
  return fc2_.forward(torch::relu(fc1_.forward(x)));
}

}  // namespace ngd
