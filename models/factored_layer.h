#pragma once

#include <torch/torch.h>

#include <vector>

#include "models/capture_layers.h"

namespace ngd {

// One Linear or Conv2d map of a model, either dense (one capture layer) or factorised through a rank r
// as W = U·V (two capture layers, the first without bias):
//   Linear  in → out:  V = Linear(in → r), then U = Linear(r → out)
//   Conv2d  C_in → C_out, k×k:  V = the k×k conv C_in → r (same stride, padding, dilation),
//                               then U = a 1×1 conv r → C_out
// The factors are ordinary capture layers, so capture and every curvature optimizer work on them.
template <class Layer>
struct FactoredLayer {
  std::vector<Layer> parts;  // in forward order: [dense] or [V, U]

  torch::Tensor forward(torch::Tensor x) {
    for (auto& part : parts) x = part->forward(x);
    return x;
  }
};

// A Linear map in → out with `rank` (0 = dense).
FactoredLayer<CaptureLinear> make_linear(int64_t in_features, int64_t out_features, int64_t rank);

// A Conv2d map with `rank` (0 = dense).
FactoredLayer<CaptureConv2d> make_conv2d(const torch::nn::Conv2dOptions& options, int64_t rank);

// The rank a model gives a map with `fan_in` inputs per output (in_features, or C_in·kh·kw) and
// `fan_out` outputs when asked for `rank`: `rank` if factorising saves weights
// (rank·(fan_in + fan_out) < fan_in·fan_out), else 0, so a small layer (e.g. the classifier) stays dense.
int64_t saving_rank(int64_t fan_in, int64_t fan_out, int64_t rank);

}  // namespace ngd
