#include <gtest/gtest.h>

#include <sstream>

#include "harness/results/regress.h"
#include "harness/run/runner.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

// Measures the tiny spec (train-loss target) with `lr` for SGD on synthetic data.
json measure_suite(double lr) {
  testing::TempDir root, out;
  testing::write_synthetic_fashion_mnist(root.path(), 400, 100);
  auto document = testing::tiny_spec();
  document["epochs"] = 6;
  document["seeds"] = {0, 1};
  document["target"] = {{"metric", "train_loss"}, {"value", 0.3}};
  document["optimizers"][0]["hparams"]["lr"] = lr;
  RunnerOptions options;
  options.out_dir = out.path();
  options.data_roots = {root.path()};
  options.progress = false;
  return {{"tiny", measure_configurations(run_spec(parse_spec(document, "tiny"), options))}};
}

TEST(Regress, UnchangedOptimizerPasses) {
  const auto baseline = measure_suite(0.05);
  ASSERT_FALSE(baseline["tiny"]["sgd"]["steps_to_target"].is_null()) << baseline.dump();
  std::ostringstream table;
  const auto outcome = compare_with_baseline(measure_suite(0.05), baseline, {"sgd"}, {}, table);
  EXPECT_TRUE(outcome.passed) << table.str();
  EXPECT_NE(table.str().find("steps to target"), std::string::npos);
}

TEST(Regress, DegradedLearningRateFailsWithAReadableRow) {
  const auto baseline = measure_suite(0.05);
  std::ostringstream table;
  const auto outcome = compare_with_baseline(measure_suite(0.005), baseline, {"sgd"}, {}, table);
  EXPECT_FALSE(outcome.passed) << table.str();
  ASSERT_FALSE(outcome.problems.empty());
  EXPECT_NE(outcome.problems[0].find("tiny / sgd: steps to target"), std::string::npos) << outcome.problems[0];
  EXPECT_NE(table.str().find("FAIL"), std::string::npos) << table.str();
}

// The limits come from the tolerance in force, so a changed default is tested, not contradicted.
TEST(Regress, SlowdownWithinToleranceAndBeyondIt) {
  const RegressTolerance tolerance;
  constexpr int64_t kBaselineSteps = 100;
  constexpr double kBaselineAccuracy = 0.8;
  const json baseline = {{"e", {{"sgd", {{"optimizer", "sgd"}, {"steps_to_target", kBaselineSteps},
                                         {"final_test_acc", kBaselineAccuracy}}}}}};
  // The most steps whose ratio to the baseline is within the tolerance, by the comparison regress makes
  // (100·1.15 rounds to 114.999…, so a product would be off by one).
  int64_t slowest_allowed = kBaselineSteps;
  while (static_cast<double>(slowest_allowed + 1) / kBaselineSteps <= tolerance.steps_ratio) ++slowest_allowed;
  auto measured = baseline;
  std::ostringstream table;
  measured["e"]["sgd"]["steps_to_target"] = slowest_allowed;
  EXPECT_TRUE(compare_with_baseline(measured, baseline, {"sgd"}, tolerance, table).passed);
  measured["e"]["sgd"]["steps_to_target"] = slowest_allowed + 1;
  EXPECT_FALSE(compare_with_baseline(measured, baseline, {"sgd"}, tolerance, table).passed);
  measured["e"]["sgd"]["steps_to_target"] = nullptr;  // never reached any more
  EXPECT_FALSE(compare_with_baseline(measured, baseline, {"sgd"}, tolerance, table).passed);
  measured["e"]["sgd"]["steps_to_target"] = kBaselineSteps - 10;
  measured["e"]["sgd"]["final_test_acc"] = kBaselineAccuracy - 0.9 * tolerance.accuracy_drop;  // within the tolerance
  EXPECT_TRUE(compare_with_baseline(measured, baseline, {"sgd"}, tolerance, table).passed);
  measured["e"]["sgd"]["final_test_acc"] = kBaselineAccuracy - 1.1 * tolerance.accuracy_drop;  // faster but less accurate
  EXPECT_FALSE(compare_with_baseline(measured, baseline, {"sgd"}, tolerance, table).passed);
}

