#include "models/factored_layer.h"

#include <algorithm>
#include <stdexcept>

namespace ngd {

FactoredLayer<CaptureLinear> make_linear(int64_t in_features, int64_t out_features, int64_t rank) {
  if (rank == 0) return {{CaptureLinear(in_features, out_features)}};
  return {{CaptureLinear(in_features, rank, /*bias=*/false), CaptureLinear(rank, out_features)}};
}

FactoredLayer<CaptureConv2d> make_conv2d(const torch::nn::Conv2dOptions& options, int64_t rank) {
  if (rank == 0) return {{CaptureConv2d(options)}};
  auto spatial = options;
  spatial.out_channels(rank).bias(false);
  const auto pointwise = torch::nn::Conv2dOptions(rank, options.out_channels(), 1).bias(options.bias());
  return {{CaptureConv2d(spatial), CaptureConv2d(pointwise)}};
}

int64_t saving_rank(int64_t fan_in, int64_t fan_out, int64_t rank) {
  if (rank < 0) throw std::invalid_argument("rank must be 0 (dense) or positive");
  // rank·(fan_in + fan_out) < fan_in·fan_out implies rank < min(fan_in, fan_out): tested first, so
  // that a huge rank cannot overflow the products.
  if (rank == 0 || rank >= std::min(fan_in, fan_out)) return 0;
  return rank * (fan_in + fan_out) < fan_in * fan_out ? rank : 0;
}

}  // namespace ngd
