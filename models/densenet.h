#pragma once

#include "models/model.h"

namespace ngd {

// DenseNet-BC for CIFAR (Huang et al.), as in the TENGraD/HyLo CIFAR-100 runs: a 3×3 stem with
// 2·growth channels, three dense blocks of (depth − 4)/6 bottleneck layers (BN-ReLU-1×1 conv to
// 4·growth, BN-ReLU-3×3 conv to growth, concatenated), transitions (BN-ReLU-1×1 conv dividing the
// channels by `compression`, 2×2 average pool), final BN-ReLU, global pooling and one FC layer. Its
// convolutions and FC layer are compressible (`low_rank`; dense by default).
class DenseNetBc : public Model {
 public:
  DenseNetBc(int64_t depth, int64_t growth, int64_t compression, const LowRankSettings& low_rank,
             const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  struct Layer {  // a bottleneck layer, or a transition (conv2 null)
    torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
    CompressibleLayer conv1{nullptr}, conv2{nullptr};
  };
  CompressibleLayer stem_{nullptr};
  std::vector<Layer> layers_;
  torch::nn::BatchNorm2d final_bn_{nullptr};
  CompressibleLayer fc_{nullptr};
};

}  // namespace ngd
