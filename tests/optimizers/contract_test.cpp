// The contract every registered optimizer keeps, checked over optimizer_registry(): built with its
// defaults on a tiny MLP and a tiny CNN and stepped three times through the runner's step sequence
// (forward_backward, then step), the parameters move and stay finite, the same seed gives bitwise the
// same numbers, a learning rate of 0 freezes them, the capture layers hold what capture() asked for
// when step() runs, the report is a JSON object, and the settings table is complete; and its state():
// a run restored from it continues bit for bit, every entry of it matters, load_state() rejects a
// state with an entry missing, extra or mis-shaped. A new plugin gets these tests by being registered.
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/options.h"
#include "base/phase_timer.h"
#include "harness/run/training_step.h"
#include "models/model.h"
#include "optimizers/optimizer.h"
#include "optimizers/optimizer_state.h"
#include "optimizers/registry.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

constexpr int64_t kBatch = 6;
constexpr int64_t kClasses = 3;
constexpr int64_t kSteps = 3;
// A data set of two batches, visited in order: the three steps are epoch 0 batches 0 and 1, then epoch 1
// batch 0 again (plugins that keep per-sample state, as fngd's coefficients, see every sample first).
constexpr int64_t kBatchesPerEpoch = 2;
const std::vector<int64_t> kImageShape{1, 8, 8};

struct TinyModel {
  const char* name;
  json options;
};

// A fully connected and a convolutional net from the model registry, float32.
const std::vector<TinyModel>& tiny_models() {
  static const std::vector<TinyModel> models = {{"mlp", {{"hidden", {8}}}}, {"cnn", {{"channels", 2}, {"hidden", 8}}}};
  return models;
}

// The few settings that differ from the defaults, per optimizer, kept small: DLDR's subspace methods
// sample the trajectory for 80 epochs by default; here one epoch with two snapshots, a one-dimensional
// subspace entered on the third step (epoch 1), and no restart, so that the third step is a subspace
// step and the parameters end away from the start.
const json& overrides(const std::string& name) {
  static const std::map<std::string, json> table = {
      {"dldr-psgd", {{"sampling_epochs", 1}, {"snapshots_per_epoch", 2}, {"subspace_dim", 1}, {"restart_from_start", false}}},
      {"dldr-pbfgs", {{"sampling_epochs", 1}, {"snapshots_per_epoch", 2}, {"subspace_dim", 1}, {"restart_from_start", false}}},
  };
  static const json none = json::object();
  const auto found = table.find(name);
  return found == table.end() ? none : found->second;
}

// Optimizers that refuse to run on a model, with the reason (construction throws std::invalid_argument).
bool refuses_model(const std::string& optimizer, const std::string& model) {
  // sngd-rfim implements the official code's MLP only: it refuses conv layers (docs/optimizers.md).
  return optimizer == "sngd-rfim" && model == "cnn";
}

// Optimizers whose lr cannot be 0 in their settings although its declared range allows 0: dldr-psgd and dldr-pbfgs
// refuse lr ≤ 0 when built (the schedule's factor is lr_now / lr), so they keep their default lr and are
// frozen by set_learning_rate(0) alone, as a schedule at 0 would freeze them. And a motionless
// trajectory has no principal directions, so entering the subspace throws ("the sampled trajectory has
// no variance"): they are checked over the sampling steps, and the third step must throw.
bool freezes_through_the_runner_rate_only(const std::string& name) { return name == "dldr-psgd" || name == "dldr-pbfgs"; }

bool is_learning_rate(const std::string& setting) {
  return setting.size() >= 2 && setting.compare(setting.size() - 2, 2, "lr") == 0;
}

std::shared_ptr<Model> make_tiny_model(const TinyModel& tiny) {
  const auto* entry = find_entry(model_registry(), tiny.name);
  return entry->make(Options(resolve_options(tiny.options, entry->options, tiny.name, "model")),
                     {kImageShape, kClasses});
}

std::vector<torch::Tensor> snapshot(Model& model) {
  std::vector<torch::Tensor> copies;
  for (const auto& parameter : model.parameters()) copies.push_back(parameter.detach().clone());
  return copies;
}

// What the capture layers hold before a step's passes: after them, a layer asked to record must hold a
// new input and output gradient for this batch, and one not asked must hold what it held.
struct HeldCaptures {
  std::vector<torch::Tensor> inputs, grad_outputs;
};

