#include "optimizers/soap.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "optimizers/curvature/matrix_roots.h"
#include "optimizers/optimizer_state.h"

namespace ngd {
namespace {

// The eigenvectors of a symmetric factor by decreasing eigenvalue (soap.py flips eigh's ascending order).
torch::Tensor descending_eigenbasis(const torch::Tensor& factor) {
  return std::get<1>(symmetric_eigh(factor)).flip({1});
}

// One power iteration with QR from the current basis, its columns first sorted by decreasing estimated
// eigenvalue diag(Qᵀ F Q); `second_moment`'s entries along `dim` follow the columns they belong to.
torch::Tensor power_iteration(const torch::Tensor& factor, const torch::Tensor& basis, torch::Tensor& second_moment,
                              int64_t dim) {
  const auto estimates = basis.t().mm(factor).mm(basis).diagonal();
  const auto order = torch::argsort(estimates, /*dim=*/0, /*descending=*/true);
  second_moment = second_moment.index_select(dim, order);
  return std::get<0>(torch::linalg_qr(factor.mm(basis.index_select(1, order))));
}

// Qᵀ X Q on the sides that have a basis (into the eigenbasis), or Q X Qᵀ (back).
torch::Tensor rotate(const torch::Tensor& left, const torch::Tensor& right, torch::Tensor x, bool into_basis) {
  if (left.defined()) x = into_basis ? left.t().mm(x) : left.mm(x);
  if (right.defined()) x = into_basis ? x.mm(right) : x.mm(right.t());
  return x;
}

}  // namespace

Soap::Soap(CaptureModel& model, const Options& options)
    : lr_(options.number("lr")),
      beta1_(options.number("beta1")),
      beta2_(options.number("beta2")),
      factor_beta_(options.json().at("stat_decay").is_null() ? options.number("beta2") : options.number("stat_decay")),
      epsilon_(options.number("eps")),
      weight_decay_(options.number("weight_decay")),
      inverse_interval_(options.integer("inverse_interval")) {
  const int64_t max_dim = options.integer("max_preconditioner_dim");
  for (const auto& parameter : model.parameters()) {
    if (!parameter.requires_grad()) continue;
    parameters_.push_back(
        {parameter, KroneckerFactors(parameter, max_dim, KroneckerFactors::Blocking::kSkipLongSides, false), {}, {}, {}, {}});
  }
}

// soap.py's first step for a parameter: the factors take in the gradient, the bases come from eigh, the
// moments start at zero, and the parameter does not move (the projection never uses the current gradient).
void Soap::start(ParameterState& state, const torch::Tensor& gradient) {
  state.factors.accumulate(state.factors.matrix(gradient), factor_beta_, 1 - factor_beta_);
  const auto pieces = state.factors.split(state.factors.matrix(gradient));
  for (size_t i = 0; i < pieces.size(); ++i) {
    const auto& block = state.factors.blocks()[i];
    state.left_bases.push_back(block.left.defined() ? descending_eigenbasis(block.left) : torch::Tensor());
    state.right_bases.push_back(block.right.defined() ? descending_eigenbasis(block.right) : torch::Tensor());
    state.first_moments.push_back(torch::zeros_like(pieces[i]));
    state.second_moments.push_back(torch::zeros_like(pieces[i]));
  }
  state.steps = 0;
}

// The first moment is carried from the old bases to the new ones (through the original space); the
// second moment only follows the sorting of the basis columns, as in soap.py.
void Soap::refresh_bases(ParameterState& state) const {
  const auto& blocks = state.factors.blocks();
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto old_left = state.left_bases[i], old_right = state.right_bases[i];
    if (blocks[i].left.defined()) {
      state.left_bases[i] = power_iteration(blocks[i].left, old_left, state.second_moments[i], 0);
    }
    if (blocks[i].right.defined()) {
      state.right_bases[i] = power_iteration(blocks[i].right, old_right, state.second_moments[i], 1);
    }
    state.first_moments[i] =
        rotate(state.left_bases[i], state.right_bases[i], rotate(old_left, old_right, state.first_moments[i], false), true);
  }
}

