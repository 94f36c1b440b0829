#include "optimizers/kfac.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <stdexcept>

#include "base/device.h"
#include "optimizers/curvature/layer_statistics.h"
#include "optimizers/curvature/matrix_roots.h"
#include "optimizers/optimizer_state.h"

namespace ngd {
namespace {

// Eigenvalues below this are round-off of a singular factor and are set to zero, as in
// alecwangcq/KFAC-Pytorch, so they cannot turn negative and cancel the damping.
constexpr double kEigenvalueFloor = 1e-10;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::vector<OptionInfo> kfac_hyperparameters() {
  auto options = preconditioned_sgd_hyperparameters(0.01);
  const std::vector<OptionInfo> curvature_options = {
      {"damping", 1e-3, "Tikhonov damping λ (see inverse_method for where it is added)", {}, above(0)},
      {"stat_decay", 0.95, "running-average decay ε of the Kronecker factors (which start at I)", {}, below_one()},
      kl_clip_hyperparameter(1e-2),
      stat_interval_hyperparameter(10, "steps between factor updates (capture is requested on these steps only)"),
      inverse_interval_hyperparameter(100, "steps between eigendecompositions / inverses of the factors"),
      {"inverse_method", "eigen",
       "eigen: λ added to the eigenvalue products d_G·d_Aᵀ; inverse: π-corrected factored Tikhonov",
       {"eigen", "inverse"}},
      {"fisher", "sampled", "sampled: output gradients of labels sampled from the model (true Fisher); empirical: of the true labels",
       {"sampled", "empirical"}},
      {"refresh_dtype", "factor",
       "factor: decompose in the factors' dtype, redone in float64 where LAPACK fails; float64: always float64",
       {"factor", "float64"}},
  };
  options.insert(options.end(), curvature_options.begin(), curvature_options.end());
  return options;
}

}  // namespace

KfacPreconditioner::KfacPreconditioner(CaptureModel& model, const Options& options)
    : inverse_method_(options.text("inverse_method") == "eigen" ? InverseMethod::kEigen : InverseMethod::kInverse),
      true_fisher_(options.text("fisher") == "sampled"),
      float64_refresh_(options.text("refresh_dtype") == "float64"),
      damping_(options.number("damping")),
      stat_decay_(options.number("stat_decay")) {
  // The factors start at I on their first update (blend_into); step 0 always updates before it refreshes.
  for (const auto& layer : model.capture_layers()) {
    LayerState state;
    state.layer = layer;
    layers_.push_back(std::move(state));
  }
}

Capture KfacPreconditioner::capture(const StepInfo&, const CurvatureStep& curvature) const {
  if (!curvature.statistics) return Capture::kNone;
  return true_fisher_ ? Capture::kSampled : Capture::kEmpirical;
}

std::vector<torch::Tensor> KfacPreconditioner::directions(const StepInfo&, const CurvatureStep& curvature) {
  if (curvature.statistics) update_factors();
  refreshed_ = curvature.refresh;
  if (refreshed_) refresh_inverses();
  const auto start = Clock::now();
  std::vector<torch::Tensor> updates;
  for (const auto& state : layers_) updates.push_back(preconditioned(state, gradient_matrix(*state.layer)));
  ++counters_.preconditioned_steps;
  counters_.precondition_s += seconds_since(start);
  return updates;
}

// KFC's statistics (kronecker_statistics) split as alecwangcq/KFAC-Pytorch does, so that its damping
// values mean the same here: A = 1/(N·S²) Σ ā āᵀ, G = S·N·Σ g gᵀ (the same product A ⊗ G).
void KfacPreconditioner::update_factors() {
  const auto start = Clock::now();
  for (auto& state : layers_) {
    const auto statistics = kronecker_statistics(*state.layer, /*with_grad=*/true);
    blend_into(state.input_factor, statistics.input.div_(statistics.positions), stat_decay_);
    blend_into(state.grad_factor, statistics.grad.mul_(statistics.positions), stat_decay_);
    state.layer->clear_captures();  // the recordings can be large (conv inputs); nothing reads them again
  }
  ++counters_.factor_updates;
  counters_.factor_update_s += seconds_since(start);
}

void KfacPreconditioner::refresh_inverses() {
  const auto start = Clock::now();
  for (auto& state : layers_) {
    if (inverse_method_ == InverseMethod::kEigen) {
      auto [input_eigenvalues, input_basis] = eigh_with_fallback(state.input_factor);
      auto [grad_eigenvalues, grad_basis] = eigh_with_fallback(state.grad_factor);
      input_eigenvalues.masked_fill_(input_eigenvalues < kEigenvalueFloor, 0);
      grad_eigenvalues.masked_fill_(grad_eigenvalues < kEigenvalueFloor, 0);
      state.input_basis = std::move(input_basis);
      state.grad_basis = std::move(grad_basis);
      state.eigen_scale = (grad_eigenvalues.unsqueeze(1) * input_eigenvalues.unsqueeze(0) + damping_).reciprocal_();
    } else {
      // Factored Tikhonov damping with π = sqrt((tr A / d_A) / (tr G / d_G)) (Martens & Grosse 2015,
      // §6.3): the product of the two damped inverses no longer depends on how a scale is split
      // between A and G.
      const auto& a = state.input_factor;
      const auto& g = state.grad_factor;
      // π stays a 0-d tensor on the factors' device: no read-back per layer.
      const auto pi = ((a.trace() / static_cast<double>(a.size(0))) / (g.trace() / static_cast<double>(g.size(0)))).sqrt();
      const double root_damping = std::sqrt(damping_);
      state.input_basis = damped_inverse_with_fallback(a + pi * root_damping * torch::eye(a.size(0), a.options()));
      state.grad_basis = damped_inverse_with_fallback(g + root_damping / pi * torch::eye(g.size(0), g.options()));
    }
  }
  ++counters_.inverse_refreshes;
  counters_.inverse_refresh_s += seconds_since(start);
}

// float32 LAPACK is about twice as fast as float64 here, but its eigh fails on factors of a few
// thousand rows (the workspace size is returned as a float and rounds down: "Argument 8 has illegal
// value") and can fail to converge; those factors are decomposed in float64 instead.
std::tuple<torch::Tensor, torch::Tensor> KfacPreconditioner::eigh_with_fallback(const torch::Tensor& factor) {
  if (!float64_refresh_ && factor.scalar_type() != torch::kDouble) {
    try {
      auto [eigenvalues, eigenvectors] = torch::linalg_eigh(factor);
      if (host_value<bool>(torch::isfinite(eigenvalues).all())) return {eigenvalues, eigenvectors};
    } catch (const c10::Error&) {
    }
    ++counters_.float64_fallbacks;
  }
  return symmetric_eigh(factor);
}

// The inverse of an SPD matrix from its Cholesky factor L: the solution of L·Lᵀ·X = I. Not
// cholesky_inverse (a third less work): its LAPACK routine, potri, crashes in OpenBLAS 0.3.21's Prescott
// kernels — the fallback on CPUs that release does not know, such as Intel's model 207 — on float32
// factors of 785 rows (the MLP's first layer).
namespace {
torch::Tensor inverse_from_cholesky(const torch::Tensor& cholesky) {
  return torch::cholesky_solve(torch::eye(cholesky.size(0), cholesky.options()), cholesky);
}
}  // namespace

// The inverse of an SPD matrix through its Cholesky factor; a factor whose Cholesky fails in its dtype
// (not positive definite after float32 rounding) is inverted in float64.
torch::Tensor KfacPreconditioner::damped_inverse_with_fallback(const torch::Tensor& damped_factor) {
  const auto dtype = damped_factor.scalar_type();
  if (!float64_refresh_ && dtype != torch::kDouble) {
    const auto [cholesky, info] = torch::linalg_cholesky_ex(damped_factor);
    if (host_value<int>(info) == 0) return inverse_from_cholesky(cholesky);
    ++counters_.float64_fallbacks;
  }
  return inverse_from_cholesky(torch::linalg_cholesky(damped_factor.to(torch::kDouble))).to(dtype);
}

// With ∇W̄ laid out out × in[+1] (row-major vec), G ⊗ A acts on it as G·∇W̄·A.
torch::Tensor KfacPreconditioner::preconditioned(const LayerState& state, const torch::Tensor& gradient) const {
  if (inverse_method_ == InverseMethod::kInverse) return state.grad_basis.mm(gradient).mm(state.input_basis);
  // (G ⊗ A + λI)⁻¹ in the factors' eigenbases: λ is added to each product of eigenvalues.
  const auto scaled = state.grad_basis.t().mm(gradient).mm(state.input_basis).mul_(state.eigen_scale);
  return state.grad_basis.mm(scaled).mm(state.input_basis.t());
}

void KfacPreconditioner::append_state(OptimizerState& state) const {
  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto& layer = layers_[i];
    const auto prefix = fmt::format("kfac/layer{}/", i);
    if (layer.input_factor.defined()) {
      state.push_back({prefix + "input_factor", layer.input_factor});
      state.push_back({prefix + "grad_factor", layer.grad_factor});
    }
    if (layer.input_basis.defined()) {
      state.push_back({prefix + "input_basis", layer.input_basis});
      state.push_back({prefix + "grad_basis", layer.grad_basis});
      if (inverse_method_ == InverseMethod::kEigen) state.push_back({prefix + "eigen_scale", layer.eigen_scale});
    }
  }
}

