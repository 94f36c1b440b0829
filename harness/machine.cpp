#include "harness/machine.h"

#include <dlfcn.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <torch/version.h>

#include <array>
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

nlohmann::json machine_meta(const std::string& device) {
  const auto commit = command_output(fmt::format("git -C '{}' describe --always --dirty --abbrev=12 2>/dev/null", NGDBENCH_SOURCE_DIR));
  return {{"git_commit", commit.empty() ? "unknown" : commit},
          {"cpu_model", cpu_model()},
          {"cpu_count", std::thread::hardware_concurrency()},
          {"threads", torch::get_num_threads()},
          {"torch_version", TORCH_VERSION},
          {"blas", loaded_blas()},
          {"device", device},
          {"started_at", fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::time(nullptr)))}};
}

}  // namespace ngd
