#include "optimizers/subspace.h"

#include <fmt/format.h>

#include <chrono>
#include <optional>

#include "base/device.h"
#include "optimizers/curvature/matrix_roots.h"
#include "optimizers/torch_optimizer.h"

namespace ngd {
namespace {

// Columns of the snapshot matrix handled at once by the PCA (bounds its double-precision copies).
constexpr int64_t kPcaChunk = int64_t{1} << 16;
// Centred-Gram eigenvalues below this fraction of the largest are rounding noise: dropped directions.
constexpr double kRankTolerance = 1e-10;
// DLDR skips the BFGS update unless yᵀs exceeds this (keeps B positive definite).
constexpr double kCurvatureGuard = 1e-20;

torch::Tensor flat_parameters(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> pieces;
  for (const auto& parameter : parameters) pieces.push_back(parameter.detach().reshape(-1));
  return torch::cat(pieces);
}

torch::Tensor flat_gradients(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> pieces;
  for (const auto& parameter : parameters) {
    pieces.push_back(parameter.grad().defined() ? parameter.grad().reshape(-1) : torch::zeros({parameter.numel()}, parameter.options()));
  }
  return torch::cat(pieces);
}

// Copies consecutive pieces of `flat` into `targets` (parameters or their gradients).
void scatter_flat(const torch::Tensor& flat, std::vector<torch::Tensor> targets) {
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (auto& target : targets) {
    target.copy_(flat.slice(0, offset, offset + target.numel()).view_as(target));
    offset += target.numel();
  }
}

void set_flat_gradients(std::vector<torch::Tensor>& parameters, const torch::Tensor& flat) {
  std::vector<torch::Tensor> gradients;
  for (auto& parameter : parameters) {
    if (!parameter.grad().defined()) parameter.mutable_grad() = torch::zeros_like(parameter);
    gradients.push_back(parameter.mutable_grad());
  }
  scatter_flat(flat, gradients);
}

// Whether batch `batch` of an epoch of `batches` takes one of `per_epoch` evenly spaced snapshots
// (batches ⌊j·batches/per_epoch⌋, j = 0 … per_epoch − 1).
bool takes_snapshot(int64_t batch, int64_t batches, int64_t per_epoch) {
  const int64_t j = (batch * per_epoch + batches - 1) / batches;  // ⌈batch·per_epoch/batches⌉
  return j < per_epoch && j * batches / per_epoch == batch;
}

Options torch_sgd_options(double lr, double momentum, double weight_decay) {
  return Options({{"lr", lr}, {"momentum", momentum}, {"weight_decay", weight_decay}, {"nesterov", false}});
}

// The two phases of DLDR in one plugin, since the runner owns the loop: SGD on all parameters for
// `sampling_epochs` epochs while snapshots are taken, then, from the first step of the next epoch,
// training in the span of the trajectory's principal directions (subspace_step of the subclass).
class SubspaceTraining : public Optimizer {
 public:
  SubspaceTraining(CaptureModel& model, const Options& options)
      : parameters_(model.parameters()),
        model_(model),
        lr_(options.number("lr")),
        sampling_lr_(options.number("sampling_lr")),
        sampling_epochs_(options.integer("sampling_epochs")),
        sample_start_epoch_(options.integer("sample_start_epoch")),
        snapshots_per_epoch_(options.integer("snapshots_per_epoch")),
        subspace_dim_(options.integer("subspace_dim")),
        restart_from_start_(options.flag("restart_from_start")),
        max_snapshot_mb_(options.integer("max_snapshot_mb")),
        sampler_(make_torch_sgd(parameters_, torch_sgd_options(sampling_lr_, options.number("sampling_momentum"),
                                                               options.number("sampling_weight_decay")))) {
    for (const auto& parameter : parameters_) parameter_count_ += parameter.numel();
    if (lr_ <= 0) throw std::invalid_argument("lr must be positive (the schedule's factor is lr_now / lr)");
    if (sampling_epochs_ < 1) throw std::invalid_argument("sampling_epochs must be ≥ 1");
    if (sample_start_epoch_ < 0 || sample_start_epoch_ >= sampling_epochs_) {
      throw std::invalid_argument("sample_start_epoch must be in [0, sampling_epochs)");
    }
    if (snapshots_per_epoch_ < 1 || subspace_dim_ < 1) throw std::invalid_argument("snapshots_per_epoch and subspace_dim must be ≥ 1");
  }

