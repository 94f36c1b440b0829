#pragma once

// Small models built through the compressible-layer factory, for the models/lowrank/ tests.
#include <torch/torch.h>

#include "models/lowrank/compressible_layer.h"
#include "models/model.h"

namespace ngd::lowrank_testing {

// Images 4 × 8 × 8: conv 4 → 8 (3×3, padding 1), ReLU, conv 8 → 8 (3×3, stride 2, padding 1), ReLU,
// flatten (128), Linear 128 → 12.
class TinyLowRankNet : public Model {
 public:
  explicit TinyLowRankNet(const LowRankSettings& settings) {
    conv1_ = add_compressible_layer("conv1", LayerShape::conv2d(torch::nn::Conv2dOptions(4, 8, 3).padding(1)), settings);
    conv2_ = add_compressible_layer("conv2", LayerShape::conv2d(torch::nn::Conv2dOptions(8, 8, 3).stride(2).padding(1)),
                                    settings);
    fc_ = add_compressible_layer("fc", LayerShape::linear(128, 12, true), settings);
  }
  torch::Tensor forward(const torch::Tensor& input) override {
    auto x = torch::relu(conv1_->forward(input));
    x = torch::relu(conv2_->forward(x));
    return fc_->forward(x.flatten(1));
  }

 private:
  CompressibleLayer conv1_{nullptr}, conv2_{nullptr}, fc_{nullptr};
};

constexpr int64_t kTinyChannels = 4;
constexpr int64_t kTinySide = 8;
constexpr int64_t kTinyClasses = 12;

// A model of one compressible map of `shape` (input: a Linear's features, or a conv's C × 8 × 8).
class OneLayerNet : public Model {
 public:
  OneLayerNet(const LayerShape& shape, const LowRankSettings& settings) {
    layer_ = add_compressible_layer("layer", shape, settings);
  }
  torch::Tensor forward(const torch::Tensor& input) override { return layer_->forward(input); }

 private:
  CompressibleLayer layer_{nullptr};
};

inline LowRankSettings settings(const std::string& format, int64_t rank) {
  LowRankSettings result;
  result.format = format;
  result.rank = rank;
  return result;
}

}  // namespace ngd::lowrank_testing