HeldCaptures held_captures(const CaptureModel& model) {
  HeldCaptures held;
  for (const auto& layer : model.capture_layers()) {
    held.inputs.push_back(layer->input());
    held.grad_outputs.push_back(layer->grad_output());
  }
  return held;
}

// "" when the capture layers hold what `asked` promised; otherwise what is wrong.
std::string capture_problem(const CaptureModel& model, Capture asked, const HeldCaptures& before) {
  const auto& layers = model.capture_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& input = layers[i]->input();
    const auto& grad_output = layers[i]->grad_output();
    const auto layer = "capture layer " + std::to_string(i);
    if (asked == Capture::kNone) {
      if (!input.is_same(before.inputs[i]) || !grad_output.is_same(before.grad_outputs[i])) {
        return layer + " recorded although capture() was kNone";
      }
      continue;
    }
    if (!input.defined() || !grad_output.defined()) return layer + " holds no input or output gradient";
    if (input.is_same(before.inputs[i]) || grad_output.is_same(before.grad_outputs[i])) {
      return layer + " holds the statistics of an earlier step";
    }
    if (input.size(0) != kBatch || grad_output.size(0) != kBatch) return layer + " holds another batch's statistics";
    if (!torch::isfinite(input).all().item<bool>() || !torch::isfinite(grad_output).all().item<bool>()) {
      return layer + " holds non-finite statistics";
    }
  }
  return "";
}

struct Trajectory {
  std::vector<torch::Tensor> start, end;
  json report;
  std::vector<std::string> capture_problems;
};

// The runner's StepInfo for step `step` (batch step % kBatchesPerEpoch of the data set), whose line-search
// loss is that of images `x` with labels `y` on `model`.
StepInfo step_info(int64_t step, Model& model, const torch::Tensor& x, const torch::Tensor& y) {
  const int64_t batch = step % kBatchesPerEpoch;
  StepInfo info{step, step / kBatchesPerEpoch, batch, kBatchesPerEpoch, {}, {}};
  info.sample_ids = torch::arange(batch * kBatch, (batch + 1) * kBatch, torch::kLong);
  info.batch_loss = loss_keeping_buffers(model, [&model, x, y] {
    torch::NoGradGuard no_grad;
    return torch::nn::functional::cross_entropy(model.forward(x), y).item<double>();
  });
  return info;
}

// `steps` training steps of optimizer `name` with `hparams` on `tiny` from seed `seed`, as the runner
// takes them: StepInfo counters, forward_backward (which honours capture()), set_learning_rate with the
// base lr `runner_lr` (a constant schedule), step().
Trajectory train(const std::string& name, const TinyModel& tiny, const json& hparams, uint64_t seed,
                 double runner_lr, int64_t steps = kSteps) {
  torch::manual_seed(seed);
  auto model = make_tiny_model(tiny);
  const auto images = torch::randn({kBatchesPerEpoch, kBatch, kImageShape[0], kImageShape[1], kImageShape[2]});
  const auto labels = torch::randint(kClasses, {kBatchesPerEpoch, kBatch}, torch::kLong);
  auto optimizer = make_optimizer(name, *model, hparams);
  PhaseTimer timer;
  Trajectory trajectory;
  trajectory.start = snapshot(*model);
  model->train();
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t batch = step % kBatchesPerEpoch;
    const auto x = images[batch];
    const auto y = labels[batch];
    const auto info = step_info(step, *model, x, y);
    const auto before = held_captures(*model);
    const Capture asked = optimizer->capture(info);
    const auto passes = forward_backward(*model, *optimizer, info, x, y, timer);
    if (!passes.back_propagated) trajectory.capture_problems.push_back("non-finite logits, nothing back-propagated");
    const auto problem = capture_problem(*model, asked, before);
    if (!problem.empty()) trajectory.capture_problems.push_back("step " + std::to_string(step) + ": " + problem);
    optimizer->set_learning_rate(runner_lr);
    optimizer->step(info, timer);
  }
  trajectory.end = snapshot(*model);
  trajectory.report = optimizer->report();
  return trajectory;
}

double base_lr(const std::string& name, const json& hparams) { return optimizer_options(name, hparams).number("lr"); }

// `report` without its timings (keys ending in "_s", e.g. pca_time_s): the numbers a seed determines.
json without_timings(const json& report) {
  if (!report.is_object()) return report;
  json kept = json::object();
  for (const auto& [key, value] : report.items()) {
    if (key.size() < 2 || key.compare(key.size() - 2, 2, "_s") != 0) kept[key] = without_timings(value);
  }
  return kept;
}

