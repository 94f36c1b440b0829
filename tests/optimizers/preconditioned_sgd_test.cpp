#include <gtest/gtest.h>

#include <cmath>

#include "optimizers/curvature/layer_statistics.h"
#include "optimizers/preconditioned_sgd.h"

namespace ngd {
namespace {

constexpr int64_t kBatch = 5;
constexpr double kLearningRate = 0.1;

// linear → tanh → linear in float64: two capture layers, the second left to plain SGD by the toy.
class TwoLayers : public Model {
 public:
  TwoLayers() {
    first = add_capture_layer("first", CaptureLinear(3, 4));
    second = add_capture_layer("second", CaptureLinear(4, 2));
    to(torch::kDouble);
  }
  torch::Tensor forward(const torch::Tensor& x) override { return second->forward(torch::tanh(first->forward(x))); }

  CaptureLinear first{nullptr};
  CaptureLinear second{nullptr};
};

// What a toy preconditioner saw, shared with the test after the optimizer took ownership.
struct Seen {
  std::vector<CurvatureStep> captures, directions, after_steps;
};

// V = 2·∇ on the first capture layer, the second layer's gradient left as it is; keeps a step count.
// With `odd_steps_plain`, it does not precondition odd steps and refreshes on the others.
class DoublingFirstLayer : public Preconditioner {
 public:
  DoublingFirstLayer(CaptureModel& model, Seen& seen, bool odd_steps_plain = false)
      : layers_(model.capture_layers()), seen_(seen), odd_steps_plain_(odd_steps_plain) {}

  Capture capture(const StepInfo&, const CurvatureStep& curvature) const override {
    seen_.captures.push_back(curvature);
    return Capture::kNone;
  }
  bool preconditions(const StepInfo& info, const CurvatureStep&) const override {
    return !odd_steps_plain_ || info.step % 2 == 0;
  }
  bool refreshed() const override { return odd_steps_plain_; }
  std::vector<torch::Tensor> directions(const StepInfo&, const CurvatureStep& curvature) override {
    seen_.directions.push_back(curvature);
    steps_ += 1;
    return {2 * gradient_matrix(*layers_[0]), torch::Tensor()};
  }
  bool works_after_step() const override { return !odd_steps_plain_; }
  void after_step(const StepInfo&, const CurvatureStep& curvature) override { seen_.after_steps.push_back(curvature); }
  void append_state(OptimizerState& state) const override { state.push_back({"toy/steps", state_integer(steps_)}); }
  void load_state(StateReader& reader) override { steps_ = reader.integer("toy/steps"); }

