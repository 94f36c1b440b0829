#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "base/options.h"
#include "models/capture_layers.h"
#include "optimizers/optimizer.h"
#include "optimizers/optimizer_state.h"

namespace ngd {

// Shared machinery of the Woodbury natural-gradient optimizers (TENGraD, FNGD): a layer's
// per-sample gradients u_i = ∇ℓ_i (the columns of U, n of them), their n×n Gram K = UᵀU, and
// the damped system K + nλI, through which (λI + UUᵀ/n)⁻¹ = (I − U(K + nλI)⁻¹Uᵀ)/λ.
// See docs/optimizers.md and reference §2–3.

// How a layer's Gram K_ij = ⟨u_i, u_j⟩ is formed. For a Linear layer (one position, S = 1) the
// exact forms coincide with the Hadamard product (A Aᵀ)⊙(G Gᵀ).
enum class GramForm {
  kAuto,       // the cheaper exact form for the layer's shape (below)
  kPairwise,   // exact: Σ_{s,t} (A_i A_jᵀ)_{st}·(G_i G_jᵀ)_{st} from the recorded rows, in blocks of
               // sample pairs; O(n²S²(in+out)) time, memory bounded by the block size
  kPerSample,  // exact: J Jᵀ with J the per-sample gradients (n × out·in), kept for the solves;
               // O(nS·out·in + n²·out·in) time, n·out·in memory
  kSpatialSumApprox,  // APPROXIMATION (HyLo): u_i ≈ (Σ_s g_{i,s}/S)(Σ_s a_{i,s}/S)ᵀ, one outer
                      // product per sample instead of the exact Σ_s g_{i,s} a_{i,s}ᵀ
};

// Per-sample gradients of one layer's [W | b], recorded on a capture step, in the form chosen for
// its Gram: factored rows (A: n×S×in[+1], G: n×S×out) or dense (J: n×out×in[+1]).
class SampleGradients {
 public:
  // `loss_scale` turns the recorded output gradients into per-sample loss gradients (n for a
  // mean-reduced loss). `max_block_elements` bounds the pairwise form's intermediates.
  static SampleGradients from_layer(CaptureLayer& layer, double loss_scale, GramForm form,
                                    int64_t max_block_elements);

  int64_t samples() const;
  bool dense() const { return dense_.defined(); }
  torch::Tensor gram() const;                                     // K = UᵀU, n × n
  torch::Tensor project(const torch::Tensor& matrix) const;       // (⟨u_i, V⟩)_i, n
  torch::Tensor combine(const torch::Tensor& coefficients) const;  // Σ_i c_i u_i, out × in[+1]

  // As state entries under `prefix`: "per_sample_gradients" (dense), or "inputs" and "grad_outputs".
  void append_state(OptimizerState& state, const std::string& prefix) const;
  // What append_state wrote for capture layer `layer`, in its form.
  static SampleGradients from_state(StateReader& reader, const std::string& prefix, CaptureLayer& layer,
                                    int64_t max_block_elements);

 private:
  torch::Tensor inputs_;        // factored: A, n × S × in[+1]
  torch::Tensor grad_outputs_;  // factored: G, n × S × out
  torch::Tensor dense_;         // dense: J, n × out × in[+1]
  int64_t max_block_elements_ = 0;
};

// (⟨u_i, V⟩)_i summed over the layers of a joint U (see WoodburySolver::joint_gram), n.
torch::Tensor joint_project(const std::vector<SampleGradients>& layers, const std::vector<torch::Tensor>& matrices);
// Σ_i c_i u_i for each layer of a joint U.
std::vector<torch::Tensor> joint_combine(const std::vector<SampleGradients>& layers, const torch::Tensor& coefficients);

// The form kAuto picks for a layer with n samples, S positions, `in` input and `out` output
// columns: per-sample when it takes fewer flops and J is no larger than the rows it replaces.
GramForm cheaper_exact_form(int64_t samples, int64_t positions, int64_t in, int64_t out);

// The Cholesky factor of K + nλI and the damping λ it was formed with.
struct DampedGram {
  torch::Tensor cholesky;  // lower triangular, in the solve dtype
  double damping = 0;      // λ actually used (raised when K + nλI was not positive definite)

