#pragma once

#include "models/model.h"

namespace ngd {

// VGG-16 with BatchNorm for 32×32 inputs: thirteen 3×3 conv + BN + ReLU layers in five max-pooled
// stages (64, 128, 256, 512, 512 channels) and one FC layer on the 512 features (the CIFAR variant of
// kuangliu/pytorch-cifar and alecwangcq/KFAC-Pytorch). Its convolutions and FC layer are compressible
// (`low_rank`; dense by default).
class Vgg16Bn : public Model {
 public:
  Vgg16Bn(const LowRankSettings& low_rank, const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::vector<std::pair<CompressibleLayer, torch::nn::BatchNorm2d>> layers_;
  std::vector<bool> pool_after_;
  CompressibleLayer fc_{nullptr};
};

}  // namespace ngd
