#include "optimizers/shampoo.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "optimizers/curvature/matrix_roots.h"
#include "optimizers/optimizer_state.h"

namespace ngd {
namespace {

// Added to the norm of Shampoo's block direction before grafting divides by it, as in
// distributed_shampoo: a zero block (a zero gradient) stays zero instead of becoming NaN.
constexpr double kGraftingNormFloor = 1e-16;
// Inverse-root exponent of a vector's single factor: distributed_shampoo's default 1/(2·order), order 1.
constexpr double kVectorExponent = 0.5;

// (F̂ + εI)^{-exponent} of a symmetric PSD factor, F̂ = factor / bias_correction, from its
// eigendecomposition in float64. Where round-off leaves λ_min below ε, the spectrum is lifted by ε − λ_min
// (distributed_shampoo's default perturbation) without reading λ_min back to the host.
torch::Tensor inverse_root(const torch::Tensor& factor, double bias_correction, double epsilon, double exponent) {
  const auto matrix = factor.to(torch::kDouble) / bias_correction +
                      epsilon * torch::eye(factor.size(0), factor.options().dtype(torch::kDouble));
  auto [eigenvalues, eigenvectors] = symmetric_eigh(matrix);
  eigenvalues = eigenvalues + (epsilon - eigenvalues.min()).clamp_min(0);
  return (eigenvectors * eigenvalues.pow(-exponent)).mm(eigenvectors.t()).to(factor.scalar_type());
}

torch::Tensor identity_or_none(const torch::Tensor& factor) {
  return factor.defined() ? torch::eye(factor.size(0), factor.options()) : torch::Tensor();
}

// 1 − β^k, or 1 when β = 1 (a plain sum needs no correction).
double bias_correction(double beta, int64_t step) {
  return beta < 1 ? 1 - std::pow(beta, static_cast<double>(step)) : 1.0;
}

}  // namespace

Shampoo::Shampoo(CaptureModel& model, const Options& options)
    : lr_(options.number("lr")),
      beta1_(options.number("beta1")),
      beta2_(options.number("beta2")),
      epsilon_(options.number("eps")),
      exponent_(options.number("exponent")),
      inverse_interval_(options.integer("inverse_interval")),
      start_preconditioning_step_(options.json().at("start_preconditioning_step").is_null()
                                      ? options.integer("inverse_interval")
                                      : options.integer("start_preconditioning_step")),
      grafting_(options.text("grafting") == "adam"),
      grafting_beta2_(options.number("grafting_beta2")),
      grafting_epsilon_(options.number("grafting_eps")),
      weight_decay_(options.number("weight_decay")) {
  if (start_preconditioning_step_ < inverse_interval_) {
    throw std::invalid_argument(fmt::format(
        "shampoo: start_preconditioning_step must be null or ≥ inverse_interval ({}), got {}",
        inverse_interval_, start_preconditioning_step_));
  }
  const int64_t max_dim = options.integer("max_preconditioner_dim");
  for (const auto& parameter : model.parameters()) {
    if (!parameter.requires_grad()) continue;
    ParameterState state{parameter,
                         KroneckerFactors(parameter, max_dim, KroneckerFactors::Blocking::kSplit, true),
                         {},
                         {},
                         torch::zeros_like(parameter),
                         torch::zeros_like(parameter)};
    for (const auto& block : state.factors.blocks()) {
      state.left_roots.push_back(identity_or_none(block.left));
      state.right_roots.push_back(identity_or_none(block.right));
    }
    parameters_.push_back(std::move(state));
  }
}

void Shampoo::refresh_roots(ParameterState& state, double factor_bias_correction) const {
  const auto& blocks = state.factors.blocks();
  const double row_exponent = state.factors.is_matrix() ? exponent_ : kVectorExponent;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i].left.defined()) {
      state.left_roots[i] = inverse_root(blocks[i].left, factor_bias_correction, epsilon_, row_exponent);
    }
    if (blocks[i].right.defined()) {
      state.right_roots[i] = inverse_root(blocks[i].right, factor_bias_correction, epsilon_, exponent_);
    }
  }
}

