#include "optimizers/torch_optimizer.h"

namespace ngd {
namespace {

// The entries' prefix: which LibTorch optimizer the state belongs to.
std::string torch_state_prefix(const torch::optim::Optimizer& optimizer) {
  return dynamic_cast<const torch::optim::AdamW*>(&optimizer) != nullptr ? "adamw" : "sgd";
}

}  // namespace

OptimizerState TorchOptimizer::state() const {
  OptimizerState state;
  append_torch_state(state, *optimizer_, torch_state_prefix(*optimizer_));
  return state;
}

void TorchOptimizer::load_state(const OptimizerState& state) {
  StateReader reader(state);
  load_torch_part(reader);
  reader.finish();
}

void TorchOptimizer::load_torch_part(StateReader& reader) {
  load_torch_state(reader, *optimizer_, torch_state_prefix(*optimizer_));
}

}  // namespace ngd
