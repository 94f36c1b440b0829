// The CUDA paths: devices, pinned batches, device-resident optimizer state, host syncs and phase timing
// on a GPU. Every test here is named Cuda* (CTest label `cuda`, tests/CMakeLists.txt) and skips without
// a CUDA device, so a CPU build compiles and lists them; scripts/gpu-check.sh runs them on a GPU.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "base/device.h"
#include "datasets/batch_loader.h"
#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "optimizers/registry.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

#define SKIP_WITHOUT_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (a CPU-only LibTorch or no GPU)"

TEST(Cuda, RequireDeviceAcceptsTheVisibleDevicesAndRefusesAnIndexPastThem) {
  SKIP_WITHOUT_CUDA();
  EXPECT_NO_THROW(require_device("cuda"));
  EXPECT_NO_THROW(require_device("cuda:0"));
  const auto visible = static_cast<int64_t>(torch::cuda::device_count());
  try {
    require_device(fmt::format("cuda:{}", visible));
    FAIL() << "no error for an index past the visible devices";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("CUDA device(s) visible"), std::string::npos) << error.what();
  }
  EXPECT_NO_THROW(synchronize(torch::Device("cuda")));
  EXPECT_NO_THROW(synchronize(torch::Device("cuda:0")));
}

TEST(Cuda, BatchLoaderDeliversTheCpuBatchesOnTheDevice) {
  SKIP_WITHOUT_CUDA();
  const auto dataset = testing::synthetic_fashion_mnist(200, 20);
  // Prefetched on a worker thread, copied from pinned memory without blocking: the same numbers as the
  // CPU loader's with the same seed, once the copies have landed.
  BatchLoader cpu(dataset, 32, 7, torch::kCPU, true), gpu(dataset, 32, 7, torch::Device("cuda"), true);
  for (int epoch = 0; epoch < 2; ++epoch) {
    cpu.start_epoch();
    gpu.start_epoch();
    for (int64_t b = 0; b < cpu.batches_per_epoch(); ++b) {
      const auto expected = cpu.next();
      const auto batch = gpu.next();
      ASSERT_TRUE(batch.images.is_cuda());
      ASSERT_TRUE(batch.labels.is_cuda());
      EXPECT_TRUE(torch::equal(batch.images.cpu(), expected.images)) << "epoch " << epoch << " batch " << b;
      EXPECT_TRUE(torch::equal(batch.labels.cpu(), expected.labels)) << "epoch " << epoch << " batch " << b;
      EXPECT_TRUE(torch::equal(batch.sample_ids, expected.sample_ids));
    }
  }
}

RunnerOptions quiet(const std::string& device) {
  RunnerOptions options;
  options.progress = false;
  options.device = device;
  return options;
}

// Every registered optimizer on the 3C1F conv net, 3 epochs of 8 steps: the CI suite's settings
// (experiments/ci/fmnist-3c1f.json) where it has an entry, {"lr": 0.01} otherwise; the subspace methods
// sample for 2 epochs so that their subspace phase runs too.
std::vector<RunConfig> every_optimizer_runs() {
  std::ifstream file(testing::source_dir() + "/experiments/ci/fmnist-3c1f.json");
  auto document = json::parse(file);
  document["epochs"] = 3;
  document["batch_size"] = 50;
  document["seeds"] = {0};
  document["target"] = nullptr;
  std::set<std::string> listed;
  for (auto& entry : document["optimizers"]) {
    listed.insert(entry["name"].get<std::string>());
    if (entry["hparams"].contains("sampling_epochs")) {
      entry["hparams"]["sampling_epochs"] = 2;
      entry["hparams"]["snapshots_per_epoch"] = 4;
      entry["hparams"]["subspace_dim"] = 6;
    }
  }
  for (const auto& entry : optimizer_registry()) {
    if (!listed.count(entry.name)) document["optimizers"].push_back({{"name", entry.name}, {"hparams", {{"lr", 0.01}}}});
  }
  // The empirical Fisher where there is a choice: labels sampled from the model come from the CPU's and
  // the GPU's generators, whose streams differ, and the runs would part for that reason alone.
  for (auto& entry : document["optimizers"]) {
    const auto* fisher = find_entry(find_entry(optimizer_registry(), entry["name"].get<std::string>())->hyperparameters,
                                    "fisher");
    if (fisher != nullptr && std::count(fisher->choices.begin(), fisher->choices.end(), "empirical") > 0) {
      entry["hparams"]["fisher"] = "empirical";
    }
  }
  return parse_spec(document, "ci-3c1f").runs;
}

std::vector<std::string> optimizer_names() {
  std::vector<std::string> names;
  for (const auto& entry : optimizer_registry()) names.push_back(entry.name);
  return names;
}

class CudaTraining : public ::testing::TestWithParam<std::string> {};

