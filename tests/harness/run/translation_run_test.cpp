#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "datasets/translation.h"
#include "harness/results/results.h"
#include "harness/run/runner.h"
#include "harness/spec/schedule.h"
#include "harness/spec/spec.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

RunnerOptions quiet_options() {
  RunnerOptions options;
  options.progress = false;
  return options;
}

// One synthetic corpus for every test here: tokenizer training and files once.
class TranslationRun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!subword_tokenizers_available()) GTEST_SKIP() << "no SentencePiece in sanitizer builds";
  }
  static void SetUpTestSuite() {
    root_ = new testing::TempDir();
    if (!subword_tokenizers_available()) return;
    testing::write_synthetic_multi30k(root_->path(), 160, 40, 30);
  }
  static void TearDownTestSuite() {
    delete root_;
    root_ = nullptr;
  }

  static RunConfig run(const json& patch = json::object()) {
    auto document = testing::tiny_translation_spec();
    document.merge_patch(patch);
    return parse_spec(document, "tiny").runs.at(0);
  }
  static TranslationDataset dataset(const RunConfig& config) { return load_translation_dataset(config.dataset, {root_->path()}); }

  static testing::TempDir* root_;
};

testing::TempDir* TranslationRun::root_ = nullptr;

TEST_F(TranslationRun, CompletesWithValidationMetricsBleuAndFinalTestScore) {
  const auto config = run({{"decoding", {{"bleu_every", 2}}}, {"epochs", 3}});
  const auto data = dataset(config);
  const auto result = train_run(config, data, quiet_options());
  ASSERT_EQ(result.status, "completed") << result.error;
  ASSERT_EQ(result.epochs.size(), 3u);
  const auto document = to_json(result);
  for (const auto& epoch : document["epochs"]) {
    for (const auto* key : {"train_loss", "train_acc", "val_loss", "val_acc", "val_bleu", "train_time_s",
                            "cumulative_train_time_s", "cumulative_steps", "learning_rate"}) {
      EXPECT_TRUE(epoch.contains(key)) << key;
    }
    EXPECT_FALSE(epoch.contains("test_acc"));
  }
  // BLEU on epoch 2 (every 2) and on the last epoch; null on epoch 1.
  EXPECT_TRUE(document["epochs"][0]["val_bleu"].is_null());
  EXPECT_TRUE(document["epochs"][1]["val_bleu"].is_number());
  EXPECT_TRUE(document["epochs"][2]["val_bleu"].is_number());
  // Kernel matrix (scripts/kernel-matrix.py: 5 OpenBLAS kernels x ATen default/avx2, 2026-12-07):
  // loss ratio 0.7269 in every combination (spread < 1e-4, margin 0.27).
  EXPECT_TRUE(testing::outcome_at_most("train_loss_ratio",
                                       result.epochs.back().train_loss / result.epochs.front().train_loss, 1.0));
  const auto& final = document["final"];
  EXPECT_EQ(final["checkpoint_metric"], "val_bleu");
  const auto best = final["best_epoch"].get<int64_t>();
  EXPECT_TRUE(best == 2 || best == 3);
  const auto best_bleu = document["epochs"][best - 1]["val_bleu"].get<double>();
  for (const auto& epoch : document["epochs"]) {
    if (!epoch["val_bleu"].is_null()) EXPECT_LE(epoch["val_bleu"].get<double>(), best_bleu);
  }
  EXPECT_TRUE(final["test_bleu"].is_number());
  EXPECT_TRUE(final["test_bleu_tokenized"].is_number());
  EXPECT_EQ(document["decoding"]["method"], "greedy");
  EXPECT_GT(document["meta"]["model_parameters"].get<int64_t>(), 0);
}

// With a test split that is a copy of the validation split, the final test BLEU must be the best
// validation BLEU exactly: the score of the best-validation checkpoint, decoded the same way.
TEST_F(TranslationRun, FinalTestBleuIsTheBestValidationCheckpointsScore) {
  testing::TempDir root;
  testing::write_synthetic_multi30k(root.path(), 160, 40, 40);
  const auto folder = std::filesystem::path(root.path()) / "multi30k";
  for (const auto* side : {".de.gz", ".en.gz"}) {
    std::filesystem::copy_file(folder / (std::string("val") + side), folder / (std::string("test_2016_flickr") + side),
                               std::filesystem::copy_options::overwrite_existing);
  }
  const auto config = run({{"decoding", {{"bleu_every", 1}}}, {"epochs", 3}});
  const auto result = train_run(config, load_translation_dataset(config.dataset, {root.path()}), quiet_options());
  ASSERT_EQ(result.status, "completed") << result.error;
  const auto document = to_json(result);
  double best_bleu = -1;
  for (const auto& epoch : document["epochs"]) best_bleu = std::max(best_bleu, epoch["val_bleu"].get<double>());
  // Kernel matrix (scripts/kernel-matrix.py: 5 OpenBLAS kernels x ATen default/avx2, 2026-12-07):
  // best validation BLEU 2.78 in every combination (spread < 1e-4).
  EXPECT_TRUE(testing::outcome_at_least("best_val_bleu", best_bleu, 1e-9)) << "the synthetic corpus is learnable";
  EXPECT_DOUBLE_EQ(document["final"]["test_bleu"].get<double>(), best_bleu);
}

