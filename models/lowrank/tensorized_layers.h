#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/capture_layers.h"
#include "models/lowrank/compressible_layer.h"
#include "models/lowrank/layer_shape.h"

namespace ngd {

// The formats a compressible map can take. A format is one TensorizedLayer class plus one entry in
// low_rank_format_registry().

// One dense capture layer.
class DenseLayer : public TensorizedLayer {
 public:
  explicit DenseLayer(const LayerShape& shape);
  torch::Tensor forward(const torch::Tensor& input) override;
  torch::Tensor forward_tokens(const torch::Tensor& input, const torch::Tensor& token_mask) override;
  torch::Tensor dense_weight() override { return part_->weight(); }
  torch::Tensor dense_bias() override { return part_->bias(); }
  std::vector<std::shared_ptr<CaptureLayer>> capture_layers() override { return {part_}; }
  std::vector<int64_t> ranks() const override { return {}; }

 private:
  std::shared_ptr<CaptureLayer> part_;
};

// W = U·V through rank r: Linear in → r → out; Conv2d the k×k conv
// C_in → r (the map's stride, padding, dilation), then a 1×1 conv r → C_out. The bias sits on U.
class MatrixLowRankLayer : public TensorizedLayer {
 public:
  MatrixLowRankLayer(const LayerShape& shape, int64_t rank);
  torch::Tensor forward(const torch::Tensor& input) override;
  torch::Tensor forward_tokens(const torch::Tensor& input, const torch::Tensor& token_mask) override;
  torch::Tensor dense_weight() override;
  torch::Tensor dense_bias() override { return u_->bias(); }
  std::vector<std::shared_ptr<CaptureLayer>> capture_layers() override { return {v_, u_}; }
  std::vector<int64_t> ranks() const override { return {rank_}; }
  CaptureLayer& v() { return *v_; }
  CaptureLayer& u() { return *u_; }

 private:
  LayerShape shape_;
  int64_t rank_;
  std::shared_ptr<CaptureLayer> v_, u_;
};

// A tensor-train matrix (Novikov et al. 2015): with in = Π m_k and out = Π n_k,
//   W[(i_1…i_d), (j_1…j_d)] = G_1[:, i_1, j_1, :] · G_2[:, i_2, j_2, :] ⋯ G_d[:, i_d, j_d, :],
// G_k ∈ R^{r_{k−1} × n_k × m_k × r_k}, r_0 = r_d = 1 (row-major multi-indices). Core k is the capture
// Linear m_k·r_k → n_k·r_{k−1} (weight[(i, a), (j, c)] = G_k[a, i, j, c]), applied to the input
// reshaped so that the other modes are positions (a 3-D input, as a Linear on sequences). The cores
// are contracted from the last to the first. The bias (out) is a parameter of its own.
class TtLinear : public TensorizedLayer {
 public:
  // `ranks`: r_1…r_{d−1}; in_modes and out_modes have d entries each.
  TtLinear(std::vector<int64_t> in_modes, std::vector<int64_t> out_modes, std::vector<int64_t> ranks, bool bias);
  torch::Tensor forward(const torch::Tensor& input) override;
  torch::Tensor dense_weight() override;
  torch::Tensor dense_bias() override { return bias_; }
  std::vector<std::shared_ptr<CaptureLayer>> capture_layers() override;
  std::vector<int64_t> ranks() const override { return ranks_; }
  // G_k as r_{k−1} × n_k × m_k × r_k (a view of core k's weight), k = 0…d−1.
  torch::Tensor core(size_t k);
  const std::vector<int64_t>& in_modes() const { return in_modes_; }
  const std::vector<int64_t>& out_modes() const { return out_modes_; }

 private:
  int64_t rank_before(size_t k) const { return k == 0 ? 1 : ranks_[k - 1]; }
  int64_t rank_after(size_t k) const { return k + 1 == in_modes_.size() ? 1 : ranks_[k]; }

