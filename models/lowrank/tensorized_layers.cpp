#include "models/lowrank/tensorized_layers.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "models/lowrank/decompose.h"

namespace ngd {
namespace {

int64_t product(const std::vector<int64_t>& values) {
  return std::accumulate(values.begin(), values.end(), int64_t{1}, std::multiplies<>());
}

// Explicit padding of conv options. The padding is a variant whose namespace differs between
// LibTorch 1.13 (c10) and 2.x (std); `visit` is found by argument-dependent lookup in either.
struct ExplicitPadding {
  std::array<int64_t, 2> operator()(const torch::ExpandingArray<2>& padding) const { return {(*padding)[0], (*padding)[1]}; }
  std::array<int64_t, 2> operator()(const torch::enumtype::kValid&) const { return {0, 0}; }
  std::array<int64_t, 2> operator()(const torch::enumtype::kSame&) const {
    throw std::invalid_argument("a tensorized conv needs explicit padding, not 'same'");
  }
};

std::array<int64_t, 2> explicit_padding(const torch::nn::Conv2dOptions& options) {
  return visit(ExplicitPadding{}, options.padding());
}

// The TT-ranks r_1…r_{d−1} for a requested `rank`: r_k = min(rank, r_{k−1}·n_k·m_k, Π_{i>k} n_i·m_i),
// the most the k-th unfolding of a TT-SVD can carry.
std::vector<int64_t> capped_tt_ranks(const std::vector<int64_t>& out_modes, const std::vector<int64_t>& in_modes,
                                     int64_t rank) {
  std::vector<int64_t> ranks;
  int64_t before = 1;
  for (size_t k = 0; k + 1 < in_modes.size(); ++k) {
    int64_t after = 1;
    for (size_t i = k + 1; i < in_modes.size(); ++i) after *= out_modes[i] * in_modes[i];
    before = std::min({rank, before * out_modes[k] * in_modes[k], after});
    ranks.push_back(before);
  }
  return ranks;
}

int64_t tt_weight_count(const std::vector<int64_t>& out_modes, const std::vector<int64_t>& in_modes,
                        const std::vector<int64_t>& ranks) {
  int64_t count = 0;
  for (size_t k = 0; k < in_modes.size(); ++k) {
    const int64_t before = k == 0 ? 1 : ranks[k - 1];
    const int64_t after = k + 1 == in_modes.size() ? 1 : ranks[k];
    count += before * out_modes[k] * in_modes[k] * after;
  }
  return count;
}

// A tt map's modes: Linear in and out in kTtCores modes each; Conv2d channels in kTtCores − 1 modes,
// then the spatial mode (kh·kw in, 1 out).
struct TtModes {
  std::vector<int64_t> in, out;
};
TtModes tt_modes(const LayerShape& shape) {
  if (shape.kind == CaptureLayer::Kind::kLinear) {
    return {balanced_modes(shape.in, kTtCores), balanced_modes(shape.out, kTtCores)};
  }
  TtModes modes{balanced_modes(shape.in, kTtCores - 1), balanced_modes(shape.out, kTtCores - 1)};
  modes.in.push_back(shape.kernel_area());
  modes.out.push_back(1);
  return modes;
}

std::vector<int64_t> drop_last(std::vector<int64_t> values) {
  values.pop_back();
  return values;
}

std::shared_ptr<TensorizedLayer> make_tt(const LayerShape& shape, int64_t rank) {
  const auto modes = tt_modes(shape);
  const auto ranks = capped_tt_ranks(modes.out, modes.in, rank);
  if (shape.kind == CaptureLayer::Kind::kLinear) return std::make_shared<TtLinear>(modes.in, modes.out, ranks, shape.bias);
  return std::make_shared<TtConv2d>(*shape.conv, drop_last(modes.in), drop_last(modes.out), ranks);
}

void copy_bias(TensorizedLayer& layer, const torch::Tensor& bias) {
  if (bias.defined()) layer.dense_bias().copy_(bias);
}

// Moves a freshly built layer to the weight's dtype and device before the decomposition is copied in.
std::shared_ptr<TensorizedLayer> on_weight_device(std::shared_ptr<TensorizedLayer> layer, const torch::Tensor& weight) {
  layer->to(weight.device(), weight.scalar_type());
  return layer;
}

std::shared_ptr<TensorizedLayer> decompose_dense(const LayerShape& shape, int64_t, const torch::Tensor& weight,
                                                 const torch::Tensor& bias) {
  auto layer = on_weight_device(std::make_shared<DenseLayer>(shape), weight);
  torch::NoGradGuard no_grad;
  layer->dense_weight().copy_(weight);
  copy_bias(*layer, bias);
  return layer;
}

std::shared_ptr<TensorizedLayer> decompose_matrix(const LayerShape& shape, int64_t rank, const torch::Tensor& weight,
                                                  const torch::Tensor& bias) {
  const int64_t r = std::min(rank, shape.full_rank());
  auto layer = std::make_shared<MatrixLowRankLayer>(shape, r);
  on_weight_device(layer, weight);
  torch::NoGradGuard no_grad;
  const auto factors = truncated_svd(weight, r);
  layer->v().weight().copy_(factors.first);
  layer->u().weight().copy_(factors.second);
  copy_bias(*layer, bias);
  return layer;
}

std::shared_ptr<TensorizedLayer> decompose_tt(const LayerShape& shape, int64_t rank, const torch::Tensor& weight,
                                              const torch::Tensor& bias) {
  auto layer = on_weight_device(make_tt(shape, rank), weight);
  TtLinear& matrix =
      shape.kind == CaptureLayer::Kind::kLinear ? static_cast<TtLinear&>(*layer) : static_cast<TtConv2d&>(*layer).matrix();
  torch::NoGradGuard no_grad;
  const auto cores = tt_svd(weight.reshape({shape.out, shape.fan_in()}), matrix.out_modes(), matrix.in_modes(), rank);
  for (size_t k = 0; k < cores.size(); ++k) matrix.core(k).copy_(cores[k]);
  copy_bias(*layer, bias);
  return layer;
}

int64_t tucker2_weight_count(const LayerShape& shape, int64_t rank) {
  const int64_t rank_in = std::min(rank, shape.in);
  const int64_t rank_out = std::min(rank, shape.out);
  return shape.in * rank_in + rank_in * rank_out * shape.kernel_area() + rank_out * shape.out;
}

std::shared_ptr<TensorizedLayer> decompose_tucker2(const LayerShape& shape, int64_t rank, const torch::Tensor& weight,
                                                   const torch::Tensor& bias) {
  if (shape.kind == CaptureLayer::Kind::kLinear) return decompose_matrix(shape, rank, weight, bias);
  auto layer = std::make_shared<Tucker2Conv2d>(*shape.conv, std::min(rank, shape.in), std::min(rank, shape.out));
  on_weight_device(layer, weight);
  torch::NoGradGuard no_grad;
  const auto factors = tucker2(weight, layer->ranks()[0], layer->ranks()[1]);
  layer->first().weight().copy_(factors.first);
  layer->core().weight().copy_(factors.core);
  layer->last().weight().copy_(factors.last);
  copy_bias(*layer, bias);
  return layer;
}

}  // namespace

DenseLayer::DenseLayer(const LayerShape& shape) {
  if (shape.kind == CaptureLayer::Kind::kLinear) {
    part_ = register_module("dense", CaptureLinear(shape.in, shape.out, shape.bias));
  } else {
    part_ = register_module("dense", CaptureConv2d(*shape.conv));
  }
}

torch::Tensor DenseLayer::forward(const torch::Tensor& input) {
  if (part_->kind() == CaptureLayer::Kind::kLinear) return static_cast<CaptureLinearImpl&>(*part_).forward(input);
  return static_cast<CaptureConv2dImpl&>(*part_).forward(input);
}

torch::Tensor DenseLayer::forward_tokens(const torch::Tensor& input, const torch::Tensor& token_mask) {
  TORCH_CHECK(part_->kind() == CaptureLayer::Kind::kLinear, "forward_tokens: a Linear map only");
  return static_cast<CaptureLinearImpl&>(*part_).forward_tokens(input, token_mask);
}

MatrixLowRankLayer::MatrixLowRankLayer(const LayerShape& shape, int64_t rank) : shape_(shape), rank_(rank) {
  // V, then U, with these options: the random draws of the models' `rank` layers before this factory.
  if (shape.kind == CaptureLayer::Kind::kLinear) {
    v_ = register_module("v", CaptureLinear(shape.in, rank, /*bias=*/false));
    u_ = register_module("u", CaptureLinear(rank, shape.out, shape.bias));
  } else {
    auto spatial = *shape.conv;
    spatial.out_channels(rank).bias(false);
    v_ = register_module("v", CaptureConv2d(spatial));
    u_ = register_module("u", CaptureConv2d(torch::nn::Conv2dOptions(rank, shape.out, 1).bias(shape.bias)));
  }
}

torch::Tensor MatrixLowRankLayer::forward(const torch::Tensor& input) {
  if (shape_.kind == CaptureLayer::Kind::kLinear) {
    return static_cast<CaptureLinearImpl&>(*u_).forward(static_cast<CaptureLinearImpl&>(*v_).forward(input));
  }
  return static_cast<CaptureConv2dImpl&>(*u_).forward(static_cast<CaptureConv2dImpl&>(*v_).forward(input));
}

torch::Tensor MatrixLowRankLayer::forward_tokens(const torch::Tensor& input, const torch::Tensor& token_mask) {
  TORCH_CHECK(shape_.kind == CaptureLayer::Kind::kLinear, "forward_tokens: a Linear map only");
  const auto inner = static_cast<CaptureLinearImpl&>(*v_).forward_tokens(input, token_mask);
  return static_cast<CaptureLinearImpl&>(*u_).forward_tokens(inner, token_mask);
}

torch::Tensor MatrixLowRankLayer::dense_weight() {
  return u_->weight().reshape({shape_.out, rank_}).mm(v_->weight().reshape({rank_, shape_.fan_in()})).reshape(shape_.weight_sizes());
}

TtLinear::TtLinear(std::vector<int64_t> in_modes, std::vector<int64_t> out_modes, std::vector<int64_t> ranks, bool bias)
    : in_modes_(std::move(in_modes)), out_modes_(std::move(out_modes)), ranks_(std::move(ranks)) {
  const size_t d = in_modes_.size();
  if (d == 0 || out_modes_.size() != d || ranks_.size() + 1 != d) {
    throw std::invalid_argument(fmt::format("TtLinear: {} input modes, {} output modes and {} ranks (need d, d, d − 1)",
                                            d, out_modes_.size(), ranks_.size()));
  }
  // Each weight entry sums Π r_k products of d core entries: cores of standard deviation s give it
  // variance s^{2d}·Π r_k, set to a dense Linear's default 1/(3·fan_in).
  const double fan_in = static_cast<double>(product(in_modes_));
  const double core_std = std::pow(1.0 / (3.0 * fan_in * static_cast<double>(product(ranks_))), 1.0 / (2.0 * d));
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < d; ++k) {
    auto core = register_module(fmt::format("core{}", k + 1),
                                CaptureLinear(in_modes_[k] * rank_after(k), out_modes_[k] * rank_before(k), /*bias=*/false));
    core->weight().normal_(0.0, core_std);
    cores_.push_back(core);
  }
  if (bias) {
    const double bound = 1.0 / std::sqrt(fan_in);
    bias_ = register_parameter("bias", torch::empty({product(out_modes_)}).uniform_(-bound, bound));
  }
}

