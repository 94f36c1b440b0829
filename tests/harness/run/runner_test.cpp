#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

RunnerOptions quiet_options(const std::string& out_dir = "") {
  RunnerOptions options;
  options.out_dir = out_dir;
  options.progress = false;
  return options;
}

RunConfig tiny_run(const json& patch = json::object()) {
  auto document = testing::tiny_spec();
  document.merge_patch(patch);
  return parse_spec(document, "tiny").runs.at(0);
}

TEST(Runner, SameSeedGivesIdenticalNumbers) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  const auto run = tiny_run();
  const auto first = train_run(run, dataset, quiet_options());
  const auto second = train_run(run, dataset, quiet_options());
  ASSERT_EQ(first.status, "completed") << first.error;
  ASSERT_EQ(first.epochs.size(), 2u);
  for (size_t e = 0; e < first.epochs.size(); ++e) {
    EXPECT_EQ(first.epochs[e].train_loss, second.epochs[e].train_loss);  // bitwise, not approximately
    EXPECT_EQ(first.epochs[e].test_loss, second.epochs[e].test_loss);
    EXPECT_EQ(first.epochs[e].test_acc, second.epochs[e].test_acc);
  }
}

TEST(Runner, OtherSeedGivesOtherNumbers) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  auto other = tiny_run();
  other.seed = 1;
  EXPECT_NE(train_run(tiny_run(), dataset, quiet_options()).epochs[0].train_loss,
            train_run(other, dataset, quiet_options()).epochs[0].train_loss);
}

TEST(Runner, InEpochTargetChecksCountStepsWithinTheEpochAndChangeNothingElse) {
  const auto dataset = testing::synthetic_fashion_mnist(512, 128);
  const auto plain = train_run(tiny_run({{"epochs", 3}}), dataset, quiet_options());
  ASSERT_EQ(plain.status, "completed") << plain.error;
  ASSERT_LT(plain.epochs[2].train_loss, plain.epochs[1].train_loss);
  // A target the epoch-end rule first meets at the end of epoch 3: the windowed checks meet it there or
  // earlier, after epoch 1's window has filled.
  const double target = plain.epochs[2].train_loss;
  const auto checked = train_run(
      tiny_run({{"epochs", 3}, {"target", {{"metric", "train_loss"}, {"value", target}, {"check_every_steps", 1}}}}),
      dataset, quiet_options());
  ASSERT_EQ(checked.status, "completed") << checked.error;
  ASSERT_TRUE(checked.steps_to_target.has_value());
  EXPECT_GT(*checked.steps_to_target, 16);
  EXPECT_LE(*checked.steps_to_target, 3 * 16);
  EXPECT_EQ(*checked.epochs_to_target, (*checked.steps_to_target + 15) / 16);
  EXPECT_EQ(*checked.time_to_target_s, checked.epochs[*checked.epochs_to_target - 1].cumulative_train_time_s);
  for (size_t e = 0; e < plain.epochs.size(); ++e) {
    EXPECT_EQ(checked.epochs[e].train_loss, plain.epochs[e].train_loss);  // bitwise: checks only read
    EXPECT_EQ(checked.epochs[e].test_acc, plain.epochs[e].test_acc);
  }
  EXPECT_EQ(checked.host_syncs["total"], plain.host_syncs["total"]) << "the checks' reads are left out";
  EXPECT_EQ(to_json(checked)["target"]["check_every_steps"], 1);
}

TEST(Runner, OnlyAnImageTrainLossTargetIsCheckedInsideEpochs) {
  auto document = testing::tiny_spec();
  document["target"] = {{"metric", "test_acc"}, {"value", 0.5}, {"check_every_steps", 5}};
  EXPECT_NE(testing::spec_error(document).find("target.check_every_steps: only the image workload's train_loss"),
            std::string::npos) << testing::spec_error(document);
  document["target"] = {{"metric", "train_loss"}, {"value", 0.5}, {"check_every_steps", 0}};
  EXPECT_NE(testing::spec_error(document).find("target.check_every_steps"), std::string::npos);
}