class OptimizerContract : public ::testing::TestWithParam<std::string> {};

TEST_P(OptimizerContract, SettingsTableIsComplete) {
  const auto* entry = find_entry(optimizer_registry(), GetParam());
  ASSERT_NE(entry, nullptr);
  EXPECT_FALSE(entry->summary.empty());
  std::set<std::string> names;
  bool has_lr = false;
  for (const auto& info : entry->hyperparameters) {
    SCOPED_TRACE("setting " + info.name);
    EXPECT_FALSE(info.name.empty());
    EXPECT_TRUE(names.insert(info.name).second) << "declared twice";
    EXPECT_FALSE(info.help.empty()) << "no description";
    has_lr = has_lr || info.name == "lr";
    const auto& value = info.default_value;
    // null: "no default" (any scalar is accepted); otherwise the default's JSON type is the setting's.
    EXPECT_TRUE(value.is_null() || value.is_number() || value.is_boolean() || value.is_string() || value.is_array())
        << value.dump();
    if (!info.choices.empty()) {
      EXPECT_TRUE(value.is_string()) << "choices for a setting whose default is " << value.dump();
    }
    if (info.range.bounded()) {
      EXPECT_TRUE(value.is_null() || value.is_number() || value.is_array())
          << "a range for a setting whose default is " << value.dump();
    }
    // The default is a value the setting accepts: in its range, among its choices.
    EXPECT_NO_THROW(check_option_value(info, value, "default")) << value.dump();
  }
  EXPECT_TRUE(has_lr) << "no lr: the runner sets the schedule's rate through it";
  EXPECT_NO_THROW(optimizer_options(GetParam(), json::object()));
}

TEST_P(OptimizerContract, ThreeStepsMoveTheParametersKeepThemFiniteAndCaptureWhatWasAsked) {
  const auto& name = GetParam();
  const auto& hparams = overrides(name);
  for (const auto& tiny : tiny_models()) {
    SCOPED_TRACE(std::string("model ") + tiny.name);
    if (refuses_model(name, tiny.name)) {
      EXPECT_THROW(train(name, tiny, hparams, 0, base_lr(name, hparams)), std::invalid_argument);
      continue;
    }
    const auto trajectory = train(name, tiny, hparams, 0, base_lr(name, hparams));
    for (const auto& problem : trajectory.capture_problems) ADD_FAILURE() << problem;
    bool moved = false;
    for (size_t i = 0; i < trajectory.end.size(); ++i) {
      EXPECT_TRUE(torch::isfinite(trajectory.end[i]).all().item<bool>()) << "parameter " << i;
      moved = moved || !torch::equal(trajectory.end[i], trajectory.start[i]);
    }
    EXPECT_TRUE(moved) << "no parameter moved in " << kSteps << " steps";
    EXPECT_TRUE(trajectory.report.is_object()) << trajectory.report.dump();
  }
}

TEST_P(OptimizerContract, SameSeedGivesBitwiseIdenticalNumbers) {
  const auto& name = GetParam();
  const auto& hparams = overrides(name);
  for (const auto& tiny : tiny_models()) {
    SCOPED_TRACE(std::string("model ") + tiny.name);
    if (refuses_model(name, tiny.name)) continue;
    const auto first = train(name, tiny, hparams, 7, base_lr(name, hparams));
    const auto second = train(name, tiny, hparams, 7, base_lr(name, hparams));
    ASSERT_EQ(first.end.size(), second.end.size());
    for (size_t i = 0; i < first.end.size(); ++i) {
      EXPECT_TRUE(torch::equal(first.start[i], second.start[i])) << "parameter " << i << " at the start";
      EXPECT_TRUE(torch::equal(first.end[i], second.end[i])) << "parameter " << i;
    }
    EXPECT_EQ(without_timings(first.report).dump(), without_timings(second.report).dump());
  }
}

