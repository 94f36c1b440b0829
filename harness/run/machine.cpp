#include "harness/run/machine.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#ifndef NGDBENCH_SOURCE_DIR
#define NGDBENCH_SOURCE_DIR "."
#endif

namespace ngd {
namespace {

// Below this share of one core, a CPU-bound process was descheduled for part of the interval (work on
// the CPU keeps the training thread busy; the loader and OpenMP threads only add to it).
constexpr double kMinCpuShare = 0.9;

// glibc's largest accepted M_MMAP_THRESHOLD (HEAP_MAX_SIZE / 2 on 64-bit): blocks up to it come from the heap.
constexpr int kMaxHeapBlockBytes = 32 * 1024 * 1024;
// Free memory at the heap's top returned to the kernel only beyond this (memory is kept for the next step).
constexpr int kHeapTrimBytes = 1024 * 1024 * 1024;

std::string command_output(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return "";
  std::string output;
  std::array<char, 256> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe.get()) != nullptr) output += buffer.data();
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  return output;
}

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

// The library that provides sgemm_ to this process: the BLAS LibTorch really calls (Debian switches
// it through alternatives, and LD_LIBRARY_PATH can override that).
std::string loaded_blas() {
  Dl_info info{};
  void* sgemm = ::dlsym(RTLD_DEFAULT, "sgemm_");
  if (sgemm == nullptr || ::dladdr(sgemm, &info) == 0 || info.dli_fname == nullptr) return "unknown";
  std::error_code error;
  const auto path = std::filesystem::canonical(info.dli_fname, error);
  return error ? info.dli_fname : path.string();
}

// "12.1" from CUDA's 12010 (major·1000 + minor·10).
std::string cuda_version(long code) { return fmt::format("{}.{}", code / 1000, code % 1000 / 10); }

// "8.9.2" from cuDNN 8's 8902 (major·1000 + minor·100 + patch), "9.1.0" from cuDNN 9's 90100
// (major·10000 + minor·100 + patch).
std::string cudnn_version(long code) {
  const long per_major = code >= 90000 ? 10000 : 1000;
  return fmt::format("{}.{}.{}", code / per_major, code % per_major / 100, code % 100);
}

// The GPU of a CUDA device as the result's meta records it; null for the CPU.
nlohmann::json gpu_meta(const std::string& device_name) {
  const torch::Device device(device_name);
  if (!device.is_cuda()) return nullptr;
  const auto& hooks = at::detail::getCUDAHooks();
  const auto query = command_output(fmt::format(
      "nvidia-smi --query-gpu=name,driver_version --format=csv,noheader -i {} 2>/dev/null", device.has_index() ? device.index() : 0));
  const auto comma = query.find(',');
  const bool queried = comma != std::string::npos;
  return {{"name", queried ? query.substr(0, comma) : "unavailable"},
          {"driver", queried ? query.substr(comma + 2) : "unavailable"},
          {"cuda_runtime", cuda_version(hooks.versionCUDART())},
          {"cudnn", torch::cuda::cudnn_is_available() ? cudnn_version(hooks.versionCuDNN()) : "unavailable"},
          {"count", torch::cuda::device_count()}};
}

}  // namespace

int configure_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  using SetThreads = void (*)(int);
  if (auto set_blas_threads = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set_blas_threads(threads);
  }
  return torch::get_num_threads();
}

double process_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double load_average() {
  double loads[1];
  return ::getloadavg(loads, 1) == 1 ? loads[0] : std::nan("");
}

std::string TimingSample::suspect_reason(unsigned cores, bool cpu_bound) const {
  std::string reason;
  if (load_average > static_cast<double>(cores)) {
    reason = fmt::format("load average {:.2f} above {} cores", load_average, cores);
  }
  if (cpu_bound && wall_s > 0 && cpu_s < kMinCpuShare * wall_s) {
    reason += fmt::format("{}CPU time {:.3g} s of {:.3g} s wall", reason.empty() ? "" : "; ", cpu_s, wall_s);
  }
  return reason;
}

TimingProbe::TimingProbe() : wall_start_(std::chrono::steady_clock::now()), cpu_start_(process_cpu_seconds()) {}

TimingSample TimingProbe::finish() const {
  TimingSample sample;
  sample.cpu_s = process_cpu_seconds() - cpu_start_;
  sample.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start_).count();
  sample.load_average = load_average();
  return sample;
}

void keep_freed_memory_for_reuse() {
  ::mallopt(M_MMAP_THRESHOLD, kMaxHeapBlockBytes);
  ::mallopt(M_TRIM_THRESHOLD, kHeapTrimBytes);
}

void configure_process_for_timing(char** argv) {
  keep_freed_memory_for_reuse();
  use_passive_openmp_wait(argv);
}

void use_passive_openmp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then run on with the library's policy
}

nlohmann::json machine_meta(const std::string& device) {
  const auto commit = command_output(fmt::format("git -C '{}' describe --always --dirty --abbrev=12 2>/dev/null", NGDBENCH_SOURCE_DIR));
  nlohmann::json meta = {{"git_commit", commit.empty() ? "unknown" : commit},
          {"cpu_model", cpu_model()},
          {"cpu_count", std::thread::hardware_concurrency()},
          {"threads", torch::get_num_threads()},
          {"omp_wait_policy", std::getenv("OMP_WAIT_POLICY") != nullptr ? std::getenv("OMP_WAIT_POLICY") : "default"},
          {"torch_version", TORCH_VERSION},
          {"blas", loaded_blas()},
          {"device", device},
          {"gpu", gpu_meta(device)},
          {"started_at", fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::time(nullptr)))}};
  // A modified tree: what differed from the commit, so that a reader can tell two "-dirty" builds apart.
  if (commit.size() > 6 && commit.compare(commit.size() - 6, 6, "-dirty") == 0) {
    const auto paths = command_output(
        fmt::format("git -C '{}' diff HEAD --name-only 2>/dev/null", NGDBENCH_SOURCE_DIR));
    meta["git_dirty_paths"] = nlohmann::json::array();
    for (size_t start = 0; start < paths.size();) {
      const size_t end = std::min(paths.find('\n', start), paths.size());
      meta["git_dirty_paths"].push_back(paths.substr(start, end - start));
      start = end + 1;
    }
    meta["git_diff_sha256"] = command_output(
        fmt::format("git -C '{}' diff HEAD 2>/dev/null | sha256sum | cut -c1-64", NGDBENCH_SOURCE_DIR));
  }
  return meta;
}

}  // namespace ngd
