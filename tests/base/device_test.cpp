#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "base/device.h"
#include "base/phase_timer.h"
#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

std::string spec_error(const json& document) {
  try {
    parse_spec(document, "d.json");
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

TEST(Device, SpecDeviceIsValidatedAndLeavesTheConfigHashAlone) {
  auto document = testing::tiny_spec();
  const auto without = parse_spec(document, "d.json");
  EXPECT_EQ(without.device, "");
  for (const auto* name : {"cpu", "cuda", "cuda:1"}) {
    document["device"] = name;
    const auto spec = parse_spec(document, "d.json");
    EXPECT_EQ(spec.device, name);
    EXPECT_EQ(spec.runs[0].run_id(), without.runs[0].run_id()) << "the device is not part of a run's identity";
  }
  document["device"] = "gpu";
  EXPECT_EQ(spec_error(document), "d.json: device: unknown device \"gpu\" (valid: cpu, cuda, cuda:N)");
  document["device"] = "cuda:x";
  EXPECT_NE(spec_error(document).find("unknown device \"cuda:x\""), std::string::npos) << spec_error(document);
  document["device"] = 0;
  EXPECT_EQ(spec_error(document), "d.json: device: expected a string, got 0");
}

TEST(Device, CudaWithoutCudaIsRefusedWithTheReason) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_NO_THROW(require_device("cpu"));
  try {
    require_device("cuda");
    FAIL() << "no error";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("sees no CUDA device"), std::string::npos) << error.what();
  }
}

TEST(Device, CliRefusesCudaWithoutCudaBeforeAnyRunWithExitTwo) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is present";
  testing::TempDir work;
  const auto spec_path = work.file("tiny.json");
  std::ofstream(spec_path) << testing::tiny_spec().dump();
  const auto log = work.file("log");
  for (const std::string how : {"--device cuda", "--device cuda:0"}) {
    const auto command = testing::ngdbench_binary() + " run " + spec_path + " " + how + " --out " + work.file("out") +
                         " > /dev/null 2> " + log;
    EXPECT_EQ(WEXITSTATUS(std::system(command.c_str())), 2) << how;
    EXPECT_NE(testing::read_file(log).find("error: device cuda"), std::string::npos) << testing::read_file(log);
    EXPECT_NE(testing::read_file(log).find("sees no CUDA device"), std::string::npos) << testing::read_file(log);
  }
  // The spec's "device" asks for the same, and --device cpu overrides it.
  auto document = testing::tiny_spec();
  document["device"] = "cuda";
  std::ofstream(spec_path) << document.dump();
  const auto base = testing::ngdbench_binary() + " run " + spec_path + " --dry-run";
  EXPECT_EQ(WEXITSTATUS(std::system((base + " > /dev/null 2>&1").c_str())), 2);
  EXPECT_EQ(WEXITSTATUS(std::system((base + " --device cpu > /dev/null 2>&1").c_str())), 0);
  EXPECT_FALSE(std::filesystem::exists(work.file("out")));
}

TEST(Device, CliRejectsAnUnknownDeviceWithExitTwo) {
  testing::TempDir work;
  const auto spec_path = work.file("tiny.json");
  std::ofstream(spec_path) << testing::tiny_spec().dump();
  const auto command = testing::ngdbench_binary() + " run " + spec_path + " --device gpu --dry-run 2> " + work.file("log");
  EXPECT_EQ(WEXITSTATUS(std::system(command.c_str())), 2);
  EXPECT_NE(testing::read_file(work.file("log")).find("unknown device \"gpu\""), std::string::npos)
      << testing::read_file(work.file("log"));
}

