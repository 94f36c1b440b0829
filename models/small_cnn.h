#pragma once

#include "models/model.h"

namespace ngd {

// A small CNN for quick CPU runs: two 3×3 conv + ReLU + 2×2 max-pool stages (`channels`,
// 2·`channels`), FC to `hidden` with ReLU, FC to the classes; no BatchNorm. Its maps are compressible
// (`low_rank`; dense by default).
class SmallCnn : public Model {
 public:
  SmallCnn(int64_t channels, int64_t hidden, const LowRankSettings& low_rank, const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  CompressibleLayer conv1_{nullptr}, conv2_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
};

}  // namespace ngd