// The optimizer's state and curvature live on the device (a CPU tensor in a step would fail with a
// device mismatch), it reads back what it reads on the CPU, and it trains to the CPU run's numbers up to
// the rounding of other kernels (cuDNN convolutions may use TF32) and reduction orders.
TEST_P(CudaTraining, MatchesTheCpuRun) {
  SKIP_WITHOUT_CUDA();
  const auto runs = every_optimizer_runs();
  const std::string name = GetParam();
  const auto run = std::find_if(runs.begin(), runs.end(), [&name](const RunConfig& r) { return r.optimizer == name; });
  ASSERT_NE(run, runs.end());
  const auto dataset = testing::synthetic_fashion_mnist(400, 100);
  const auto cpu = train_run(*run, dataset, quiet("cpu"));
  const auto gpu = train_run(*run, dataset, quiet("cuda"));
  ASSERT_EQ(gpu.status, cpu.status) << "gpu: " << gpu.error << " | cpu: " << cpu.error;
  ASSERT_EQ(gpu.epochs.size(), cpu.epochs.size());
  EXPECT_EQ(gpu.meta["device"], "cuda");
  ASSERT_TRUE(gpu.meta["gpu"].is_object()) << gpu.meta.dump();
  EXPECT_GE(gpu.meta["gpu"]["count"].get<int64_t>(), 1);
  EXPECT_NE(gpu.meta["gpu"]["cuda_runtime"], "0.0");
  // The same reads, up to decisions that rounding can tip (fallbacks, ranks).
  const auto cpu_syncs = cpu.host_syncs["total"].get<double>();
  EXPECT_NEAR(gpu.host_syncs["total"].get<double>(), cpu_syncs, 0.1 * cpu_syncs + 2) << gpu.host_syncs.dump();
  if (cpu.status != "completed") return;
  const auto relative = [](double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-6); };
  EXPECT_LT(relative(gpu.epochs.front().train_loss, cpu.epochs.front().train_loss), 0.02)
      << "epoch 1 train loss: gpu " << gpu.epochs.front().train_loss << ", cpu " << cpu.epochs.front().train_loss;
  EXPECT_LT(relative(gpu.epochs.back().train_loss, cpu.epochs.back().train_loss), 0.1)
      << "final train loss: gpu " << gpu.epochs.back().train_loss << ", cpu " << cpu.epochs.back().train_loss;
  EXPECT_NEAR(gpu.epochs.back().test_acc, cpu.epochs.back().test_acc, 0.1);
}

INSTANTIATE_TEST_SUITE_P(EveryOptimizer, CudaTraining, ::testing::ValuesIn(optimizer_names()),
                         testing::registry_test_name);

// Phase timing synchronises the device at every boundary, so the phases account for the epoch's wall
// time (a phase timer that did not wait would time kernel launches and sum to far less); without it
// there are no phase times and the epoch time still waits for the device.
TEST(Cuda, PhaseTimesAccountForTheEpochAndAreOffWithoutPhaseTiming) {
  SKIP_WITHOUT_CUDA();
  auto document = testing::tiny_spec();
  document["model"] = {{"name", "3c1f"}, {"channels", 32}, {"hidden", 64}};
  document["batch_size"] = 64;
  document["optimizers"] = json::array({{{"name", "kfac"}, {"hparams", {{"lr", 0.01}, {"stat_interval", 1}}}}});
  const auto run = parse_spec(document, "tiny").runs.at(0);
  const auto dataset = testing::synthetic_fashion_mnist(1024, 64);
  auto options = quiet("cuda");
  const auto timed = train_run(run, dataset, options);
  ASSERT_EQ(timed.status, "completed") << timed.error;
  double phases = 0;
  for (const auto& [phase, seconds] : timed.phase_times_s.items()) {
    EXPECT_GE(seconds.get<double>(), 0.0) << phase;
    phases += seconds.get<double>();
  }
  for (const auto* phase : {"data", "forward", "backward", "step", "curvature"}) {
    EXPECT_TRUE(timed.phase_times_s.contains(phase)) << phase << " missing: " << timed.phase_times_s.dump();
  }
  double train_time = 0;
  for (const auto& epoch : timed.epochs) train_time += epoch.train_time_s;
  EXPECT_LE(phases, 1.05 * train_time) << timed.phase_times_s.dump();
  EXPECT_GE(phases, 0.5 * train_time) << timed.phase_times_s.dump() << " vs train time " << train_time;
  options.phase_timing = false;
  const auto untimed = train_run(run, dataset, options);
  ASSERT_EQ(untimed.status, "completed") << untimed.error;
  EXPECT_TRUE(untimed.phase_times_s.empty());
  EXPECT_GT(untimed.epochs.front().train_time_s, 0.0);
  EXPECT_EQ(untimed.host_syncs["total"], timed.host_syncs["total"]);
}

// The CLI end to end on the GPU: --device cuda trains, and the result records the device and the GPU.
TEST(Cuda, CliTrainsOnTheGpuAndRecordsIt) {
  SKIP_WITHOUT_CUDA();
  testing::TempDir work;
  testing::write_synthetic_fashion_mnist(work.path(), 256, 64);
  const auto spec_path = work.file("tiny.json");
  std::ofstream(spec_path) << testing::tiny_spec().dump();
  const auto command = fmt::format("{} run {} --device cuda --data-root {} --out {} --quiet > {} 2>&1",
                                   testing::ngdbench_binary(), spec_path, work.path(), work.file("out"),
                                   work.file("log"));
  ASSERT_EQ(std::system(command.c_str()), 0) << testing::read_file(work.file("log"));
  const auto folder = work.file("out/tiny");
  std::vector<json> results;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.path().extension() == ".json") results.push_back(json::parse(testing::read_file(entry.path().string())));
  }
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]["status"], "completed");
  EXPECT_EQ(results[0]["meta"]["device"], "cuda");
  EXPECT_TRUE(results[0]["meta"]["gpu"].is_object());
}

}  // namespace
}  // namespace ngd