TEST_P(OptimizerContract, ZeroLearningRateFreezesTheParameters) {
  const auto& name = GetParam();
  const auto* entry = find_entry(optimizer_registry(), name);
  ASSERT_NE(entry, nullptr);
  const bool runner_rate_only = freezes_through_the_runner_rate_only(name);
  // Every declared learning-rate-like setting (lr, adamw_lr, sampling_lr, ...) at 0, and the runner's
  // rate 0 through set_learning_rate; weight decay stays at its default: it must be scaled by the rate.
  // A rate whose declared range excludes 0 (muon's lr > 0: adamw_lr is a multiple of it) keeps its
  // default and is frozen by set_learning_rate(0) alone.
  json hparams = overrides(name);
  for (const auto& info : entry->hyperparameters) {
    if (!is_learning_rate(info.name) || !info.range.contains(0.0)) continue;
    if (runner_rate_only && info.name == "lr") continue;
    hparams[info.name] = 0.0;
  }
  const int64_t steps = runner_rate_only ? kSteps - 1 : kSteps;
  for (const auto& tiny : tiny_models()) {
    SCOPED_TRACE(std::string("model ") + tiny.name);
    if (refuses_model(name, tiny.name)) continue;
    const auto trajectory = train(name, tiny, hparams, 0, 0.0, steps);
    for (size_t i = 0; i < trajectory.end.size(); ++i) {
      EXPECT_TRUE(torch::equal(trajectory.end[i], trajectory.start[i])) << "parameter " << i << " moved at lr 0";
    }
    if (runner_rate_only) {
      EXPECT_THROW(train(name, tiny, hparams, 0, 0.0, kSteps), std::runtime_error) << "entered a subspace of nothing";
    }
  }
}

// Resuming: kResumeSteps steps, a checkpoint (the model's tensors and the optimizer's state(), cloned),
// a fresh model and optimizer restored from it, kResumeSteps more steps; against 2·kResumeSteps
// uninterrupted steps on the same batches.
constexpr int64_t kResumeSteps = 3;

// Settings under which every entry of an optimizer's state decides steps 4–6 (checked entry by entry in
// EveryStateEntryDecidesTheStepsAfterAResume): momentum on, and intervals of 2 so that step 3 (0-based)
// reuses what step 2 refreshed and step 4 refreshes from what the checkpoint carried; losing a counter
// (Shampoo's step count, an Adam step count) moves a bias correction or a refresh step. The two batches
// make steps 0–1 epoch 0, 2–3 epoch 1, 4–5 epoch 2. Two settings for DLDR: the subspace entered after the
// resume (step 4, from the carried snapshots; restarted from the first) and before it (step 2, so that
// the basis, P-SGD's momentum and P-BFGS's matrices are carried).
std::vector<json> resume_settings(const std::string& name) {
  static const std::map<std::string, std::vector<json>> table = {
      {"adamw", {{{"amsgrad", true}}}},
      {"kfac", {{{"stat_interval", 1}, {"inverse_interval", 2}}}},
      {"eva", {{{"stat_interval", 2}}}},
      {"tengrad", {{{"inverse_interval", 2}, {"damping_target", 0.1}, {"damping_decay_steps", 10}}}},
      // Epoch 1 reuses the coefficients of epoch 0; epoch 2 solves again with the λ moved in epoch 0.
      {"fngd", {{{"refresh_epochs", 2}, {"damping_target", 0.1}, {"damping_decay_steps", 10}}}},
      {"ngd", {{{"damping_target", 0.1}, {"damping_decay_steps", 10}}}},
      {"sngd", {{{"momentum", 0.9}, {"stat_interval", 1}, {"inverse_interval", 2}}}},
      {"sngd-rfim", {{{"momentum", 0.9}, {"inverse_interval", 2}, {"interval_per_epoch", false}}}},
      // Shampoo counts steps from 1 and refreshes at its counts 3 and 6 (steps 2 and 5): steps 3–4 use the
      // carried roots, step 5 refreshes from the carried factors.
      {"shampoo", {{{"inverse_interval", 3}}}},
      {"soap", {{{"inverse_interval", 2}}}},
      {"dldr-psgd",
       {{{"sampling_epochs", 2}, {"snapshots_per_epoch", 2}, {"subspace_dim", 2}},
        {{"sampling_epochs", 1}, {"snapshots_per_epoch", 2}, {"subspace_dim", 1}, {"restart_from_start", false}}}},
      {"dldr-pbfgs",
       {{{"sampling_epochs", 2}, {"snapshots_per_epoch", 2}, {"subspace_dim", 2}},
        {{"sampling_epochs", 1}, {"snapshots_per_epoch", 2}, {"subspace_dim", 1}, {"restart_from_start", false}}}},
  };
  const auto found = table.find(name);
  return found == table.end() ? std::vector<json>{json::object()} : found->second;
}