torch::Tensor TtLinear::forward(const torch::Tensor& input) {
  const size_t d = in_modes_.size();
  const int64_t in = product(in_modes_);
  TORCH_CHECK(input.dim() >= 2 && input.size(-1) == in, "TtLinear: expected input (batch, ..., ", in, "), got ",
              input.sizes());
  // (batch, lead positions, m_1…m_d, r_d = 1); the cores append their output modes n_d, n_{d−1}, …
  // after the input modes not yet contracted, and the rank axis stays last.
  const int64_t batch = input.size(0);
  const int64_t lead = input.numel() / (batch * in);
  std::vector<int64_t> shape{batch, lead};
  shape.insert(shape.end(), in_modes_.begin(), in_modes_.end());
  shape.push_back(1);
  auto state = input.reshape(shape);
  for (size_t step = 0; step < d; ++step) {
    const size_t k = d - 1 - step;
    const int64_t mode_axis = 2 + static_cast<int64_t>(k);
    std::vector<int64_t> order;
    for (int64_t axis = 0; axis < state.dim() - 1; ++axis) {
      if (axis != mode_axis) order.push_back(axis);
    }
    order.push_back(mode_axis);
    order.push_back(state.dim() - 1);
    state = state.permute(order);
    auto kept = state.sizes().vec();
    kept.resize(kept.size() - 2);
    const int64_t positions = state.numel() / (batch * in_modes_[k] * rank_after(k));
    state = cores_[k]->forward(state.reshape({batch, positions, in_modes_[k] * rank_after(k)}));
    kept.push_back(out_modes_[k]);
    kept.push_back(rank_before(k));
    state = state.reshape(kept);
  }
  // (batch, lead, n_d, …, n_1, 1) → (batch, lead, n_1, …, n_d)
  std::vector<int64_t> order{0, 1};
  for (int64_t axis = 1 + static_cast<int64_t>(d); axis >= 2; --axis) order.push_back(axis);
  auto output_shape = input.sizes().vec();
  output_shape.back() = product(out_modes_);
  auto output = state.squeeze(-1).permute(order).reshape(output_shape);
  return bias_.defined() ? output + bias_ : output;
}

