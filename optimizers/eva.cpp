#include "optimizers/eva.h"

#include <fmt/format.h>

#include <stdexcept>

#include "optimizers/curvature/layer_statistics.h"
#include "optimizers/optimizer_state.h"

namespace ngd {
namespace {

std::vector<OptionInfo> eva_hyperparameters() {
  auto options = preconditioned_sgd_hyperparameters(0.1);
  const std::vector<OptionInfo> curvature_options = {
      {"damping", 0.03, "Tikhonov damping λ of (ḡḡᵀ ⊗ āāᵀ + λI)", {}, above(0)},
      {"stat_decay", 0.05,
       "weight ξ of the old running means: v ← ξ·v + (1 − ξ)·new (0.05 = the reference's factor_decay 0.95, "
       "which its code gives to the new mean)", {}, below_one()},
      kl_clip_hyperparameter(1e-3),
      stat_interval_hyperparameter(
          1, "steps between updates of the Kronecker vectors (capture is requested on these steps only)"),
  };
  options.insert(options.end(), curvature_options.begin(), curvature_options.end());
  return options;
}

}  // namespace

EvaPreconditioner::EvaPreconditioner(CaptureModel& model, const Options& options)
    : damping_(options.number("damping")), stat_decay_(options.number("stat_decay")) {
  for (const auto& layer : model.capture_layers()) layers_.push_back({layer, {}, {}});
}

Capture EvaPreconditioner::capture(const StepInfo&, const CurvatureStep& curvature) const {
  return curvature.statistics ? Capture::kEmpirical : Capture::kNone;
}

std::vector<torch::Tensor> EvaPreconditioner::directions(const StepInfo&, const CurvatureStep& curvature) {
  refreshed_ = curvature.statistics;
  if (refreshed_) update_vectors();
  std::vector<torch::Tensor> updates;
  for (const auto& state : layers_) {
    TORCH_CHECK(state.input_vector.defined(), "eva: no Kronecker vectors yet (the first step must capture)");
    const auto gradient = gradient_matrix(*state.layer);
    const auto& a = state.input_vector;
    const auto& g = state.grad_vector;
    // All 0-d tensors: no read-back.
    const auto projection = g.dot(gradient.mv(a)) / (a.dot(a) * g.dot(g) + damping_);
    updates.push_back((gradient - projection * torch::outer(g, a)) / damping_);
  }
  return updates;
}

void EvaPreconditioner::append_state(OptimizerState& state) const {
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!layers_[i].input_vector.defined()) continue;
    state.push_back({fmt::format("eva/layer{}/input_vector", i), layers_[i].input_vector});
    state.push_back({fmt::format("eva/layer{}/grad_vector", i), layers_[i].grad_vector});
  }
}

void EvaPreconditioner::load_state(StateReader& reader) {
  // Every layer's vectors start on the same (first) step.
  std::vector<std::string> names;
  for (size_t i = 0; i < layers_.size(); ++i) {
    names.insert(names.end(), {fmt::format("eva/layer{}/input_vector", i), fmt::format("eva/layer{}/grad_vector", i)});
  }
  const bool started = reader.contains_any(names);
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto& layer = layers_[i];
    const auto shape = gradient_matrix_shape(*layer.layer);
    const auto options = layer.layer->weight().options();
    layer.input_vector = started ? reader.tensor(fmt::format("eva/layer{}/input_vector", i), {shape[1]}, options) : torch::Tensor();
    layer.grad_vector = started ? reader.tensor(fmt::format("eva/layer{}/grad_vector", i), {shape[0]}, options) : torch::Tensor();
  }
}

void EvaPreconditioner::update_vectors() {
  for (auto& state : layers_) {
    const auto input_mean = mean_input_row(*state.layer);
    const auto grad_mean = mean_grad_output_row(*state.layer);
    state.layer->clear_captures();
    if (!state.input_vector.defined()) {  // the first capture starts the running means
      state.input_vector = input_mean;
      state.grad_vector = grad_mean;
      continue;
    }
    state.input_vector.mul_(stat_decay_).add_(input_mean, 1 - stat_decay_);
    state.grad_vector.mul_(stat_decay_).add_(grad_mean, 1 - stat_decay_);
  }
}

OptimizerEntry eva_entry() {
  return {"eva",
          "Eva: Kronecker vectors ā, ḡ and the Sherman–Morrison solve of (ḡḡᵀ⊗āāᵀ + λI), KL clip, then SGD "
          "(lzhangbv/eva)",
          eva_hyperparameters(), [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<Eva>(model, options);
          }};
}

}  // namespace ngd