// Entries of `state` that may leave steps 4–6 alone, with the reason.
bool may_not_matter(const std::string& entry, const OptimizerState& state) {
  // Whether the last capture layer was checked to be the logits layer: it guards rhs logit_gradient_norms
  // once and changes no number.
  if (entry == "fngd/head_checked") return true;
  // In the subspace phase the snapshot count only reports (while sampling it says how many snapshots
  // the state holds).
  const bool in_subspace = std::any_of(state.begin(), state.end(), [](const StateEntry& e) { return e.name == "dldr/basis"; });
  if (entry == "dldr/snapshot_count" && in_subspace) return true;
  // In a 1-dimensional subspace the next BFGS update after a secant pair (s, y) sets H = s/y whatever H
  // was: (1 − ρys)² H + ρs² with ρ = 1/(ys).
  const auto hessian = std::find_if(state.begin(), state.end(), [&](const StateEntry& e) { return e.name == entry; });
  const bool has_secant_pair = std::any_of(state.begin(), state.end(), [](const StateEntry& e) {
    const std::string suffix = "last_step";
    return e.name.size() >= suffix.size() && e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) == 0;
  });
  return entry.size() >= 15 && entry.compare(entry.size() - 15, 15, "inverse_hessian") == 0 &&
         hessian->value.numel() == 1 && has_secant_pair;
}

// What a run of one optimizer on one model in one dtype needs: the settings and the two batches.
struct ResumeSetup {
  std::string name;
  TinyModel tiny;
  json hparams;
  torch::Dtype dtype;
  torch::Tensor images, labels;  // kBatchesPerEpoch × kBatch × ...
};

struct Session {
  std::shared_ptr<Model> model;
  std::unique_ptr<Optimizer> optimizer;
};

Session fresh_session(const ResumeSetup& setup) {
  Session session{make_tiny_model(setup.tiny), nullptr};
  session.model->to(setup.dtype);
  session.optimizer = make_optimizer(setup.name, *session.model, setup.hparams);
  return session;
}

void run_steps(Session& session, const ResumeSetup& setup, int64_t first, int64_t end) {
  PhaseTimer timer;
  session.model->train();
  const double lr = base_lr(setup.name, setup.hparams);
  for (int64_t step = first; step < end; ++step) {
    const auto x = setup.images[step % kBatchesPerEpoch];
    const auto y = setup.labels[step % kBatchesPerEpoch];
    const auto info = step_info(step, *session.model, x, y);
    forward_backward(*session.model, *session.optimizer, info, x, y, timer);
    session.optimizer->set_learning_rate(lr);
    session.optimizer->step(info, timer);
  }
}

// The global generator is the runner's (sampled labels of the true Fisher): a checkpoint carries it.
struct Checkpoint {
  std::vector<torch::Tensor> parameters, buffers;
  OptimizerState optimizer;
  torch::Tensor generator;
};

std::vector<torch::Tensor> cloned(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> copies;
  for (const auto& tensor : tensors) copies.push_back(tensor.detach().clone());
  return copies;
}

Checkpoint checkpoint(const Session& session) {
  Checkpoint saved{cloned(session.model->parameters()), cloned(session.model->buffers()), {}, {}};
  for (const auto& entry : session.optimizer->state()) saved.optimizer.push_back({entry.name, entry.value.clone()});
  saved.generator = at::detail::getDefaultCPUGenerator().get_state();
  return saved;
}

// A fresh model and optimizer (built after the generator has moved on: other initial weights) with the
// checkpoint's tensors and state loaded, and the generator where the checkpoint left it.
Session restored(const ResumeSetup& setup, const Checkpoint& saved) {
  auto session = fresh_session(setup);
  {
    torch::NoGradGuard no_grad;
    auto parameters = session.model->parameters();
    auto buffers = session.model->buffers();
    for (size_t i = 0; i < parameters.size(); ++i) parameters[i].copy_(saved.parameters[i]);
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved.buffers[i]);
  }
  session.optimizer->load_state(saved.optimizer);
  auto generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(saved.generator);
  return session;
}

// The uninterrupted run's end and the checkpoint after its first kResumeSteps steps (a second run from
// the same seed, so that both build the same initial model).
struct ResumeReference {
  Session uninterrupted;
  Checkpoint saved;
};