  void step(const StepInfo& info, PhaseTimer& timer) final {
    entered_subspace_ = false;
    if (info.epoch < sampling_epochs_) {
      if (info.epoch >= sample_start_epoch_ && takes_snapshot(info.batch_index, info.batches_per_epoch, snapshots_per_epoch_)) {
        take_snapshot(info);
      }
      sampler_->step();
      return;
    }
    if (!basis_.defined()) {
      enter_subspace(timer);
      entered_subspace_ = true;
      // This step's gradient was taken at the end of sampling, not at the restart point: it is dropped.
      if (restart_from_start_) return;
    }
    subspace_step(info, timer);
  }

  void set_learning_rate(double lr) final {
    schedule_factor_ = lr / lr_;
    for (auto& group : sampler_->param_groups()) group.options().set_lr(sampling_lr_ * schedule_factor_);
  }

  // The sampling SGD's momentum, the snapshots and the restart point's buffers while sampling, then the
  // basis and the subspace method's own state.
  OptimizerState state() const final {
    OptimizerState state;
    append_torch_state(state, *sampler_, "dldr/sampling_sgd");
    state.push_back({"dldr/snapshot_count", state_integer(snapshot_count_)});
    for (size_t k = 0; k < snapshots_.size(); ++k) state.push_back({fmt::format("dldr/snapshot{}", k), snapshots_[k]});
    if (start_buffers_) {
      const auto& saved = start_buffers_->saved();
      for (size_t k = 0; k < saved.size(); ++k) state.push_back({fmt::format("dldr/start_buffer{}", k), saved[k]});
    }
    if (basis_.defined()) {
      state.push_back({"dldr/basis", basis_});
      append_subspace_state(state);
    }
    return state;
  }

  void load_state(const OptimizerState& state) final {
    StateReader reader(state);
    load_torch_state(reader, *sampler_, "dldr/sampling_sgd");
    const auto options = parameters_.front().options();
    snapshot_count_ = reader.integer("dldr/snapshot_count");
    basis_ = reader.contains("dldr/basis") ? reader.tensor("dldr/basis", {-1, parameter_count_}, options) : torch::Tensor();
    // While sampling every snapshot taken is kept; the subspace phase keeps none.
    snapshots_.clear();
    for (int64_t k = 0; !basis_.defined() && k < snapshot_count_; ++k) {
      snapshots_.push_back(reader.tensor(fmt::format("dldr/snapshot{}", k), {parameter_count_}, options));
    }
    start_buffers_.reset();
    // The restart point is saved with the first snapshot (take_snapshot).
    if (restart_from_start_ && !snapshots_.empty()) {
      start_buffers_.emplace(model_);
      auto& saved = start_buffers_->saved();
      for (size_t k = 0; k < saved.size(); ++k) saved[k] = reader.tensor_like(fmt::format("dldr/start_buffer{}", k), saved[k]);
    }
    if (basis_.defined()) {
      start_subspace();
      load_subspace_state(reader);
    }
    reader.finish();
  }

  // True after the step that found the subspace (the PCA of the trajectory).
  bool refreshed_curvature() const final { return entered_subspace_; }

  nlohmann::json report() const final {
    nlohmann::json report = {
        {"phases", {{{"name", "sampling"}, {"epochs", sampling_epochs_}}, {{"name", "subspace"}}}},
        {"parameters", parameter_count_},
        {"snapshots", snapshot_count_},
        {"requested_subspace_dim", subspace_dim_},
        {"subspace_dim", basis_.defined() ? basis_.size(0) : 0},
        {"explained_variance_ratio", explained_variance_ratio_},
        {"pca_time_s", pca_seconds_},
        {"restarted_from", restart_from_start_ ? "first snapshot" : "end of sampling"},
    };
    add_to_report(report);
    return report;
  }

 protected:
  virtual void start_subspace() = 0;
  virtual void subspace_step(const StepInfo& info, PhaseTimer& timer) = 0;
  virtual void add_to_report(nlohmann::json&) const {}
  // The subspace method's state (entered once the basis exists), and back after start_subspace().
  virtual void append_subspace_state(OptimizerState& state) const = 0;
  virtual void load_subspace_state(StateReader& reader) = 0;

  bool in_subspace() const { return basis_.defined(); }
  // The subspace phase's learning rate now: `lr` times the schedule's factor.
  double learning_rate() const { return lr_ * schedule_factor_; }
  // P: k × D with orthonormal rows.
  const torch::Tensor& basis() const { return basis_; }

  // The gradient's coordinates in the subspace, P·g.
  torch::Tensor projected_gradient() const { return basis_.mv(flat_gradients(parameters_)); }
  void set_gradient(const torch::Tensor& flat) { set_flat_gradients(parameters_, flat); }
  torch::Tensor parameters_now() const { return flat_parameters(parameters_); }  // a copy (cat)
  void set_parameters(const torch::Tensor& flat) { scatter_flat(flat, parameters_); }