void Soap::step(const StepInfo&, PhaseTimer& timer) {
  torch::NoGradGuard no_grad;
  // Per parameter the direction Q_L (m / (√v + ε)) Q_Rᵀ, undefined where the parameter does not move.
  std::vector<torch::Tensor> directions(parameters_.size());
  bool refreshed = false;
  bool started = false;  // a parameter's bases came from eigh this step
  {
    auto scope = timer.scope(Phase::kCurvature);
    for (size_t p = 0; p < parameters_.size(); ++p) {
      auto& state = parameters_[p];
      const auto& gradient = state.parameter.grad();
      if (!gradient.defined()) continue;
      if (state.steps < 0) {
        start(state, gradient);
        started = true;
        continue;
      }
      ++state.steps;
      const auto matrix = state.factors.matrix(gradient);
      auto pieces = state.factors.split(matrix);
      for (size_t i = 0; i < pieces.size(); ++i) {
        const auto rotated = rotate(state.left_bases[i], state.right_bases[i], pieces[i], true);
        state.first_moments[i].mul_(beta1_).add_(rotated, 1 - beta1_);
        state.second_moments[i].mul_(beta2_).addcmul_(rotated, rotated, 1 - beta2_);
        pieces[i] = rotate(state.left_bases[i], state.right_bases[i],
                           state.first_moments[i] / (state.second_moments[i].sqrt() + epsilon_), false);
      }
      directions[p] = state.factors.unmatrix(state.factors.merge(pieces));
      state.factors.accumulate(matrix, factor_beta_, 1 - factor_beta_);
      if (state.steps % inverse_interval_ == 0) {
        refresh_bases(state);
        refreshed = true;
      }
    }
  }
  bool moved = false;
  for (size_t p = 0; p < parameters_.size(); ++p) {
    if (!directions[p].defined()) continue;
    moved = true;
    auto& state = parameters_[p];
    // soap.py's bias correction folds √(1 − β₂ᵗ) into the step size, so ε is added to √v, not to √v̂.
    const double t = static_cast<double>(state.steps);
    const double step_size = lr_ * std::sqrt(1 - std::pow(beta2_, t)) / (1 - std::pow(beta1_, t));
    state.parameter.sub_(directions[p], step_size);
    // Decoupled weight decay after the step, on the updated parameter (soap.py).
    if (weight_decay_ != 0) state.parameter.mul_(1 - lr_ * weight_decay_);
  }
  if (moved) ++counters_.adam_steps;
  if (refreshed) ++counters_.basis_refreshes;
  refreshed_ = refreshed || started;
}

OptimizerState Soap::state() const {
  OptimizerState state;
  for (size_t p = 0; p < parameters_.size(); ++p) {
    const auto& parameter = parameters_[p];
    const auto prefix = fmt::format("soap/param{}/", p);
    state.push_back({prefix + "steps", state_integer(parameter.steps)});
    parameter.factors.append_state(state, prefix);
    for (size_t i = 0; i < parameter.first_moments.size(); ++i) {
      const auto block = fmt::format("{}block{}/", prefix, i);
      if (parameter.left_bases[i].defined()) state.push_back({block + "left_basis", parameter.left_bases[i]});
      if (parameter.right_bases[i].defined()) state.push_back({block + "right_basis", parameter.right_bases[i]});
      state.push_back({block + "first_moment", parameter.first_moments[i]});
      state.push_back({block + "second_moment", parameter.second_moments[i]});
    }
  }
  return state;
}

void Soap::load_state(const OptimizerState& state) {
  StateReader reader(state);
  for (size_t p = 0; p < parameters_.size(); ++p) {
    auto& parameter = parameters_[p];
    const auto prefix = fmt::format("soap/param{}/", p);
    parameter.steps = reader.integer(prefix + "steps");
    parameter.factors.load_state(reader, prefix);
    parameter.left_bases.clear();
    parameter.right_bases.clear();
    parameter.first_moments.clear();
    parameter.second_moments.clear();
    if (parameter.steps < 0) continue;  // not started: start() creates the rest
    const auto options = parameter.parameter.options();
    const auto& blocks = parameter.factors.blocks();
    for (size_t i = 0; i < blocks.size(); ++i) {
      const auto& block = blocks[i];
      const auto name = fmt::format("{}block{}/", prefix, i);
      // A side has a basis exactly where it has a factor (start()).
      parameter.left_bases.push_back(block.left.defined() ? reader.tensor(name + "left_basis", {block.rows, block.rows}, options)
                                                          : torch::Tensor());
      parameter.right_bases.push_back(block.right.defined()
                                          ? reader.tensor(name + "right_basis", {block.columns, block.columns}, options)
                                          : torch::Tensor());
      parameter.first_moments.push_back(reader.tensor(name + "first_moment", {block.rows, block.columns}, options));
      parameter.second_moments.push_back(reader.tensor(name + "second_moment", {block.rows, block.columns}, options));
    }
  }
  reader.finish();
}

OptimizerEntry soap_entry() {
  return {"soap",
          "SOAP: Adam in the eigenbasis of Shampoo's factors, refreshed by QR power iteration (nikhilvyas/SOAP)",
          {
              {"lr", 3e-3, "base learning rate (scaled by the schedule)", {}, at_least(0)},
              {"beta1", 0.95, "decay of Adam's first moment (in the eigenbasis)", {}, below_one()},
              {"beta2", 0.95, "decay of Adam's second moment (in the eigenbasis)", {}, below_one()},
              {"stat_decay", nullptr, "decay of the factors L, R (null: beta2)", {}, Range{0.0, 1.0, false, true}, true,
               nlohmann::json::value_t::number_float},
              {"eps", 1e-8, "added to √v (the step size carries the bias correction)", {}, above(0)},
              {"weight_decay", 0.01, "decoupled weight decay, θ ← θ·(1 − lr·wd) after the step", {}, at_least(0)},
              {"inverse_interval", 10, "steps between QR power-iteration refreshes of the eigenbases", {}, at_least(1)},
              {"max_preconditioner_dim", 10000, "a side longer than this is not rotated (identity basis)", {}, at_least(1)},
          },
          [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<Soap>(model, options);
          }};
}

}  // namespace ngd
