#pragma once

#include "models/model.h"

namespace ngd {

// He et al.'s CIFAR ResNets (ResNet-20/32/56/110): a 3×3 conv stem with `width` channels (16 in the
// paper), three stages of `blocks_per_stage` basic blocks with width, 2·width, 4·width channels, identity shortcuts that subsample and
// zero-pad channels (option A, parameter-free), global average pooling and one FC layer.
// Depth = 6·blocks_per_stage + 2. Its convolutions and FC layer are compressible (`low_rank`; dense by default).
class CifarResNet : public Model {
 public:
  CifarResNet(int64_t depth, int64_t width, const LowRankSettings& low_rank, const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  struct Block {
    CompressibleLayer conv1{nullptr}, conv2{nullptr};
    torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
    int64_t stride = 1;
    int64_t pad_channels = 0;  // zero channels added each side of the shortcut
  };
  CompressibleLayer stem_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  std::vector<Block> blocks_;
  CompressibleLayer fc_{nullptr};
};

// ResNet-18 as used for CIFAR (kuangliu/pytorch-cifar): 3×3 stem with `width` channels (64) and no
// max-pool, four stages of two basic blocks (width·1, 2, 4, 8 channels), 1×1 conv + BN projection shortcuts.
// Its convolutions and FC layer are compressible (`low_rank`; dense by default).
class ResNet18 : public Model {
 public:
  ResNet18(int64_t width, const LowRankSettings& low_rank, const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  struct Block {
    CompressibleLayer conv1{nullptr}, conv2{nullptr}, shortcut{nullptr};  // shortcut null: identity
    torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, shortcut_bn{nullptr};
  };
  CompressibleLayer stem_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  std::vector<Block> blocks_;
  CompressibleLayer fc_{nullptr};
};

}  // namespace ngd
