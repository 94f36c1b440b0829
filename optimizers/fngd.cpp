#include "optimizers/fngd.h"

#include <fmt/format.h>

#include <limits>
#include <unordered_set>

#include "base/device.h"

namespace ngd {
namespace {

// As TENGraD's (HyLo's 3C1F script): lr/λ = 0.01, SGD's default, where λ dominates F (Σc_i → 1/λ).
constexpr double kDefaultLearningRate = 0.003;
// As TENGraD's; the paper's value is unknown.
constexpr double kDefaultDamping = 0.3;

}  // namespace

void CoefficientTable::store(const StepInfo& info, const torch::Tensor& coefficients) {
  // The table lives in host memory (one value per sample and layer): this copy is a read-back.
  count_host_sync();
  const auto values = coefficients.to(torch::kCPU, torch::kFloat64);
  if (!by_sample_id_) {
    if (static_cast<int64_t>(by_batch_.size()) <= info.batch_index) by_batch_.resize(info.batch_index + 1);
    by_batch_[info.batch_index] = values;
    return;
  }
  const auto ids = info.sample_ids.to(torch::kCPU);
  const int64_t needed = ids.max().item<int64_t>() + 1;
  if (!by_id_.defined() || by_id_.size(1) < needed) {
    // Grow geometrically: the first epoch's batches reveal the ids a few at a time.
    const int64_t capacity = by_id_.defined() ? std::max(needed, 2 * by_id_.size(1)) : needed;
    auto grown = torch::full({values.size(0), capacity}, std::numeric_limits<double>::quiet_NaN(), values.options());
    if (by_id_.defined()) grown.slice(1, 0, by_id_.size(1)).copy_(by_id_);
    by_id_ = grown;
  }
  by_id_.index_copy_(1, ids, values);
}

torch::Tensor CoefficientTable::lookup(const StepInfo& info) const {
  const int64_t batch_size = info.sample_ids.size(0);
  if (!by_sample_id_) {
    TORCH_CHECK(info.batch_index < static_cast<int64_t>(by_batch_.size()) && by_batch_[info.batch_index].defined() &&
                    by_batch_[info.batch_index].size(1) == batch_size,
                "fngd: no coefficients stored for batch ", info.batch_index, " of size ", batch_size,
                ": the first epoch must have the same batches");
    return by_batch_[info.batch_index];
  }
  const auto ids = info.sample_ids.to(torch::kCPU);
  TORCH_CHECK(by_id_.defined() && ids.max().item<int64_t>() < by_id_.size(1),
              "fngd: no coefficients stored for some samples: the first epoch must visit every sample");
  auto values = by_id_.index_select(1, ids);
  TORCH_CHECK(!values.isnan().any().item<bool>(),
              "fngd: no coefficients stored for some samples: the first epoch must visit every sample");
  return values;
}

void CoefficientTable::append_state(OptimizerState& state, const std::string& prefix) const {
  if (by_id_.defined()) state.push_back({prefix + "by_id", by_id_});
  for (size_t k = 0; k < by_batch_.size(); ++k) {
    if (by_batch_[k].defined()) state.push_back({fmt::format("{}batch{}", prefix, k), by_batch_[k]});
  }
}

void CoefficientTable::load_state(StateReader& reader, const std::string& prefix, int64_t sets) {
  const auto options = torch::TensorOptions().dtype(torch::kFloat64);
  by_id_ = reader.contains(prefix + "by_id") ? reader.tensor(prefix + "by_id", {sets, -1}, options) : torch::Tensor();
  by_batch_.clear();
  for (const auto& [batch, name] : reader.numbered_names(prefix + "batch")) {
    by_batch_.resize(static_cast<size_t>(batch) + 1);  // numbered_names ascends: the last is the largest
    by_batch_[static_cast<size_t>(batch)] = reader.tensor(name, {sets, -1}, options);
  }
}

FngdPreconditioner::FngdPreconditioner(CaptureModel& model, const Options& options)
    : layers_(model.capture_layers()),
      per_layer_(options.text("coefficients") == "per_layer"),
      relative_damping_(options.text("damping_rule") == "relative"),
      solver_(woodbury_settings(options)),
      damping_(options),
      table_(options.text("coefficient_index") == "sample_id"),
      refresh_epochs_(options.integer("refresh_epochs")),
      negative_coefficients_(options.text("negative_coefficients")),
      logit_rhs_(options.text("rhs") == "logit_gradient_norms") {
  std::unordered_set<const void*> captured;
  for (const auto& layer : layers_) {
    captured.insert(layer->weight().unsafeGetTensorImpl());
    if (layer->has_bias()) captured.insert(layer->bias().unsafeGetTensorImpl());
  }
  for (const auto& parameter : model.parameters()) {
    if (!captured.count(parameter.unsafeGetTensorImpl())) uncaptured_parameters_.push_back(parameter);
  }
}

Capture FngdPreconditioner::capture(const StepInfo& info, const CurvatureStep&) const {
  return uses_captures(info) ? Capture::kEmpirical : Capture::kNone;
}

torch::Tensor FngdPreconditioner::reduce_loss(const torch::Tensor& per_sample_loss, const StepInfo& info) {
  if (uses_captures(info)) return per_sample_loss.mean();
  // c already carries the 1/n of a mean: Σ c_i ℓ_i back-propagates to Σ c_i ∇ℓ_i.
  const auto coefficients = reused_coefficients(info);
  record_reuse(info, coefficients);
  return (coefficients[0].to(per_sample_loss.options()) * per_sample_loss).sum();
}

torch::Tensor FngdPreconditioner::reused_coefficients(const StepInfo& info) const {
  const auto stored = table_.lookup(info);
  if (negative_coefficients_ == "keep") return stored;
  const auto clamped = stored.clamp_min(0);
  if (negative_coefficients_ == "clamp") return clamped;
  // clamp_renormalise: each set keeps its stored Σ_i c_i (the step's scale); an all-negative set stays 0.
  const auto clamped_sum = clamped.sum(1, /*keepdim=*/true);
  return torch::where(clamped_sum > 0, clamped * stored.sum(1, /*keepdim=*/true) / clamped_sum, clamped);
}

FngdPreconditioner::ReusedStep::ReusedStep(const StepInfo& info, const torch::Tensor& coefficients)
    : epoch(info.epoch + 1),
      batch(info.batch_index),
      sum(coefficients.sum(1).mean().item<double>()),
      minimum(coefficients.min().item<double>()),
      maximum(coefficients.max().item<double>()),
      negative((coefficients < 0).to(torch::kDouble).mean().item<double>()) {}

void FngdPreconditioner::ReuseStatistics::add(const ReusedStep& step) {
  if (steps == 0) {
    sum_min = sum_max = step.sum;
    coefficient_min = step.minimum;
    coefficient_max = step.maximum;
  }
  epoch = step.epoch;
  batch = step.batch;
  ++steps;
  sum_total += step.sum;
  sum_min = std::min(sum_min, step.sum);
  sum_max = std::max(sum_max, step.sum);
  coefficient_min = std::min(coefficient_min, step.minimum);
  coefficient_max = std::max(coefficient_max, step.maximum);
  negative_total += step.negative;
}

nlohmann::json FngdPreconditioner::ReuseStatistics::to_json() const {
  const double n = static_cast<double>(steps);
  return {{"epoch", epoch},
          {"last_batch", batch},
          {"steps", steps},
          {"coefficient_sum", {{"mean", sum_total / n}, {"min", sum_min}, {"max", sum_max}}},
          {"coefficient_min", coefficient_min},
          {"coefficient_max", coefficient_max},
          {"negative_fraction", negative_total / n}};
}

void FngdPreconditioner::record_reuse(const StepInfo& info, const torch::Tensor& coefficients) {
  const ReusedStep step(info, coefficients);
  if (reuse_.empty() || reuse_.back().epoch != step.epoch) reuse_.emplace_back();
  reuse_.back().add(step);
  last_reuse_ = {};
  last_reuse_.add(step);
}

nlohmann::json FngdPreconditioner::report() const {
  if (reuse_.empty()) return nlohmann::json::object();
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& epoch : reuse_) epochs.push_back(epoch.to_json());
  return {{"reuse", epochs}, {"last_reuse", last_reuse_.to_json()}};
}

