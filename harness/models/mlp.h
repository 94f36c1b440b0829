#pragma once

#include "harness/models/model.h"

namespace ngd {

// Fully connected ReLU network on flattened images.
class Mlp : public Model {
 public:
  Mlp(const std::vector<int64_t>& hidden, const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::vector<CaptureLinear> layers_;
};

}  // namespace ngd
