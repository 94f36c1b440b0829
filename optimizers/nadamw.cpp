#include "optimizers/nadamw.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "optimizers/adamw.h"
#include "optimizers/optimizer_state.h"

namespace ngd {

NAdamW::NAdamW(std::vector<torch::Tensor> parameters, const Options& options)
    : lr_(options.number("lr")),
      beta1_(options.number("beta1")),
      beta2_(options.number("beta2")),
      eps_(options.number("eps")),
      weight_decay_(options.number("weight_decay")) {
  for (auto& parameter : parameters) {
    states_.push_back({parameter, torch::zeros_like(parameter), torch::zeros_like(parameter)});
  }
}

void NAdamW::step(const StepInfo&, PhaseTimer&) {
  torch::NoGradGuard no_grad;
  for (auto& state : states_) {
    const auto& grad = state.parameter.grad();
    if (!grad.defined()) continue;
    const double t = static_cast<double>(++state.steps);
    state.parameter.mul_(1 - lr_ * weight_decay_);
    state.first_moment.mul_(beta1_).add_(grad, 1 - beta1_);
    state.second_moment.mul_(beta2_).addcmul_(grad, grad, 1 - beta2_);
    // Nesterov: the first moment one more step ahead, with the same gradient.
    const auto look_ahead = state.first_moment.mul(beta1_).add_(grad, 1 - beta1_);
    const auto denominator = state.second_moment.sqrt().div_(std::sqrt(1 - std::pow(beta2_, t))).add_(eps_);
    state.parameter.addcdiv_(look_ahead, denominator, -lr_ / (1 - std::pow(beta1_, t)));
  }
}

OptimizerState NAdamW::state() const {
  OptimizerState state;
  for (size_t i = 0; i < states_.size(); ++i) {
    const auto prefix = fmt::format("nadamw/param{}/", i);
    state.push_back({prefix + "first_moment", states_[i].first_moment});
    state.push_back({prefix + "second_moment", states_[i].second_moment});
    state.push_back({prefix + "steps", state_integer(states_[i].steps)});
  }
  return state;
}

void NAdamW::load_state(const OptimizerState& state) {
  StateReader reader(state);
  for (size_t i = 0; i < states_.size(); ++i) {
    const auto prefix = fmt::format("nadamw/param{}/", i);
    auto& parameter_state = states_[i];
    parameter_state.first_moment = reader.tensor_like(prefix + "first_moment", parameter_state.parameter);
    parameter_state.second_moment = reader.tensor_like(prefix + "second_moment", parameter_state.parameter);
    parameter_state.steps = reader.integer(prefix + "steps");
  }
  reader.finish();
}

OptimizerEntry nadamw_entry() {
  return {"nadamw",
          "NAdamW, AlgoPerf's baseline: Adam with a Nesterov look-ahead first moment and decoupled weight decay",
          adam_hyperparameters(), [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<NAdamW>(model.parameters(), options);
          }};
}

}  // namespace ngd