TEST(PhaseTimer, SynchronisesAtEveryBoundaryOnlyWhenEnabled) {
  int syncs = 0;
  PhaseTimer timer(true, [&syncs] { ++syncs; });
  {
    auto step = timer.scope(Phase::kStep);
    auto curvature = timer.scope(Phase::kCurvature);  // step → curvature, then back to step
  }
  EXPECT_EQ(syncs, 4);  // enter step, enter curvature, resume step, leave step
  PhaseTimer disabled(false, [&syncs] { ++syncs; });
  {
    auto step = disabled.scope(Phase::kStep);
  }
  EXPECT_EQ(syncs, 4);
  EXPECT_EQ(disabled.seconds(Phase::kStep), 0.0);
  EXPECT_FALSE(disabled.enabled());
}

RunnerOptions quiet() {
  RunnerOptions options;
  options.progress = false;
  return options;
}

RunConfig run_with(const json& optimizer) {
  auto document = testing::tiny_spec();
  document["batch_size"] = 32;
  document["optimizers"] = json::array({optimizer});
  return parse_spec(document, "tiny").runs.at(0);
}

// The runner reads the running loss back every 20 steps and at an epoch's last step.
int64_t divergence_checks(int64_t batches, int64_t epochs) {
  int64_t checks = 0;
  for (int64_t batch = 1; batch <= batches; ++batch) checks += batch % 20 == 0 || batch == batches ? 1 : 0;
  return checks * epochs;
}

TEST(HostSyncs, CountsTheRunnersReadBacksPerRun) {
  const auto dataset = testing::synthetic_fashion_mnist(45 * 32, 64);  // 45 batches of 32
  const auto sgd = to_json(train_run(run_with({{"name", "sgd"}, {"hparams", {{"lr", 0.05}}}}), dataset, quiet()));
  ASSERT_EQ(sgd["status"], "completed");
  const int64_t expected = divergence_checks(45, 2);  // 3 per epoch
  EXPECT_EQ(sgd["host_syncs"]["total"], expected);
  EXPECT_DOUBLE_EQ(sgd["host_syncs"]["per_step"].get<double>(), static_cast<double>(expected) / 90.0);
  // KFAC with the empirical Fisher, the KL clip, the inverse method and float64 refreshes adds no
  // read-back of its own: π and the clip factor stay on the device.
  const json kfac_hparams = {{"lr", 0.01},          {"kl_clip", 0.001}, {"fisher", "empirical"},
                             {"inverse_method", "inverse"}, {"stat_interval", 1},       {"inverse_interval", 5}};
  auto float64_hparams = kfac_hparams;
  float64_hparams["refresh_dtype"] = "float64";
  const auto kfac = to_json(train_run(run_with({{"name", "kfac"}, {"hparams", float64_hparams}}), dataset, quiet()));
  ASSERT_EQ(kfac["status"], "completed") << kfac["error"];
  EXPECT_EQ(kfac["host_syncs"]["total"], expected);
  // Refreshes in the factors' dtype (float32) read back LAPACK's status once per factor and refresh, to
  // redo a failed factor in float64: 18 refreshes (steps 0, 5, …, 85) × A and G of the MLP's 2 layers.
  const auto float32 = to_json(train_run(run_with({{"name", "kfac"}, {"hparams", kfac_hparams}}), dataset, quiet()));
  ASSERT_EQ(float32["status"], "completed") << float32["error"];
  EXPECT_EQ(float32["optimizer_report"]["inverse_refreshes"], 18);
  EXPECT_EQ(float32["host_syncs"]["total"], expected + 18 * 2 * 2);
}

TEST(HostSyncs, NoPhaseTimesWhenPhaseTimingIsOff) {
  const auto dataset = testing::synthetic_fashion_mnist(64, 32);
  auto options = quiet();
  options.phase_timing = false;
  const auto result = train_run(run_with({{"name", "sgd"}, {"hparams", {{"lr", 0.05}}}}), dataset, options);
  ASSERT_EQ(result.status, "completed");
  EXPECT_TRUE(result.phase_times_s.empty());
  EXPECT_GT(result.epochs[0].train_time_s, 0.0);
}

}  // namespace
}  // namespace ngd
