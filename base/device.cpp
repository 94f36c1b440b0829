#include "base/device.h"

#include <fmt/format.h>
#include <torch/cuda.h>

#include <atomic>
#include <regex>
#include <stdexcept>

namespace ngd {
namespace {

// Reads counted by host_value since the process started; runs take differences.
std::atomic<int64_t> host_syncs{0};

}  // namespace

void check_device_name(const std::string& name) {
  // The device names LibTorch accepts that ngdbench supports: the CPU and CUDA devices.
  static const std::regex kDevicePattern(R"(cpu|cuda(:\d{1,4})?)");
  if (!std::regex_match(name, kDevicePattern)) {
    throw std::runtime_error(fmt::format("unknown device \"{}\" (valid: cpu, cuda, cuda:N)", name));
  }
}

void require_device(const std::string& name) {
  check_device_name(name);
  const torch::Device device(name);
  if (!device.is_cuda()) return;
  if (!torch::cuda::is_available()) {
    throw std::runtime_error(fmt::format(
        "device {}: this LibTorch build sees no CUDA device (a CPU-only build, or no GPU visible); "
        "build against a CUDA LibTorch (scripts/build-gpu.sh) on a machine with a GPU",
        name));
  }
  const auto visible = static_cast<int64_t>(torch::cuda::device_count());
  if (device.has_index() && device.index() >= visible) {
    throw std::runtime_error(fmt::format("device {}: only {} CUDA device(s) visible (cuda:0 … cuda:{})", name, visible,
                                         visible - 1));
  }
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

int64_t host_sync_count() { return host_syncs.load(std::memory_order_relaxed); }

void count_host_sync() { host_syncs.fetch_add(1, std::memory_order_relaxed); }

}  // namespace ngd