torch::Tensor FngdPreconditioner::solve_set(WoodburySolver& solver, const torch::Tensor& gram,
                                            const torch::Tensor& rhs, const std::string& what) const {
  const int64_t n = gram.size(0);
  // Relative: λ scales with the mean non-zero eigenvalue of F = UUᵀ/n, tr(K)/n².
  const double damping = relative_damping_ ? damping_.value() * host_value<double>(gram.trace()) / static_cast<double>(n * n)
                                           : damping_.value();
  const auto factor = solver.factorize(gram, damping, what);
  return rhs.defined() ? solver.solve(factor, rhs.to(gram.options()))
                       : solver.natural_gradient_coefficients(factor, gram.options());
}

torch::Tensor FngdPreconditioner::solve_coefficients(WoodburySolver& solver, const std::vector<torch::Tensor>& grams,
                                                     const torch::Tensor& rhs) const {
  std::vector<torch::Tensor> rows;
  if (per_layer_) {
    for (size_t i = 0; i < layers_.size(); ++i) {
      rows.push_back(solve_set(solver, grams[i], rhs, "fngd: " + describe_layer(*layers_[i], i, layers_.size())));
    }
  } else {
    // One set for all layers: the Gram of the concatenated per-sample gradients is the sum.
    rows.push_back(solve_set(solver, torch::stack(grams).sum(0), rhs, "fngd: all layers"));
  }
  return torch::stack(rows);
}

