#include "optimizers/preconditioned_sgd.h"

#include "optimizers/curvature/layer_statistics.h"

namespace ngd {
namespace {

// An interval the entry declares (every step where it declares none); the modulo needs it ≥ 1 also where
// the settings were built by hand rather than resolved against their declared range.
std::optional<int64_t> declared_interval(const Options& options, const std::string& name) {
  if (!options.json().contains(name)) return std::nullopt;
  const int64_t interval = options.integer(name);
  if (interval < 1) throw std::invalid_argument(name + " must be ≥ 1");
  return interval;
}

}  // namespace

PreconditionedSgd::PreconditionedSgd(CaptureModel& model, const Options& options,
                                     std::unique_ptr<Preconditioner> preconditioner)
    : TorchOptimizer(make_torch_sgd(model.parameters(), options)),
      preconditioner_(std::move(preconditioner)),
      layers_(model.capture_layers()),
      stat_interval_(declared_interval(options, "stat_interval")),
      inverse_interval_(declared_interval(options, "inverse_interval")),
      interval_per_epoch_(options.json().contains("interval_per_epoch") && options.flag("interval_per_epoch")),
      kl_clip_(options.json().contains("kl_clip") ? std::optional<double>(options.number("kl_clip")) : std::nullopt),
      lr_(options.number("lr")) {}

CurvatureStep PreconditionedSgd::curvature_step(const StepInfo& info) const {
  const int64_t counted = interval_per_epoch_ ? info.batch_index : info.step;
  return {!stat_interval_ || counted % *stat_interval_ == 0, !inverse_interval_ || counted % *inverse_interval_ == 0};
}

Capture PreconditionedSgd::capture(const StepInfo& info) const {
  return preconditioner_ ? preconditioner_->capture(info, curvature_step(info)) : Capture::kNone;
}

torch::Tensor PreconditionedSgd::reduce_loss(const torch::Tensor& per_sample_loss, const StepInfo& info) {
  return preconditioner_ ? preconditioner_->reduce_loss(per_sample_loss, info) : per_sample_loss.mean();
}

void PreconditionedSgd::set_learning_rate(double lr) {
  lr_ = lr;  // the KL clip uses the current rate
  TorchOptimizer::set_learning_rate(lr);
}

void PreconditionedSgd::clip(std::vector<torch::Tensor>& directions) const {
  if (!kl_clip_) return;
  torch::Tensor alignment;  // Σ_layers ⟨V, ∇W̄⟩, a 0-d tensor: no read-back
  for (size_t i = 0; i < directions.size(); ++i) {
    if (!directions[i].defined()) continue;
    const auto layer_alignment = (directions[i] * gradient_matrix(*layers_[i])).sum();
    alignment = alignment.defined() ? alignment + layer_alignment : layer_alignment;
  }
  if (!alignment.defined()) return;
  const auto scale = kl_clip_factor(alignment, *kl_clip_, lr_);
  for (auto& direction : directions) {
    if (direction.defined()) direction = direction * scale;
  }
}

void PreconditionedSgd::step(const StepInfo& info, PhaseTimer& timer) {
  torch::NoGradGuard no_grad;
  const auto curvature = curvature_step(info);
  preconditioned_ = preconditioner_ && preconditioner_->preconditions(info, curvature);
  if (preconditioned_) {
    auto scope = timer.scope(Phase::kCurvature);
    auto directions = preconditioner_->directions(info, curvature);
    if (!directions.empty()) {
      TORCH_CHECK(directions.size() == layers_.size(), "a preconditioner returned ", directions.size(),
                  " directions for ", layers_.size(), " capture layers");
      clip(directions);
      for (size_t i = 0; i < layers_.size(); ++i) {
        if (directions[i].defined()) set_gradient_matrix(*layers_[i], directions[i]);
      }
    }
  }
  TorchOptimizer::step(info, timer);
  if (preconditioner_ && preconditioner_->works_after_step()) {
    auto scope = timer.scope(Phase::kCurvature);
    preconditioner_->after_step(info, curvature);
  }
}

OptimizerState PreconditionedSgd::state() const {
  auto state = TorchOptimizer::state();
  if (preconditioner_) preconditioner_->append_state(state);
  return state;
}

void PreconditionedSgd::load_state(const OptimizerState& state) {
  StateReader reader(state);
  load_torch_part(reader);
  if (preconditioner_) preconditioner_->load_state(reader);
  reader.finish();
}

bool PreconditionedSgd::refreshed_curvature() const { return preconditioned_ && preconditioner_->refreshed(); }

nlohmann::json PreconditionedSgd::report() const {
  return preconditioner_ ? preconditioner_->report() : nlohmann::json::object();
}

OptionInfo stat_interval_hyperparameter(int64_t default_interval, const std::string& help) {
  return {"stat_interval", default_interval, help, {}, at_least(1)};
}

OptionInfo inverse_interval_hyperparameter(int64_t default_interval, const std::string& help) {
  return {"inverse_interval", default_interval, help, {}, at_least(1)};
}

OptionInfo kl_clip_hyperparameter(double default_clip) {
  return {"kl_clip", default_clip, "KL clip κ: scale the preconditioned gradients V so that lr²·Σ⟨V, ∇W̄⟩ ≤ κ (0 = off)",
          {}, at_least(0)};
}

}  // namespace ngd