ResumeSetup resume_setup(const std::string& name, const TinyModel& tiny, const json& hparams, torch::Dtype dtype) {
  torch::manual_seed(11);
  ResumeSetup setup{name, tiny, hparams, dtype, {}, {}};
  setup.images = torch::randn({kBatchesPerEpoch, kBatch, kImageShape[0], kImageShape[1], kImageShape[2]}, dtype);
  setup.labels = torch::randint(kClasses, {kBatchesPerEpoch, kBatch}, torch::kLong);
  return setup;
}

ResumeReference resume_reference(const ResumeSetup& setup) {
  auto generator = at::detail::getDefaultCPUGenerator();
  const auto start = generator.get_state();
  ResumeReference reference{fresh_session(setup), {}};
  run_steps(reference.uninterrupted, setup, 0, 2 * kResumeSteps);
  generator.set_state(start);
  auto interrupted = fresh_session(setup);
  run_steps(interrupted, setup, 0, kResumeSteps);
  reference.saved = checkpoint(interrupted);
  return reference;
}

// Whether two models' parameters are bitwise equal.
bool same_parameters(Model& a, Model& b) {
  const auto left = a.parameters(), right = b.parameters();
  for (size_t i = 0; i < left.size(); ++i) {
    if (!torch::equal(left[i], right[i])) return false;
  }
  return true;
}

const char* dtype_name(torch::Dtype dtype) { return dtype == torch::kDouble ? "float64" : "float32"; }

TEST_P(OptimizerContract, ResumingFromTheStateContinuesBitForBit) {
  const auto& name = GetParam();
  for (const auto& hparams : resume_settings(name)) {
    for (const auto& tiny : tiny_models()) {
      if (refuses_model(name, tiny.name)) continue;
      for (const auto dtype : {torch::kDouble, torch::kFloat}) {
        SCOPED_TRACE(fmt::format("model {}, {}, settings {}", tiny.name, dtype_name(dtype), hparams.dump()));
        const auto setup = resume_setup(name, tiny, hparams, dtype);
        auto reference = resume_reference(setup);
        EXPECT_FALSE(reference.saved.optimizer.empty()) << "no state after " << kResumeSteps << " steps";
        auto resumed = restored(setup, reference.saved);
        run_steps(resumed, setup, kResumeSteps, 2 * kResumeSteps);
        EXPECT_TRUE(same_parameters(*resumed.model, *reference.uninterrupted.model));
        // And the state at the end is the uninterrupted run's, entry by entry.
        const auto expected = reference.uninterrupted.optimizer->state();
        const auto actual = resumed.optimizer->state();
        ASSERT_EQ(actual.size(), expected.size());
        for (size_t i = 0; i < actual.size(); ++i) {
          EXPECT_EQ(actual[i].name, expected[i].name);
          EXPECT_TRUE(torch::equal(actual[i].value, expected[i].value)) << expected[i].name;
        }
      }
    }
  }
}

// Each entry in turn nudged (reals ×1.001 + 0.001, integers + 1): the resumed run must end elsewhere, or
// load_state reject the nudged state (a counter that makes other entries required). A state() that
// carried an entry nothing reads, or a resume test whose settings never reach what an entry decides,
// fails here. float64, where a nudge cannot round away.
TEST_P(OptimizerContract, EveryStateEntryDecidesTheStepsAfterAResume) {
  const auto& name = GetParam();
  for (const auto& hparams : resume_settings(name)) {
    for (const auto& tiny : tiny_models()) {
      if (refuses_model(name, tiny.name)) continue;
      SCOPED_TRACE(fmt::format("model {}, settings {}", tiny.name, hparams.dump()));
      const auto setup = resume_setup(name, tiny, hparams, torch::kDouble);
      auto reference = resume_reference(setup);
      for (size_t i = 0; i < reference.saved.optimizer.size(); ++i) {
        const auto& entry = reference.saved.optimizer[i];
        if (may_not_matter(entry.name, reference.saved.optimizer)) continue;
        auto nudged = reference.saved;
        nudged.optimizer[i].value = entry.value.is_floating_point() ? entry.value * 1.001 + 0.001 : entry.value + 1;
        try {
          auto resumed = restored(setup, nudged);
          run_steps(resumed, setup, kResumeSteps, 2 * kResumeSteps);
          EXPECT_FALSE(same_parameters(*resumed.model, *reference.uninterrupted.model))
              << "nudging '" << entry.name << "' changed nothing in steps 4–6";
        } catch (const std::invalid_argument&) {
        }
      }
    }
  }
}