  std::vector<torch::Tensor> parameters_;

 private:
  void take_snapshot(const StepInfo& info) {
    if (snapshots_.empty()) {
      const int64_t planned = (sampling_epochs_ - sample_start_epoch_) * std::min(snapshots_per_epoch_, info.batches_per_epoch) + 1;
      const double megabytes = static_cast<double>(planned * parameter_count_ * parameters_.front().element_size()) / (1 << 20);
      if (megabytes > static_cast<double>(max_snapshot_mb_)) {
        throw std::invalid_argument(fmt::format("{} snapshots need {:.0f} MB > max_snapshot_mb = {}", planned,
                                                megabytes, max_snapshot_mb_));
      }
    }
    // The restart point is the whole saved state, as DLDR's load_state_dict: BatchNorm's running
    // statistics too, which training-mode passes go on changing.
    if (snapshots_.empty() && restart_from_start_) start_buffers_.emplace(model_);
    snapshots_.push_back(parameters_now());
    ++snapshot_count_;
  }

  // The PCA of the trajectory (with its end, the parameters now) and the restart.
  void enter_subspace(PhaseTimer& timer) {
    auto scope = timer.scope(Phase::kCurvature);
    const auto start = std::chrono::steady_clock::now();
    snapshots_.push_back(parameters_now());
    ++snapshot_count_;
    const auto pca = pca_basis(snapshots_, subspace_dim_);
    if (pca.components.size(0) == 0) throw std::runtime_error("the sampled trajectory has no variance: no subspace");
    basis_ = pca.components;
    count_host_sync();  // the ratios, for the report, read back from the device
    const auto ratio = (pca.explained_variance / pca.total_variance).to(torch::kCPU).contiguous();
    explained_variance_ratio_ = std::vector<double>(ratio.data_ptr<double>(), ratio.data_ptr<double>() + ratio.numel());
    if (restart_from_start_) {
      set_parameters(snapshots_.front());
      start_buffers_->restore();
      start_buffers_.reset();
    }
    snapshots_.clear();
    snapshots_.shrink_to_fit();
    // The sampling SGD never steps again: its momentum buffers are freed (and leave the state).
    sampler_->state().clear();
    start_subspace();
    pca_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  CaptureModel& model_;
  double lr_;
  double sampling_lr_;
  int64_t sampling_epochs_;
  int64_t sample_start_epoch_;
  int64_t snapshots_per_epoch_;
  int64_t subspace_dim_;
  bool restart_from_start_;
  int64_t max_snapshot_mb_;
  std::unique_ptr<torch::optim::Optimizer> sampler_;
  int64_t parameter_count_ = 0;
  double schedule_factor_ = 1;
  std::vector<torch::Tensor> snapshots_;
  std::optional<BufferCopy> start_buffers_;  // the restart point's, while sampling
  int64_t snapshot_count_ = 0;
  torch::Tensor basis_;
  std::vector<double> explained_variance_ratio_;
  double pca_seconds_ = 0;
  bool entered_subspace_ = false;
};

// P-SGD: the gradient projected onto the subspace, g ← Pᵀ(P g), then torch momentum SGD (no weight
// decay, which would leave the subspace).
class ProjectedSgd : public SubspaceTraining {
 public:
  ProjectedSgd(CaptureModel& model, const Options& options)
      : SubspaceTraining(model, options), momentum_(options.number("momentum")) {}

 private:
  void start_subspace() override {
    sgd_ = make_torch_sgd(parameters_, torch_sgd_options(learning_rate(), momentum_, 0.0));
  }

  void append_subspace_state(OptimizerState& state) const override { append_torch_state(state, *sgd_, "psgd/sgd"); }
  void load_subspace_state(StateReader& reader) override { load_torch_state(reader, *sgd_, "psgd/sgd"); }

  void subspace_step(const StepInfo&, PhaseTimer&) override {
    set_gradient(basis().t().mv(projected_gradient()));
    for (auto& group : sgd_->param_groups()) group.options().set_lr(learning_rate());
    sgd_->step();
  }

  double momentum_;
  std::unique_ptr<torch::optim::Optimizer> sgd_;
};

// P-BFGS: BFGS on the subspace coordinates, d = −lr·B·(P g), with an Armijo backtracking line search on
// the step's batch; θ ← θ + Pᵀ(t·d).
class ProjectedBfgs : public SubspaceTraining {
 public:
  using SubspaceTraining::SubspaceTraining;