torch::Tensor TtLinear::core(size_t k) {
  return cores_[k]->weight().view({out_modes_[k], rank_before(k), in_modes_[k], rank_after(k)}).permute({1, 0, 2, 3});
}

torch::Tensor TtLinear::dense_weight() {
  // W[(I, i), (J, j), b] = Σ_a W[I, J, a]·G_k[a, i, j, b], starting from G_1 (r_0 = 1).
  auto merged = core(0).squeeze(0);
  for (size_t k = 1; k < in_modes_.size(); ++k) {
    merged = torch::einsum("IJa,aijb->IiJjb", {merged, core(k)});
    merged = merged.reshape({merged.size(0) * merged.size(1), merged.size(2) * merged.size(3), merged.size(4)});
  }
  return merged.squeeze(-1);
}

std::vector<std::shared_ptr<CaptureLayer>> TtLinear::capture_layers() {
  std::vector<std::shared_ptr<CaptureLayer>> layers;
  // The forward contracts core d first.
  for (auto it = cores_.rbegin(); it != cores_.rend(); ++it) layers.push_back(it->ptr());
  return layers;
}

TtConv2d::TtConv2d(const torch::nn::Conv2dOptions& options, std::vector<int64_t> in_channel_modes,
                   std::vector<int64_t> out_channel_modes, std::vector<int64_t> ranks)
    : options_(options) {
  if (options.groups() != 1) throw std::invalid_argument("TtConv2d needs groups = 1");
  if (product(in_channel_modes) != options.in_channels() || product(out_channel_modes) != options.out_channels()) {
    throw std::invalid_argument(fmt::format("TtConv2d: channel modes multiply to {} → {}, the conv has {} → {}",
                                            product(in_channel_modes), product(out_channel_modes),
                                            options.in_channels(), options.out_channels()));
  }
  in_channel_modes.push_back((*options.kernel_size())[0] * (*options.kernel_size())[1]);
  out_channel_modes.push_back(1);
  matrix_ = register_module("matrix", std::make_shared<TtLinear>(std::move(in_channel_modes), std::move(out_channel_modes),
                                                                 std::move(ranks), options.bias()));
}

