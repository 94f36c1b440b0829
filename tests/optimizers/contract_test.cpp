// The contract every registered optimizer keeps, checked over optimizer_registry(): built with its
// defaults on a tiny MLP and a tiny CNN and stepped three times through the runner's step sequence
// (forward_backward, then step), the parameters move and stay finite, the same seed gives bitwise the
// same numbers, a learning rate of 0 freezes them, the capture layers hold what capture() asked for
// when step() runs, the report is a JSON object, and the settings table is complete. A new plugin
// gets these tests by being registered.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/options.h"
#include "base/phase_timer.h"
#include "harness/run/training_step.h"
#include "models/model.h"
#include "optimizers/optimizer.h"
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
      {"psgd", {{"sampling_epochs", 1}, {"snapshots_per_epoch", 2}, {"subspace_dim", 1}, {"restart_from_start", false}}},
      {"pbfgs", {{"sampling_epochs", 1}, {"snapshots_per_epoch", 2}, {"subspace_dim", 1}, {"restart_from_start", false}}},
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

// Optimizers whose lr cannot be 0 in their settings although its declared range allows 0: psgd and pbfgs
// refuse lr ≤ 0 when built (the schedule's factor is lr_now / lr), so they keep their default lr and are
// frozen by set_learning_rate(0) alone, as a schedule at 0 would freeze them. And a motionless
// trajectory has no principal directions, so entering the subspace throws ("the sampled trajectory has
// no variance"): they are checked over the sampling steps, and the third step must throw.
bool freezes_through_the_runner_rate_only(const std::string& name) { return name == "psgd" || name == "pbfgs"; }

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
    StepInfo info{step, step / kBatchesPerEpoch, batch, kBatchesPerEpoch, {}, {}};
    info.sample_ids = torch::arange(batch * kBatch, (batch + 1) * kBatch, torch::kLong);
    info.batch_loss = loss_keeping_buffers(*model, [&] {
      torch::NoGradGuard no_grad;
      return torch::nn::functional::cross_entropy(model->forward(x), y).item<double>();
    });
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

std::vector<std::string> registered_names() {
  std::vector<std::string> names;
  for (const auto& entry : optimizer_registry()) names.push_back(entry.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Registry, OptimizerContract, ::testing::ValuesIn(registered_names()),
                         testing::registry_test_name);

}  // namespace
}  // namespace ngd
