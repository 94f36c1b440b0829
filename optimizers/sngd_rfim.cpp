// The official SNGD code's optimizer (Chaochao-Lin/SNGD, MLP.py): relative Fisher metrics per layer.
#include <fmt/format.h>

#include "base/device.h"
#include "optimizers/curvature/layer_statistics.h"
#include "optimizers/preconditioned_sgd.h"
#include "optimizers/sngd.h"

namespace ngd {
namespace {

// One layer's metrics, stacked: (1, d, d) for the input-covariance ("linear") metric of the first and
// last layers, (out, d, d) with one metric per output unit for hidden layers; d = in + 1 (bias).
struct LayerMetric {
  std::shared_ptr<CaptureLayer> layer;
  bool per_unit = false;
  torch::Tensor metric;
  torch::Tensor inverse;
  torch::Tensor batch_metric;  // this step's statistics, averaged in after the step
};

// The curvature half of SNGD-RFIM: each layer's regularised gradient is solved with its metrics, and
// the step's batch metric is folded into the running average after SGD has stepped (as the official
// loop does); PreconditionedSgd steps with SGD.
class SngdRfimPreconditioner : public Preconditioner {
 public:
  SngdRfimPreconditioner(CaptureModel& model, const Options& options)
      : stat_decay_(options.number("stat_decay")), damping_(options.number("damping")), l2_(options.number("l2")) {
    const auto& layers = model.capture_layers();
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& layer = layers[i];
      if (layer->kind() != CaptureLayer::Kind::kLinear) {
        throw std::invalid_argument("sngd-rfim supports Linear layers only (the official code's MLP); use sngd");
      }
      const bool per_unit = i != 0 && i + 1 != layers.size();
      const int64_t dim = layer->weight().size(1) + (layer->has_bias() ? 1 : 0);
      const int64_t count = per_unit ? layer->weight().size(0) : 1;
      // Metrics and inverses start at I, so the first step is plain gradient descent.
      const auto identity = torch::eye(dim, layer->weight().options()).expand({count, dim, dim}).clone();
      metrics_.push_back({layer, per_unit, identity, identity.clone(), {}});
    }
  }

  Capture capture(const StepInfo&, const CurvatureStep&) const override { return Capture::kEmpirical; }

  std::vector<torch::Tensor> directions(const StepInfo&, const CurvatureStep&) override {
    std::vector<torch::Tensor> updates;
    for (auto& layer : metrics_) {
      layer.batch_metric = batch_metric(layer);
      updates.push_back(precondition(layer, regularised_gradient(*layer.layer)));
    }
    return updates;
  }

  bool works_after_step() const override { return true; }
  void after_step(const StepInfo&, const CurvatureStep& curvature) override {
    refreshed_ = curvature.refresh;
    for (auto& layer : metrics_) {
      layer.metric = stat_decay_ * layer.metric + (1 - stat_decay_) * layer.batch_metric;
      layer.batch_metric.reset();
      if (refreshed_) refresh_inverse(layer);
    }
  }

  // Per layer its metrics and their inverses (this step's batch metric is folded in by after_step).
  void append_state(OptimizerState& state) const override {
    for (size_t i = 0; i < metrics_.size(); ++i) {
      state.push_back({fmt::format("sngd-rfim/layer{}/metric", i), metrics_[i].metric});
      state.push_back({fmt::format("sngd-rfim/layer{}/inverse", i), metrics_[i].inverse});
    }
  }

  void load_state(StateReader& reader) override {
    for (size_t i = 0; i < metrics_.size(); ++i) {
      auto& layer = metrics_[i];
      layer.metric = reader.tensor_like(fmt::format("sngd-rfim/layer{}/metric", i), layer.metric);
      layer.inverse = reader.tensor_like(fmt::format("sngd-rfim/layer{}/inverse", i), layer.inverse);
    }
  }

  // True after the steps that refreshed the inverses.
  bool refreshed() const override { return refreshed_; }

  nlohmann::json report() const override {
    return {{"inverse_refreshes", refreshes_}, {"identity_fallbacks", fallbacks_}};
  }

