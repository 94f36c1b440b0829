#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "optimizers/optimizer_state.h"
#include "optimizers/torch_optimizer.h"

namespace ngd {

// What the curvature schedule asks of a preconditioner on one step: take in new statistics (every
// stat_interval-th step) and refresh what it solves with (every inverse_interval-th), both from step 0.
// An entry that does not declare an interval gets true on every step.
struct CurvatureStep {
  bool statistics = true;
  bool refresh = true;
};

// The curvature half of a "precondition, then SGD" optimizer (kfac-pytorch's preconditioner/optimizer
// split): which statistics a step records, and the direction V that replaces each capture layer's
// gradient matrix [∇W | ∇b] (gradient_matrix's layout). PreconditionedSgd owns the rest: the step's
// curvature phase and NoGradGuard, the schedule, the KL clip, writing V back, and SGD's momentum and
// weight decay on V.
class Preconditioner {
 public:
  virtual ~Preconditioner() = default;

  virtual Capture capture(const StepInfo& info, const CurvatureStep& curvature) const = 0;

  // The loss to back-propagate (the batch mean by default); FNGD's reusing steps weight the samples.
  virtual torch::Tensor reduce_loss(const torch::Tensor& per_sample_loss, const StepInfo&) {
    return per_sample_loss.mean();
  }

  // Whether `info`'s step rewrites any gradient: false skips directions() and its curvature phase (on a
  // GPU each phase boundary synchronises), as on FNGD's reusing steps.
  virtual bool preconditions(const StepInfo&, const CurvatureStep&) const { return true; }

  // One V per capture layer (model order), from the gradients in place and the layers' captures; an
  // undefined tensor leaves that layer's gradient as it is, and an empty vector every gradient. It may
  // also rewrite parameters outside the capture layers (FNGD scales them).
  virtual std::vector<torch::Tensor> directions(const StepInfo& info, const CurvatureStep& curvature) = 0;

  // Work after SGD has stepped (SNGD-RFIM folds the step's metric into its running average then), in a
  // curvature phase of its own for the preconditioners that declare it.
  virtual bool works_after_step() const { return false; }
  virtual void after_step(const StepInfo&, const CurvatureStep&) {}

  // Whether the last step refreshed its curvature (see Optimizer::refreshed_curvature).
  virtual bool refreshed() const { return false; }

  // The preconditioner's own state, appended after SGD's and read back in the same order.
  virtual void append_state(OptimizerState&) const {}
  virtual void load_state(StateReader&) {}

  virtual nlohmann::json report() const { return nlohmann::json::object(); }

  // λ of its damped curvature where it is a damped Fisher (the fidelity probes compare with exact
  // natural gradient at the same λ); nullopt: the probes use their own.
  virtual std::optional<double> damping() const { return std::nullopt; }
};

// Optional capability of a preconditioner that steps with reused per-sample coefficients (FNGD): after
// the step, the coefficients it used and a fresh solve's from this batch's per-sample-gradient Grams of
// the capture layers (n × n each, in capture-layer order). The fidelity probes look for it.
class ReusedCoefficients {
 public:
  virtual ~ReusedCoefficients() = default;
  virtual std::optional<CoefficientComparison> coefficient_staleness(
      const StepInfo& info, const std::vector<torch::Tensor>& layer_grams) const = 0;
};

// SGD (torch semantics) on the gradients a Preconditioner rewrote: buf = μ·buf + (V + wd·θ); θ -= lr·buf.
// Without a preconditioner it is plain SGD. The direction after step() — the capture layers' gradients —
// is what the fidelity probes compare with exact natural gradient.
class PreconditionedSgd : public TorchOptimizer {
 public:
  // Reads the SGD settings, and "stat_interval", "inverse_interval", "interval_per_epoch" (count the
  // intervals from each epoch's first batch) and "kl_clip" where the entry declares them.
  PreconditionedSgd(CaptureModel& model, const Options& options, std::unique_ptr<Preconditioner> preconditioner);

  Capture capture(const StepInfo& info) const override;
  torch::Tensor reduce_loss(const torch::Tensor& per_sample_loss, const StepInfo& info) override;
  void step(const StepInfo& info, PhaseTimer& timer) override;
  void set_learning_rate(double lr) override;
  // SGD's momentum, then the preconditioner's entries.
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;
  bool refreshed_curvature() const override;
  nlohmann::json report() const override;

  // Null for plain SGD.
  const Preconditioner* preconditioner() const { return preconditioner_.get(); }

 private:
  CurvatureStep curvature_step(const StepInfo& info) const;
  // KFAC's KL clip (alecwangcq/KFAC-Pytorch): scales every V so that lr²·Σ⟨V, ∇W̄⟩ ≤ κ.
  void clip(std::vector<torch::Tensor>& directions) const;

  std::unique_ptr<Preconditioner> preconditioner_;
  std::vector<std::shared_ptr<CaptureLayer>> layers_;
  std::optional<int64_t> stat_interval_, inverse_interval_;
  bool interval_per_epoch_ = false;
  std::optional<double> kl_clip_;
  double lr_;
  bool preconditioned_ = false;  // whether the last step asked the preconditioner for directions
};

// The curvature-schedule settings an entry can declare for PreconditionedSgd, with its defaults and help.
OptionInfo stat_interval_hyperparameter(int64_t default_interval, const std::string& help);
OptionInfo inverse_interval_hyperparameter(int64_t default_interval, const std::string& help);
OptionInfo kl_clip_hyperparameter(double default_clip);

// PreconditionedSgd around a P built from the same model and settings, keeping P's type for what reads
// its own accessors (tests, studies): `using Kfac = PreconditionedSgdOf<KfacPreconditioner>;`.
template <class P>
class PreconditionedSgdOf : public PreconditionedSgd {
 public:
  PreconditionedSgdOf(CaptureModel& model, const Options& options)
      : PreconditionedSgd(model, options, std::make_unique<P>(model, options)) {}
  const P& curvature() const { return static_cast<const P&>(*preconditioner()); }
};

}  // namespace ngd
