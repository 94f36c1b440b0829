// The timing self-check: when an epoch's clock is suspect, and what a run records of it.
#include <gtest/gtest.h>

#include <malloc.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "harness/results/results.h"
#include "harness/run/machine.h"
#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

TimingSample sample(double wall_s, double cpu_s, double load) {
  TimingSample timing;
  timing.wall_s = wall_s;
  timing.cpu_s = cpu_s;
  timing.load_average = load;
  return timing;
}

TEST(TimingSample, CleanWhenTheProcessHadItsCoreAndTheLoadFitTheCores) {
  EXPECT_EQ(sample(2.0, 1.9, 1.5).suspect_reason(2, true), "");
  EXPECT_EQ(sample(2.0, 3.8, 2.0).suspect_reason(2, true), "");  // two busy threads: CPU time above wall time
}

TEST(TimingSample, SuspectWhenTheLoadExceedsTheCores) {
  EXPECT_EQ(sample(2.0, 1.9, 2.5).suspect_reason(2, true), "load average 2.50 above 2 cores");
  EXPECT_EQ(sample(2.0, 1.9, 2.5).suspect_reason(4, true), "");
}

TEST(TimingSample, SuspectWhenACpuBoundProcessWasDescheduled) {
  // Below 90 % of one core for work that keeps the training thread busy.
  EXPECT_EQ(sample(2.0, 1.0, 1.0).suspect_reason(2, true), "CPU time 1 s of 2 s wall");
  EXPECT_EQ(sample(2.0, 1.0, 3.0).suspect_reason(2, true), "load average 3.00 above 2 cores; CPU time 1 s of 2 s wall");
  // On an accelerator the host thread waits on the device: CPU time says nothing.
  EXPECT_EQ(sample(2.0, 0.1, 1.0).suspect_reason(2, false), "");
}

TEST(TimingProbe, MeasuresTheWorkBetweenItsStartAndFinish) {
  const TimingProbe probe;
  volatile double sink = 0;
  for (int i = 0; i < 20'000'000; ++i) sink = sink + std::sqrt(static_cast<double>(i));
  const auto timing = probe.finish();
  EXPECT_GT(timing.wall_s, 0);
  EXPECT_GT(timing.cpu_s, 0);
  // One thread cannot use more CPU time than wall time (getrusage counts in microseconds; a tick of slack).
  EXPECT_LE(timing.cpu_s, timing.wall_s + 0.01);
  EXPECT_TRUE(std::isfinite(timing.load_average));
}

// glibc maps a block above its (adaptive, at first 128 KiB) mmap threshold with a fresh mmap, faulted in
// page by page on every allocation; after keep_freed_memory_for_reuse() blocks up to 32 MiB come from the
// heap and a freed one is handed out again.
TEST(MemoryReuse, LargeBlocksComeFromTheHeapAndAreReusedAfterFree) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "a sanitizer's allocator replaces glibc's and ignores mallopt";
#endif
  keep_freed_memory_for_reuse();
  constexpr size_t kBytes = 24u << 20;
  const size_t mapped_before = mallinfo2().hblkhd;
  auto* first = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(first, nullptr);
  std::memset(first, 1, kBytes);
  EXPECT_EQ(mallinfo2().hblkhd, mapped_before) << "the block was mmapped";
  const auto address = reinterpret_cast<uintptr_t>(first);
  std::free(first);
  auto* second = static_cast<char*>(std::malloc(kBytes));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(second), address);
  std::free(second);
}

TEST(TimingSelfCheck, EveryEpochRecordsItsCpuTimeLoadAndVerdict) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  RunnerOptions options;
  options.progress = false;
  const auto result = train_run(parse_spec(testing::tiny_spec(), "tiny").runs.at(0), dataset, options);
  ASSERT_EQ(result.status, "completed") << result.error;
  const auto cores = result.meta["cpu_count"].get<unsigned>();
  bool any_suspect = false;
  for (const auto& epoch : result.epochs) {
    EXPECT_GT(epoch.cpu_time_s, 0);
    EXPECT_GE(epoch.load_average, 0);
    TimingSample timing = sample(epoch.train_time_s, epoch.cpu_time_s, epoch.load_average);
    EXPECT_EQ(epoch.timing_suspect, timing.suspect_reason(cores, true));
    any_suspect = any_suspect || !epoch.timing_suspect.empty();
  }
  const auto document = to_json(result);
  EXPECT_EQ(document["timing_suspect"].get<bool>(), any_suspect);
  for (size_t e = 0; e < result.epochs.size(); ++e) {
    EXPECT_EQ(document["epochs"][e]["timing_suspect"].is_null(), result.epochs[e].timing_suspect.empty());
    EXPECT_EQ(document["epochs"][e]["cpu_time_s"].get<double>(), result.epochs[e].cpu_time_s);
  }
}

}  // namespace
}  // namespace ngd