  std::vector<int64_t> in_modes_, out_modes_, ranks_;
  std::vector<CaptureLinear> cores_;
  torch::Tensor bias_;
};

// A TT Conv2d (Garipov et al. 2016): the kernel as the matrix C_out × C_in·kh·kw in TT form with input
// modes (m_1…m_d, kh·kw) and output modes (n_1…n_d, 1), C_in = Π m_k, C_out = Π n_k, so the last core
// is the spatial one. Forward: the im2col patches (N, S, C_in·kh·kw), the TtLinear with the S output
// positions as positions, folded back to (N, C_out, H', W').
class TtConv2d : public TensorizedLayer {
 public:
  TtConv2d(const torch::nn::Conv2dOptions& options, std::vector<int64_t> in_channel_modes,
           std::vector<int64_t> out_channel_modes, std::vector<int64_t> ranks);
  torch::Tensor forward(const torch::Tensor& input) override;
  torch::Tensor dense_weight() override;
  torch::Tensor dense_bias() override { return matrix_->dense_bias(); }
  std::vector<std::shared_ptr<CaptureLayer>> capture_layers() override { return matrix_->capture_layers(); }
  std::vector<int64_t> ranks() const override { return matrix_->ranks(); }
  TtLinear& matrix() { return *matrix_; }

 private:
  torch::nn::Conv2dOptions options_;
  std::shared_ptr<TtLinear> matrix_;
};

// Tucker-2 of a conv kernel (Kim et al. 2016): K = core ×_1 U_out ×_2 U_in, run as the 1×1 conv
// C_in → r_in (U_inᵀ), the k×k core conv r_in → r_out (the map's stride, padding, dilation), and the
// 1×1 conv r_out → C_out (U_out, with the bias).
class Tucker2Conv2d : public TensorizedLayer {
 public:
  Tucker2Conv2d(const torch::nn::Conv2dOptions& options, int64_t rank_in, int64_t rank_out);
  torch::Tensor forward(const torch::Tensor& input) override;
  torch::Tensor dense_weight() override;
  torch::Tensor dense_bias() override { return last_->bias(); }
  std::vector<std::shared_ptr<CaptureLayer>> capture_layers() override { return {first_, core_, last_}; }
  std::vector<int64_t> ranks() const override { return {rank_in_, rank_out_}; }
  CaptureConv2dImpl& first() { return *first_; }
  CaptureConv2dImpl& core() { return *core_; }
  CaptureConv2dImpl& last() { return *last_; }

 private:
  int64_t rank_in_, rank_out_;
  std::shared_ptr<CaptureConv2dImpl> first_, core_, last_;
};

// The number of cores of the tt format's maps: a Linear's in and out are each split into this many
// modes, a conv's channels into this many minus one (its last core is spatial).
constexpr size_t kTtCores = 3;

// `extent` split into `count` factors as equal as can be (prime factors, largest first, each to the
// currently smallest factor), in descending order: 784, 4 → 7·7·4·4; a prime stays whole (7, 3 → 7·1·1).
std::vector<int64_t> balanced_modes(int64_t extent, size_t count);

// A low-rank format. `rank` is one number per map: matrix r; tt every TT-rank (each capped at what
// its unfolding allows); tucker2 r_in = min(r, C_in), r_out = min(r, C_out). Formats that do not
// apply to a kind of map fall back as their summary says.
struct LowRankFormat {
  std::string name;
  std::string summary;
  // A freshly initialised layer of `shape` at `rank` (rank ≥ 1; dense ignores it).
  std::function<std::shared_ptr<TensorizedLayer>(const LayerShape&, int64_t rank)> make;
  // The layer of `shape` at `rank` whose dense weight is this format's approximation of `weight`
  // (truncated SVD, TT-SVD, HOSVD; see models/lowrank/decompose.h), carrying `bias` (may be undefined).
  std::function<std::shared_ptr<TensorizedLayer>(const LayerShape&, int64_t rank, const torch::Tensor& weight,
                                                 const torch::Tensor& bias)>
      decompose;
  // Its weight count at `rank` (biases excluded).
  std::function<int64_t(const LayerShape&, int64_t rank)> weights;
  // Whether its Linear maps run on sequences with a token mask (TensorizedLayer::forward_tokens), as
  // the Transformer needs: false where a factor's capture layer sees other positions than the tokens.
  bool records_token_mask = true;
};

// dense, matrix, tt, tucker2. Adding a format: a TensorizedLayer class and one entry here.
const std::vector<LowRankFormat>& low_rank_format_registry();
// Throws std::invalid_argument listing the formats.
const LowRankFormat& low_rank_format(const std::string& name);

}  // namespace ngd
