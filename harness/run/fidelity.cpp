#include "harness/run/fidelity.h"

#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <mutex>

#include "base/device.h"
#include "optimizers/curvature/layer_statistics.h"

namespace ngd {
namespace {

// Σ_l ⟨a_l, b_l⟩ in float64.
double dot(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double sum = 0;
  for (size_t l = 0; l < a.size(); ++l) sum += (a[l].to(torch::kDouble) * b[l].to(torch::kDouble)).sum().item<double>();
  return sum;
}

double cosine(double ab, double aa, double bb) { return ab / std::sqrt(aa * bb); }

double tensor_cosine(const torch::Tensor& a, const torch::Tensor& b) {
  return cosine((a * b).sum().item<double>(), (a * a).sum().item<double>(), (b * b).sum().item<double>());
}

CoefficientStaleness staleness_of(const CoefficientComparison& coefficients) {
  const auto reused = coefficients.reused.to(torch::kCPU, torch::kDouble);
  const auto fresh = coefficients.fresh.to(torch::kCPU, torch::kDouble);
  return {tensor_cosine(reused.flatten(), fresh.flatten()),
          ((reused - fresh).norm() / fresh.norm()).item<double>(),
          (reused < 0).to(torch::kDouble).mean().item<double>(),
          reused.sum(1).mean().item<double>(),
          fresh.sum(1).mean().item<double>()};
}

// {"mean", "min", "max"} of the finite values (null when there are none).
nlohmann::json spread(const std::vector<double>& values) {
  double sum = 0, low = std::numeric_limits<double>::infinity(), high = -low;
  int64_t count = 0;
  for (double value : values) {
    if (!std::isfinite(value)) continue;
    sum += value;
    low = std::min(low, value);
    high = std::max(high, value);
    ++count;
  }
  if (count == 0) return nullptr;
  return {{"mean", sum / static_cast<double>(count)}, {"min", low}, {"max", high}};
}

template <class Get>
nlohmann::json spread_of(const std::vector<ProbeMeasurement>& probes, Get get) {
  std::vector<double> values;
  for (const auto& probe : probes) values.push_back(get(probe));
  return spread(values);
}

// What a probe's extra forward/backward would change, saved and put back on destruction: the random
// generators (dropout, sampled labels), the model's buffers (BatchNorm running statistics), the
// parameters' gradients and the capture layers' recordings.
class TrainingStateSnapshot {
 public:
  TrainingStateSnapshot(CaptureModel& model, const torch::Device& device) : model_(model), buffers_(model) {
    generators_.push_back(at::globalContext().defaultGenerator(torch::kCPU));
    if (!device.is_cpu()) generators_.push_back(at::globalContext().defaultGenerator(device));
    for (auto& generator : generators_) generator_states_.push_back(generator.get_state());
    for (const auto& parameter : model.parameters()) {
      gradients_.push_back(parameter.grad().defined() ? parameter.grad().clone() : torch::Tensor());
    }
  }
  ~TrainingStateSnapshot() {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < generators_.size(); ++i) generators_[i].set_state(generator_states_[i]);
    buffers_.restore();
    auto parameters = model_.parameters();
    for (size_t i = 0; i < parameters.size(); ++i) parameters[i].mutable_grad() = gradients_[i];
    for (const auto& layer : model_.capture_layers()) {
      layer->clear_captures();
      layer->set_record_input(false);
      layer->set_record_grad_output(false);
    }
  }
  TrainingStateSnapshot(const TrainingStateSnapshot&) = delete;
  TrainingStateSnapshot& operator=(const TrainingStateSnapshot&) = delete;

 private:
  CaptureModel& model_;
  std::vector<at::Generator> generators_;
  std::vector<torch::Tensor> generator_states_;
  BufferCopy buffers_;
  std::vector<torch::Tensor> gradients_;
};

}  // namespace

FidelityProbe::FidelityProbe(FidelitySettings settings, CaptureModel& model, Optimizer& optimizer,
                             const torch::Device& device)
    : settings_(settings), model_(model), probed_(dynamic_cast<const PreconditionedSgd*>(&optimizer)), device_(device),
      active_(settings.every_steps > 0 && probed_ != nullptr && !model.capture_layers().empty()),
      solver_(WoodburySettings{}) {
  // Once per process (a sweep): the runs it concerns are the ones without fidelity fields.
  static std::once_flag said;
  if (settings.every_steps > 0 && !active_) {
    std::call_once(said, [] {
      std::cerr << "fidelity probes: none in runs whose optimizer's update is not a preconditioned gradient, "
                   "or whose model has no capture layers\n";
    });
  }
}

