#include "optimizers/adamw.h"

#include "optimizers/torch_optimizer.h"

namespace ngd {
std::vector<OptionInfo> adam_hyperparameters() {
  return {
      {"lr", 1e-3, "base learning rate (scaled by the schedule)", {}, at_least(0)},
      {"beta1", 0.9, "decay of the first-moment average", {}, below_one()},
      {"beta2", 0.999, "decay of the second-moment average (0.98 for Transformers)", {}, below_one()},
      {"eps", 1e-8, "added to √v̂", {}, at_least(0)},
      {"weight_decay", 0.01, "decoupled weight decay coefficient", {}, at_least(0)},
  };
}

OptimizerEntry adamw_entry() {
  auto hyperparameters = adam_hyperparameters();
  hyperparameters.push_back({"amsgrad", false, "keep the maximum of v̂ (AMSGrad)"});
  return {"adamw",
          "Adam with decoupled weight decay (Loshchilov & Hutter): θ ← θ − lr·wd·θ − lr·m̂/(√v̂+ε)",
          std::move(hyperparameters),
          [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            auto adamw = std::make_unique<torch::optim::AdamW>(
                model.parameters(), torch::optim::AdamWOptions(options.number("lr"))
                                        .betas({options.number("beta1"), options.number("beta2")})
                                        .eps(options.number("eps"))
                                        .weight_decay(options.number("weight_decay"))
                                        .amsgrad(options.flag("amsgrad")));
            return std::make_unique<TorchOptimizer>(std::move(adamw));
          }};
}

}  // namespace ngd