TEST(Runner, LearnsAndRecordsEpochsStepsAndTimeToTarget) {
  const auto dataset = testing::synthetic_fashion_mnist(512, 128);
  const auto result = train_run(tiny_run({{"epochs", 3}}), dataset, quiet_options());
  ASSERT_EQ(result.status, "completed") << result.error;
  ASSERT_EQ(result.epochs.size(), 3u);
  // Kernel matrix (scripts/kernel-matrix.py: 5 OpenBLAS kernels x ATen default/avx2, 2026-12-07):
  // test accuracy 1.0 and loss ratio < 1e-4 in every combination (spread < 1e-4; margins 0.2 and 1.0).
  EXPECT_TRUE(testing::outcome_at_least("test_acc", result.epochs.back().test_acc, 0.8));  // easy synthetic classes
  EXPECT_TRUE(testing::outcome_at_most("train_loss_ratio",
                                       result.epochs.back().train_loss / result.epochs.front().train_loss, 1.0));
  EXPECT_EQ(result.epochs.back().cumulative_steps, 3 * 16);
  EXPECT_DOUBLE_EQ(result.epochs[2].cumulative_train_time_s,
                   result.epochs[0].train_time_s + result.epochs[1].train_time_s + result.epochs[2].train_time_s);
  ASSERT_TRUE(result.time_to_target_s.has_value());
  const auto reached = *result.epochs_to_target;
  EXPECT_GE(result.epochs[reached - 1].test_acc, 0.5);
  EXPECT_DOUBLE_EQ(*result.time_to_target_s, result.epochs[reached - 1].cumulative_train_time_s);
  EXPECT_EQ(*result.steps_to_target, reached * 16);
  double phases = 0;
  for (const auto& [name, seconds] : result.phase_times_s.items()) phases += seconds.get<double>();
  EXPECT_GT(phases, 0.5 * result.epochs.back().cumulative_train_time_s);
  EXPECT_LE(phases, result.epochs.back().cumulative_train_time_s * 1.01);
}

TEST(Runner, UnreachedTargetStaysNull) {
  const auto dataset = testing::synthetic_fashion_mnist(128, 64);
  const auto result = train_run(tiny_run({{"epochs", 1}, {"target", {{"metric", "train_loss"}, {"value", 1e-9}}}}),
                                dataset, quiet_options());
  EXPECT_EQ(result.status, "completed");
  EXPECT_FALSE(result.time_to_target_s.has_value());
  EXPECT_FALSE(result.epochs_to_target.has_value());
}

TEST(Runner, ScheduleSetsTheLearningRate) {
  const auto dataset = testing::synthetic_fashion_mnist(128, 32);
  const auto result = train_run(
      tiny_run({{"epochs", 2},
                {"optimizers", {{{"name", "sgd"}, {"hparams", {{"lr", 0.1}}},
                                 {"schedule", {{"name", "multistep"}, {"milestones", {1}}, {"gamma", 0.5}}}}}}}),
      dataset, quiet_options());
  ASSERT_EQ(result.status, "completed") << result.error;
  EXPECT_DOUBLE_EQ(result.epochs[0].learning_rate, 0.1);
  EXPECT_DOUBLE_EQ(result.epochs[1].learning_rate, 0.05);
}

TEST(Runner, HugeLearningRateIsRecordedAsDiverged) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  const auto result = train_run(tiny_run({{"optimizers", {{{"name", "sgd"}, {"hparams", {{"lr", 1e12}}}}}}}), dataset,
                                quiet_options());
  EXPECT_EQ(result.status, "diverged");
  EXPECT_NE(result.error.find("non-finite"), std::string::npos) << result.error;
}

TEST(Runner, TrueFisherOptimizerWithNonFiniteLogitsIsDivergedNotFailed) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  const auto result = train_run(
      tiny_run({{"optimizers", {{{"name", "kfac"}, {"hparams", {{"lr", 1e12}, {"kl_clip", 0.0}, {"stat_interval", 1}}}}}}}),
      dataset, quiet_options());
  EXPECT_EQ(result.status, "diverged") << result.error;
}

TEST(Runner, InvalidOptimizerSettingIsRecordedAsFailed) {
  const auto dataset = testing::synthetic_fashion_mnist(64, 32);
  const auto result = train_run(
      tiny_run({{"optimizers", {{{"name", "sgd"}, {"hparams", {{"momentum", 0.0}, {"nesterov", true}}}}}}}), dataset,
      quiet_options());
  EXPECT_EQ(result.status, "failed");
  EXPECT_NE(result.error.find("nesterov"), std::string::npos) << result.error;
}

