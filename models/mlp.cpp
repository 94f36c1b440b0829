#include "models/mlp.h"

namespace ngd {

Mlp::Mlp(const std::vector<int64_t>& hidden, const LowRankSettings& low_rank, const ModelInput& input) {
  int64_t width = 1;
  for (auto extent : input.image_shape) width *= extent;
  std::vector<int64_t> widths = hidden;
  widths.push_back(input.num_classes);
  for (size_t i = 0; i < widths.size(); ++i) {
    const auto shape = LayerShape::linear(width, widths[i], /*bias=*/true);
    layers_.push_back(add_compressible_layer("fc" + std::to_string(i + 1), shape, low_rank));
    width = widths[i];
  }
}

torch::Tensor Mlp::forward(const torch::Tensor& input) {
  auto x = input.flatten(1);
  for (size_t i = 0; i + 1 < layers_.size(); ++i) x = torch::relu(layers_[i]->forward(x));
  return layers_.back()->forward(x);
}

}  // namespace ngd
