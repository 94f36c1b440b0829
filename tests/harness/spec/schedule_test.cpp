#include <gtest/gtest.h>

#include "harness/spec/schedule.h"

namespace ngd {
namespace {

using nlohmann::json;

LearningRateSchedule schedule_of(const json& spec, int64_t epochs = 10, int64_t steps_per_epoch = 4) {
  return make_schedule(resolve_schedule(spec, "schedule"), epochs, steps_per_epoch);
}

TEST(Schedule, ConstantIsOne) { EXPECT_DOUBLE_EQ(schedule_of({{"name", "constant"}})(37), 1.0); }

TEST(Schedule, MultistepDecaysAtMilestoneEpochs) {
  const auto factor = schedule_of({{"name", "multistep"}, {"milestones", {3, 4}}, {"gamma", 0.1}});
  EXPECT_DOUBLE_EQ(factor(3 * 4 - 1), 1.0);  // last step of epoch index 2
  EXPECT_DOUBLE_EQ(factor(3 * 4), 0.1);      // first step of epoch index 3
  EXPECT_NEAR(factor(4 * 4), 0.01, 1e-15);
}

TEST(Schedule, StepDecaysEveryStepSizeEpochs) {
  const auto factor = schedule_of({{"name", "step"}, {"step_size", 2}, {"gamma", 0.5}});
  EXPECT_DOUBLE_EQ(factor(7), 1.0);    // epoch index 1
  EXPECT_DOUBLE_EQ(factor(8), 0.5);    // epoch index 2
  EXPECT_DOUBLE_EQ(factor(16), 0.25);  // epoch index 4
}

TEST(Schedule, CosineGoesFromOneToMinFactor) {
  const auto factor = schedule_of({{"name", "cosine"}, {"min_factor", 0.1}}, 10, 4);
  EXPECT_DOUBLE_EQ(factor(0), 1.0);
  EXPECT_NEAR(factor(20), 0.55, 1e-12);  // halfway
  EXPECT_NEAR(factor(40), 0.1, 1e-12);
}

TEST(Schedule, WarmupRampsLinearlyThenHandsOver) {
  const auto factor = schedule_of({{"name", "multistep"}, {"milestones", {5}}, {"warmup_epochs", 2}});
  EXPECT_DOUBLE_EQ(factor(0), 1.0 / 8);
  EXPECT_DOUBLE_EQ(factor(3), 4.0 / 8);
  EXPECT_DOUBLE_EQ(factor(7), 1.0);
  EXPECT_DOUBLE_EQ(factor(20), 0.1);
}

TEST(Schedule, RejectsNegativeWarmup) {
  EXPECT_THROW(resolve_schedule({{"name", "constant"}, {"warmup_epochs", -1}}, "s"), std::runtime_error);
}

}  // namespace
}  // namespace ngd
