#pragma once

#include "models/model.h"

namespace ngd {

// Fully connected ReLU network on flattened images. With `rank` > 0 every layer where it saves weights
// is factorised through that rank (see FactoredLayer); 0 = dense.
class Mlp : public Model {
 public:
  Mlp(const std::vector<int64_t>& hidden, int64_t rank, const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::vector<FactoredLayer<CaptureLinear>> layers_;
};

}  // namespace ngd
