#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/model.h"

namespace ngd {

// Truncated SVD of a Linear (out × in) or Conv2d (C_out × C_in × kh × kw) weight at rank r, σ split as √σ
// on each side: W ≈ second · first with first = √Σ_r V_rᵀ, second = U_r √Σ_r. Shaped as the matrix
// format's layers: Linear first r × in, second out × r; Conv2d first r × C_in × kh × kw (the k×k conv),
// second C_out × r × 1 × 1 (the 1×1 conv).
struct LowRankFactors {
  torch::Tensor first, second;
};
LowRankFactors truncated_svd(const torch::Tensor& weight, int64_t rank);

// Tucker-2 of a conv kernel K (C_out × C_in × kh × kw) by HOSVD: U_out the leading r_out left singular
// vectors of K's mode-1 unfolding (C_out × C_in·kh·kw), U_in those of its mode-2 unfolding, the core
// K ×_1 U_outᵀ ×_2 U_inᵀ. Shaped as Tucker2Conv2d's layers: first r_in × C_in × 1 × 1 (U_inᵀ), core
// r_out × r_in × kh × kw, last C_out × r_out × 1 × 1 (U_out). Exact when K's multilinear ranks are ≤ (r_out, r_in).
struct Tucker2Factors {
  torch::Tensor first, core, last;
};
Tucker2Factors tucker2(const torch::Tensor& conv_weight, int64_t rank_in, int64_t rank_out);

// TT-SVD (Oseledets 2011) of the matrix `weight` (Π out_modes × Π in_modes) with every TT-rank at most
// `max_rank`: the cores G_k (r_{k−1} × n_k × m_k × r_k) of TtLinear's layout. Exact when the
// unfoldings' ranks are ≤ max_rank.
std::vector<torch::Tensor> tt_svd(const torch::Tensor& weight, const std::vector<int64_t>& out_modes,
                                  const std::vector<int64_t>& in_modes, int64_t max_rank);

// Replaces every compressible layer of `model` (CaptureModel::compressible_layers(), in order; one
// rank each) by its `format` decomposition at that rank (low_rank_format(format).decompose), keeping
// biases; a layer whose rank is 0, or at which the format would not save weights, becomes dense.
// The factors are capture layers, and capture_layers() lists them afterwards, so every optimizer
// built after this call (curvature ones included) can fine-tune them. Parameters keep the dtype and
// device of the layer they replace. Throws std::invalid_argument on a rank count that does not
// match or an unknown format.
void compress_model(CaptureModel& model, const std::vector<int64_t>& ranks, const std::string& format);

}  // namespace ngd
