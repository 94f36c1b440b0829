#pragma once

#include "models/model.h"

namespace ngd {

// Fully connected ReLU network on flattened images; its layers are compressible maps in the format and
// at the rank of `low_rank` (dense by default; a map where the rank saves no weights stays dense).
class Mlp : public Model {
 public:
  Mlp(const std::vector<int64_t>& hidden, const LowRankSettings& low_rank, const ModelInput& input);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::vector<CompressibleLayer> layers_;
};

}  // namespace ngd
