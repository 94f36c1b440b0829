#include "optimizers/sgd.h"

#include "optimizers/preconditioned_sgd.h"

namespace ngd {

std::vector<OptionInfo> sgd_hyperparameters(double default_lr) {
  return {
      {"lr", default_lr, "base learning rate (scaled by the schedule)", {}, at_least(0)},
      {"momentum", 0.9, "heavy-ball momentum μ (0 = none)", {}, below_one()},
      {"nesterov", false, "Nesterov momentum (needs momentum > 0)"},
      {"weight_decay", 0.0, "L2 coefficient added to the gradient: g + wd·θ", {}, at_least(0)},
  };
}

std::vector<OptionInfo> preconditioned_sgd_hyperparameters(double default_lr) {
  auto hyperparameters = sgd_hyperparameters(default_lr);
  for (auto& option : hyperparameters) {
    if (option.name == "momentum") option.help = "heavy-ball momentum μ (0 = none), on the preconditioned gradient V";
    if (option.name == "weight_decay") option.help = "L2 coefficient added after preconditioning: V + wd·θ";
  }
  return hyperparameters;
}

std::unique_ptr<torch::optim::Optimizer> make_torch_sgd(std::vector<torch::Tensor> parameters, const Options& options) {
  const bool nesterov = options.flag("nesterov");
  if (nesterov && options.number("momentum") <= 0) {
    throw std::invalid_argument("nesterov = true needs momentum > 0");
  }
  return std::make_unique<torch::optim::SGD>(std::move(parameters),
                                             torch::optim::SGDOptions(options.number("lr"))
                                                 .momentum(options.number("momentum"))
                                                 .weight_decay(options.number("weight_decay"))
                                                 .nesterov(nesterov));
}

OptimizerEntry sgd_entry() {
  return {"sgd", "SGD with heavy-ball or Nesterov momentum and L2 weight decay (torch semantics)",
          sgd_hyperparameters(0.01), [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<PreconditionedSgd>(model, options, nullptr);
          }};
}

}  // namespace ngd
