#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/model.h"

namespace ngd {

// What one Linear/Conv2d map of a model costs. Compressible layers are named as the model registered
// them, with kind "<format> linear" or "<format> conv2d" (e.g. "tt conv2d"); other capture layers are
// listed one by one as "dense linear"/"dense conv2d" under the name "capture<index>".
//   parameters               its weights and biases
//   multiply_adds_per_sample Σ over its capture layers of positions × weight entries, counted in the
//                            order the code contracts (a Linear on positions: one per position; a
//                            Conv2d: H_out·W_out); biases and reshapes not counted
struct LayerCost {
  std::string name;
  std::string kind;
  int64_t parameters = 0;
  int64_t multiply_adds_per_sample = 0;
  std::vector<int64_t> ranks;
};

// Runs one forward pass of a single zero sample of `input_shape` (C, H, W) through `model`.
std::vector<LayerCost> model_cost(Model& model, const std::vector<int64_t>& input_shape);

}  // namespace ngd
