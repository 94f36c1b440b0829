#pragma once

#include "models/model.h"

namespace ngd {

// The "3C1F" net of TENGraD/HyLo's Fashion-MNIST runs: three 3×3 convolutions (padding 1) with ReLU,
// max-pool 3, FC to `hidden` with ReLU, FC to the classes; no BatchNorm. `channels` narrows it for
// quick CPU runs (128 in the papers). With `rank` > 0 every layer where it saves weights is
// factorised through that rank (see FactoredLayer); 0 = dense.
class Conv3Fc1 : public Model {
 public:
  Conv3Fc1(int64_t channels, int64_t hidden, int64_t rank, const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  FactoredLayer<CaptureConv2d> conv1_, conv2_, conv3_;
  FactoredLayer<CaptureLinear> fc1_, fc2_;
};

}  // namespace ngd
