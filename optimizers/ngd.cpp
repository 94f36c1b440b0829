#include "optimizers/ngd.h"

#include "optimizers/curvature/layer_statistics.h"

namespace ngd {
namespace {

// As TENGraD's and FNGD's (HyLo's 3C1F script): lr/λ = 0.01, SGD's default, where λ dominates F.
constexpr double kDefaultLearningRate = 0.003;
// As TENGraD's and FNGD's, so that the three Woodbury methods solve the same damped system by default.
constexpr double kDefaultDamping = 0.3;

}  // namespace

NgdPreconditioner::NgdPreconditioner(CaptureModel& model, const Options& options)
    : layers_(model.capture_layers()),
      sampled_(options.text("fisher") == "sampled"),
      solver_(woodbury_settings(options)),
      damping_(options) {
  if (sampled_ && damping_.value() <= 0) {
    throw std::invalid_argument("ngd with fisher = sampled needs damping > 0: the step is (ḡ − U_s c)/λ");
  }
}

Capture NgdPreconditioner::capture(const StepInfo&, const CurvatureStep&) const {
  return sampled_ ? Capture::kSampled : Capture::kEmpirical;
}

std::vector<torch::Tensor> NgdPreconditioner::directions(const StepInfo& info, const CurvatureStep&) {
  std::vector<SampleGradients> gradients;
  for (const auto& layer : layers_) {
    // The recorded output gradients are those of a batch-mean loss (the sampled one under kSampled).
    gradients.push_back(solver_.sample_gradients(*layer, static_cast<double>(layer->input().size(0))));
  }
  const auto factor = solver_.factorize(solver_.joint_gram(gradients), damping_.value(), "ngd: all layers");
  std::vector<torch::Tensor> steps;
  if (sampled_) {
    std::vector<torch::Tensor> mean_gradients;
    for (const auto& layer : layers_) mean_gradients.push_back(gradient_matrix(*layer));
    steps = solver_.apply_inverse(gradients, factor, mean_gradients);
  } else {
    const auto& options = gradient_matrix(*layers_.front()).options();
    steps = joint_combine(gradients, solver_.natural_gradient_coefficients(factor, options));
  }
  for (const auto& layer : layers_) layer->clear_captures();
  damping_.after_refresh(info);
  stepped_ = true;
  return steps;
}

void NgdPreconditioner::append_state(OptimizerState& state) const { damping_.append_state(state, "ngd/damping"); }

void NgdPreconditioner::load_state(StateReader& reader) { damping_.load_state(reader, "ngd/damping"); }

OptimizerEntry ngd_entry() {
  auto hyperparameters = preconditioned_sgd_hyperparameters(kDefaultLearningRate);
  hyperparameters.push_back({"fisher", "empirical",
                             "empirical: F = UUᵀ/n of the true labels' per-sample gradients; sampled: of one label "
                             "per sample drawn from the model (true Fisher, one extra backward)",
                             {"empirical", "sampled"}});
  for (auto& info : damping_hyperparameters(kDefaultDamping, "step")) hyperparameters.push_back(std::move(info));
  for (auto& info : woodbury_hyperparameters()) hyperparameters.push_back(std::move(info));
  return {"ngd",
          "Exact damped natural gradient (F+λI)⁻¹ḡ over all capture layers jointly, solved fresh every step through "
          "Woodbury (empirical or sampled Fisher), then SGD with momentum",
          std::move(hyperparameters), [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<Ngd>(model, options);
          }};
}

}  // namespace ngd