// Per block L̂^{-e} Ḡ_b R̂^{-e}, each block's norm set to that of Adam's direction on the block when
// grafting; `gradient` is the filtered gradient Ḡ as a matrix.
torch::Tensor Shampoo::preconditioned(const ParameterState& state, const torch::Tensor& gradient) const {
  auto pieces = state.factors.split(gradient);
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (state.left_roots[i].defined()) pieces[i] = state.left_roots[i].mm(pieces[i]);
    if (state.right_roots[i].defined()) pieces[i] = pieces[i].mm(state.right_roots[i]);
  }
  return state.factors.merge(pieces);
}

void Shampoo::step(const StepInfo&, PhaseTimer& timer) {
  // distributed_shampoo counts steps from 1; the roots are computed on the start step and every
  // inverse_interval steps after it, and the grafted method alone steps before the start.
  const int64_t step = ++counters_.steps;
  const bool refresh = step == start_preconditioning_step_ ||
                       (step > start_preconditioning_step_ && step % inverse_interval_ == 0);
  const bool grafted_only = grafting_ && step < start_preconditioning_step_;
  const double first_moment_correction = bias_correction(beta1_, step);
  const double factor_correction = bias_correction(beta2_, step);
  const double grafting_correction = bias_correction(grafting_beta2_, step);
  const double factor_weight = beta2_ < 1 ? 1 - beta2_ : 1.0;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> shampoo_directions(parameters_.size());
  {
    auto scope = timer.scope(Phase::kCurvature);
    for (size_t p = 0; p < parameters_.size(); ++p) {
      auto& state = parameters_[p];
      const auto& gradient = state.parameter.grad();
      if (!gradient.defined()) continue;
      state.factors.accumulate(state.factors.matrix(gradient), beta2_, factor_weight);
      if (refresh) refresh_roots(state, factor_correction);
      state.filtered_gradient.mul_(beta1_).add_(gradient, 1 - beta1_);
      if (!grafted_only) {
        shampoo_directions[p] =
            preconditioned(state, state.factors.matrix(state.filtered_gradient / first_moment_correction));
      }
    }
  }
  for (size_t p = 0; p < parameters_.size(); ++p) {
    auto& state = parameters_[p];
    const auto& gradient = state.parameter.grad();
    if (!gradient.defined()) continue;
    state.grafting_moment.mul_(grafting_beta2_).addcmul_(gradient, gradient, 1 - grafting_beta2_);
    torch::Tensor direction;
    if (grafting_) {
      const auto adam = (state.filtered_gradient / first_moment_correction) /
                        ((state.grafting_moment / grafting_correction).sqrt_() + grafting_epsilon_);
      if (grafted_only) {
        direction = adam;
      } else {
        auto pieces = state.factors.split(shampoo_directions[p]);
        const auto adam_pieces = state.factors.split(state.factors.matrix(adam));
        for (size_t i = 0; i < pieces.size(); ++i) {
          pieces[i] = pieces[i] * (adam_pieces[i].norm() / (pieces[i].norm() + kGraftingNormFloor));
        }
        direction = state.factors.unmatrix(state.factors.merge(pieces));
      }
    } else {
      direction = state.factors.unmatrix(shampoo_directions[p]);
    }
    // Decoupled weight decay: added to the direction, so θ ← θ − lr·(P + wd·θ).
    if (weight_decay_ != 0) direction = direction + weight_decay_ * state.parameter;
    state.parameter.sub_(direction, lr_);
  }
  refreshed_ = refresh;
  if (refresh) ++counters_.root_refreshes;
  if (grafted_only) ++counters_.grafted_steps;
}