TEST_F(TranslationRun, SameSeedGivesIdenticalNumbers) {
  const auto config = run();
  const auto data = dataset(config);
  const auto first = train_run(config, data, quiet_options());
  const auto second = train_run(config, data, quiet_options());
  ASSERT_EQ(first.status, "completed") << first.error;
  for (size_t e = 0; e < first.epochs.size(); ++e) {
    EXPECT_EQ(first.epochs[e].train_loss, second.epochs[e].train_loss);  // bitwise
    EXPECT_EQ(first.epochs[e].validation, second.epochs[e].validation);
  }
  EXPECT_EQ(first.final_evaluation, second.final_evaluation);
  auto other = config;
  other.seed = 1;
  EXPECT_NE(train_run(other, data, quiet_options()).epochs[0].train_loss, first.epochs[0].train_loss);
}

TEST_F(TranslationRun, NaturalGradientOptimizersRunOnSequences) {
  for (const auto& optimizer : {json{{"name", "kfac"}, {"hparams", {{"lr", 0.05}, {"inverse_interval", 5}}}},
                                json{{"name", "fngd"}, {"hparams", {{"lr", 0.01}, {"damping", 0.1}}}}}) {
    const auto config = run({{"optimizers", {optimizer}}, {"epochs", 2}});
    const auto result = train_run(config, dataset(config), quiet_options());
    EXPECT_EQ(result.status, "completed") << optimizer.dump() << ": " << result.error;
    EXPECT_TRUE(std::isfinite(result.epochs.back().train_loss));
    EXPECT_GT(result.phase_times_s["curvature"].get<double>(), 0.0) << optimizer.dump();
  }
}

TEST(TranslationSpec, TargetsDecodingAndBatchingAreCheckedPerWorkload) {
  auto spec = testing::tiny_translation_spec();
  spec["target"] = {{"metric", "val_bleu"}, {"value", 20}};
  const auto parsed = parse_spec(spec, "t");
  EXPECT_FALSE(parsed.runs[0].target->lower_is_better());
  EXPECT_EQ(parsed.runs[0].decoding["beam_size"], 4);  // default filled in
  spec["target"] = {{"metric", "test_acc"}, {"value", 0.5}};
  try {
    parse_spec(spec, "t");
    FAIL() << "test_acc accepted for a translation run";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("valid: train_loss, train_acc, val_loss, val_acc, val_bleu"), std::string::npos)
        << error.what();
  }
  spec.erase("target");
  spec["batch_size"] = 32;
  EXPECT_THROW(parse_spec(spec, "t"), std::runtime_error);
  auto image = testing::tiny_spec();
  image["decoding"] = {{"method", "greedy"}};
  EXPECT_THROW(parse_spec(image, "i"), std::runtime_error);
  auto mismatched = testing::tiny_spec();
  mismatched["model"] = {{"name", "transformer"}};
  EXPECT_THROW(parse_spec(mismatched, "m"), std::runtime_error);
}

TEST(NoamSchedule, RisesLinearlyToTheBaseRateThenDecaysAsInverseSquareRoot) {
  const auto schedule = make_schedule(resolve_schedule({{"name", "noam"}, {"warmup_steps", 100}}, "schedule"), 10, 50);
  EXPECT_DOUBLE_EQ(schedule(0), 1.0 / 100);
  EXPECT_DOUBLE_EQ(schedule(49), 50.0 / 100);
  EXPECT_DOUBLE_EQ(schedule(99), 1.0);  // step 100: the peak
  EXPECT_DOUBLE_EQ(schedule(399), 0.5);  // step 400 = 4w: 1/√4
  EXPECT_THROW(resolve_schedule({{"name", "noam"}, {"warmup_steps", 0}}, "schedule"), std::runtime_error);
}

}  // namespace
}  // namespace ngd
