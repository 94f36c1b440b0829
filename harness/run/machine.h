#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

namespace ngd {

// Sets LibTorch's intra-op threads and OpenBLAS's threads (when OpenBLAS is the loaded BLAS) to
// `threads`; 0 means one per core. Returns the count in effect.
int configure_threads(int threads);

// Makes glibc keep freed memory for reuse instead of handing it back to the kernel: blocks up to 32 MiB
// (glibc's largest M_MMAP_THRESHOLD) come from the heap, not from a fresh mmap each, and the heap's top
// is trimmed only beyond 1 GiB free. With glibc's defaults a tensor buffer above the adaptive mmap
// threshold was mapped and unmapped on every step, each page faulted in and zeroed again: a 3c1f epoch
// took 2.7 s instead of 0.6 s, and whether the threshold had adapted yet depended on the order of
// earlier allocations, hence the bimodal epoch times once measured (docs/performance.md). No effect
// under a sanitizer's allocator.
void keep_freed_memory_for_reuse();

// The process settings an epoch's clock depends on, for every program that times training:
// keep_freed_memory_for_reuse(), then use_passive_openmp_wait(argv).
void configure_process_for_timing(char** argv);

// Makes OpenMP threads sleep, not spin, while they wait for work: re-executes this program (same
// arguments) with OMP_WAIT_POLICY=PASSIVE unless OMP_WAIT_POLICY is already set, which keeps the
// caller's choice. OpenMP reads the variable once, when its library loads, hence the re-execution.
// Spinning threads compete with the training thread for the cores: on the shared 2-core machine two
// threads trained an MLP ~50× slower spinning than sleeping (docs/performance.md).
void use_passive_openmp_wait(char** argv);

// Where a run was measured: recorded in every result's "meta" (AlgoPerf's meta_data and
// google/benchmark's context, minus the host name).
nlohmann::json machine_meta(const std::string& device);

// CPU time (user + system) of every thread of this process so far, in seconds.
double process_cpu_seconds();

// The 1-minute load average (runnable threads, this process's included); NaN when unknown.
double load_average();

// The clock of a timed interval and how the machine was loaded while it ran. A measurement is
// *suspect* when other work competed for the cores: the load average exceeded the core count, or (for
// work on the CPU, which keeps at least one core busy) the process's CPU time fell short of the wall
// time, so it was descheduled. Suspect times must not be compared with clean ones.
struct TimingSample {
  double wall_s = 0;
  double cpu_s = 0;
  double load_average = 0;  // at the interval's end

  // Why the sample is suspect ("" when it is not) on a machine with `cores` cores.
  std::string suspect_reason(unsigned cores, bool cpu_bound) const;
};

// Starts a TimingSample when built; finish() reads the clocks again.
class TimingProbe {
 public:
  TimingProbe();
  TimingSample finish() const;

 private:
  std::chrono::steady_clock::time_point wall_start_;
  double cpu_start_;
};

}  // namespace ngd