void KfacPreconditioner::load_state(StateReader& reader) {
  // Every layer's factors are updated, and refreshed, on the same steps.
  std::vector<std::string> factor_names, refresh_names;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto prefix = fmt::format("kfac/layer{}/", i);
    factor_names.insert(factor_names.end(), {prefix + "input_factor", prefix + "grad_factor"});
    refresh_names.insert(refresh_names.end(), {prefix + "input_basis", prefix + "grad_basis", prefix + "eigen_scale"});
  }
  const bool factors = reader.contains_any(factor_names);
  const bool refreshed = reader.contains_any(refresh_names);
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto& layer = layers_[i];
    const auto prefix = fmt::format("kfac/layer{}/", i);
    const auto shape = gradient_matrix_shape(*layer.layer);
    const int64_t out = shape[0], in = shape[1];
    const auto options = layer.layer->weight().options();
    layer.input_factor = factors ? reader.tensor(prefix + "input_factor", {in, in}, options) : torch::Tensor();
    layer.grad_factor = factors ? reader.tensor(prefix + "grad_factor", {out, out}, options) : torch::Tensor();
    layer.input_basis = refreshed ? reader.tensor(prefix + "input_basis", {in, in}, options) : torch::Tensor();
    layer.grad_basis = refreshed ? reader.tensor(prefix + "grad_basis", {out, out}, options) : torch::Tensor();
    layer.eigen_scale = refreshed && inverse_method_ == InverseMethod::kEigen
                            ? reader.tensor(prefix + "eigen_scale", {out, in}, options)
                            : torch::Tensor();
  }
}

nlohmann::json KfacPreconditioner::report() const {
  return {{"inverse_method", inverse_method_ == InverseMethod::kEigen ? "eigen" : "inverse"},
          {"factor_updates", counters_.factor_updates},
          {"inverse_refreshes", counters_.inverse_refreshes},
          {"preconditioned_steps", counters_.preconditioned_steps},
          {"float64_fallbacks", counters_.float64_fallbacks},
          {"factor_update_s", counters_.factor_update_s},
          {"inverse_refresh_s", counters_.inverse_refresh_s},
          {"precondition_s", counters_.precondition_s}};
}

OptimizerEntry kfac_entry() {
  return {"kfac", "KFAC/KFC: Kronecker-factored natural gradient for Linear/Conv2d, then SGD (alecwangcq/KFAC-Pytorch)",
          kfac_hyperparameters(), [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<Kfac>(model, options);
          }};
}

}  // namespace ngd
