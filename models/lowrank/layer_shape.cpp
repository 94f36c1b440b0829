#include "models/lowrank/layer_shape.h"

#include <stdexcept>

namespace ngd {

LayerShape LayerShape::linear(int64_t in_features, int64_t out_features, bool bias) {
  LayerShape shape;
  shape.kind = CaptureLayer::Kind::kLinear;
  shape.in = in_features;
  shape.out = out_features;
  shape.bias = bias;
  return shape;
}

LayerShape LayerShape::conv2d(const torch::nn::Conv2dOptions& options) {
  if (options.groups() != 1) throw std::invalid_argument("a compressible Conv2d needs groups = 1");
  LayerShape shape;
  shape.kind = CaptureLayer::Kind::kConv2d;
  shape.in = options.in_channels();
  shape.out = options.out_channels();
  shape.bias = options.bias();
  shape.conv = options;
  return shape;
}

int64_t LayerShape::kernel_area() const {
  if (!conv) return 1;
  return (*conv->kernel_size())[0] * (*conv->kernel_size())[1];
}

std::vector<int64_t> LayerShape::weight_sizes() const {
  if (!conv) return {out, in};
  return {out, in, (*conv->kernel_size())[0], (*conv->kernel_size())[1]};
}

}  // namespace ngd