  // As state entries "<prefix>cholesky" and "<prefix>damping", and back (n × n, n = `samples`).
  void append_state(OptimizerState& state, const std::string& prefix) const;
  static DampedGram from_state(StateReader& reader, const std::string& prefix, int64_t samples,
                               const torch::TensorOptions& options);
};

// What a WoodburySolver has computed, for tests and for the cost accounting in docs.
struct WoodburyCounters {
  int64_t grams = 0;           // n×n Grams formed
  int64_t factorizations = 0;  // Cholesky factorisations of K + nλI
  int64_t solves = 0;          // triangular solves with a stored factor
  int64_t damping_raises = 0;  // times λ had to be raised to make K + nλI positive definite
};

struct WoodburySettings {
  GramForm gram_form = GramForm::kAuto;
  torch::Dtype solve_dtype = torch::kFloat64;
  // Elements of each pairwise-form intermediate (two live at once): 64 MiB in float32, well below
  // the im2col rows a conv capture already holds.
  int64_t max_block_elements = int64_t{1} << 24;
};

// The settings "gram_form" and "solve_dtype" the Woodbury optimizers share, with their defaults.
std::vector<OptionInfo> woodbury_hyperparameters();
WoodburySettings woodbury_settings(const Options& options);

class WoodburySolver {
 public:
  explicit WoodburySolver(WoodburySettings settings) : settings_(settings) {}

  // The per-sample gradients recorded by `layer` for a loss whose recorded output gradients are
  // per-sample gradients times 1/loss_scale.
  SampleGradients sample_gradients(CaptureLayer& layer, double loss_scale) const;
  // Per-sample gradients of `layer` kept in a state (SampleGradients::append_state).
  SampleGradients sample_gradients_from_state(StateReader& reader, const std::string& prefix, CaptureLayer& layer) const;
  // The dtype of the factorisations and solves.
  torch::Dtype solve_dtype() const { return settings_.solve_dtype; }
  torch::Tensor gram(const SampleGradients& gradients);

  // Factorises K + nλI (n = K's size). When it is not positive definite, λ is raised tenfold (from a
  // floor relative to K's diagonal) until it is, each raise reported on stderr under `what`. Throws
  // when K is not finite or no raise helps, so no NaN leaves here silently.
  DampedGram factorize(const torch::Tensor& gram, double damping, const std::string& what);
  // (K + nλI)⁻¹ rhs, in rhs's dtype.
  torch::Tensor solve(const DampedGram& factor, const torch::Tensor& rhs);

  // (λI + UUᵀ/n)⁻¹ V = (V − U (K + nλI)⁻¹ UᵀV)/λ: the layer's damped Fisher block inverted exactly.
  torch::Tensor apply_inverse(const SampleGradients& gradients, const DampedGram& factor, const torch::Tensor& matrix);

  // Several layers taken jointly: u_i = (u_i¹, …, u_i^L) stacks sample i's per-layer gradients, so the
  // whole-network Gram is K = Σ_l K_l and (λI + UUᵀ/n)⁻¹ acts on V = (V¹, …, V^L) as one vector.
  torch::Tensor joint_gram(const std::vector<SampleGradients>& layers);
  std::vector<torch::Tensor> apply_inverse(const std::vector<SampleGradients>& layers, const DampedGram& factor,
                                           const std::vector<torch::Tensor>& matrices);
  // c = (K + nλI)⁻¹1 with `options`' dtype and device: Σ_i c_i u_i = (λI + UUᵀ/n)⁻¹ḡ for ḡ = U1/n, the
  // damped natural gradient of the mean loss (Woodbury: (λI + UUᵀ/n)⁻¹U = nU(K + nλI)⁻¹).
  torch::Tensor natural_gradient_coefficients(const DampedGram& factor, const torch::TensorOptions& options);

  const WoodburyCounters& counters() const { return counters_; }

 private:
  WoodburySettings settings_;
  WoodburyCounters counters_;
};

// The damping λ over training: constant, or moved toward `damping_target` by HyLo's rule at each
// refresh once `damping_warmup_epochs` are over: λ ← (1−α)λ + α·λ_target with
// α = 2·log10(λ₀/λ_target)/damping_decay_steps.
class DampingSchedule {
 public:
  explicit DampingSchedule(const Options& options);
  double value() const { return damping_; }
  // Called after a refresh has used value(): the next refresh uses the moved value.
  void after_refresh(const StepInfo& info);
  // λ now, as the state entry `name`, and back.
  void append_state(OptimizerState& state, const std::string& name) const;
  void load_state(StateReader& reader, const std::string& name);

 private:
  double damping_;
  double target_;
  double alpha_;  // 0: constant
  int64_t warmup_epochs_;
};

// The settings DampingSchedule reads, with `default_damping` for "damping"; `update` names what λ
// moves after and damping_decay_steps counts ("refresh", "first-epoch step", "step").
std::vector<OptionInfo> damping_hyperparameters(double default_damping, const std::string& update);

// "layer 2/5 (Conv2d)": how the Woodbury optimizers name a capture layer in messages.
std::string describe_layer(const CaptureLayer& layer, size_t index, size_t count);

}  // namespace ngd
