#pragma once

#include <torch/torch.h>

#include <string>

#include "models/model.h"

// The model the microbenchmarks time curvature work on: one benchmarked layer (Linear, or 3×3 Conv
// with padding 1 on 16×16 inputs) followed by ReLU, global pooling (conv) and a linear head, and
// the layer shapes the issue tracker names.
namespace ngd::bench {

// Classes of the small head that turns the benchmarked layer's output into a loss.
constexpr int64_t kClasses = 10;
// Height and width of the conv shapes' inputs.
constexpr int64_t kConvImageSize = 16;

struct LayerShape {
  const char* name;
  bool conv;
  int64_t in, out;
};

inline const LayerShape kLayerShapes[] = {{"linear512x512", false, 512, 512},
                                          {"linear3136x256", false, 3136, 256},
                                          {"conv64x64k3@16x16", true, 64, 64}};

class OneLayerModel : public Model {
 public:
  explicit OneLayerModel(const LayerShape& shape) : conv_(shape.conv) {
    if (conv_) {
      conv_layer_ = add_capture_layer("layer", CaptureConv2d(torch::nn::Conv2dOptions(shape.in, shape.out, 3).padding(1)));
    } else {
      linear_layer_ = add_capture_layer("layer", CaptureLinear(shape.in, shape.out));
    }
    head_ = add_capture_layer("head", CaptureLinear(shape.out, kClasses));
  }
  torch::Tensor forward(const torch::Tensor& input) override {
    auto x = torch::relu(conv_ ? conv_layer_->forward(input) : linear_layer_->forward(input));
    if (conv_) x = x.mean({2, 3});
    return head_->forward(x);
  }
  CaptureLayer& layer() { return conv_ ? static_cast<CaptureLayer&>(*conv_layer_) : *linear_layer_; }

 private:
  bool conv_;
  CaptureConv2d conv_layer_{nullptr};
  CaptureLinear linear_layer_{nullptr}, head_{nullptr};
};

// A random batch of `batch` inputs for `shape` and labels.
struct BenchBatch {
  torch::Tensor images, labels;
};
inline BenchBatch random_batch(const LayerShape& shape, int64_t batch) {
  return {shape.conv ? torch::randn({batch, shape.in, kConvImageSize, kConvImageSize}) : torch::randn({batch, shape.in}),
          torch::randint(kClasses, {batch}, torch::kInt64)};
}

inline std::string shape_label(const LayerShape& shape, int64_t batch) {
  return std::string(shape.name) + "/batch:" + std::to_string(batch);
}

}  // namespace ngd::bench
