#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "base/options.h"
#include "models/capture_layers.h"
#include "models/lowrank/layer_shape.h"

namespace ngd {

// One Linear/Conv2d map held in some low-rank format (dense, matrix U·V, tensor train, Tucker-2), built
// only from capture layers (plus, at most, a bias of its own), so that capture and every curvature
// optimizer see its factors as ordinary Linear/Conv2d layers.
class TensorizedLayer : public torch::nn::Module {
 public:
  // Input and output as the dense map's: Linear (..., in) → (..., out); Conv2d (N, C_in, H, W) → (N, C_out, H', W').
  virtual torch::Tensor forward(const torch::Tensor& input) = 0;
  // A Linear map on sequences (batch, tokens, in) whose capture layers record the real tokens only
  // (`token_mask`, batch × tokens; CaptureLinear::forward_tokens). Only formats whose registry entry
  // says records_token_mask implement it.
  virtual torch::Tensor forward_tokens(const torch::Tensor& input, const torch::Tensor& token_mask);
  // The equivalent dense weight (out × in, or C_out × C_in × kh × kw), differentiable through the factors.
  virtual torch::Tensor dense_weight() = 0;
  // The bias added to the output (undefined when the map has none).
  virtual torch::Tensor dense_bias() = 0;
  // Its capture layers, in forward order.
  virtual std::vector<std::shared_ptr<CaptureLayer>> capture_layers() = 0;
  // The format's ranks: [] dense, [r] matrix, the TT-ranks r_1…r_{d−1}, or [r_in, r_out] Tucker-2.
  virtual std::vector<int64_t> ranks() const = 0;
};

// A model's compressible map: a slot holding one TensorizedLayer, which compression can replace
// (replace()) by a factored version of the same map; the model's forward calls this slot only.
class CompressibleLayerImpl : public torch::nn::Module {
 public:
  CompressibleLayerImpl(const LayerShape& shape, std::string format, std::shared_ptr<TensorizedLayer> layer);
  torch::Tensor forward(const torch::Tensor& input) { return layer_->forward(input); }
  torch::Tensor forward_tokens(const torch::Tensor& input, const torch::Tensor& token_mask) {
    return layer_->forward_tokens(input, token_mask);
  }

  const LayerShape& shape() const { return shape_; }
  const std::string& format() const { return format_; }
  TensorizedLayer& layer() { return *layer_; }
  // Puts `layer` (same shape) in the slot, in the old layer's place among the module's parameters.
  void replace(std::string format, std::shared_ptr<TensorizedLayer> layer);

 private:
  LayerShape shape_;
  std::string format_;
  std::shared_ptr<TensorizedLayer> layer_;
};
TORCH_MODULE(CompressibleLayer);

// How a model builds its compressible maps (model options `low_rank_format`, `rank`, `rank_ratio`).
struct LowRankSettings {
  std::string format = "dense";
  int64_t rank = 0;         // 0: take rank_ratio
  double rank_ratio = 0.0;  // rank = ceil(ratio × the map's full rank min(fan_in, out)); 0 with rank 0: dense
};

// The model options that set LowRankSettings: `low_rank_format` (a name of low_rank_format_registry()),
// `rank` and `rank_ratio` (at most one of them non-zero; a format other than dense needs one). At their
// defaults they are no part of a run's identity (OptionInfo::identity_at_default).
std::vector<OptionInfo> low_rank_options();
// The settings from resolved options; throws SpecError naming the option on a contradiction.
// Absent options (a model built from unresolved options) mean dense.
LowRankSettings low_rank_settings(const Options& options);

// The one layer factory every model calls for its compressible maps: the map of `shape` in the
// settings' format at their rank, or dense where that format at that rank would not save weights
// (a small map such as a classifier stays dense). Dense and matrix maps draw their initial weights
// exactly as the models' `rank` layers did before this factory, so earlier `rank` runs keep their numbers.
CompressibleLayer make_compressible_layer(const LayerShape& shape, const LowRankSettings& settings);

}  // namespace ngd