torch::Tensor FngdPreconditioner::right_hand_side() {
  if (!logit_rhs_) return {};
  // The loss is the batch mean: the recorded output gradients are ∇_z ℓ_i / n.
  const auto& head = *layers_.back();
  const int64_t n = head.input().size(0);
  const auto& grad_output = head.grad_output();
  if (!head_checked_) {
    // A softmax cross-entropy's gradient in the logits, w·(p − y), has one negative entry per sample
    // (per token on sequences): the label's, p_y − 1; the others are p_j ≥ 0, less label smoothing's
    // α/K, still positive at the first step's near-uniform p. A hidden layer's rows (also those
    // feeding a LayerNorm, whose gradients sum to zero like the logits') have about half their
    // entries negative. Checked once, on the first solve: most real rows must have exactly one.
    const auto rows = grad_output.reshape({-1, grad_output.size(-1)});
    const auto real = rows.ne(0).any(1);
    const auto one_negative = rows.lt(0).sum(1).eq(1).logical_and(real);
    if (2 * host_value<int64_t>(one_negative.sum()) < host_value<int64_t>(real.sum())) {
      throw std::invalid_argument(
          "fngd: rhs logit_gradient_norms needs the model's logits layer as its last capture layer, but that "
          "layer's output gradients are not a softmax cross-entropy's (one negative entry per sample); on the "
          "Transformer set capture_embeddings_and_projection with tie_embeddings false");
    }
    head_checked_ = true;
  }
  return (grad_output.reshape({n, -1}) * static_cast<double>(n)).square().sum(1);
}

std::vector<torch::Tensor> FngdPreconditioner::invert(const StepInfo& info) {
  std::vector<SampleGradients> gradients;
  std::vector<torch::Tensor> grams;
  for (const auto& layer : layers_) {
    // The loss is the batch mean: per-sample gradients are n times the recorded ones.
    gradients.push_back(solver_.sample_gradients(*layer, static_cast<double>(layer->input().size(0))));
    grams.push_back(solver_.gram(gradients.back()));
  }
  const auto coefficients = solve_coefficients(solver_, grams, right_hand_side());
  table_.store(info, coefficients);
  std::vector<torch::Tensor> directions;
  for (size_t i = 0; i < layers_.size(); ++i) {
    directions.push_back(gradients[i].combine(coefficients[per_layer_ ? static_cast<int64_t>(i) : 0]));
    layers_[i]->clear_captures();
  }
  scale_uncaptured_gradients(coefficients);
  damping_.after_refresh(info);
  return directions;
}

std::optional<double> FngdPreconditioner::damping() const {
  // Under the relative rule λ depends on the batch's Gram: the probe uses its own damping.
  return relative_damping_ ? std::nullopt : std::optional<double>(damping_.value());
}

std::optional<CoefficientComparison> FngdPreconditioner::coefficient_staleness(
    const StepInfo& info, const std::vector<torch::Tensor>& layer_grams) const {
  // The probe passes Grams only: a fresh iEF solve would need this batch's logit gradients.
  if (logit_rhs_) return std::nullopt;
  auto solver = solver_;  // a copy: the probe's solve leaves the step's counters alone
  return CoefficientComparison{inverts(info) ? table_.lookup(info) : reused_coefficients(info),
                               solve_coefficients(solver, layer_grams, {}).to(torch::kCPU, torch::kFloat64)};
}

