#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "harness/run/memory.h"
#include "harness/run/memory_estimate.h"
#include "harness/run/runner.h"
#include "harness/run/step_times.h"
#include "harness/spec/spec.h"
#include "models/mlp.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

constexpr int64_t kFloat = 4;  // bytes of a float32

// Step times, nearest rank (the ⌈p·n⌉-th smallest): on 1, 2, …, 10 in shuffled order p25 is the 3rd
// value, p50 the 5th, p75 the 8th, p90 the 9th, p99 the 10th.
TEST(StepTimes, SummaryOfASyntheticSeriesIsTheNearestRankPercentiles) {
  std::vector<double> series;
  for (int i = 1; i <= 10; ++i) series.push_back(i);
  std::shuffle(series.begin(), series.end(), std::mt19937(3));
  const auto summary = summarize_step_times(series);
  EXPECT_EQ(summary.steps, 10);
  EXPECT_EQ(summary.min, 1);
  EXPECT_EQ(summary.p25, 3);
  EXPECT_EQ(summary.p50, 5);
  EXPECT_EQ(summary.p75, 8);
  EXPECT_EQ(summary.p90, 9);
  EXPECT_EQ(summary.p99, 10);
  EXPECT_EQ(summary.max, 10);
  EXPECT_DOUBLE_EQ(summary.mean, 5.5);
}

TEST(StepTimes, NearestRankNeverInterpolatesAndSurvivesRounding) {
  EXPECT_EQ(nearest_rank_percentile({1, 2, 3, 4}, 0.5), 2);  // linear interpolation would give 2.5
  EXPECT_EQ(nearest_rank_percentile({7}, 0.99), 7);
  std::vector<double> hundred;
  for (int i = 1; i <= 100; ++i) hundred.push_back(i);
  // 0.07 × 100 is 7.000000000000001 in floating point: the rank is still 7.
  EXPECT_EQ(nearest_rank_percentile(hundred, 0.07), 7);
  EXPECT_EQ(nearest_rank_percentile(hundred, 0.99), 99);
  EXPECT_THROW(nearest_rank_percentile({}, 0.5), std::invalid_argument);
  EXPECT_THROW(nearest_rank_percentile({1}, 0), std::invalid_argument);
}

TEST(StepTimes, EpochAndRunSummariesSplitRefreshFromOrdinarySteps) {
  StepTimes times;
  times.start_epoch();
  times.add(0.010, true);
  times.add(0.002, false);
  times.add(0.004, false);
  times.start_epoch();
  times.add(0.030, true);
  times.add(0.006, false);
  const auto epoch = times.epoch_json();  // the second epoch's only
  EXPECT_EQ(epoch["steps"], 2);
  EXPECT_EQ(epoch["p50"], 0.006);
  EXPECT_EQ(epoch["p90"], 0.030);
  EXPECT_EQ(epoch["max"], 0.030);
  const auto run = times.run_json();
  EXPECT_EQ(run["steps"], 5);
  EXPECT_EQ(run["p50"], 0.006);  // 0.002 0.004 0.006 0.010 0.030: the 3rd
  EXPECT_EQ(run["refresh"]["steps"], 2);
  EXPECT_DOUBLE_EQ(run["refresh"]["mean"].get<double>(), 0.020);
  EXPECT_EQ(run["ordinary"]["steps"], 3);
  EXPECT_DOUBLE_EQ(run["ordinary"]["mean"].get<double>(), 0.004);
  EXPECT_TRUE(StepTimes().run_json().is_null());
  times.start_epoch();
  EXPECT_TRUE(times.epoch_json().is_null());
}

// A tensor allocated inside a measured phase shows up in that phase's peak and the run's, by at least its
// size; freeing it brings the count in use back.
TEST(MemoryMeter, KnownAllocationShowsInThePeakOfItsPhase) {
  constexpr int64_t kElements = 2 * 1024 * 1024;  // 8 MiB of float32
  MemoryMeter meter;
  const int64_t before = meter.allocated_bytes();
  meter.enter_phase(Phase::kCurvature);
  {
    const auto tensor = torch::ones({kElements});
    EXPECT_GE(meter.allocated_bytes() - before, kElements * kFloat);
  }
  meter.enter_phase(Phase::kStep);
  meter.enter_phase(Phase::kCount);
  EXPECT_LT(meter.allocated_bytes() - before, kElements * kFloat);
  EXPECT_GE(meter.peak_allocated_bytes() - before, kElements * kFloat);
  const auto memory = meter.to_json(123);
  EXPECT_GE(memory["phases"]["curvature"]["peak_allocated_bytes"].get<int64_t>() - before, kElements * kFloat);
  EXPECT_LT(memory["phases"]["step"]["peak_allocated_bytes"].get<int64_t>(), kElements * kFloat);
  EXPECT_TRUE(memory["cuda_peak_bytes"].is_null());  // nothing on a GPU
  EXPECT_EQ(memory["parameter_bytes"], 123);
  EXPECT_EQ(memory["optimizer_state_bytes"], 0);
}