OptimizerState Shampoo::state() const {
  // The step count sets the bias corrections and which steps refresh; the other counters only report.
  OptimizerState state{{"shampoo/steps", state_integer(counters_.steps)}};
  for (size_t p = 0; p < parameters_.size(); ++p) {
    const auto& parameter = parameters_[p];
    const auto prefix = fmt::format("shampoo/param{}/", p);
    parameter.factors.append_state(state, prefix);
    for (size_t i = 0; i < parameter.left_roots.size(); ++i) {
      if (parameter.left_roots[i].defined()) state.push_back({fmt::format("{}block{}/left_root", prefix, i), parameter.left_roots[i]});
      if (parameter.right_roots[i].defined()) state.push_back({fmt::format("{}block{}/right_root", prefix, i), parameter.right_roots[i]});
    }
    state.push_back({prefix + "filtered_gradient", parameter.filtered_gradient});
    state.push_back({prefix + "grafting_moment", parameter.grafting_moment});
  }
  return state;
}

void Shampoo::load_state(const OptimizerState& state) {
  StateReader reader(state);
  counters_.steps = reader.integer("shampoo/steps");
  for (size_t p = 0; p < parameters_.size(); ++p) {
    auto& parameter = parameters_[p];
    const auto prefix = fmt::format("shampoo/param{}/", p);
    parameter.factors.load_state(reader, prefix);
    // The roots exist (as identities) from construction wherever a factor does.
    for (size_t i = 0; i < parameter.left_roots.size(); ++i) {
      auto& left = parameter.left_roots[i];
      auto& right = parameter.right_roots[i];
      if (left.defined()) left = reader.tensor_like(fmt::format("{}block{}/left_root", prefix, i), left);
      if (right.defined()) right = reader.tensor_like(fmt::format("{}block{}/right_root", prefix, i), right);
    }
    parameter.filtered_gradient = reader.tensor_like(prefix + "filtered_gradient", parameter.parameter);
    parameter.grafting_moment = reader.tensor_like(prefix + "grafting_moment", parameter.parameter);
  }
  reader.finish();
}

OptimizerEntry shampoo_entry() {
  return {"shampoo",
          "Shampoo L̂^{-1/4} Ḡ R̂^{-1/4} per block with Adam grafting (facebookresearch/optimizers distributed_shampoo)",
          {
              {"lr", 1e-3, "base learning rate (scaled by the schedule); with grafting, Adam's", {}, at_least(0)},
              {"beta1", 0.9, "decay of the filtered gradient Ḡ (bias-corrected EMA; 0 = the raw gradient)", {}, below_one()},
              {"beta2", 0.999, "decay of the factors L, R (1 = plain sums, AdaGrad-like)", {}, unit_interval()},
              {"eps", 1e-12, "added to the bias-corrected factors before their inverse roots", {}, above(0)},
              {"exponent", 0.25, "e in L̂^{-e} Ḡ R̂^{-e} for matrices (vectors use 1/2)", {}, above(0)},
              {"inverse_interval", 100, "steps between inverse-root computations", {}, at_least(1)},
              {"start_preconditioning_step", nullptr,
               "first step (from 1) that uses Shampoo; before it the grafted method alone (null = inverse_interval)",
               {}, at_least(1), true, nlohmann::json::value_t::number_integer},
              {"max_preconditioner_dim", 1024, "blocks of at most this many rows and columns, a factor pair each", {}, at_least(1)},
              {"grafting", "adam", "adam: each block's step has Adam's norm; none: no grafting", {"adam", "none"}},
              {"grafting_beta2", 0.999, "second-moment decay of the grafted Adam", {}, below_one()},
              {"grafting_eps", 1e-8, "added to √v̂ of the grafted Adam", {}, at_least(0)},
              {"weight_decay", 0.0, "decoupled weight decay: θ ← θ − lr·(P + wd·θ)", {}, at_least(0)},
          },
          [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<Shampoo>(model, options);
          }};
}

}  // namespace ngd