void FidelityProbe::before_step(const StepInfo& info, const ForwardPass& forward) {
  pending_.reset();
  if (!due(info)) return;
  synchronize(device_);  // queued training work is not the probe's
  const TimingProbe clock;
  const int64_t syncs_before = host_sync_count();
  {
    TrainingStateSnapshot snapshot(model_, device_);
    const auto& layers = model_.capture_layers();
    for (const auto& layer : layers) {
      layer->set_record_input(true);
      layer->set_record_grad_output(true);
    }
    const auto per_sample_loss = forward().second;
    model_.zero_grad();
    per_sample_loss.mean().backward();
    torch::NoGradGuard no_grad;
    Pending pending;
    for (const auto& layer : layers) {
      // Per-sample gradients are n times the recorded ones under the batch mean.
      pending.gradients.push_back(solver_.sample_gradients(*layer, static_cast<double>(layer->input().size(0))));
      pending.grams.push_back(solver_.gram(pending.gradients.back()));
      pending.mean_gradient.push_back(gradient_matrix(*layer).clone());
    }
    auto gram = pending.grams[0];
    for (size_t l = 1; l < pending.grams.size(); ++l) gram = gram + pending.grams[l];
    // A non-finite Gram (a diverging run) gives no probe: the training itself reports the divergence.
    if (host_value<bool>(torch::isfinite(gram).all())) {
      const auto* preconditioner = probed_->preconditioner();
      // The plugin's own λ where it damps a Fisher; else the probe's.
      pending.damping = (preconditioner ? preconditioner->damping() : std::nullopt).value_or(settings_.damping);
      const auto factor = solver_.factorize(gram, pending.damping, "fidelity probe");
      pending.natural = joint_combine(
          pending.gradients, solver_.natural_gradient_coefficients(factor, pending.mean_gradient[0].options()));
      pending_ = std::move(pending);
    }
  }
  synchronize(device_);
  add_cost(clock.finish());
  host_syncs_ += host_sync_count() - syncs_before;
}

void FidelityProbe::after_step(const StepInfo& info) {
  if (!pending_) return;
  synchronize(device_);
  const TimingProbe clock;
  const int64_t syncs_before = host_sync_count();
  measure(info);
  pending_.reset();
  synchronize(device_);
  add_cost(clock.finish());
  host_syncs_ += host_sync_count() - syncs_before;
}

void FidelityProbe::measure(const StepInfo& info) {
  torch::NoGradGuard no_grad;
  const auto& pending = *pending_;
  const auto& layers = model_.capture_layers();
  std::vector<torch::Tensor> direction;
  for (const auto& layer : layers) direction.push_back(gradient_matrix(*layer));
  const auto& natural = pending.natural;
  ProbeMeasurement probe;
  probe.damping = pending.damping;
  const double dd = dot(direction, direction), nn = dot(natural, natural);
  probe.cosine = cosine(dot(direction, natural), dd, nn);
  for (size_t l = 0; l < layers.size(); ++l) probe.layer_cosine.push_back(tensor_cosine(direction[l], natural[l]));
  probe.norm_ratio = std::sqrt(dd / nn);
  // γ(x)² = (xᵀFx)/(xᵀḡ)² with xᵀFx = ‖Uᵀx‖²/n.
  const double n = static_cast<double>(pending.gradients[0].samples());
  const auto gamma = [&](const std::vector<torch::Tensor>& x) {
    const double curvature = joint_project(pending.gradients, x).to(torch::kDouble).square().sum().item<double>() / n;
    return std::sqrt(curvature) / std::abs(dot(x, pending.mean_gradient));
  };
  probe.gamma_ratio = gamma(direction) / gamma(pending.mean_gradient);
  const auto* reused = dynamic_cast<const ReusedCoefficients*>(probed_->preconditioner());
  if (auto coefficients = reused ? reused->coefficient_staleness(info, pending.grams) : std::nullopt) {
    probe.staleness = staleness_of(*coefficients);
  }
  last_ = probe;
  epoch_.push_back(std::move(probe));
}

void FidelityProbe::add_cost(const TimingSample& sample) {
  seconds_ += sample.wall_s;
  cpu_seconds_ += sample.cpu_s;
}

FidelityProbe::EpochProbes FidelityProbe::end_epoch() {
  EpochProbes probes{nullptr, seconds_, cpu_seconds_, host_syncs_};
  if (!epoch_.empty()) {
    auto& summary = probes.summary;
    summary["probes"] = epoch_.size();
    summary["damping"] = epoch_.back().damping;
    summary["cosine"] = spread_of(epoch_, [](const auto& p) { return p.cosine; });
    summary["norm_ratio"] = spread_of(epoch_, [](const auto& p) { return p.norm_ratio; });
    summary["gamma_ratio"] = spread_of(epoch_, [](const auto& p) { return p.gamma_ratio; });
    summary["layer_cosine"] = nlohmann::json::array();
    for (size_t l = 0; l < epoch_[0].layer_cosine.size(); ++l) {
      summary["layer_cosine"].push_back(spread_of(epoch_, [l](const auto& p) { return p.layer_cosine[l]; }));
    }
    if (epoch_[0].staleness) {
      const auto& s = [](const ProbeMeasurement& p) -> const CoefficientStaleness& { return *p.staleness; };
      summary["coefficient_cosine"] = spread_of(epoch_, [&](const auto& p) { return s(p).cosine; });
      summary["coefficient_relative_error"] = spread_of(epoch_, [&](const auto& p) { return s(p).relative_error; });
      summary["coefficient_negative_fraction"] = spread_of(epoch_, [&](const auto& p) { return s(p).negative_fraction; });
      summary["coefficient_sum_reused"] = spread_of(epoch_, [&](const auto& p) { return s(p).sum_reused; });
      summary["coefficient_sum_fresh"] = spread_of(epoch_, [&](const auto& p) { return s(p).sum_fresh; });
    }
  }
  epoch_.clear();
  seconds_ = 0;
  cpu_seconds_ = 0;
  host_syncs_ = 0;
  return probes;
}

}  // namespace ngd