  // The mean loss at the current parameters is the line search's f(θ): kept from the forward pass on
  // every step, since the step that enters the subspace already takes a subspace step when
  // restart_from_start is false (kept only inside the subspace, f(θ) was undefined there).
  torch::Tensor reduce_loss(const torch::Tensor& per_sample_loss, const StepInfo&) override {
    auto loss = per_sample_loss.mean();
    loss_now_ = loss.detach();
    return loss;
  }

 private:
  void start_subspace() override { bfgs_ = Bfgs(basis().size(0), basis().options()); }
  void append_subspace_state(OptimizerState& state) const override { bfgs_.append_state(state, "pbfgs/"); }
  void load_subspace_state(StateReader& reader) override { bfgs_.load_state(reader, "pbfgs/"); }

  void subspace_step(const StepInfo& info, PhaseTimer& timer) override {
    const auto gradient = projected_gradient().to(torch::kDouble);
    const auto direction = learning_rate() * bfgs_.direction(gradient);
    const auto start = parameters_now();
    const auto basis_t = basis().t();
    const auto move = [&](double scale) { set_parameters(start + basis_t.mv((scale * direction).to(start.scalar_type()))); };
    LineSearchResult search;
    {
      auto scope = timer.scope(Phase::kCurvature);
      search = armijo_backtracking(host_value<double>(loss_now_), host_value<double>(gradient.dot(direction)), [&](double scale) {
        move(scale);
        return info.batch_loss();
      });
    }
    move(search.scale);
    bfgs_.record_step(search.scale * direction);
    ++steps_;
    trials_ += search.trials;
    rejected_ += search.accepted ? 0 : 1;
  }

  void add_to_report(nlohmann::json& report) const override {
    report["line_search"] = {{"steps", steps_},
                             {"mean_trials", steps_ ? double(trials_) / steps_ : 0.0},
                             {"no_acceptable_step", rejected_},
                             {"skipped_bfgs_updates", bfgs_.skipped_updates()}};
  }