 private:
  // The gradient of CE + l2·½‖W‖² (biases excluded), as [∇W | ∇b].
  torch::Tensor regularised_gradient(CaptureLayer& layer) const {
    auto gradient = gradient_matrix(layer);
    const auto weight = layer.weight().reshape({layer.weight().size(0), -1});
    gradient.slice(1, 0, weight.size(1)).add_(weight, l2_);
    return gradient;
  }

  // Linear metric: mean ā āᵀ. Per unit o: mean σ(h_o)² ā āᵀ, h = W̄ ā the pre-activation, recomputed
  // from the recorded input (the official code recomputes it after the step; see docs).
  torch::Tensor batch_metric(const LayerMetric& layer) const {
    const auto inputs = input_rows(*layer.layer);  // N × d
    const double batch = static_cast<double>(inputs.size(0));
    if (!layer.per_unit) return (inputs.t().mm(inputs) / batch).unsqueeze(0);
    const auto weight = layer.layer->weight().reshape({layer.layer->weight().size(0), -1});
    const auto weights_and_bias = layer.layer->has_bias() ? torch::cat({weight, layer.layer->bias().unsqueeze(1)}, 1) : weight;
    const auto gate = torch::sigmoid(inputs.mm(weights_and_bias.t()));  // N × out
    const auto weighted = gate.t().unsqueeze(2) * inputs.unsqueeze(0);  // out × N × d: σ(h_o)·ā
    return torch::bmm(weighted.transpose(1, 2), weighted) / batch;
  }

  // Linear metric: ∇W̄ M⁻¹ (every unit shares M). Per unit: row o ← M_o⁻¹ (row o).
  static torch::Tensor precondition(const LayerMetric& layer, const torch::Tensor& gradient) {
    if (!layer.per_unit) return gradient.mm(layer.inverse[0]);
    return torch::bmm(layer.inverse, gradient.unsqueeze(2)).squeeze(2);
  }

  // (M + damping·tr(M)·I)⁻¹ per metric; the identity for the whole layer if an inverse fails.
  void refresh_inverse(LayerMetric& layer) {
    const int64_t dim = layer.metric.size(1);
    const auto identity = torch::eye(dim, layer.metric.options());
    const auto trace = layer.metric.diagonal(0, 1, 2).sum(1).reshape({-1, 1, 1});
    const auto [inverse, info] = torch::linalg_inv_ex(layer.metric + damping_ * trace * identity);
    ++refreshes_;
    if (host_value<bool>(info.ne(0).any()) || !host_value<bool>(torch::isfinite(inverse).all())) {
      ++fallbacks_;
      layer.inverse = identity.expand_as(layer.metric).clone();
    } else {
      layer.inverse = inverse;
    }
  }

  double stat_decay_;
  double damping_;
  double l2_;
  std::vector<LayerMetric> metrics_;
  int64_t refreshes_ = 0;
  int64_t fallbacks_ = 0;
  bool refreshed_ = false;
};

}  // namespace

OptimizerEntry sngd_rfim_entry() {
  auto hyperparameters = preconditioned_sgd_hyperparameters(0.1);
  for (auto& option : hyperparameters) {
    if (option.name == "momentum") option.default_value = 0.0;  // the official code's plain GD
  }
  hyperparameters.insert(hyperparameters.end(),
                         {
                             {"stat_decay", 0.995, "moving-average decay of the metrics (M ← d·M + (1−d)·batch)", {}, unit_interval()},
                             {"damping", 1e-4, "inverse of M + damping·tr(M)·I", {}, at_least(0)},
                             inverse_interval_hyperparameter(100, "steps between inverse refreshes"),
                             // The official loop counts iterations within an epoch, so the inverse refreshes at
                             // its batch 0, 100, ….
                             {"interval_per_epoch", true,
                              "count inverse_interval from each epoch's first batch (the official code's itr % k) instead of the run's first step"},
                             {"l2", 1e-3, "l2·½‖W‖² (biases excluded) in the loss: its gradient is preconditioned", {}, at_least(0)},
                         });
  return {"sngd-rfim",
          "the official SNGD code: relative Fisher metrics (per-unit sigmoid² for hidden layers, input covariance "
          "for the first and last), plain GD; Linear layers only",
          hyperparameters, [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<PreconditionedSgdOf<SngdRfimPreconditioner>>(model, options);
          }};
}

}  // namespace ngd
