#include "optimizers/nadamw.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "optimizers/adamw.h"

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

OptimizerEntry nadamw_entry() {
  return {"nadamw",
          "NAdamW, AlgoPerf's baseline: Adam with a Nesterov look-ahead first moment and decoupled weight decay",
          adam_hyperparameters(), [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<NAdamW>(model.parameters(), options);
          }};
}

}  // namespace ngd
