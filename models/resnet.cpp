#include "models/resnet.h"

#include <fmt/format.h>

namespace ngd {
namespace {

LayerShape conv(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride) {
  return LayerShape::conv2d(
      torch::nn::Conv2dOptions(in_channels, out_channels, kernel).stride(stride).padding(kernel / 2).bias(false));
}

}  // namespace

CifarResNet::CifarResNet(int64_t depth, int64_t width, const LowRankSettings& low_rank, const ModelInput& input) {
  if (depth < 8 || (depth - 2) % 6 != 0) {
    throw std::invalid_argument(fmt::format("CIFAR ResNet depth {} is not 6n+2", depth));
  }
  const int64_t blocks_per_stage = (depth - 2) / 6;
  stem_ = add_compressible_layer("stem", conv(input.image_shape[0], width, 3, 1), low_rank);
  stem_bn_ = register_module("stem_bn", torch::nn::BatchNorm2d(width));
  int64_t channels = width;
  for (int64_t stage = 0; stage < 3; ++stage) {
    const int64_t stage_width = width << stage;
    for (int64_t b = 0; b < blocks_per_stage; ++b) {
      const auto name = fmt::format("stage{}_block{}", stage + 1, b + 1);
      Block block;
      block.stride = (stage > 0 && b == 0) ? 2 : 1;
      block.pad_channels = (stage_width - channels) / 2;
      block.conv1 = add_compressible_layer(name + "_conv1", conv(channels, stage_width, 3, block.stride), low_rank);
      block.bn1 = register_module(name + "_bn1", torch::nn::BatchNorm2d(stage_width));
      block.conv2 = add_compressible_layer(name + "_conv2", conv(stage_width, stage_width, 3, 1), low_rank);
      block.bn2 = register_module(name + "_bn2", torch::nn::BatchNorm2d(stage_width));
      blocks_.push_back(block);
      channels = stage_width;
    }
  }
  fc_ = add_compressible_layer("fc", LayerShape::linear(channels, input.num_classes, /*bias=*/true), low_rank);
}

torch::Tensor CifarResNet::forward(const torch::Tensor& input) {
  auto x = torch::relu(stem_bn_(stem_->forward(input)));
  for (auto& block : blocks_) {
    auto out = torch::relu(block.bn1(block.conv1->forward(x)));
    out = block.bn2(block.conv2->forward(out));
    auto shortcut = x;
    if (block.stride > 1) {
      shortcut = shortcut.slice(2, 0, shortcut.size(2), block.stride).slice(3, 0, shortcut.size(3), block.stride);
    }
    if (block.pad_channels > 0) {
      shortcut = torch::constant_pad_nd(shortcut, {0, 0, 0, 0, block.pad_channels, block.pad_channels});
    }
    x = torch::relu(out + shortcut);
  }
  return fc_->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
}

ResNet18::ResNet18(int64_t width, const LowRankSettings& low_rank, const ModelInput& input) {
  stem_ = add_compressible_layer("stem", conv(input.image_shape[0], width, 3, 1), low_rank);
  stem_bn_ = register_module("stem_bn", torch::nn::BatchNorm2d(width));
  int64_t channels = width;
  for (int64_t stage = 0; stage < 4; ++stage) {
    const int64_t stage_width = width << stage;
    for (int64_t b = 0; b < 2; ++b) {
      const auto name = fmt::format("layer{}_block{}", stage + 1, b + 1);
      const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
      Block block;
      block.conv1 = add_compressible_layer(name + "_conv1", conv(channels, stage_width, 3, stride), low_rank);
      block.bn1 = register_module(name + "_bn1", torch::nn::BatchNorm2d(stage_width));
      block.conv2 = add_compressible_layer(name + "_conv2", conv(stage_width, stage_width, 3, 1), low_rank);
      block.bn2 = register_module(name + "_bn2", torch::nn::BatchNorm2d(stage_width));
      if (stride != 1 || channels != stage_width) {
        block.shortcut = add_compressible_layer(name + "_shortcut", conv(channels, stage_width, 1, stride), low_rank);
        block.shortcut_bn = register_module(name + "_shortcut_bn", torch::nn::BatchNorm2d(stage_width));
      }
      blocks_.push_back(block);
      channels = stage_width;
    }
  }
  fc_ = add_compressible_layer("fc", LayerShape::linear(channels, input.num_classes, /*bias=*/true), low_rank);
}

torch::Tensor ResNet18::forward(const torch::Tensor& input) {
  auto x = torch::relu(stem_bn_(stem_->forward(input)));
  for (auto& block : blocks_) {
    auto out = torch::relu(block.bn1(block.conv1->forward(x)));
    out = block.bn2(block.conv2->forward(out));
    x = torch::relu(out + (block.shortcut ? block.shortcut_bn(block.shortcut->forward(x)) : x));
  }
  return fc_->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
}

}  // namespace ngd
