#include "models/vgg.h"

#include <fmt/format.h>

namespace ngd {
namespace {

// VGG-16's conv widths; 0 marks a 2×2 max-pool.
const std::vector<int64_t> kVgg16Layers = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};

}  // namespace

Vgg16Bn::Vgg16Bn(const LowRankSettings& low_rank, const ModelInput& input) {
  int64_t channels = input.image_shape[0];
  for (const int64_t width : kVgg16Layers) {
    if (width == 0) {
      pool_after_.back() = true;
      continue;
    }
    const auto index = layers_.size() + 1;
    auto conv = add_compressible_layer(fmt::format("conv{}", index),
                                       LayerShape::conv2d(torch::nn::Conv2dOptions(channels, width, 3).padding(1)), low_rank);
    auto bn = register_module(fmt::format("bn{}", index), torch::nn::BatchNorm2d(width));
    layers_.emplace_back(conv, bn);
    pool_after_.push_back(false);
    channels = width;
  }
  fc_ = add_compressible_layer("fc", LayerShape::linear(channels, input.num_classes, /*bias=*/true), low_rank);
}

torch::Tensor Vgg16Bn::forward(const torch::Tensor& input) {
  auto x = input;
  for (size_t i = 0; i < layers_.size(); ++i) {
    x = torch::relu(layers_[i].second(layers_[i].first->forward(x)));
    if (pool_after_[i]) x = torch::max_pool2d(x, 2);
  }
  return fc_->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
}

}  // namespace ngd