 private:
  std::vector<std::shared_ptr<CaptureLayer>> layers_;
  Seen& seen_;
  bool odd_steps_plain_;
  int64_t steps_ = 0;
};

Options sgd_options(const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json options = {{"lr", kLearningRate}, {"momentum", 0.0}, {"nesterov", false}, {"weight_decay", 0.0}};
  options.update(extra);
  return Options(options);
}

// The parameter matrices [W | b] of both layers.
std::vector<torch::Tensor> parameter_matrices(TwoLayers& model) {
  std::vector<torch::Tensor> matrices;
  for (const auto& layer : model.capture_layers()) {
    matrices.push_back(torch::cat({layer->weight().detach(), layer->bias().detach().unsqueeze(1)}, 1).clone());
  }
  return matrices;
}

struct StepResult {
  std::vector<torch::Tensor> gradients;  // [∇W | ∇b] per layer, before the step
  std::vector<torch::Tensor> moves;      // θ_before − θ_after per layer
};

StepResult take_step(TwoLayers& model, Optimizer& optimizer, const StepInfo& info) {
  optimizer.capture(info);
  model.zero_grad();
  const auto inputs = torch::randn({kBatch, 3}, torch::kDouble);
  const auto labels = torch::randint(2, {kBatch}, torch::kInt64);
  optimizer.reduce_loss(torch::nn::functional::cross_entropy(
                            model.forward(inputs), labels,
                            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone)),
                        info)
      .backward();
  StepResult result;
  for (const auto& layer : model.capture_layers()) result.gradients.push_back(gradient_matrix(*layer).clone());
  const auto before = parameter_matrices(model);
  PhaseTimer timer;
  optimizer.step(info, timer);
  const auto after = parameter_matrices(model);
  for (size_t i = 0; i < before.size(); ++i) result.moves.push_back(before[i] - after[i]);
  return result;
}

StepInfo step_info(int64_t step, int64_t batch_index) {
  StepInfo info;
  info.step = step;
  info.batch_index = batch_index;
  info.batches_per_epoch = 4;
  return info;
}

TEST(PreconditionedSgd, AsksThePreconditionerOnTheDeclaredIntervalsFromStepZero) {
  torch::manual_seed(0);
  TwoLayers model;
  Seen seen;
  PreconditionedSgd optimizer(model, sgd_options({{"stat_interval", 2}, {"inverse_interval", 3}}),
                              std::make_unique<DoublingFirstLayer>(model, seen));
  for (int64_t step = 0; step < 7; ++step) take_step(model, optimizer, step_info(step, step % 4));
  ASSERT_EQ(seen.directions.size(), 7u);
  ASSERT_EQ(seen.after_steps.size(), 7u);
  for (int64_t step = 0; step < 7; ++step) {
    for (const auto* asked : {&seen.captures[step], &seen.directions[step], &seen.after_steps[step]}) {
      EXPECT_EQ(asked->statistics, step % 2 == 0) << step;
      EXPECT_EQ(asked->refresh, step % 3 == 0) << step;
    }
  }
}

TEST(PreconditionedSgd, IntervalsPerEpochCountFromEachEpochsFirstBatch) {
  torch::manual_seed(0);
  TwoLayers model;
  Seen seen;
  PreconditionedSgd optimizer(model, sgd_options({{"inverse_interval", 3}, {"interval_per_epoch", true}}),
                              std::make_unique<DoublingFirstLayer>(model, seen));
  for (int64_t step = 0; step < 8; ++step) take_step(model, optimizer, step_info(step, step % 4));
  for (int64_t step = 0; step < 8; ++step) {
    EXPECT_TRUE(seen.directions[step].statistics) << step;  // no stat_interval declared: every step
    EXPECT_EQ(seen.directions[step].refresh, (step % 4) % 3 == 0) << step;
  }
}

TEST(PreconditionedSgd, StepsAlongEachDirectionAndLeavesAnUndefinedOneToPlainSgd) {
  torch::manual_seed(0);
  TwoLayers model;
  Seen seen;
  PreconditionedSgd optimizer(model, sgd_options(), std::make_unique<DoublingFirstLayer>(model, seen));
  const auto result = take_step(model, optimizer, step_info(0, 0));
  EXPECT_TRUE(torch::allclose(result.moves[0], kLearningRate * 2 * result.gradients[0], 0, 1e-15));
  EXPECT_TRUE(torch::allclose(result.moves[1], kLearningRate * result.gradients[1], 0, 1e-15));
}

TEST(PreconditionedSgd, StepsThePreconditionerDoesNotPreconditionArePlainSgdWithoutARefresh) {
  torch::manual_seed(0);
  TwoLayers model;
  Seen seen;
  PreconditionedSgd optimizer(model, sgd_options(), std::make_unique<DoublingFirstLayer>(model, seen, true));
  for (int64_t step = 0; step < 4; ++step) {
    const auto result = take_step(model, optimizer, step_info(step, step));
    const double factor = step % 2 == 0 ? 2.0 : 1.0;
    EXPECT_TRUE(torch::allclose(result.moves[0], kLearningRate * factor * result.gradients[0], 0, 1e-15)) << step;
    EXPECT_EQ(optimizer.refreshed_curvature(), step % 2 == 0) << step;
  }
  EXPECT_EQ(seen.directions.size(), 2u);
  EXPECT_TRUE(seen.after_steps.empty());  // the toy declares no work after the step
}

TEST(PreconditionedSgd, KlClipScalesEveryDirectionByOneFactorAtTheCurrentRate) {
  torch::manual_seed(0);
  TwoLayers model;
  Seen seen;
  constexpr double kKlClip = 1e-6;
  PreconditionedSgd optimizer(model, sgd_options({{"kl_clip", kKlClip}}), std::make_unique<DoublingFirstLayer>(model, seen));
  constexpr double kRate = 0.05;  // the schedule's rate, not the base one
  optimizer.set_learning_rate(kRate);
  const auto result = take_step(model, optimizer, step_info(0, 0));
  // Only the defined direction V = 2g enters the alignment and is scaled.
  const double alignment = (2 * result.gradients[0] * result.gradients[0]).sum().item<double>();
  const double scale = std::min(1.0, std::sqrt(kKlClip / (kRate * kRate * alignment)));
  ASSERT_LT(scale, 0.5);  // the clip is active, or this test would show nothing
  EXPECT_TRUE(torch::allclose(result.moves[0], kRate * scale * 2 * result.gradients[0], 1e-12, 1e-15));
  EXPECT_TRUE(torch::allclose(result.moves[1], kRate * result.gradients[1], 0, 1e-15));
}

TEST(PreconditionedSgd, StateIsSgdsThenThePreconditionersAndLoadsBack) {
  torch::manual_seed(0);
  TwoLayers model;
  Seen seen;
  PreconditionedSgd optimizer(model, sgd_options({{"momentum", 0.9}}), std::make_unique<DoublingFirstLayer>(model, seen));
  take_step(model, optimizer, step_info(0, 0));
  take_step(model, optimizer, step_info(1, 1));
  const auto state = optimizer.state();
  ASSERT_FALSE(state.empty());
  EXPECT_EQ(state.back().name, "toy/steps");
  EXPECT_EQ(state.back().value.item<int64_t>(), 2);
  for (size_t i = 0; i + 1 < state.size(); ++i) EXPECT_EQ(state[i].name.rfind("sgd/", 0), 0u) << state[i].name;

  Seen resumed_seen;
  PreconditionedSgd resumed(model, sgd_options({{"momentum", 0.9}}), std::make_unique<DoublingFirstLayer>(model, resumed_seen));
  resumed.load_state(state);
  const auto reloaded = resumed.state();
  ASSERT_EQ(reloaded.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(reloaded[i].name, state[i].name);
    EXPECT_TRUE(torch::equal(reloaded[i].value, state[i].value)) << state[i].name;
  }
  auto extra = state;
  extra.push_back({"toy/unknown", state_integer(1)});
  EXPECT_THROW(resumed.load_state(extra), std::invalid_argument);
}

TEST(PreconditionedSgd, WithoutAPreconditionerIsTorchSgd) {
  torch::manual_seed(0);
  TwoLayers model;
  PreconditionedSgd optimizer(model, sgd_options({{"weight_decay", 0.01}}), nullptr);
  EXPECT_EQ(optimizer.capture(step_info(0, 0)), Capture::kNone);
  const auto before = parameter_matrices(model);
  const auto result = take_step(model, optimizer, step_info(0, 0));
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::allclose(result.moves[i], kLearningRate * (result.gradients[i] + 0.01 * before[i]), 0, 1e-15)) << i;
  }
  EXPECT_FALSE(optimizer.refreshed_curvature());
  EXPECT_TRUE(optimizer.report().is_object());
}

}  // namespace
}  // namespace ngd
