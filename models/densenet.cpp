#include "models/densenet.h"

#include <fmt/format.h>

namespace ngd {
namespace {

// Bottleneck width as a multiple of the growth rate (DenseNet-BC's 4k).
constexpr int64_t kBottleneckExpansion = 4;

LayerShape conv(int64_t in_channels, int64_t out_channels, int64_t kernel) {
  return LayerShape::conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, kernel).padding(kernel / 2).bias(false));
}

}  // namespace

DenseNetBc::DenseNetBc(int64_t depth, int64_t growth, int64_t compression, const LowRankSettings& low_rank,
                       const ModelInput& input) {
  if (depth < 10 || (depth - 4) % 3 != 0 || growth < 1 || compression < 1) {
    throw std::invalid_argument(fmt::format("DenseNet-BC needs depth = 3n+4 ≥ 10, growth ≥ 1, compression ≥ 1 "
                                            "(got {}, {}, {})", depth, growth, compression));
  }
  const int64_t layers_per_block = (depth - 4) / 6;
  int64_t channels = 2 * growth;
  stem_ = add_compressible_layer("stem", conv(input.image_shape[0], channels, 3), low_rank);
  for (int64_t block = 0; block < 3; ++block) {
    for (int64_t l = 0; l < layers_per_block; ++l) {
      const auto name = fmt::format("dense{}_layer{}", block + 1, l + 1);
      Layer layer;
      layer.bn1 = register_module(name + "_bn1", torch::nn::BatchNorm2d(channels));
      layer.conv1 = add_compressible_layer(name + "_conv1", conv(channels, kBottleneckExpansion * growth, 1), low_rank);
      layer.bn2 = register_module(name + "_bn2", torch::nn::BatchNorm2d(kBottleneckExpansion * growth));
      layer.conv2 = add_compressible_layer(name + "_conv2", conv(kBottleneckExpansion * growth, growth, 3), low_rank);
      layers_.push_back(layer);
      channels += growth;
    }
    if (block < 2) {
      const auto name = fmt::format("transition{}", block + 1);
      Layer transition;
      transition.bn1 = register_module(name + "_bn", torch::nn::BatchNorm2d(channels));
      transition.conv1 = add_compressible_layer(name + "_conv", conv(channels, channels / compression, 1), low_rank);
      layers_.push_back(transition);
      channels /= compression;
    }
  }
  final_bn_ = register_module("final_bn", torch::nn::BatchNorm2d(channels));
  fc_ = add_compressible_layer("fc", LayerShape::linear(channels, input.num_classes, /*bias=*/true), low_rank);
}

torch::Tensor DenseNetBc::forward(const torch::Tensor& input) {
  auto x = stem_->forward(input);
  for (auto& layer : layers_) {
    auto out = layer.conv1->forward(torch::relu(layer.bn1(x)));
    if (layer.conv2) {
      x = torch::cat({x, layer.conv2->forward(torch::relu(layer.bn2(out)))}, 1);
    } else {
      x = torch::avg_pool2d(out, 2);
    }
  }
  x = torch::relu(final_bn_(x));
  return fc_->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
}

}  // namespace ngd
