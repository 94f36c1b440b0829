#include "models/lowrank/decompose.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "models/lowrank/tensorized_layers.h"

namespace ngd {

LowRankFactors truncated_svd(const torch::Tensor& weight, int64_t rank) {
  const int64_t out = weight.size(0);
  const auto matrix = weight.reshape({out, -1});
  if (rank < 1 || rank > std::min(matrix.size(0), matrix.size(1))) {
    throw std::invalid_argument(fmt::format("truncated_svd: rank {} outside 1…{} for a {}×{} weight", rank,
                                            std::min(matrix.size(0), matrix.size(1)), matrix.size(0), matrix.size(1)));
  }
  const auto [u, s, vh] = torch::linalg_svd(matrix, /*full_matrices=*/false);
  const auto root = s.slice(0, 0, rank).sqrt();
  auto first = root.unsqueeze(1) * vh.slice(0, 0, rank);   // r × fan_in
  auto second = u.slice(1, 0, rank) * root.unsqueeze(0);   // out × r
  if (weight.dim() == 4) {
    first = first.reshape({rank, weight.size(1), weight.size(2), weight.size(3)});
    second = second.reshape({out, rank, 1, 1});
  }
  return {first.contiguous(), second.contiguous()};
}

Tucker2Factors tucker2(const torch::Tensor& conv_weight, int64_t rank_in, int64_t rank_out) {
  if (conv_weight.dim() != 4) throw std::invalid_argument("tucker2: expected a conv weight C_out × C_in × kh × kw");
  const int64_t c_out = conv_weight.size(0);
  const int64_t c_in = conv_weight.size(1);
  const auto mode_out = conv_weight.reshape({c_out, -1});
  const auto mode_in = conv_weight.transpose(0, 1).reshape({c_in, -1});
  const int64_t max_out = std::min(mode_out.size(0), mode_out.size(1));
  const int64_t max_in = std::min(mode_in.size(0), mode_in.size(1));
  if (rank_out < 1 || rank_out > max_out || rank_in < 1 || rank_in > max_in) {
    throw std::invalid_argument(fmt::format("tucker2: ranks (in {}, out {}) outside 1…{} and 1…{} for a {}×{}×{}×{} weight",
                                            rank_in, rank_out, max_in, max_out, c_out, c_in, conv_weight.size(2),
                                            conv_weight.size(3)));
  }
  const auto u_out = std::get<0>(torch::linalg_svd(mode_out, /*full_matrices=*/false)).slice(1, 0, rank_out);
  const auto u_in = std::get<0>(torch::linalg_svd(mode_in, /*full_matrices=*/false)).slice(1, 0, rank_in);
  const auto core = torch::einsum("oixy,ob,ia->baxy", {conv_weight, u_out, u_in});
  return {u_in.t().reshape({rank_in, c_in, 1, 1}).contiguous(), core.contiguous(),
          u_out.reshape({c_out, rank_out, 1, 1}).contiguous()};
}

std::vector<torch::Tensor> tt_svd(const torch::Tensor& weight, const std::vector<int64_t>& out_modes,
                                  const std::vector<int64_t>& in_modes, int64_t max_rank) {
  const size_t d = in_modes.size();
  if (d == 0 || out_modes.size() != d || max_rank < 1) {
    throw std::invalid_argument("tt_svd: needs as many output as input modes (at least one) and max_rank ≥ 1");
  }
  // (n_1…n_d, m_1…m_d) → (n_1, m_1, n_2, m_2, …): core k's modes side by side.
  std::vector<int64_t> sizes(out_modes);
  sizes.insert(sizes.end(), in_modes.begin(), in_modes.end());
  std::vector<int64_t> order;
  for (size_t k = 0; k < d; ++k) {
    order.push_back(static_cast<int64_t>(k));
    order.push_back(static_cast<int64_t>(d + k));
  }
  auto rest = weight.reshape(sizes).permute(order).contiguous();
  std::vector<torch::Tensor> cores;
  int64_t rank_before = 1;
  for (size_t k = 0; k + 1 < d; ++k) {
    const auto unfolding = rest.reshape({rank_before * out_modes[k] * in_modes[k], -1});
    const auto [u, s, vh] = torch::linalg_svd(unfolding, /*full_matrices=*/false);
    const int64_t rank = std::min({max_rank, unfolding.size(0), unfolding.size(1)});
    cores.push_back(u.slice(1, 0, rank).reshape({rank_before, out_modes[k], in_modes[k], rank}).contiguous());
    rest = s.slice(0, 0, rank).unsqueeze(1) * vh.slice(0, 0, rank);
    rank_before = rank;
  }
  cores.push_back(rest.reshape({rank_before, out_modes[d - 1], in_modes[d - 1], 1}).contiguous());
  return cores;
}

void compress_model(CaptureModel& model, const std::vector<int64_t>& ranks, const std::string& format_name) {
  const auto& layers = model.compressible_layers();
  if (ranks.size() != layers.size()) {
    throw std::invalid_argument(fmt::format("compress_model: {} ranks for {} compressible layers", ranks.size(), layers.size()));
  }
  const auto& format = low_rank_format(format_name);
  const auto& dense = low_rank_format("dense");
  for (size_t i = 0; i < layers.size(); ++i) {
    auto& layer = *layers[i].second;
    const auto& shape = layer.shape();
    const auto weight = layer.layer().dense_weight().detach();
    const auto bias = shape.bias ? layer.layer().dense_bias().detach() : torch::Tensor();
    const bool saves = ranks[i] > 0 && format.weights(shape, ranks[i]) < shape.dense_weights();
    const auto& chosen = saves ? format : dense;
    layer.replace(chosen.name, chosen.decompose(shape, ranks[i], weight, bias));
  }
  model.relist_capture_layers();
}

}  // namespace ngd
