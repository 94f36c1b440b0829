// A few steps of ResNet-20 on real CIFAR-10 images (the shared mini copy) train through the runner; KFAC's
// lower the training loss by a margin that every kernel keeps.
#include <gtest/gtest.h>

#include <cmath>

#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

class ResNet20OnCifarMini : public ::testing::TestWithParam<std::string> {};

TEST_P(ResNet20OnCifarMini, FewStepsLowerTheTrainingLoss) {
  const auto roots = data_roots("");
  if (!find_dataset_folder(*find_entry(dataset_registry(), "cifar10"), roots)) {
    GTEST_SKIP() << "no cifar-10-batches-bin in the data roots (set NGDBENCH_DATA)";
  }
  auto document = nlohmann::json::parse(R"({
    "name": "resnet20-mini", "dataset": {"name": "cifar10", "train_subset": 256, "test_subset": 200},
    "model": {"name": "resnet20"}, "epochs": 3, "batch_size": 64, "seeds": [0],
    "optimizers": [{"name": "sgd", "hparams": {"lr": 0.05, "momentum": 0.9}}]})");
  document["optimizers"][0]["name"] = GetParam();
  const auto run = parse_spec(document, "resnet20-mini").runs.at(0);
  RunnerOptions options;
  options.progress = false;
  const auto result = train_run(run, load_dataset(run.dataset, roots), options);
  ASSERT_EQ(result.status, "completed") << result.error;
  ASSERT_EQ(result.epochs.size(), 3u);
  EXPECT_EQ(result.epochs.back().cumulative_steps, 12);  // 256 images in batches of 64, 3 epochs
  for (const auto& epoch : result.epochs) EXPECT_TRUE(std::isfinite(epoch.train_loss)) << "epoch " << epoch.epoch;
  // Kernel matrix (scripts/kernel-matrix.py): KFAC's loss ratio 0.775-0.777 over 5 OpenBLAS kernels x
  // ATen default/avx2 (AMD EPYC, 2026-12-07) and 0.7756-0.7770 with Prescott's (Intel model 207,
  // 2026-12-08): the bound 0.97 leaves a margin of 0.19, over 100x the spread. SGD's ratio spread 0.886-0.924
  // on the Intel machine (0.904-0.915 on the EPYC): no bound ≤ 1 clears 3x that spread, so SGD's
  // convergence on real CIFAR-10 is left to `ngdbench regress` (its ci-cifar10-cnn rows).
  if (GetParam() == "kfac") {
    EXPECT_TRUE(testing::outcome_at_most("train_loss_ratio",
                                         result.epochs.back().train_loss / result.epochs.front().train_loss, 0.97));
  }
}

INSTANTIATE_TEST_SUITE_P(Optimizers, ResNet20OnCifarMini, ::testing::Values("sgd", "kfac"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ngd
