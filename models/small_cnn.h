#pragma once

#include "models/model.h"

namespace ngd {

// A small CNN for quick CPU runs: two 3×3 conv + ReLU + 2×2 max-pool stages (`channels`,
// 2·`channels`), FC to `hidden` with ReLU, FC to the classes; no BatchNorm.
class SmallCnn : public Model {
 public:
  SmallCnn(int64_t channels, int64_t hidden, const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  CaptureConv2d conv1_{nullptr}, conv2_{nullptr};
  CaptureLinear fc1_{nullptr}, fc2_{nullptr};
};

}  // namespace ngd
