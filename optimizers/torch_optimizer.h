#pragma once

#include <memory>

#include "optimizers/optimizer.h"
#include "optimizers/optimizer_state.h"

namespace ngd {

// A plugin that steps with a LibTorch optimizer on the gradients as they are: AdamW directly, and SGD
// through PreconditionedSgd, which rewrites the gradients first (so momentum and weight decay act on the
// preconditioned gradient, as in the KFAC/HyLo codes).
class TorchOptimizer : public Optimizer {
 public:
  explicit TorchOptimizer(std::unique_ptr<torch::optim::Optimizer> optimizer) : optimizer_(std::move(optimizer)) {}

  void step(const StepInfo&, PhaseTimer&) override { optimizer_->step(); }
  void set_learning_rate(double lr) override {
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
  }

  // The LibTorch optimizer's per-parameter state (append_torch_state), under "sgd/" or "adamw/". A
  // plugin with state of its own appends its entries to these and reads them after load_torch_part.
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;

 protected:
  torch::optim::Optimizer& torch_optimizer() { return *optimizer_; }
  // load_state's part for the LibTorch optimizer, from a reader the plugin finishes.
  void load_torch_part(StateReader& reader);

 private:
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

// torch::optim::SGD over `parameters` with the "lr", "momentum", "weight_decay" and "nesterov"
// settings of `options` (torch semantics: buf = μ·buf + (g + wd·θ); θ -= lr·buf).
std::unique_ptr<torch::optim::Optimizer> make_torch_sgd(std::vector<torch::Tensor> parameters, const Options& options);

// The settings make_torch_sgd reads, with their defaults.
std::vector<OptionInfo> sgd_hyperparameters(double default_lr);

// The same settings for an optimizer that hands make_torch_sgd a preconditioned gradient V in place of
// g: momentum and weight decay then act on V (buf = μ·buf + (V + wd·θ)), and their help says so.
std::vector<OptionInfo> preconditioned_sgd_hyperparameters(double default_lr);

}  // namespace ngd
