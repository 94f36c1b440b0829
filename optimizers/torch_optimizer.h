#pragma once

#include <memory>

#include "optimizers/optimizer.h"

namespace ngd {

// A plugin that steps with a LibTorch optimizer on the gradients as they are: SGD and AdamW directly,
// and the preconditioning optimizers after rewriting the gradients (so momentum and weight decay are
// applied to the preconditioned gradient, as in the KFAC/HyLo codes).
class TorchOptimizer : public Optimizer {
 public:
  explicit TorchOptimizer(std::unique_ptr<torch::optim::Optimizer> optimizer) : optimizer_(std::move(optimizer)) {}

  void step(const StepInfo&, PhaseTimer&) override { optimizer_->step(); }
  void set_learning_rate(double lr) override {
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
  }

 protected:
  torch::optim::Optimizer& torch_optimizer() { return *optimizer_; }

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