torch::Tensor TtConv2d::forward(const torch::Tensor& input) {
  const auto kernel = *options_.kernel_size();
  const auto stride = *options_.stride();
  const auto dilation = *options_.dilation();
  const auto padding = explicit_padding(options_);
  const auto patches = torch::nn::functional::unfold(
      input, torch::nn::functional::UnfoldFuncOptions({kernel[0], kernel[1]})
                 .dilation({dilation[0], dilation[1]})
                 .padding({padding[0], padding[1]})
                 .stride({stride[0], stride[1]}));  // N, C_in·kh·kw, S
  const int64_t height = (input.size(2) + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) / stride[0] + 1;
  const int64_t width = (input.size(3) + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) / stride[1] + 1;
  const auto output = matrix_->forward(patches.transpose(1, 2));  // N, S, C_out
  return output.transpose(1, 2).reshape({input.size(0), options_.out_channels(), height, width});
}

torch::Tensor TtConv2d::dense_weight() {
  const auto kernel = *options_.kernel_size();
  return matrix_->dense_weight().reshape({options_.out_channels(), options_.in_channels(), kernel[0], kernel[1]});
}

Tucker2Conv2d::Tucker2Conv2d(const torch::nn::Conv2dOptions& options, int64_t rank_in, int64_t rank_out)
    : rank_in_(rank_in), rank_out_(rank_out) {
  if (options.groups() != 1) throw std::invalid_argument("Tucker2Conv2d needs groups = 1");
  first_ = register_module("first", CaptureConv2d(torch::nn::Conv2dOptions(options.in_channels(), rank_in, 1).bias(false)));
  auto core = options;
  core.in_channels(rank_in).out_channels(rank_out).bias(false);
  core_ = register_module("core", CaptureConv2d(core));
  last_ = register_module("last", CaptureConv2d(torch::nn::Conv2dOptions(rank_out, options.out_channels(), 1).bias(options.bias())));
}

