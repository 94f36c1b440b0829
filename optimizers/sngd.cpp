#include "optimizers/sngd.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

#include "base/device.h"
#include "optimizers/curvature/layer_statistics.h"
#include "optimizers/curvature/matrix_roots.h"
#include "optimizers/preconditioned_sgd.h"

namespace ngd {
namespace {

// One Kronecker factor: the moving average of its statistics and the damped inverse the step uses.
struct KroneckerFactor {
  torch::Tensor running;   // starts at I (as in the KFAC codes), so early steps are close to SGD
  torch::Tensor inverse;   // (running + damping)⁻¹ = ((running + damping)^{-1/2})², from the roots
};

// The local Fisher of one Linear/Conv2d layer, F ≈ A ⊗ G with A = E[ā āᵀ] over the layer's input rows
// and G = E[D Dᵀ] over the per-sample output gradients D (see docs/optimizers.md#sngd for the conv
// normalisation).
struct LocalFisher {
  std::shared_ptr<CaptureLayer> layer;
  KroneckerFactor input;
  KroneckerFactor output;
};

struct RefreshCounts {
  int64_t refreshes = 0;         // factor roots computed
  int64_t iterations = 0;        // summed over refreshes
  int64_t max_iterations = 0;
  int64_t unconverged = 0;       // iteration stopped at its limit (the result is used)
  int64_t failed = 0;            // non-finite or singular: the previous inverse is kept
  double seconds = 0;            // spent computing roots
};

// The curvature half of SNGD: each capture layer's gradient is solved with its damped local Fisher
// A ⊗ G (or A ⊗ I); PreconditionedSgd applies KFAC's KL clip and steps with SGD.
class SngdPreconditioner : public Preconditioner {
 public:
  SngdPreconditioner(CaptureModel& model, const Options& options)
      : fisher_(options.text("fisher") == "sampled" ? Capture::kSampled : Capture::kEmpirical),
        output_factor_(options.text("local_fisher") == "kronecker"),
        damping_(options.number("damping")),
        stat_decay_(options.number("stat_decay")),
        root_method_(options.text("root_method")),
        root_iterations_(options.integer("root_iterations")),
        root_tolerance_(options.number("root_tolerance")) {
    for (const auto& layer : model.capture_layers()) layers_.push_back({layer, {}, {}});
  }

  Capture capture(const StepInfo&, const CurvatureStep& curvature) const override {
    return curvature.statistics ? fisher_ : Capture::kNone;
  }

  std::vector<torch::Tensor> directions(const StepInfo&, const CurvatureStep& curvature) override {
    std::vector<torch::Tensor> updates;
    refreshed_ = false;
    for (auto& fisher : layers_) {
      if (curvature.statistics) update_factors(fisher);
      if (curvature.refresh) refresh_inverses(fisher);
      // Without inverses the layer keeps its gradient.
      if (!fisher.input.inverse.defined()) {
        updates.emplace_back();
        continue;
      }
      // Gradient descent on W' = G^{1/2} W̄ A^{1/2} moves W̄ by G^{-1/2} (G^{-1/2} ∇W̄ A^{-1/2}) A^{-1/2}.
      auto update = gradient_matrix(*fisher.layer).mm(fisher.input.inverse);
      if (output_factor_) update = fisher.output.inverse.mm(update);
      updates.push_back(update);
    }
    return updates;
  }

  // Per layer each factor's running average and inverse, each once it exists.
  void append_state(OptimizerState& state) const override {
    for (size_t i = 0; i < layers_.size(); ++i) {
      for (const auto& [side, factor] : factors_of(layers_[i])) {
        const auto prefix = fmt::format("sngd/layer{}/{}_", i, side);
        if (factor->running.defined()) state.push_back({prefix + "running", factor->running});
        if (factor->inverse.defined()) state.push_back({prefix + "inverse", factor->inverse});
      }
    }
  }

  void load_state(StateReader& reader) override {
    // Every layer's factors take in statistics on the same steps; a layer's inverses exist together (a
    // failed first refresh leaves a layer without them).
    std::vector<std::string> running_names;
    std::vector<std::vector<std::string>> inverse_names(layers_.size());
    for (size_t i = 0; i < layers_.size(); ++i) {
      for (const auto& [side, factor] : factors_of(layers_[i])) {
        running_names.push_back(fmt::format("sngd/layer{}/{}_running", i, side));
        inverse_names[i].push_back(fmt::format("sngd/layer{}/{}_inverse", i, side));
      }
    }
    const bool started = reader.contains_any(running_names);
    for (size_t i = 0; i < layers_.size(); ++i) {
      auto& fisher = layers_[i];
      const auto shape = gradient_matrix_shape(*fisher.layer);
      const auto options = fisher.layer->weight().options();
      const bool inverted = reader.contains_any(inverse_names[i]);
      for (const auto& [side, factor] : factors_of(fisher)) {
        const int64_t dim = side == "input" ? shape[1] : shape[0];
        const auto prefix = fmt::format("sngd/layer{}/{}_", i, side);
        factor->running = started ? reader.tensor(prefix + "running", {dim, dim}, options) : torch::Tensor();
        factor->inverse = inverted ? reader.tensor(prefix + "inverse", {dim, dim}, options) : torch::Tensor();
      }
    }
  }

  // True after the steps that computed the factors' roots (every inverse_interval-th, once statistics exist).
  bool refreshed() const override { return refreshed_; }

