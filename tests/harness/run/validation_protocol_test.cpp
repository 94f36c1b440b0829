// The validation side of the comparison protocol in specs, runs and result files (docs/protocol.md).
#include <gtest/gtest.h>

#include <algorithm>

#include "datasets/validation_split.h"
#include "harness/results/results.h"
#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;
using testing::spec_error;

TEST(ValidationProtocol, ImageSpecsTargetValidationMetricsAndSizeTheSplit) {
  auto document = testing::tiny_spec();
  document["target"] = {{"metric", "val_acc"}, {"value", 0.5}};
  document["dataset"]["validation_subset"] = 40;
  const auto spec = parse_spec(document, "spec.json");
  EXPECT_EQ(spec.runs[0].target->metric, "val_acc");
  EXPECT_EQ(spec.runs[0].dataset.validation_subset, 40);
  EXPECT_EQ(spec.runs[0].identity()["dataset"]["validation_subset"], 40);
  auto defaulted = testing::tiny_spec();
  EXPECT_TRUE(parse_spec(defaulted, "spec.json").runs[0].identity()["dataset"]["validation_subset"].is_null());
  EXPECT_NE(parse_spec(defaulted, "spec.json").runs[0].config_hash(), spec.runs[0].config_hash());
}

TEST(ValidationProtocol, RejectsWhatCannotValidate) {
  auto none = testing::tiny_spec();
  none["dataset"]["validation_subset"] = 0;
  none["target"] = {{"metric", "val_loss"}, {"value", 0.5}};
  EXPECT_NE(spec_error(none).find("target.metric: a validation target needs a validation set"), std::string::npos)
      << spec_error(none);
  auto negative = testing::tiny_spec();
  negative["dataset"]["validation_subset"] = -1;
  EXPECT_NE(spec_error(negative).find("dataset.validation_subset: expected a non-negative integer"), std::string::npos);
  auto translation = testing::tiny_translation_spec();
  translation["dataset"]["validation_subset"] = 10;
  EXPECT_NE(spec_error(translation).find("official validation split"), std::string::npos) << spec_error(translation);
}

TEST(ValidationProtocol, RunsRecordValidationAndTestAndReachValidationTargets) {
  auto dataset = testing::synthetic_fashion_mnist(512, 64);
  auto split = carve_validation(dataset.train, 384, 96, 10);
  dataset.train = split.train;
  dataset.validation = split.validation;
  auto document = testing::tiny_spec();
  document["epochs"] = 3;
  document["target"] = {{"metric", "val_acc"}, {"value", 0.5}};
  RunnerOptions options;
  options.progress = false;
  const auto result = train_run(parse_spec(document, "tiny").runs[0], dataset, options);
  ASSERT_EQ(result.status, "completed") << result.error;
  double best_val_acc = 0;
  for (const auto& epoch : result.epochs) best_val_acc = std::max(best_val_acc, epoch.validation["val_acc"].get<double>());
  // Kernel matrix (scripts/kernel-matrix.py: 5 OpenBLAS kernels x ATen default/avx2, 2026-12-07):
  // best validation accuracy 1.0 in every combination (margin 0.5, spread 0).
  ASSERT_TRUE(testing::outcome_at_least("best_val_acc", best_val_acc, 0.5));
  ASSERT_TRUE(result.epochs_to_target.has_value());
  const auto& reached = result.epochs[*result.epochs_to_target - 1];
  EXPECT_GE(reached.validation["val_acc"].get<double>(), 0.5);
  EXPECT_EQ(epoch_metric(reached, "val_acc"), reached.validation["val_acc"].get<double>());
  EXPECT_EQ(epoch_metric(reached, "test_acc"), reached.test_acc);
  // The validation set is not the test set: their losses differ.
  EXPECT_NE(reached.validation["val_loss"].get<double>(), reached.test_loss);
  const auto json = to_json(result);
  for (const auto* key : {"val_loss", "val_acc", "test_loss", "test_acc"}) {
    EXPECT_TRUE(json["epochs"][0].contains(key)) << key;
  }
  EXPECT_EQ(json["study"], 0);
  EXPECT_EQ(json["trial"], 0);
  EXPECT_TRUE(json["tuning"].is_null());
}

TEST(ValidationProtocol, RunsWithoutValidationSetWriteNone) {
  const auto dataset = testing::synthetic_fashion_mnist(128, 32);
  RunnerOptions options;
  options.progress = false;
  const auto result = train_run(parse_spec(testing::tiny_spec(), "tiny").runs[0], dataset, options);
  ASSERT_EQ(result.status, "completed") << result.error;
  EXPECT_TRUE(result.epochs[0].validation.is_null());
  EXPECT_FALSE(epoch_metric(result.epochs[0], "val_acc").has_value());
  EXPECT_FALSE(to_json(result)["epochs"][0].contains("val_acc"));
}

}  // namespace
}  // namespace ngd
