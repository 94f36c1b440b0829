#pragma once

#include "models/model.h"

namespace ngd {

// The "3C1F" net of TENGraD/HyLo's Fashion-MNIST runs: three 3×3 convolutions (padding 1) with ReLU,
// max-pool 3, FC to `hidden` with ReLU, FC to the classes; no BatchNorm. `channels` narrows it for
// quick CPU runs (128 in the papers). Its layers are compressible maps in the format and at the rank of
// `low_rank` (dense by default).
class Conv3Fc1 : public Model {
 public:
  Conv3Fc1(int64_t channels, int64_t hidden, const LowRankSettings& low_rank, const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  CompressibleLayer conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  CompressibleLayer fc1_{nullptr}, fc2_{nullptr};
};

}  // namespace ngd
