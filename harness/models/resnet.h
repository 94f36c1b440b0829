#pragma once

#include "harness/models/model.h"

namespace ngd {

// He et al.'s CIFAR ResNets (ResNet-20/32/56/110): a 3×3 conv stem with 16 channels, three stages of
// `blocks_per_stage` basic blocks with 16, 32, 64 channels, identity shortcuts that subsample and
// zero-pad channels (option A, parameter-free), global average pooling and one FC layer.
// Depth = 6·blocks_per_stage + 2.
class CifarResNet : public Model {
 public:
  CifarResNet(int64_t depth, const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  struct Block {
    CaptureConv2d conv1{nullptr}, conv2{nullptr};
    torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
    int64_t stride = 1;
    int64_t pad_channels = 0;  // zero channels added each side of the shortcut
  };
  CaptureConv2d stem_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  std::vector<Block> blocks_;
  CaptureLinear fc_{nullptr};
};

// ResNet-18 as used for CIFAR (kuangliu/pytorch-cifar): 3×3 stem with 64 channels and no max-pool,
// four stages of two basic blocks (64, 128, 256, 512 channels), 1×1 conv + BN projection shortcuts.
class ResNet18 : public Model {
 public:
  explicit ResNet18(const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  struct Block {
    CaptureConv2d conv1{nullptr}, conv2{nullptr}, shortcut{nullptr};  // shortcut null: identity
    torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, shortcut_bn{nullptr};
  };
  CaptureConv2d stem_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  std::vector<Block> blocks_;
  CaptureLinear fc_{nullptr};
};

}  // namespace ngd