torch::Tensor Tucker2Conv2d::forward(const torch::Tensor& input) {
  return last_->forward(core_->forward(first_->forward(input)));
}

torch::Tensor Tucker2Conv2d::dense_weight() {
  const auto u_out = last_->weight().flatten(1);   // C_out × r_out
  const auto u_in_t = first_->weight().flatten(1);  // r_in × C_in
  return torch::einsum("ob,baxy,ai->oixy", {u_out, core_->weight(), u_in_t});
}

std::vector<int64_t> balanced_modes(int64_t extent, size_t count) {
  if (extent < 1 || count < 1) throw std::invalid_argument("balanced_modes: needs extent ≥ 1 and count ≥ 1");
  std::vector<int64_t> primes;
  int64_t rest = extent;
  for (int64_t p = 2; p * p <= rest; ++p) {
    while (rest % p == 0) {
      primes.push_back(p);
      rest /= p;
    }
  }
  if (rest > 1) primes.push_back(rest);
  std::sort(primes.rbegin(), primes.rend());
  std::vector<int64_t> modes(count, 1);
  for (const int64_t p : primes) *std::min_element(modes.begin(), modes.end()) *= p;
  std::sort(modes.rbegin(), modes.rend());
  return modes;
}

const std::vector<LowRankFormat>& low_rank_format_registry() {
  static const std::vector<LowRankFormat> table = {
      {"dense", "the map's dense weight",
       [](const LayerShape& shape, int64_t) -> std::shared_ptr<TensorizedLayer> { return std::make_shared<DenseLayer>(shape); },
       decompose_dense, [](const LayerShape& shape, int64_t) { return shape.dense_weights(); }},
      {"matrix", "W = U·V through rank r (conv: k×k conv to r channels, then 1×1); r·(fan_in + out) weights",
       [](const LayerShape& shape, int64_t rank) -> std::shared_ptr<TensorizedLayer> {
         return std::make_shared<MatrixLowRankLayer>(shape, std::min(rank, shape.full_rank()));
       },
       decompose_matrix,
       [](const LayerShape& shape, int64_t rank) { return std::min(rank, shape.full_rank()) * (shape.fan_in() + shape.out); }},
      {"tt", "tensor train with every TT-rank r (Linear: 3 cores; conv: 2 channel cores + a spatial core); Σ r_{k−1}·n_k·m_k·r_k weights",
       make_tt, decompose_tt,
       [](const LayerShape& shape, int64_t rank) {
         const auto modes = tt_modes(shape);
         return tt_weight_count(modes.out, modes.in, capped_tt_ranks(modes.out, modes.in, rank));
       },
       /*records_token_mask=*/false},  // a core's capture layer sees the other modes as positions
      {"tucker2", "conv: Tucker-2 with r_in = min(r, C_in), r_out = min(r, C_out); C_in·r_in + r_in·r_out·k² + r_out·C_out weights; a Linear map takes the matrix format",
       [](const LayerShape& shape, int64_t rank) -> std::shared_ptr<TensorizedLayer> {
         if (shape.kind == CaptureLayer::Kind::kLinear) return std::make_shared<MatrixLowRankLayer>(shape, std::min(rank, shape.full_rank()));
         return std::make_shared<Tucker2Conv2d>(*shape.conv, std::min(rank, shape.in), std::min(rank, shape.out));
       },
       decompose_tucker2,
       [](const LayerShape& shape, int64_t rank) {
         if (shape.kind == CaptureLayer::Kind::kLinear) return std::min(rank, shape.full_rank()) * (shape.fan_in() + shape.out);
         return tucker2_weight_count(shape, rank);
       }},
  };
  return table;
}

const LowRankFormat& low_rank_format(const std::string& name) {
  for (const auto& format : low_rank_format_registry()) {
    if (format.name == name) return format;
  }
  std::string names;
  for (const auto& format : low_rank_format_registry()) names += (names.empty() ? "" : ", ") + format.name;
  throw std::invalid_argument(fmt::format("unknown low-rank format '{}' (known: {})", name, names));
}

}  // namespace ngd
