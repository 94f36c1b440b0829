#pragma once

#include <memory>
#include <string>
#include <vector>

#include "optimizers/curvature/woodbury.h"
#include "optimizers/preconditioned_sgd.h"

namespace ngd {

// FNGD's coefficients c (one row per coefficient set, one column per sample of a batch), kept from
// the first epoch and looked up by dataset sample id or by (batch index, position in the batch).
class CoefficientTable {
 public:
  explicit CoefficientTable(bool by_sample_id) : by_sample_id_(by_sample_id) {}

  void store(const StepInfo& info, const torch::Tensor& coefficients);
  // The stored coefficients for the batch of `info`, on the CPU in float64; throws when there are none.
  torch::Tensor lookup(const StepInfo& info) const;

  // The stored coefficients as state entries: "<prefix>by_id" (sets × ids), or "<prefix>batch<k>" per
  // stored batch k; and back, `sets` rows each.
  void append_state(OptimizerState& state, const std::string& prefix) const;
  void load_state(StateReader& reader, const std::string& prefix, int64_t sets);

 private:
  bool by_sample_id_;
  torch::Tensor by_id_;                   // sets × (ids seen so far), NaN where none was stored
  std::vector<torch::Tensor> by_batch_;  // [batch index]: sets × batch size
};

// FNGD (Ou et al. 2024; reference §3): (F + λI)⁻¹ḡ = Σ_i c_i ∇ℓ_i with c = (K + nλI)⁻¹1. In the first
// epoch every step forms the Gram K, solves for c, stores it and steps with Σ c_i ∇ℓ_i from the
// recorded statistics. Later epochs do no inversion: with shared coefficients the loss is
// reweighted to Σ c_i ℓ_i so that one ordinary backward gives the step; with per-layer
// coefficients each layer's step is recombined from recorded statistics (no Gram, no solve).
// PreconditionedSgd then applies momentum and weight decay. FNGD keeps its own epoch schedule
// (inverts / recombines): it declares no stat_interval or inverse_interval. See docs/optimizers.md
// for the choices made.
class FngdPreconditioner : public Preconditioner, public ReusedCoefficients {
 public:
  FngdPreconditioner(CaptureModel& model, const Options& options);

  Capture capture(const StepInfo& info, const CurvatureStep& curvature) const override;
  torch::Tensor reduce_loss(const torch::Tensor& per_sample_loss, const StepInfo& info) override;
  // Reusing steps (neither inverting nor recombining) take their step from the weighted loss's backward.
  bool preconditions(const StepInfo& info, const CurvatureStep&) const override { return uses_captures(info); }
  // Σ_i c_i ∇ℓ_i per capture layer, from fresh coefficients or recombined from the stored ones.
  std::vector<torch::Tensor> directions(const StepInfo& info, const CurvatureStep& curvature) override;
  // True after the steps that solved for the coefficients (the first epoch's, and every refresh_epochs-th).
  bool refreshed() const override { return refreshed_; }

  // λ, the stored coefficients and whether the logits layer was checked. The recorded statistics
  // live for one step only: FNGD keeps no per-sample buffer between steps.
  void append_state(OptimizerState& state) const override;
  void load_state(StateReader& reader) override;

  // {"reuse": per reusing epoch, the statistics of the coefficients its steps used, "last_reuse": the
  // last reusing step's} — for a diverged run, what preceded the divergence.
  nlohmann::json report() const override;

  // Under the relative rule λ depends on the batch's Gram: nullopt, the probe uses its own damping.
  std::optional<double> damping() const override;
  std::optional<CoefficientComparison> coefficient_staleness(const StepInfo& info,
                                                             const std::vector<torch::Tensor>& layer_grams) const override;

  const WoodburyCounters& counters() const { return solver_.counters(); }
  // The coefficients the step of `info` uses (sets × batch size): one set shared by all layers, or
  // one per capture layer.
  torch::Tensor coefficients(const StepInfo& info) const { return table_.lookup(info); }

