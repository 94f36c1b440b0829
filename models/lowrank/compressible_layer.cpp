#include "models/lowrank/compressible_layer.h"

#include <cmath>

#include "base/spec_error.h"
#include "models/lowrank/tensorized_layers.h"

namespace ngd {
namespace {

// A rank at least a layer's smaller side saves no weights there, so no model needs more; the bound
// makes an absurd rank a spec error instead of an overflow (models/model_registry.cpp's bound).
constexpr int64_t kMaxRank = int64_t{1} << 20;

// The rank the settings give a map of `shape` (0: dense).
int64_t requested_rank(const LayerShape& shape, const LowRankSettings& settings) {
  if (settings.rank > 0) return settings.rank;
  return static_cast<int64_t>(std::ceil(settings.rank_ratio * static_cast<double>(shape.full_rank())));
}

}  // namespace

torch::Tensor TensorizedLayer::forward_tokens(const torch::Tensor&, const torch::Tensor&) {
  // Formats declare this in their registry entry (LowRankFormat::records_token_mask), which the
  // Transformer checks when it is built: reaching here is a format that declares what it lacks.
  throw std::logic_error("forward_tokens: this low-rank format records no token mask");
}

CompressibleLayerImpl::CompressibleLayerImpl(const LayerShape& shape, std::string format,
                                             std::shared_ptr<TensorizedLayer> layer)
    : shape_(shape), format_(std::move(format)), layer_(register_module("layer", std::move(layer))) {}

void CompressibleLayerImpl::replace(std::string format, std::shared_ptr<TensorizedLayer> layer) {
  // replace_module keeps the child's place, so parameters() keeps its order across compression.
  layer_ = replace_module("layer", std::move(layer));
  format_ = std::move(format);
}

std::vector<OptionInfo> low_rank_options() {
  std::vector<std::string> formats;
  for (const auto& format : low_rank_format_registry()) formats.push_back(format.name);
  std::vector<OptionInfo> options = {
      {"low_rank_format", "matrix",
       "format of each compressible Linear/Conv2d when rank or rank_ratio is set: matrix (W = U·V), tt "
       "(tensor train), tucker2 (convolutions; Linear maps take matrix), dense",
       formats},
      {"rank", 0, "rank of each compressible map where that saves weights (0 = take rank_ratio)", {},
       between(0, static_cast<double>(kMaxRank))},
      {"rank_ratio", 0.0, "rank as a fraction of each map's full rank min(fan_in, out), rounded up (0 = take rank)",
       {}, unit_interval()}};
  // Added after most models had results: at their defaults (dense) they stay out of the runs' identity.
  for (auto& option : options) option.identity_at_default = false;
  return options;
}

LowRankSettings low_rank_settings(const Options& options) {
  LowRankSettings settings;
  settings.format = options.json().value("low_rank_format", settings.format);
  settings.rank = options.json().value("rank", int64_t{0});
  settings.rank_ratio = options.json().value("rank_ratio", 0.0);
  if (settings.rank > 0 && settings.rank_ratio > 0) {
    throw SpecError("model.rank_ratio", "set rank or rank_ratio, not both");
  }
  const bool low_rank = settings.rank > 0 || settings.rank_ratio > 0;
  if (settings.format == "dense" && low_rank) {
    throw SpecError("model.low_rank_format", "\"dense\" takes no rank or rank_ratio");
  }
  if (settings.format != "dense" && settings.format != "matrix" && !low_rank) {
    throw SpecError("model.low_rank_format", "\"" + settings.format + "\" needs rank or rank_ratio");
  }
  return settings;
}

CompressibleLayer make_compressible_layer(const LayerShape& shape, const LowRankSettings& settings) {
  const auto& dense = low_rank_format("dense");
  const auto& format = low_rank_format(settings.format);
  const int64_t rank = requested_rank(shape, settings);
  if (rank > 0 && format.weights(shape, rank) < shape.dense_weights()) {
    return CompressibleLayer(shape, format.name, format.make(shape, rank));
  }
  return CompressibleLayer(shape, dense.name, dense.make(shape, 0));
}

}  // namespace ngd