  nlohmann::json report() const override {
    return {{"root_method", root_method_},
            {"refreshes", counts_.refreshes},
            {"mean_root_iterations", counts_.refreshes ? double(counts_.iterations) / counts_.refreshes : 0.0},
            {"max_root_iterations", counts_.max_iterations},
            {"unconverged_refreshes", counts_.unconverged},
            {"failed_refreshes", counts_.failed},
            {"root_time_s", counts_.seconds}};
  }

 private:
  // KFC's statistics in their own split (kronecker_statistics): A the mean over every input row, G
  // positions summed and samples averaged.
  void update_factors(LocalFisher& fisher) {
    const auto statistics = kronecker_statistics(*fisher.layer, output_factor_);
    blend_into(fisher.input.running, statistics.input, stat_decay_);
    if (output_factor_) blend_into(fisher.output.running, statistics.grad, stat_decay_);
  }

  // The layer's factors by name, for its state: the input factor A, and G when the local Fisher has it.
  template <typename Fisher>  // LocalFisher or const LocalFisher
  auto factors_of(Fisher& fisher) const -> std::vector<std::pair<std::string, decltype(&fisher.input)>> {
    std::vector<std::pair<std::string, decltype(&fisher.input)>> factors{{"input", &fisher.input}};
    if (output_factor_) factors.emplace_back("output", &fisher.output);
    return factors;
  }

  void refresh_inverses(LocalFisher& fisher) {
    if (!fisher.input.running.defined()) return;  // no statistics yet
    refreshed_ = true;
    std::vector<KroneckerFactor*> factors{&fisher.input};
    if (output_factor_) factors.push_back(&fisher.output);
    for (auto* factor : factors) {
      const auto start = std::chrono::steady_clock::now();
      const auto& running = factor->running;
      const int64_t dim = running.size(0);
      // Damping relative to the mean eigenvalue, so it means the same for every layer and scale.
      const auto damped = running + damping_ * running.trace() / static_cast<double>(dim) * torch::eye(dim, running.options());
      MatrixRoots roots;
      bool usable = true;
      try {
        roots = compute_roots(damped);
        usable = host_value<bool>(torch::isfinite(roots.inverse_sqrt).all());
      } catch (const c10::Error&) {
        usable = false;  // singular in an iteration
      }
      ++counts_.refreshes;
      counts_.iterations += roots.iterations;
      counts_.max_iterations = std::max(counts_.max_iterations, roots.iterations);
      if (!usable) {
        ++counts_.failed;
      } else {
        if (!roots.converged) ++counts_.unconverged;
        factor->inverse = roots.inverse_sqrt.mm(roots.inverse_sqrt);
      }
      counts_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    // A layer is preconditioned only once both factors have an inverse; until then it takes the gradient.
    if (!fisher.input.inverse.defined() || (output_factor_ && !fisher.output.inverse.defined())) {
      fisher.input.inverse.reset();
      fisher.output.inverse.reset();
    }
  }

  MatrixRoots compute_roots(const torch::Tensor& damped) const {
    if (root_method_ == "newton_schulz") return newton_schulz_roots(damped, root_iterations_, root_tolerance_);
    if (root_method_ == "eigh") return eigh_roots(damped);
    return denman_beavers_roots(damped, root_iterations_, root_tolerance_);
  }

  Capture fisher_;
  bool output_factor_;  // A ⊗ G; without it A ⊗ I (input whitening only)
  double damping_;
  double stat_decay_;
  std::string root_method_;
  int64_t root_iterations_;
  double root_tolerance_;
  std::vector<LocalFisher> layers_;
  RefreshCounts counts_;
  bool refreshed_ = false;
};

}  // namespace

OptimizerEntry sngd_entry() {
  auto hyperparameters = preconditioned_sgd_hyperparameters(0.1);
  for (auto& option : hyperparameters) {
    // Plain GD on the reconstructed network, as the abstract's equivalence; momentum on top of KL-clipped
    // steps drifted upward in loss in our MLP runs.
    if (option.name == "momentum") option.default_value = 0.0;
  }
  hyperparameters.insert(
      hyperparameters.end(),
      {
          {"damping", 1.0, "added to each Kronecker factor as damping·tr(F)/dim·I", {}, at_least(0)},
          {"local_fisher", "kronecker", "the local Fisher's structure: A ⊗ G, or A ⊗ I (whitened inputs only)",
           {"kronecker", "input"}},
          {"fisher", "sampled", "output gradients of sampled labels (true Fisher) or of the true labels (empirical)",
           {"sampled", "empirical"}},
          {"stat_decay", 0.95, "moving-average decay of the factors, which start at I", {}, unit_interval()},
          stat_interval_hyperparameter(10, "steps between factor updates (KFAC's T_cov)"),
          inverse_interval_hyperparameter(100, "steps between root/inverse refreshes (t_inv)"),
          {"root_method", "denman_beavers", "how the factors' square roots are computed",
           {"denman_beavers", "newton_schulz", "eigh"}},
          kl_clip_hyperparameter(1e-3),
          {"root_iterations", 50, "iteration limit of Denman–Beavers / Newton–Schulz", {}, at_least(1)},
          {"root_tolerance", 1e-4, "stop when ‖M − I‖_F/√n (DB) or ‖ZY − I‖_F/√n (NS) is below this", {}, above(0)},
      });
  return {"sngd",
          "structured NGD (reconstruction): GD on layers rescaled by the square roots of their Kronecker-factored "
          "local Fisher (Denman–Beavers), torch SGD on the result",
          hyperparameters, [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<PreconditionedSgdOf<SngdPreconditioner>>(model, options);
          }};
}

}  // namespace ngd
