#include "optimizers/tengrad.h"

#include <fmt/format.h>

#include "optimizers/curvature/layer_statistics.h"

namespace ngd {
namespace {

// HyLo's 3C1F Fashion-MNIST script (reference §2c); lr/λ = 0.01, SGD's default, where λ dominates F.
constexpr double kDefaultLearningRate = 0.003;
// HyLo's 3C1F Fashion-MNIST script (constant damping).
constexpr double kDefaultDamping = 0.3;
// HyLo's scripts refresh the statistics every 100 steps.
constexpr int64_t kDefaultInverseInterval = 100;

}  // namespace

TengradPreconditioner::TengradPreconditioner(CaptureModel& model, const Options& options)
    : layers_(model.capture_layers()), solver_(woodbury_settings(options)), damping_(options) {
  if (damping_.value() <= 0) throw std::invalid_argument("tengrad needs damping > 0: the inverse is (V − U c)/λ");
}

Capture TengradPreconditioner::capture(const StepInfo&, const CurvatureStep& curvature) const {
  return curvature.refresh ? Capture::kEmpirical : Capture::kNone;
}

void TengradPreconditioner::refresh(const StepInfo& info) {
  blocks_.clear();
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto& layer = *layers_[i];
    // The loss is the batch mean: per-sample gradients are n times the recorded ones.
    auto gradients = solver_.sample_gradients(layer, static_cast<double>(layer.input().size(0)));
    auto factor = solver_.factorize(solver_.gram(gradients), damping_.value(),
                                    "tengrad: " + describe_layer(layer, i, layers_.size()));
    blocks_.push_back({std::move(gradients), std::move(factor)});
    layer.clear_captures();  // the block holds what it needs until the next refresh
  }
  damping_.after_refresh(info);
}

std::vector<torch::Tensor> TengradPreconditioner::directions(const StepInfo& info, const CurvatureStep& curvature) {
  refreshed_ = curvature.refresh;
  if (refreshed_) refresh(info);
  TORCH_CHECK(blocks_.size() == layers_.size(), "tengrad: no statistics yet (the first step must refresh)");
  std::vector<torch::Tensor> updates;
  for (size_t i = 0; i < layers_.size(); ++i) {
    updates.push_back(solver_.apply_inverse(blocks_[i].gradients, blocks_[i].factor, gradient_matrix(*layers_[i])));
  }
  return updates;
}

void TengradPreconditioner::append_state(OptimizerState& state) const {
  damping_.append_state(state, "tengrad/damping");
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const auto prefix = fmt::format("tengrad/layer{}/", i);
    blocks_[i].gradients.append_state(state, prefix);
    blocks_[i].factor.append_state(state, prefix);
  }
}

void TengradPreconditioner::load_state(StateReader& reader) {
  damping_.load_state(reader, "tengrad/damping");
  blocks_.clear();
  // Every layer is refreshed on the same steps, the first at step 0.
  std::vector<std::string> names;
  for (size_t i = 0; i < layers_.size(); ++i) {
    for (const char* field : {"per_sample_gradients", "inputs", "grad_outputs", "cholesky", "damping"}) {
      names.push_back(fmt::format("tengrad/layer{}/{}", i, field));
    }
  }
  if (reader.contains_any(names)) {
    for (size_t i = 0; i < layers_.size(); ++i) {
      const auto prefix = fmt::format("tengrad/layer{}/", i);
      auto gradients = solver_.sample_gradients_from_state(reader, prefix, *layers_[i]);
      auto factor = DampedGram::from_state(reader, prefix, gradients.samples(),
                                           layers_[i]->weight().options().dtype(solver_.solve_dtype()));
      blocks_.push_back({std::move(gradients), std::move(factor)});
    }
  }
}

OptimizerEntry tengrad_entry() {
  auto hyperparameters = preconditioned_sgd_hyperparameters(kDefaultLearningRate);
  hyperparameters.push_back(inverse_interval_hyperparameter(
      kDefaultInverseInterval, "steps between refreshes of the per-sample gradients and the factorised inverse"));
  for (auto& info : damping_hyperparameters(kDefaultDamping, "refresh")) hyperparameters.push_back(std::move(info));
  for (auto& info : woodbury_hyperparameters()) hyperparameters.push_back(std::move(info));
  return {"tengrad",
          "TENGraD: exact Woodbury inverse of each layer's damped empirical-Fisher block, refreshed every inverse_interval steps, "
          "then SGD with momentum",
          std::move(hyperparameters), [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<Tengrad>(model, options);
          }};
}

}  // namespace ngd