TEST(Regress, AnUnreachedTargetFailsOnlyWhenTheRunIsLongEnoughToShowIt) {
  // Reached at step 100 with ×1.2 tolerated: a 150-step run shows a regression by not reaching it, a
  // 110-step run cannot (its end falls inside the tolerance).
  json baseline = {{"e", {{"sgd", {{"optimizer", "sgd"}, {"steps_to_target", 100}, {"final_test_acc", 0.8},
                                   {"run_steps", 150}, {"tolerance", {{"steps_ratio", 1.2}, {"accuracy_drop", 0.05}}}}}}}};
  auto measured = baseline;
  measured["e"]["sgd"]["steps_to_target"] = nullptr;
  std::ostringstream table;
  EXPECT_FALSE(compare_with_baseline(measured, baseline, {"sgd"}, {}, table).passed) << table.str();
  baseline["e"]["sgd"]["run_steps"] = 110;
  EXPECT_TRUE(compare_with_baseline(measured, baseline, {"sgd"}, {}, table).passed) << table.str();
}

TEST(Regress, RowTolerancesOverrideTheDefaults) {
  const json baseline = {{"e", {{"sgd", {{"optimizer", "sgd"}, {"steps_to_target", 100}, {"final_test_acc", 0.8},
                                         {"tolerance", {{"steps_ratio", 1.5}, {"accuracy_drop", 0.1}}}}}}}};
  auto measured = baseline;
  measured["e"]["sgd"]["steps_to_target"] = 140;
  measured["e"]["sgd"]["final_test_acc"] = 0.75;
  std::ostringstream table;
  EXPECT_TRUE(compare_with_baseline(measured, baseline, {"sgd"}, {}, table).passed) << table.str();
  measured["e"]["sgd"]["steps_to_target"] = 160;
  EXPECT_FALSE(compare_with_baseline(measured, baseline, {"sgd"}, {}, table).passed) << table.str();
}

TEST(Regress, DerivedToleranceIsThreeStandardErrorsOfAMedianShift) {
  // Two seeds at 0.70 and 0.74 (sd 0.0283) on 500 test images (binomial se at p 0.72: 0.0201): 3·0.0283·√(2/2).
  const json measurement = {{"final_test_acc", 0.72}, {"seed_final_test_acc", {0.70, 0.74}},
                            {"seed_steps_to_target", {100, 120}}, {"test_images", 500}};
  const auto tolerance = derive_tolerance(measurement, {});
  EXPECT_DOUBLE_EQ(tolerance["accuracy_drop"].get<double>(), 0.085);
  // Steps: sd 14.14 / mean 110 = 0.1286 → 1 + 3·0.1286 = 1.386 → 1.39.
  EXPECT_DOUBLE_EQ(tolerance["steps_ratio"].get<double>(), 1.39);
  // One seed, no test size: nothing measured, the defaults stand.
  const auto lone = derive_tolerance({{"final_test_acc", 0.7}, {"seed_final_test_acc", {0.7}}}, {});
  EXPECT_DOUBLE_EQ(lone["accuracy_drop"].get<double>(), RegressTolerance{}.accuracy_drop);
  EXPECT_DOUBLE_EQ(lone["steps_ratio"].get<double>(), RegressTolerance{}.steps_ratio);
}

TEST(Regress, NewOptimizerWithoutBaselineFailsSayingHowToAddIt) {
  const json baseline = {{"e", {{"sgd", {{"optimizer", "sgd"}, {"steps_to_target", 100}, {"final_test_acc", 0.8}}}}}};
  std::ostringstream table;
  const auto unlisted = compare_with_baseline(baseline, baseline, {"sgd", "newopt"}, {}, table);
  ASSERT_FALSE(unlisted.passed);
  EXPECT_NE(unlisted.problems.back().find("optimizer 'newopt' has no baseline"), std::string::npos);
  EXPECT_NE(unlisted.problems.back().find("--update"), std::string::npos);
  auto measured = baseline;
  measured["e"]["newopt"] = {{"optimizer", "newopt"}, {"steps_to_target", 50}, {"final_test_acc", 0.9}};
  const auto missing_entry = compare_with_baseline(measured, baseline, {"sgd", "newopt"}, {}, table);
  ASSERT_FALSE(missing_entry.passed);
  EXPECT_NE(missing_entry.problems.front().find("e / newopt: no baseline entry"), std::string::npos);
}

TEST(Regress, ExperimentWithoutDataIsSkippedNotFailed) {
  const json baseline = {{"e", {{"sgd", {{"optimizer", "sgd"}, {"steps_to_target", 100}, {"final_test_acc", 0.8}}}}},
                         {"cifar", {{"sgd", {{"optimizer", "sgd"}, {"steps_to_target", 10}, {"final_test_acc", 0.5}}}}}};
  json measured = {{"e", baseline["e"]}};
  std::ostringstream table;
  EXPECT_TRUE(compare_with_baseline(measured, baseline, {"sgd"}, {}, table).passed) << table.str();
}

}  // namespace
}  // namespace ngd
