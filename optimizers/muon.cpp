#include "optimizers/muon.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "models/model.h"
#include "optimizers/optimizer_state.h"

namespace ngd {
namespace {

std::vector<OptionInfo> muon_hyperparameters() {
  return {
      {"lr", 0.02, "base learning rate of the orthogonalised matrices (scaled by the schedule)", {}, above(0)},
      {"momentum", 0.95, "momentum β of the matrices: m ← βm + (1−β)g", {}, below_one()},
      {"nesterov", true, "step along (1−β)g + βm instead of m"},
      {"ns_steps", 5, "quintic Newton–Schulz iterations", {}, at_least(1)},
      {"weight_decay", 0.0, "decoupled weight decay of the matrices: θ ← θ·(1 − lr·wd)", {}, at_least(0)},
      {"head", "adamw",
       "who steps the classifier (an image model's last capture layer): adamw, as the reference advises, or muon",
       {"adamw", "muon"}},
      {"ns_dtype", "parameter",
       "dtype of the Newton–Schulz iterations: the parameter's, or bfloat16 as the reference (GPU)",
       {"parameter", "bfloat16"}},
      {"adamw_lr", 3e-4, "base learning rate of the AdamW parameters (scaled by the same schedule factor)", {}, at_least(0)},
      {"adamw_beta1", 0.9, "AdamW first-moment decay", {}, below_one()},
      {"adamw_beta2", 0.95, "AdamW second-moment decay", {}, below_one()},
      {"adamw_eps", 1e-10, "AdamW ε added to √v̂", {}, at_least(0)},
      {"adamw_weight_decay", 0.0, "AdamW decoupled weight decay", {}, at_least(0)},
  };
}

}  // namespace

torch::Tensor newton_schulz_orthogonalise(const torch::Tensor& matrix, int64_t steps) {
  TORCH_CHECK(matrix.dim() == 2, "newton_schulz_orthogonalise: expected a matrix, got ", matrix.dim(), " dimensions");
  // XXᵀ is the smaller Gram on the wide orientation.
  const bool tall = matrix.size(0) > matrix.size(1);
  auto x = tall ? matrix.t() : matrix;
  x = x / (x.norm() + kNewtonSchulzNormEps);  // σ_max ≤ ‖X‖_F ≤ 1: inside p's basin
  for (int64_t i = 0; i < steps; ++i) {
    const auto gram = x.mm(x.t());
    x = x * kNewtonSchulzA + (gram * kNewtonSchulzB + gram.mm(gram) * kNewtonSchulzC).mm(x);
  }
  return tall ? x.t() : x;
}

Muon::Muon(CaptureModel& model, const Options& options)
    : lr_(options.number("lr")),
      adamw_lr_per_lr_(options.number("adamw_lr") / options.number("lr")),
      momentum_(options.number("momentum")),
      weight_decay_(options.number("weight_decay")),
      nesterov_(options.flag("nesterov")),
      ns_steps_(options.integer("ns_steps")),
      bfloat16_(options.text("ns_dtype") == "bfloat16") {
  const auto& layers = model.capture_layers();
  // An image model's logits come from its last capture layer; a translation model's output projection
  // is tied to its embedding and is no capture layer.
  const bool head_on_adamw = options.text("head") == "adamw" && dynamic_cast<Model*>(&model) != nullptr;
  const size_t matrix_layers = layers.size() - (head_on_adamw && !layers.empty() ? 1 : 0);
  for (size_t i = 0; i < matrix_layers; ++i) {
    const auto& weight = layers[i]->weight();
    matrices_.push_back({weight, torch::zeros_like(weight)});
  }
  std::vector<torch::Tensor> others;
  for (const auto& parameter : model.parameters()) {
    const bool matrix = std::any_of(matrices_.begin(), matrices_.end(),
                                    [&](const MatrixState& state) { return state.parameter.is_same(parameter); });
    if (!matrix) others.push_back(parameter);
  }
  if (!others.empty()) {
    adamw_ = std::make_unique<torch::optim::AdamW>(
        others, torch::optim::AdamWOptions(options.number("adamw_lr"))
                    .betas({options.number("adamw_beta1"), options.number("adamw_beta2")})
                    .eps(options.number("adamw_eps"))
                    .weight_decay(options.number("adamw_weight_decay")));
  }
}

std::vector<torch::Tensor> Muon::matrix_parameters() const {
  std::vector<torch::Tensor> parameters;
  for (const auto& state : matrices_) parameters.push_back(state.parameter);
  return parameters;
}

void Muon::set_learning_rate(double lr) {
  lr_ = lr;
  if (!adamw_) return;
  for (auto& group : adamw_->param_groups()) group.options().set_lr(lr * adamw_lr_per_lr_);
}

void Muon::step(const StepInfo&, PhaseTimer& timer) {
  {
    torch::NoGradGuard no_grad;
    auto scope = timer.scope(Phase::kCurvature);  // the orthogonalisation is Muon's preconditioning
    for (auto& state : matrices_) {
      auto& parameter = state.parameter;
      const auto& grad = parameter.grad();
      if (!grad.defined()) continue;
      state.momentum.mul_(momentum_).add_(grad, 1 - momentum_);
      const auto direction = nesterov_ ? grad.mul(1 - momentum_).add_(state.momentum, momentum_) : state.momentum;
      auto matrix = direction.reshape({parameter.size(0), -1});
      const double scale = std::sqrt(std::max(1.0, static_cast<double>(matrix.size(0)) / static_cast<double>(matrix.size(1))));
      if (bfloat16_) matrix = matrix.to(torch::kBFloat16);
      const auto update = newton_schulz_orthogonalise(matrix, ns_steps_).to(parameter.scalar_type());
      parameter.mul_(1 - lr_ * weight_decay_).add_(update.reshape(parameter.sizes()), -lr_ * scale);
    }
  }
  if (adamw_) adamw_->step();
}

OptimizerState Muon::state() const {
  OptimizerState state;
  for (size_t i = 0; i < matrices_.size(); ++i) state.push_back({fmt::format("muon/matrix{}/momentum", i), matrices_[i].momentum});
  if (adamw_) append_torch_state(state, *adamw_, "adamw");
  return state;
}

void Muon::load_state(const OptimizerState& state) {
  StateReader reader(state);
  for (size_t i = 0; i < matrices_.size(); ++i) {
    matrices_[i].momentum = reader.tensor_like(fmt::format("muon/matrix{}/momentum", i), matrices_[i].parameter);
  }
  if (adamw_) load_torch_state(reader, *adamw_, "adamw");
  reader.finish();
}

OptimizerEntry muon_entry() {
  return {"muon",
          "Muon: momentum orthogonalised by 5 quintic Newton–Schulz steps for Linear/Conv2d weights, AdamW for the "
          "rest (KellerJordan/Muon)",
          muon_hyperparameters(), [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<Muon>(model, options);
          }};
}

}  // namespace ngd