// The message load_state throws for `state` on a fresh optimizer, or "" when it loads.
std::string load_error(const ResumeSetup& setup, const OptimizerState& state) {
  auto session = fresh_session(setup);
  try {
    session.optimizer->load_state(state);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "";
}

TEST_P(OptimizerContract, LoadStateNamesAMissingAnExtraAndAMisShapedEntry) {
  const auto& name = GetParam();
  const auto setup = resume_setup(name, tiny_models().front(), resume_settings(name).front(), torch::kFloat);
  const auto saved = resume_reference(setup).saved.optimizer;
  ASSERT_FALSE(saved.empty());
  std::set<std::string> names;
  for (const auto& entry : saved) EXPECT_TRUE(names.insert(entry.name).second) << entry.name << " twice";
  EXPECT_EQ(load_error(setup, saved), "");

  // A parameter without a momentum buffer is one LibTorch's SGD has not stepped yet (it creates that
  // state on a parameter's first step, and never for a parameter without a gradient): its absence is a
  // valid state, so the entries removed here are the first and last of the others.
  std::vector<size_t> removable;
  for (size_t i = 0; i < saved.size(); ++i) {
    const auto& entry_name = saved[i].name;
    const std::string lazily_created = "momentum_buffer";
    const bool lazy = entry_name.size() >= lazily_created.size() &&
                      entry_name.compare(entry_name.size() - lazily_created.size(), lazily_created.size(),
                                         lazily_created) == 0;
    if (!lazy) removable.push_back(i);
  }
  if (!removable.empty()) {
    for (const size_t removed : {removable.front(), removable.back()}) {
      auto state = saved;
      state.erase(state.begin() + static_cast<std::ptrdiff_t>(removed));
      const auto error = load_error(setup, state);
      EXPECT_NE(error.find("'" + saved[removed].name + "' is missing"), std::string::npos) << error;
    }
  }

  auto extra = saved;
  extra.push_back({"contract/unknown", torch::zeros({2})});
  const auto extra_error = load_error(setup, extra);
  EXPECT_NE(extra_error.find("unexpected entry 'contract/unknown'"), std::string::npos) << extra_error;

  for (const size_t changed : {size_t{0}, saved.size() - 1}) {
    auto state = saved;
    state[changed].value = torch::zeros({state[changed].value.numel() + 1}, state[changed].value.options());
    const auto error = load_error(setup, state);
    EXPECT_NE(error.find("'" + saved[changed].name + "' has shape"), std::string::npos) << error;
  }

  auto duplicated = saved;
  duplicated.push_back(saved.front());
  EXPECT_NE(load_error(setup, duplicated).find("'" + saved.front().name + "' appears twice"), std::string::npos);
}

// refreshed_curvature() is true exactly after the refresh steps: for KFAC every inverse_interval-th step
// from step 0 (docs/optimizers.md#kfac), for the first-order plugins never.
struct RefreshCase {
  std::string name;
  json hparams;
  std::set<int64_t> refresh_steps;
};

TEST(OptimizerStateContract, RefreshedCurvatureMarksKfacsInverseStepsAndNeverSgds) {
  const std::vector<RefreshCase> cases = {
      {"kfac", {{"inverse_interval", 3}, {"stat_interval", 2}}, {0, 3, 6}},
      {"sgd", json::object(), {}},
  };
  for (const auto& refresh_case : cases) {
    SCOPED_TRACE(refresh_case.name);
    const auto setup = resume_setup(refresh_case.name, tiny_models().front(), refresh_case.hparams, torch::kFloat);
    auto session = fresh_session(setup);
    EXPECT_FALSE(session.optimizer->refreshed_curvature()) << "before any step";
    for (int64_t step = 0; step < 8; ++step) {
      run_steps(session, setup, step, step + 1);
      EXPECT_EQ(session.optimizer->refreshed_curvature(), refresh_case.refresh_steps.count(step) == 1)
          << "after step " << step;
    }
  }
}

std::vector<std::string> registered_names() {
  std::vector<std::string> names;
  for (const auto& entry : optimizer_registry()) names.push_back(entry.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Registry, OptimizerContract, ::testing::ValuesIn(registered_names()),
                         testing::registry_test_name);

}  // namespace
}  // namespace ngd