 private:
  // One reusing step's coefficients, measured once (host arithmetic on the host table's values).
  struct ReusedStep {
    int64_t epoch = 0;     // 1-based
    int64_t batch = 0;     // batch index in its epoch
    double sum = 0;        // Σ_i c_i (mean over sets)
    double minimum = 0, maximum = 0;
    double negative = 0;   // fraction of c_i < 0
    ReusedStep(const StepInfo& info, const torch::Tensor& coefficients);
  };
  // Statistics of the coefficients reused by a run of steps (one epoch, or one step).
  struct ReuseStatistics {
    int64_t epoch = 0;  // 1-based
    int64_t batch = 0;  // the last step's batch index in its epoch
    int64_t steps = 0;
    double sum_total = 0, sum_min = 0, sum_max = 0;  // Σ_i c_i per step (mean over sets)
    double coefficient_min = 0, coefficient_max = 0;
    double negative_total = 0;  // per step, the fraction of c_i < 0
    void add(const ReusedStep& step);
    nlohmann::json to_json() const;
  };

  // Epoch 0, and with refresh_epochs = k > 0 every k-th epoch, solves afresh.
  bool inverts(const StepInfo& info) const {
    return info.epoch == 0 || (refresh_epochs_ > 0 && info.epoch % refresh_epochs_ == 0);
  }
  // The coefficients a reusing step of `info` uses: the stored ones, negatives handled as set.
  torch::Tensor reused_coefficients(const StepInfo& info) const;
  void record_reuse(const StepInfo& info, const torch::Tensor& coefficients);
  bool recombines(const StepInfo& info) const { return per_layer_ && !inverts(info); }
  // The steps that record statistics and back-propagate the plain mean loss.
  bool uses_captures(const StepInfo& info) const { return inverts(info) || recombines(info); }
  // Each capture layer's Σ c_i ∇ℓ_i from the recorded statistics, with c solved afresh and stored.
  std::vector<torch::Tensor> invert(const StepInfo& info);
  // c = (K + nλI)⁻¹r for one coefficient set's Gram, with FNGD's damping rule; r = 1 when `rhs` is
  // undefined.
  torch::Tensor solve_set(WoodburySolver& solver, const torch::Tensor& gram, const torch::Tensor& rhs,
                          const std::string& what) const;
  // One row per coefficient set from the capture layers' Grams: shared (Σ_l K_l) or per layer.
  torch::Tensor solve_coefficients(WoodburySolver& solver, const std::vector<torch::Tensor>& grams,
                                   const torch::Tensor& rhs) const;
  // rhs = logit_gradient_norms: s_i = ‖∇_{z_i} ℓ_i‖² from the last capture layer's recorded output
  // gradients (every registered model's classifier or output projection); undefined for rhs = ones.
  torch::Tensor right_hand_side();
  // Each capture layer's Σ c_i ∇ℓ_i from the recorded statistics, with its stored c.
  std::vector<torch::Tensor> recombine(const StepInfo& info);
  void scale_uncaptured_gradients(const torch::Tensor& coefficients);

  std::vector<std::shared_ptr<CaptureLayer>> layers_;
  std::vector<torch::Tensor> uncaptured_parameters_;  // parameters outside capture layers
  bool per_layer_;
  bool relative_damping_;
  WoodburySolver solver_;
  DampingSchedule damping_;
  CoefficientTable table_;
  int64_t refresh_epochs_;
  std::string negative_coefficients_;  // keep | clamp | clamp_renormalise
  bool logit_rhs_;                      // rhs = logit_gradient_norms (iEF's right-hand side)
  bool head_checked_ = false;           // whether the last capture layer was found to output the logits
  std::vector<ReuseStatistics> reuse_;  // one per reusing epoch
  ReuseStatistics last_reuse_;
  bool refreshed_ = false;
};

using Fngd = PreconditionedSgdOf<FngdPreconditioner>;

OptimizerEntry fngd_entry();

}  // namespace ngd
