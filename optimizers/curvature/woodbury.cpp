#include "optimizers/curvature/woodbury.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "base/device.h"
#include "optimizers/curvature/layer_statistics.h"

namespace ngd {
namespace {

// λ grows by an order of magnitude per failed factorisation: few tries, little over-damping.
constexpr double kDampingRaiseFactor = 10.0;
// 10²⁰·λ is far beyond any rounding trouble; a Gram that needs more is broken, not ill-conditioned.
constexpr int kMaxDampingRaises = 20;
// The first raise from a tiny λ goes to nλ = 1e-6·mean diag(K): a few float32 epsilons of K's scale.
constexpr double kRaiseFloorRelative = 1e-6;
// ...and to at least λ = 1e-12, so that a Gram of (nearly) zero gradients still gives finite c.
constexpr double kRaiseFloorAbsolute = 1e-12;

GramForm parse_gram_form(const std::string& name) {
  if (name == "auto") return GramForm::kAuto;
  if (name == "pairwise") return GramForm::kPairwise;
  if (name == "per_sample") return GramForm::kPerSample;
  if (name == "spatial_sum_approx") return GramForm::kSpatialSumApprox;
  throw std::invalid_argument("unknown gram_form \"" + name + "\"");
}

// n × n Gram of factored per-sample gradients u_i = Σ_s g_{i,s} a_{i,s}ᵀ, formed over blocks of
// sample pairs whose S·S products fit in `max_block_elements`.
torch::Tensor pairwise_gram(const torch::Tensor& inputs, const torch::Tensor& grad_outputs, int64_t max_block_elements) {
  const int64_t n = inputs.size(0), positions = inputs.size(1);
  const int64_t in = inputs.size(2), out = grad_outputs.size(2);
  const auto side = std::clamp<int64_t>(
      static_cast<int64_t>(std::sqrt(static_cast<double>(max_block_elements) / static_cast<double>(positions * positions))),
      1, n);
  auto gram = torch::empty({n, n}, inputs.options());
  for (int64_t i0 = 0; i0 < n; i0 += side) {
    const int64_t i1 = std::min(i0 + side, n);
    const auto inputs_i = inputs.slice(0, i0, i1).reshape({-1, in});
    const auto grads_i = grad_outputs.slice(0, i0, i1).reshape({-1, out});
    for (int64_t j0 = 0; j0 <= i0; j0 += side) {
      const int64_t j1 = std::min(j0 + side, n);
      const auto inputs_j = inputs.slice(0, j0, j1).reshape({-1, in});
      const auto grads_j = grad_outputs.slice(0, j0, j1).reshape({-1, out});
      const auto block = (inputs_i.mm(inputs_j.t()) * grads_i.mm(grads_j.t()))
                             .view({i1 - i0, positions, j1 - j0, positions})
                             .sum({1, 3});
      gram.slice(0, i0, i1).slice(1, j0, j1).copy_(block);
      gram.slice(0, j0, j1).slice(1, i0, i1).copy_(block.t());
    }
  }
  return gram;
}

}  // namespace

GramForm cheaper_exact_form(int64_t samples, int64_t positions, int64_t in, int64_t out) {
  const double n = static_cast<double>(samples), s = static_cast<double>(positions);
  const double weights = static_cast<double>(in) * static_cast<double>(out);
  const double pairwise_flops = n * n * s * s * static_cast<double>(in + out);
  const double per_sample_flops = n * s * weights + n * n * weights;
  const bool dense_no_larger = weights <= s * static_cast<double>(in + out);
  return dense_no_larger && per_sample_flops < pairwise_flops ? GramForm::kPerSample : GramForm::kPairwise;
}

SampleGradients SampleGradients::from_layer(CaptureLayer& layer, double loss_scale, GramForm form,
                                            int64_t max_block_elements) {
  TORCH_CHECK(layer.input().defined() && layer.grad_output().defined(),
              "capture layer has no recorded input or output gradient: the optimizer must request capture");
  const bool conv = layer.kind() == CaptureLayer::Kind::kConv2d;
  TORCH_CHECK(conv || layer.input().dim() == 2 || layer.input().dim() == 3,
              "Woodbury optimizers need Linear inputs of shape (batch, features) or (batch, tokens, features)");
  const bool positioned = has_positions(layer);
  SampleGradients gradients;
  gradients.max_block_elements_ = max_block_elements;
  if (form == GramForm::kAuto) {
    const auto& weight = layer.weight();
    const int64_t out = weight.size(0);
    const int64_t in = weight.numel() / out + (layer.has_bias() ? 1 : 0);
    const int64_t positions =
        conv ? layer.grad_output().size(2) * layer.grad_output().size(3) : (positioned ? layer.input().size(1) : 1);
    form = cheaper_exact_form(layer.input().size(0), positions, in, out);
  }
  if (form == GramForm::kPerSample) {
    gradients.dense_ = per_sample_gradients(layer) * loss_scale;
    return gradients;
  }
  auto inputs = input_rows(layer);
  auto grad_outputs = grad_output_rows(layer) * loss_scale;
  if (!positioned) {
    inputs = inputs.unsqueeze(1);
    grad_outputs = grad_outputs.unsqueeze(1);
  } else if (form == GramForm::kSpatialSumApprox) {
    inputs = inputs.mean(1, /*keepdim=*/true);
    grad_outputs = grad_outputs.mean(1, /*keepdim=*/true);
  }
  gradients.inputs_ = inputs;
  gradients.grad_outputs_ = grad_outputs;
  return gradients;
}

int64_t SampleGradients::samples() const { return dense() ? dense_.size(0) : inputs_.size(0); }

torch::Tensor SampleGradients::gram() const {
  if (dense()) {
    const auto rows = dense_.reshape({samples(), -1});
    return rows.mm(rows.t());
  }
  return pairwise_gram(inputs_, grad_outputs_, max_block_elements_);
}

torch::Tensor SampleGradients::project(const torch::Tensor& matrix) const {
  if (dense()) return dense_.reshape({samples(), -1}).mv(matrix.reshape({-1}));
  const int64_t in = inputs_.size(2), out = grad_outputs_.size(2);
  // ⟨Σ_s g_s a_sᵀ, V⟩ = Σ_s g_sᵀ V a_s, with V a_s for all rows in one product.
  const auto mapped = inputs_.reshape({-1, in}).mm(matrix.t());
  return (mapped * grad_outputs_.reshape({-1, out})).sum(1).view({samples(), -1}).sum(1);
}

torch::Tensor SampleGradients::combine(const torch::Tensor& coefficients) const {
  const auto weights = coefficients.to(dense() ? dense_.scalar_type() : inputs_.scalar_type());
  if (dense()) return weights.unsqueeze(0).mm(dense_.reshape({samples(), -1})).view({dense_.size(1), dense_.size(2)});
  // A weight gradient whose per-sample output gradients are scaled by c_i.
  const int64_t in = inputs_.size(2), out = grad_outputs_.size(2);
  const auto weighted = (grad_outputs_ * weights.view({-1, 1, 1})).reshape({-1, out});
  return weighted.t().mm(inputs_.reshape({-1, in}));
}

void SampleGradients::append_state(OptimizerState& state, const std::string& prefix) const {
  if (dense()) {
    state.push_back({prefix + "per_sample_gradients", dense_});
    return;
  }
  state.push_back({prefix + "inputs", inputs_});
  state.push_back({prefix + "grad_outputs", grad_outputs_});
}

SampleGradients SampleGradients::from_state(StateReader& reader, const std::string& prefix, CaptureLayer& layer,
                                            int64_t max_block_elements) {
  const auto shape = gradient_matrix_shape(layer);
  const int64_t out = shape[0], in = shape[1];
  const auto options = layer.weight().options();
  SampleGradients gradients;
  gradients.max_block_elements_ = max_block_elements;
  if (reader.contains(prefix + "per_sample_gradients")) {
    gradients.dense_ = reader.tensor(prefix + "per_sample_gradients", {-1, out, in}, options);
    return gradients;
  }
  // Samples and positions are the recorded batch's: the output-gradient rows must match the input rows.
  gradients.inputs_ = reader.tensor(prefix + "inputs", {-1, -1, in}, options);
  gradients.grad_outputs_ =
      reader.tensor(prefix + "grad_outputs", {gradients.inputs_.size(0), gradients.inputs_.size(1), out}, options);
  return gradients;
}

void DampedGram::append_state(OptimizerState& state, const std::string& prefix) const {
  state.push_back({prefix + "cholesky", cholesky});
  state.push_back({prefix + "damping", state_real(damping)});
}

DampedGram DampedGram::from_state(StateReader& reader, const std::string& prefix, int64_t samples,
                                  const torch::TensorOptions& options) {
  return {reader.tensor(prefix + "cholesky", {samples, samples}, options), reader.real(prefix + "damping")};
}

std::vector<OptionInfo> woodbury_hyperparameters() {
  return {
      {"gram_form", "auto",
       "per-sample Gram of each layer: auto (cheaper exact form), pairwise, per_sample (exact), or "
       "spatial_sum_approx (HyLo's conv APPROXIMATION)",
       {"auto", "pairwise", "per_sample", "spatial_sum_approx"}},
      {"solve_dtype", "float64", "dtype of the Cholesky factorisation and solves with K + nλI", {"float64", "float32"}},
  };
}

WoodburySettings woodbury_settings(const Options& options) {
  WoodburySettings settings;
  settings.gram_form = parse_gram_form(options.text("gram_form"));
  settings.solve_dtype = options.text("solve_dtype") == "float32" ? torch::kFloat32 : torch::kFloat64;
  return settings;
}

SampleGradients WoodburySolver::sample_gradients(CaptureLayer& layer, double loss_scale) const {
  return SampleGradients::from_layer(layer, loss_scale, settings_.gram_form, settings_.max_block_elements);
}

SampleGradients WoodburySolver::sample_gradients_from_state(StateReader& reader, const std::string& prefix,
                                                            CaptureLayer& layer) const {
  return SampleGradients::from_state(reader, prefix, layer, settings_.max_block_elements);
}

torch::Tensor WoodburySolver::gram(const SampleGradients& gradients) {
  ++counters_.grams;
  return gradients.gram();
}

DampedGram WoodburySolver::factorize(const torch::Tensor& gram, double damping, const std::string& what) {
  ++counters_.factorizations;
  const auto matrix = gram.to(settings_.solve_dtype);
  if (!host_value<bool>(torch::isfinite(matrix).all())) {
    throw Diverged(what + ": the Gram of per-sample gradients is not finite");
  }
  const int64_t n = matrix.size(0);
  const auto identity = torch::eye(n, matrix.options());
  const double floor = std::max(kRaiseFloorRelative * host_value<double>(matrix.diagonal().abs().mean()) / static_cast<double>(n),
                                kRaiseFloorAbsolute);
  double lambda = damping;
  for (int raises = 0;; ++raises) {
    auto [factor, info] = torch::linalg_cholesky_ex(matrix + static_cast<double>(n) * lambda * identity);
    if (host_value<int64_t>(info) == 0) return {factor, lambda};
    if (raises == kMaxDampingRaises) {
      throw std::runtime_error(fmt::format("{}: K + nλI is not positive definite even at λ = {:.3g}", what, lambda));
    }
    const double raised = std::max(lambda * kDampingRaiseFactor, floor);
    fmt::print(stderr, "{}: K + nλI is not positive definite at λ = {:.3g}; raising λ to {:.3g} for this factorisation\n",
               what, lambda, raised);
    ++counters_.damping_raises;
    lambda = raised;
  }
}

torch::Tensor WoodburySolver::solve(const DampedGram& factor, const torch::Tensor& rhs) {
  ++counters_.solves;
  const auto columns = rhs.dim() == 1 ? rhs.unsqueeze(1) : rhs;
  auto solution = torch::cholesky_solve(columns.to(factor.cholesky.scalar_type()), factor.cholesky);
  if (rhs.dim() == 1) solution = solution.squeeze(1);
  return solution.to(rhs.scalar_type());
}

torch::Tensor WoodburySolver::apply_inverse(const SampleGradients& gradients, const DampedGram& factor,
                                            const torch::Tensor& matrix) {
  return apply_inverse(std::vector<SampleGradients>{gradients}, factor, {matrix})[0];
}

torch::Tensor WoodburySolver::joint_gram(const std::vector<SampleGradients>& layers) {
  torch::Tensor sum;
  for (const auto& layer : layers) {
    const auto gram_l = gram(layer);
    sum = sum.defined() ? sum + gram_l : gram_l;
  }
  return sum;
}

std::vector<torch::Tensor> WoodburySolver::apply_inverse(const std::vector<SampleGradients>& layers,
                                                         const DampedGram& factor,
                                                         const std::vector<torch::Tensor>& matrices) {
  const auto coefficients = solve(factor, joint_project(layers, matrices));
  auto results = joint_combine(layers, coefficients);
  for (size_t l = 0; l < layers.size(); ++l) results[l] = (matrices[l] - results[l]) / factor.damping;
  return results;
}

torch::Tensor WoodburySolver::natural_gradient_coefficients(const DampedGram& factor,
                                                             const torch::TensorOptions& options) {
  return solve(factor, torch::ones({factor.cholesky.size(0)}, options));
}

torch::Tensor joint_project(const std::vector<SampleGradients>& layers, const std::vector<torch::Tensor>& matrices) {
  TORCH_CHECK(!layers.empty() && layers.size() == matrices.size(), "joint_project: one matrix per layer");
  auto sum = layers[0].project(matrices[0]);
  for (size_t l = 1; l < layers.size(); ++l) sum = sum + layers[l].project(matrices[l]);
  return sum;
}

std::vector<torch::Tensor> joint_combine(const std::vector<SampleGradients>& layers, const torch::Tensor& coefficients) {
  std::vector<torch::Tensor> combined;
  for (const auto& layer : layers) combined.push_back(layer.combine(coefficients));
  return combined;
}

DampingSchedule::DampingSchedule(const Options& options)
    : damping_(options.number("damping")), target_(damping_), alpha_(0),
      warmup_epochs_(options.integer("damping_warmup_epochs")) {
  if (damping_ < 0) throw std::invalid_argument("damping must be ≥ 0");
  if (options.json().at("damping_target").is_null()) return;
  target_ = options.number("damping_target");
  const int64_t steps = options.integer("damping_decay_steps");
  if (target_ <= 0 || target_ > damping_) {
    throw std::invalid_argument("damping_target must be in (0, damping]: HyLo's rule only decays");
  }
  if (steps <= 0) throw std::invalid_argument("damping_decay_steps must be > 0 when damping_target is set");
  alpha_ = 2 * std::log10(damping_ / target_) / static_cast<double>(steps);
  if (alpha_ > 1) {
    throw std::invalid_argument(fmt::format("damping_decay_steps must be ≥ 2·log10(damping/damping_target) = {:.3g}",
                                            2 * std::log10(damping_ / target_)));
  }
}

void DampingSchedule::after_refresh(const StepInfo& info) {
  if (alpha_ > 0 && info.step >= warmup_epochs_ * info.batches_per_epoch) {
    damping_ = (1 - alpha_) * damping_ + alpha_ * target_;
  }
}

void DampingSchedule::append_state(OptimizerState& state, const std::string& name) const {
  state.push_back({name, state_real(damping_)});
}

void DampingSchedule::load_state(StateReader& reader, const std::string& name) { damping_ = reader.real(name); }

std::vector<OptionInfo> damping_hyperparameters(double default_damping, const std::string& update) {
  return {
      {"damping", default_damping, "λ in (F + λI)⁻¹, F the empirical Fisher of per-sample mean-loss gradients (HyLo's scale)", {}, at_least(0)},
      {"damping_target", nullptr, fmt::format("λ moves toward this value by HyLo's rule after each {} (null: constant λ)", update), {}, above(0),
       true, nlohmann::json::value_t::number_float},
      {"damping_decay_steps", 100,
       fmt::format("D in HyLo's rule α = 2·log10(λ₀/λ_target)/D, counted in {}s (HyLo's scripts pass an epoch count)", update),
       {}, at_least(1)},
      {"damping_warmup_epochs", 0, "epochs before λ starts to move", {}, at_least(0)},
  };
}

std::string describe_layer(const CaptureLayer& layer, size_t index, size_t count) {
  return fmt::format("layer {}/{} ({})", index + 1, count,
                     layer.kind() == CaptureLayer::Kind::kLinear ? "Linear" : "Conv2d");
}

}  // namespace ngd