  Bfgs bfgs_{1};
  torch::Tensor loss_now_;
  int64_t steps_ = 0;
  int64_t trials_ = 0;
  int64_t rejected_ = 0;
};

std::vector<OptionInfo> dldr_hyperparameters() {
  return {
      {"lr", 1.0, "subspace-phase learning rate (DLDR: 1), scaled by the schedule", {}, at_least(0)},
      {"sampling_epochs", 80, "epochs of SGD whose trajectory is sampled (DLDR: epochs 0–80 of ResNet-20 on CIFAR-10)", {}, at_least(1)},
      {"sampling_lr", 0.1, "sampling-phase SGD learning rate, scaled by the same schedule", {}, at_least(0)},
      {"sampling_momentum", 0.9, "sampling-phase SGD momentum", {}, below_one()},
      {"sampling_weight_decay", 1e-4, "sampling-phase SGD weight decay", {}, at_least(0)},
      {"sample_start_epoch", 0, "epoch whose start is the first snapshot and the restart point (params_start)", {}, at_least(0)},
      {"snapshots_per_epoch", 1, "evenly spaced snapshots per sampling epoch (DLDR: 1, at epoch ends)", {}, at_least(1)},
      {"subspace_dim", 40, "principal directions kept (at most snapshots − 1)", {}, at_least(1)},
      {"restart_from_start", true, "restart the subspace phase from the first snapshot (DLDR) or go on from the last"},
      {"max_snapshot_mb", 4096, "refuse runs whose snapshots would need more memory", {}, at_least(1)},
  };
}

}  // namespace

PcaBasis pca_basis(const std::vector<torch::Tensor>& snapshots, int64_t dim) {
  TORCH_CHECK(snapshots.size() >= 2, "PCA of a trajectory needs at least two snapshots");
  const int64_t count = static_cast<int64_t>(snapshots.size());
  const int64_t length = snapshots.front().numel();
  const auto centred_columns = [&](int64_t begin, int64_t end) {
    std::vector<torch::Tensor> rows;
    for (const auto& snapshot : snapshots) rows.push_back(snapshot.slice(0, begin, end).to(torch::kDouble));
    const auto chunk = torch::stack(rows);
    return chunk - chunk.mean(0, /*keepdim=*/true);
  };
  auto gram = torch::zeros({count, count}, snapshots.front().options().dtype(torch::kDouble));  // on their device
  for (int64_t begin = 0; begin < length; begin += kPcaChunk) {
    const auto chunk = centred_columns(begin, std::min(length, begin + kPcaChunk));
    gram += chunk.mm(chunk.t());
  }
  // Gram = U S² Uᵀ for the centred n×D matrix X = U S Vᵀ; the directions are Vᵀ = S⁻¹ Uᵀ X.
  const auto [ascending_values, ascending_vectors] = symmetric_eigh(gram);
  const auto values = ascending_values.flip(0).clamp_min(0);
  const auto vectors = ascending_vectors.flip(1);
  const double largest = host_value<double>(values[0]);
  const int64_t rank = host_value<int64_t>(values.gt(kRankTolerance * largest).sum());
  const int64_t kept = std::min(dim, rank);
  const auto coefficients = (vectors.slice(1, 0, kept) / values.slice(0, 0, kept).sqrt()).t();  // k × n
  PcaBasis basis;
  basis.components = torch::empty({kept, length}, snapshots.front().options());
  for (int64_t begin = 0; begin < length; begin += kPcaChunk) {
    const int64_t end = std::min(length, begin + kPcaChunk);
    basis.components.slice(1, begin, end).copy_(coefficients.mm(centred_columns(begin, end)));
  }
  basis.explained_variance = values.slice(0, 0, kept) / static_cast<double>(count - 1);
  basis.total_variance = host_value<double>(values.sum()) / static_cast<double>(count - 1);
  return basis;
}

LineSearchResult armijo_backtracking(double loss, double slope, const std::function<double(double)>& loss_at,
                                     const ArmijoRule& rule) {
  LineSearchResult result;
  double scale = 1;
  while (result.trials < rule.max_trials) {
    ++result.trials;
    if (loss_at(scale) < loss + rule.sufficient_decrease * scale * slope) {
      result.scale = scale;
      result.accepted = true;
      return result;
    }
    scale *= rule.shrink;
  }
  result.scale = scale;
  return result;
}

Bfgs::Bfgs(int64_t dim, const torch::TensorOptions& options)
    : inverse_hessian_(torch::eye(dim, options.dtype(torch::kDouble))) {}

torch::Tensor Bfgs::direction(const torch::Tensor& gradient) {
  const auto g = gradient.to(torch::kDouble);
  if (last_step_.defined()) {
    const auto y = g - last_gradient_;
    const double curvature = host_value<double>(y.dot(last_step_));
    if (curvature > kCurvatureGuard) {
      const double rho = 1 / curvature;
      const auto t = torch::eye(g.numel(), g.options()) - rho * torch::outer(y, last_step_);
      inverse_hessian_ = t.t().mm(inverse_hessian_).mm(t) + rho * torch::outer(last_step_, last_step_);
    } else {
      ++skipped_updates_;
    }
  }
  last_gradient_ = g;
  return -inverse_hessian_.mv(g);
}

void Bfgs::append_state(OptimizerState& state, const std::string& prefix) const {
  state.push_back({prefix + "inverse_hessian", inverse_hessian_});
  if (last_gradient_.defined()) state.push_back({prefix + "last_gradient", last_gradient_});
  if (last_step_.defined()) state.push_back({prefix + "last_step", last_step_});
}

void Bfgs::load_state(StateReader& reader, const std::string& prefix) {
  inverse_hessian_ = reader.tensor_like(prefix + "inverse_hessian", inverse_hessian_);
  const int64_t dim = inverse_hessian_.size(0);
  const auto options = inverse_hessian_.options();
  // A subspace step records both: the gradient in direction(), the step after its line search.
  const bool stepped = reader.contains_any({prefix + "last_gradient", prefix + "last_step"});
  last_gradient_ = stepped ? reader.tensor(prefix + "last_gradient", {dim}, options) : torch::Tensor();
  last_step_ = stepped ? reader.tensor(prefix + "last_step", {dim}, options) : torch::Tensor();
}

OptimizerEntry dldr_psgd_entry() {
  auto hyperparameters = dldr_hyperparameters();
  hyperparameters.insert(hyperparameters.begin() + 1, {"momentum", 0.9, "subspace-phase SGD momentum (DLDR: 0.9)", {}, below_one()});
  return {"dldr-psgd",
          "DLDR P-SGD: SGD while sampling the trajectory, then momentum SGD on the gradient projected onto its "
          "top PCA directions, restarted from the first snapshot",
          hyperparameters, [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<ProjectedSgd>(model, options);
          }};
}

OptimizerEntry dldr_pbfgs_entry() {
  return {"dldr-pbfgs",
          "DLDR P-BFGS: SGD while sampling the trajectory, then BFGS with Armijo backtracking (same batch) on the "
          "coordinates of its top PCA directions, restarted from the first snapshot",
          dldr_hyperparameters(), [](CaptureModel& model, const Options& options) -> std::unique_ptr<Optimizer> {
            return std::make_unique<ProjectedBfgs>(model, options);
          }};
}

}  // namespace ngd