// The resident-set high-water mark, reset when the meter starts, grows by at least a touched block that
// glibc maps fresh (above its 32 MiB heap limit, harness/run/machine.h).
TEST(MemoryMeter, TouchedMemoryShowsInThePeakResidentSet) {
  constexpr int64_t kElements = 12 * 1024 * 1024;  // 48 MiB of float32
  MemoryMeter meter;
  const auto start = meter.to_json(0);
  if (start["peak_rss_since"] != "run") GTEST_SKIP() << "/proc/self/clear_refs is not writable here";
  const auto resident_at_start = start["peak_rss_bytes"].get<int64_t>();
  { const auto tensor = torch::ones({kElements}); }
  EXPECT_GE(meter.to_json(0)["peak_rss_bytes"].get<int64_t>() - resident_at_start, kElements * kFloat * 9 / 10);
}

// An optimizer that captures on its first step and carries a 3 × 5 float64 tensor: 120 bytes of state.
class StatefulOptimizer : public Optimizer {
 public:
  explicit StatefulOptimizer(Capture capture) : capture_(capture) {}
  Capture capture(const StepInfo&) const override { return capture_; }
  void step(const StepInfo&, PhaseTimer&) override {}
  void set_learning_rate(double) override {}
  OptimizerState state() const override { return {{"buffer", buffer_}}; }

 private:
  Capture capture_;
  torch::Tensor buffer_ = torch::zeros({3, 5}, torch::kDouble);
};

// An MLP 16 → 16 → 3 on 1 × 4 × 4 images, batch 8, counted by hand: parameters 16·16 + 16 + 16·3 + 3 =
// 323 floats; per sample the capture layers' inputs 16 + 16 and outputs 16 + 3 floats; the captured output
// gradients 16 + 3 floats per sample.
TEST(MemoryEstimate, MlpEstimateEqualsTheHandCount) {
  Mlp model({16}, LowRankSettings{}, ModelInput{{1, 4, 4}, 3});
  constexpr int64_t kBatch = 8;
  const auto estimate = estimate_memory(model, StatefulOptimizer(Capture::kEmpirical), {1, 4, 4}, kBatch);
  EXPECT_EQ(estimate.parameter_bytes, 323 * kFloat);
  EXPECT_EQ(estimate.gradient_bytes, 323 * kFloat);
  EXPECT_EQ(estimate.activation_bytes, (16 + 16 + 16 + 3) * kFloat * kBatch);
  EXPECT_EQ(estimate.capture_bytes, (16 + 3) * kFloat * kBatch);
  EXPECT_EQ(estimate.optimizer_state_bytes, 3 * 5 * 8);
  EXPECT_EQ(estimate.total_bytes(), 2 * 323 * kFloat + 51 * kFloat * kBatch + 19 * kFloat * kBatch + 120);
  EXPECT_EQ(estimate.dominant_term(), std::make_pair(std::string("activations"), 51 * kFloat * kBatch));
  EXPECT_EQ(estimate_memory(model, StatefulOptimizer(Capture::kNone), {1, 4, 4}, kBatch).capture_bytes, 0);
  for (const auto& layer : model.capture_layers()) EXPECT_FALSE(layer->input().defined());  // nothing left recorded
}

