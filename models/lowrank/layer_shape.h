#pragma once

#include <torch/torch.h>

#include <optional>

#include "models/capture_layers.h"

namespace ngd {

// The shape of one compressible Linear or Conv2d map: what a low-rank format needs to build, count or
// decompose it. A Conv2d weight is seen as the matrix C_out × C_in·kh·kw (channel-wise, as the
// factored conv and the spectral measures read it).
struct LayerShape {
  CaptureLayer::Kind kind = CaptureLayer::Kind::kLinear;
  int64_t in = 0;   // in_features, or C_in
  int64_t out = 0;  // out_features, or C_out
  bool bias = true;
  std::optional<torch::nn::Conv2dOptions> conv;  // Conv2d only: kernel, stride, padding, dilation (groups 1)

  static LayerShape linear(int64_t in_features, int64_t out_features, bool bias);
  static LayerShape conv2d(const torch::nn::Conv2dOptions& options);

  int64_t kernel_area() const;  // kh·kw; 1 for a Linear map
  int64_t fan_in() const { return in * kernel_area(); }
  int64_t full_rank() const { return std::min(fan_in(), out); }
  int64_t dense_weights() const { return out * fan_in(); }
  // The dense weight's shape: out × in, or C_out × C_in × kh × kw.
  std::vector<int64_t> weight_sizes() const;
};

}  // namespace ngd
