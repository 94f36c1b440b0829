#include "models/small_cnn.h"

namespace ngd {

SmallCnn::SmallCnn(int64_t channels, int64_t hidden, const LowRankSettings& low_rank, const ModelInput& input) {
  const int64_t pooled = (input.image_shape[1] / 4) * (input.image_shape[2] / 4);
  conv1_ = add_compressible_layer(
      "conv1", LayerShape::conv2d(torch::nn::Conv2dOptions(input.image_shape[0], channels, 3).padding(1)), low_rank);
  conv2_ = add_compressible_layer(
      "conv2", LayerShape::conv2d(torch::nn::Conv2dOptions(channels, 2 * channels, 3).padding(1)), low_rank);
  fc1_ = add_compressible_layer("fc1", LayerShape::linear(2 * channels * pooled, hidden, /*bias=*/true), low_rank);
  fc2_ = add_compressible_layer("fc2", LayerShape::linear(hidden, input.num_classes, /*bias=*/true), low_rank);
}

torch::Tensor SmallCnn::forward(const torch::Tensor& input) {
  auto x = torch::max_pool2d(torch::relu(conv1_->forward(input)), 2);
  x = torch::max_pool2d(torch::relu(conv2_->forward(x)), 2);
  return fc2_->forward(torch::relu(fc1_->forward(x.flatten(1))));
}

}  // namespace ngd