std::vector<torch::Tensor> FngdPreconditioner::recombine(const StepInfo& info) {
  const auto coefficients = reused_coefficients(info);
  record_reuse(info, coefficients);
  std::vector<torch::Tensor> directions;
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto& layer = *layers_[i];
    const auto gradients = solver_.sample_gradients(layer, static_cast<double>(layer.input().size(0)));
    directions.push_back(gradients.combine(coefficients[static_cast<int64_t>(i)].to(layer.weight().device())));
    layer.clear_captures();
  }
  scale_uncaptured_gradients(coefficients);
  return directions;
}

void FngdPreconditioner::scale_uncaptured_gradients(const torch::Tensor& coefficients) {
  if (uncaptured_parameters_.empty()) return;
  // Their per-sample gradients are not recorded: Σ c_i ∇ℓ_i is approximated by (Σ c_i)·ḡ.
  const double scale = host_value<double>(coefficients.sum(1).mean());
  for (auto& parameter : uncaptured_parameters_) {
    if (parameter.grad().defined()) parameter.mutable_grad().mul_(scale);
  }
}

std::vector<torch::Tensor> FngdPreconditioner::directions(const StepInfo& info, const CurvatureStep&) {
  refreshed_ = inverts(info);
  if (inverts(info)) return invert(info);
  return recombine(info);
}

void FngdPreconditioner::append_state(OptimizerState& state) const {
  damping_.append_state(state, "fngd/damping");
  table_.append_state(state, "fngd/coefficients/");
  state.push_back({"fngd/head_checked", state_integer(head_checked_ ? 1 : 0)});
}

void FngdPreconditioner::load_state(StateReader& reader) {
  damping_.load_state(reader, "fngd/damping");
  table_.load_state(reader, "fngd/coefficients/", per_layer_ ? static_cast<int64_t>(layers_.size()) : 1);
  head_checked_ = reader.integer("fngd/head_checked") != 0;
}

OptimizerEntry fngd_entry() {
  auto hyperparameters = preconditioned_sgd_hyperparameters(kDefaultLearningRate);
  for (auto& info : damping_hyperparameters(kDefaultDamping, "first-epoch step")) {
    if (info.name == "damping") info.help += "; under damping_rule relative, the multiplier of tr(K)/n²";
    hyperparameters.push_back(std::move(info));
  }
  hyperparameters.push_back({"damping_rule", "absolute",
                             "absolute: λ = damping; relative: λ = damping·tr(K)/n² (F's mean non-zero eigenvalue)",
                             {"absolute", "relative"}});
  hyperparameters.push_back({"coefficients", "shared",
                             "shared: one c for all layers (full Fisher of the capture layers), reused as loss weights; "
                             "per_layer: one c per layer (block Fisher), later epochs recombine recorded statistics",
                             {"shared", "per_layer"}});
  hyperparameters.push_back({"coefficient_index", "sample_id",
                             "how later epochs find c: by dataset sample id, or by (batch index, position in batch)",
                             {"sample_id", "batch_position"}});
  hyperparameters.push_back({"refresh_epochs", 0,
                             "0: solve in the first epoch only (FNGD); k ≥ 1: solve afresh in every k-th epoch too "
                             "(k = 1: the exact damped natural gradient every step, as ngd)",
                             {},
                             at_least(0)});
  hyperparameters.push_back({"negative_coefficients", "keep",
                             "reused c_i < 0 (gradient ascent on sample i): keep; clamp to 0; clamp_renormalise: "
                             "clamp, then rescale each set to its stored Σ c_i",
                             {"keep", "clamp", "clamp_renormalise"}});
  hyperparameters.push_back({"rhs", "ones",
                             "right-hand side r of c = (K + nλI)⁻¹r: ones (empirical-Fisher natural gradient) or "
                             "logit_gradient_norms, r_i = ‖∇_{z_i} ℓ_i‖² (iEF, Wu et al. 2024)",
                             {"ones", "logit_gradient_norms"}});
  for (auto& info : woodbury_hyperparameters()) hyperparameters.push_back(std::move(info));
  return {"fngd",
          "FNGD: first epoch steps with (F+λI)⁻¹ḡ = Σ c_i ∇ℓ_i, c = (K+nλI)⁻¹1; later epochs reuse c as per-sample "
          "loss weights (no inversion)",
          std::move(hyperparameters), [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<Fngd>(model, options);
          }};
}

}  // namespace ngd