// A model too large to allocate fails the run with a message that names the run, what it was doing, the
// model's settings and LibTorch's own message (here a tensor whose size in bytes overflows int64, which
// LibTorch refuses before allocating; an allocator's refusal is reported the same way). The memory
// estimate, which comes first and builds the model's parameters to count them, is where it fails.
TEST(Runner, ModelTooLargeToAllocateNamesTheRunAndItsSettings) {
  const auto dataset = testing::synthetic_fashion_mnist(64, 32);
  const auto run = tiny_run({{"model", {{"name", "mlp"}, {"hidden", {int64_t{1} << 62}}}}});
  const auto result = train_run(run, dataset, quiet_options());
  EXPECT_EQ(result.status, "failed");
  for (const auto& part : {"run " + run.run_id() + ": out of memory estimating memory", std::string("\"hidden\""),
                           std::string("Storage size calculation overflowed")}) {
    EXPECT_NE(result.error.find(part), std::string::npos) << result.error;
  }
}

TEST(Runner, SweepRecordsDivergedRunAndGoesOn) {
  testing::TempDir root, out;
  testing::write_synthetic_fashion_mnist(root.path(), 256, 64);
  auto document = testing::tiny_spec();
  document["optimizers"] = json::parse(R"([{"name": "sgd", "hparams": {"lr": [1e12, 0.05]}}])");
  auto options = quiet_options(out.path());
  options.data_roots = {root.path()};
  const auto results = run_spec(parse_spec(document, "tiny"), options);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0]["status"], "diverged");
  EXPECT_EQ(results[1]["status"], "completed");
  for (const auto& result : results) {
    EXPECT_TRUE(std::filesystem::exists(out.path() + "/tiny/" + result["run_id"].get<std::string>() + ".json"));
  }
}

TEST(Runner, SweepSkipsFinishedRunsUnlessForced) {
  testing::TempDir root, out;
  testing::write_synthetic_fashion_mnist(root.path(), 128, 32);
  auto options = quiet_options(out.path());
  options.data_roots = {root.path()};
  const auto spec = parse_spec(testing::tiny_spec(), "tiny");
  const auto first = run_spec(spec, options);
  const auto second = run_spec(spec, options);  // resumed: read back, not rerun
  EXPECT_EQ(first[0]["meta"]["started_at"], second[0]["meta"]["started_at"]);
  EXPECT_EQ(first[0]["epochs"], second[0]["epochs"]);
  options.force = true;
  const auto forced = run_spec(spec, options);
  EXPECT_EQ(forced[0]["epochs"][0]["train_loss"], first[0]["epochs"][0]["train_loss"]);  // deterministic rerun
}

TEST(Runner, SweepReportsMissingDatasetAsNotFound) {
  testing::TempDir empty_root, out;
  auto options = quiet_options(out.path());
  options.data_roots = {empty_root.path()};
  EXPECT_THROW(run_spec(parse_spec(testing::tiny_spec(), "tiny"), options), DatasetNotFound);
}

TEST(Runner, ResultFileHasTheContractFields) {
  testing::TempDir root, out;
  testing::write_synthetic_fashion_mnist(root.path(), 64, 32);
  auto options = quiet_options(out.path());
  options.data_roots = {root.path()};
  const auto spec = parse_spec(testing::tiny_spec(), "tiny");
  run_spec(spec, options);
  std::ifstream file(result_path(out.path(), spec.runs[0]));
  const auto result = json::parse(file);
  EXPECT_EQ(result["schema_version"], kResultSchemaVersion);
  EXPECT_EQ(result["workload"], "image");
  for (const auto* key : {"schema_version", "experiment", "workload", "variant", "study", "dataset", "model", "optimizer", "hparams", "seed", "status",
                          "epochs", "phase_times_s", "time_to_target_s", "epochs_to_target", "meta"}) {
    EXPECT_TRUE(result.contains(key)) << key;
  }
  for (const auto* key : {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "train_time_s",
                          "cumulative_train_time_s"}) {
    EXPECT_TRUE(result["epochs"][0].contains(key)) << key;
  }
  for (const auto* key : {"git_commit", "cpu_model", "threads", "torch_version", "blas", "device", "started_at"}) {
    EXPECT_TRUE(result["meta"].contains(key)) << key;
  }
  for (const auto* phase : {"data", "forward", "backward", "step", "curvature"}) {
    EXPECT_TRUE(result["phase_times_s"].contains(phase)) << phase;
  }
}

}  // namespace
}  // namespace ngd