TEST(MemoryEstimate, MemoryLimitsParseAndBadOnesNameTheText) {
  EXPECT_EQ(parse_memory_limit("8G").bytes, int64_t{8} << 30);
  EXPECT_EQ(parse_memory_limit("512M").bytes, int64_t{512} << 20);
  EXPECT_EQ(parse_memory_limit("1.5g").bytes, int64_t{3} << 29);
  EXPECT_EQ(parse_memory_limit("4096").bytes, 4096);
  EXPECT_EQ(parse_memory_limit("none").kind, MemoryLimit::Kind::kNone);
  EXPECT_EQ(parse_memory_limit("available").kind, MemoryLimit::Kind::kAvailable);
  for (const std::string bad : {"", "8X", "-1G", "8GB", "G", "nan", "0"}) {
    try {
      parse_memory_limit(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& error) {
      EXPECT_NE(std::string(error.what()).find("--memory-limit: '" + bad + "'"), std::string::npos) << error.what();
    }
  }
}

RunConfig tiny_run() { return parse_spec(testing::tiny_spec(), "tiny").runs.at(0); }

RunnerOptions quiet_options() {
  RunnerOptions options;
  options.progress = false;
  return options;
}

// tiny_spec's MLP 784 → 32 → 10 with SGD at batch 32, by hand: parameters 784·32 + 32 + 32·10 + 10 =
// 25450 floats, activations (784 + 32 + 32 + 10) floats per sample.
constexpr int64_t kTinyParameterBytes = 25450 * kFloat;
constexpr int64_t kTinyActivationBytes = 858 * kFloat * 32;

TEST(MemoryEstimate, RunOverTheLimitIsRefusedBeforeTrainingNamingTheDominantTerm) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  auto options = quiet_options();
  options.memory_limit = parse_memory_limit("200K");
  const auto result = train_run(tiny_run(), dataset, options);
  EXPECT_EQ(result.status, "failed");
  EXPECT_TRUE(result.epochs.empty());
  EXPECT_NE(result.error.find("refused before training"), std::string::npos) << result.error;
  EXPECT_NE(result.error.find("the largest term is activations"), std::string::npos) << result.error;
  EXPECT_NE(result.error.find("--memory-limit"), std::string::npos) << result.error;
  const auto& estimate = result.memory["estimate"];
  EXPECT_EQ(estimate["parameter_bytes"], kTinyParameterBytes);
  EXPECT_EQ(estimate["activation_bytes"], kTinyActivationBytes);
  EXPECT_EQ(estimate["capture_bytes"], 0);
  // SGD's state as built: what its plugin's state() holds before the first step.
  EXPECT_EQ(estimate["total_bytes"], 2 * kTinyParameterBytes + kTinyActivationBytes +
                                         estimate["optimizer_state_bytes"].get<int64_t>());
  options.memory_limit = parse_memory_limit("none");
  EXPECT_EQ(train_run(tiny_run(), dataset, options).status, "completed");
}

TEST(MemoryEstimate, EstimatingLeavesTheRandomStreamAsItWas) {
  torch::manual_seed(3);
  const auto expected = torch::randn({4});
  torch::manual_seed(3);
  estimate_run_memory(tiny_run(), ModelInput{{1, 28, 28}, 10});
  EXPECT_TRUE(torch::equal(torch::randn({4}), expected));
}

// A finished run records its memory and step times: the parameters and the batches count toward the
// peak, every step is timed, SGD refreshes nothing.
TEST(MemoryEstimate, CompletedRunRecordsMemoryAndStepTimes) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  const auto result = train_run(tiny_run(), dataset, quiet_options());
  ASSERT_EQ(result.status, "completed") << result.error;
  const auto& memory = result.memory;
  EXPECT_EQ(memory["parameter_bytes"], kTinyParameterBytes);
  EXPECT_GE(memory["peak_allocated_bytes"].get<int64_t>(), kTinyParameterBytes + kTinyActivationBytes / 2);
  EXPECT_GE(memory["phases"]["forward"]["peak_allocated_bytes"].get<int64_t>(), kTinyParameterBytes);
  EXPECT_EQ(memory["estimate"]["activation_bytes"], kTinyActivationBytes);
  ASSERT_EQ(result.epochs.size(), 2u);
  for (const auto& epoch : result.epochs) EXPECT_EQ(epoch.step_time_s["steps"], 8);  // 256 / 32
  EXPECT_EQ(result.step_time_s["steps"], 16);
  EXPECT_EQ(result.step_time_s["refresh"]["steps"], 0);
  EXPECT_EQ(result.step_time_s["ordinary"]["steps"], 16);
  EXPECT_GT(result.step_time_s["p50"].get<double>(), 0);
  const auto json = to_json(result);
  EXPECT_EQ(json["epochs"][0]["step_time_s"]["steps"], 8);
  EXPECT_EQ(json["memory"]["parameter_bytes"], kTinyParameterBytes);
}

}  // namespace
}  // namespace ngd
