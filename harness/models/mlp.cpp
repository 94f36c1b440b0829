#include "harness/models/mlp.h"

namespace ngd {

Mlp::Mlp(const std::vector<int64_t>& hidden, const ModelInput& input) {
  int64_t width = 1;
  for (auto extent : input.image_shape) width *= extent;
  for (size_t i = 0; i < hidden.size(); ++i) {
    layers_.push_back(add_capture_layer("fc" + std::to_string(i + 1), CaptureLinear(width, hidden[i])));
    width = hidden[i];
  }
  layers_.push_back(add_capture_layer("fc" + std::to_string(hidden.size() + 1), CaptureLinear(width, input.num_classes)));
}

torch::Tensor Mlp::forward(const torch::Tensor& input) {
  auto x = input.flatten(1);
  for (size_t i = 0; i + 1 < layers_.size(); ++i) x = torch::relu(layers_[i]->forward(x));
  return layers_.back()->forward(x);
}

}  // namespace ngd
