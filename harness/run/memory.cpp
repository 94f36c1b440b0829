#include "harness/run/memory.h"

#include <c10/core/Allocator.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <fstream>
#include <string>

namespace ngd {
namespace {

// Phases plus "outside the timed phases" (evaluation, probes, the loop's bookkeeping).
constexpr size_t kPhaseSlots = static_cast<size_t>(Phase::kCount) + 1;
// A CUDA peak of -1: the device allocated nothing while the meter lived (a CPU run).
constexpr int64_t kNone = -1;

void raise_to(std::atomic<int64_t>& peak, int64_t value) {
  int64_t seen = peak.load(std::memory_order_relaxed);
  while (value > seen && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

// A "Name: <n> kB" line of a /proc file, in bytes.
std::optional<int64_t> proc_kilobytes(const char* path, const std::string& name) {
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) {
    if (line.rfind(name + ":", 0) != 0) continue;
    try {
      return std::stoll(line.substr(name.size() + 1)) * 1024;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace

// LibTorch calls reportMemoryUsage on the thread that allocates or frees (alloc_size < 0 for a free):
// the CPU allocator with its own running total (which counts blocks from before the meter too), the
// CUDA caching allocator with the device's allocated bytes. The CPU count here starts at 0.
class MemoryMeter::Reporter : public c10::MemoryReportingInfoBase {
 public:
  Reporter() {
    for (auto& peak : cuda_phase_peak_) peak.store(kNone);
  }

  // LibTorch 1.x declares the totals int64_t, 2.x size_t: one of the two overrides the interface's
  // function (hence no `override` on either), the other is never called.
  void reportMemoryUsage(void*, int64_t alloc_size, int64_t total_allocated, int64_t, c10::Device device) {
    report(alloc_size, total_allocated, device);
  }
  void reportMemoryUsage(void*, int64_t alloc_size, size_t total_allocated, size_t, c10::Device device) {
    report(alloc_size, static_cast<int64_t>(total_allocated), device);
  }
  bool memoryProfilingEnabled() const { return true; }

  void enter_phase(Phase phase) {
    const auto slot = static_cast<size_t>(phase);
    phase_.store(slot, std::memory_order_relaxed);
    raise_to(cpu_phase_peak_[slot], cpu_in_use_.load(std::memory_order_relaxed));
    if (const int64_t cuda = cuda_in_use_.load(std::memory_order_relaxed); cuda != kNone) {
      raise_to(cuda_phase_peak_[slot], cuda);
    }
  }

  int64_t cpu_in_use() const { return cpu_in_use_.load(std::memory_order_relaxed); }
  int64_t cpu_peak() const { return max_of(cpu_phase_peak_); }
  int64_t cuda_peak() const { return max_of(cuda_phase_peak_); }
  int64_t cpu_phase_peak(size_t slot) const { return cpu_phase_peak_[slot].load(std::memory_order_relaxed); }
  int64_t cuda_phase_peak(size_t slot) const { return cuda_phase_peak_[slot].load(std::memory_order_relaxed); }

 private:
  void report(int64_t alloc_size, int64_t total_allocated, c10::Device device) {
    const size_t slot = phase_.load(std::memory_order_relaxed);
    if (device.is_cuda()) {
      cuda_in_use_.store(total_allocated, std::memory_order_relaxed);
      raise_to(cuda_phase_peak_[slot], total_allocated);
    } else if (device.is_cpu()) {
      raise_to(cpu_phase_peak_[slot], cpu_in_use_.fetch_add(alloc_size, std::memory_order_relaxed) + alloc_size);
    }
  }

  static int64_t max_of(const std::array<std::atomic<int64_t>, kPhaseSlots>& peaks) {
    int64_t peak = peaks[0].load(std::memory_order_relaxed);
    for (const auto& value : peaks) peak = std::max(peak, value.load(std::memory_order_relaxed));
    return peak;
  }

  std::atomic<size_t> phase_{static_cast<size_t>(Phase::kCount)};
  std::atomic<int64_t> cpu_in_use_{0};
  std::atomic<int64_t> cuda_in_use_{kNone};
  std::array<std::atomic<int64_t>, kPhaseSlots> cpu_phase_peak_{};
  std::array<std::atomic<int64_t>, kPhaseSlots> cuda_phase_peak_{};
};

int64_t tensor_bytes(const torch::Tensor& tensor) {
  return tensor.defined() ? tensor.numel() * static_cast<int64_t>(tensor.element_size()) : 0;
}

int64_t parameter_bytes(torch::nn::Module& module) {
  int64_t bytes = 0;
  for (const auto& parameter : module.parameters()) bytes += tensor_bytes(parameter);
  return bytes;
}

std::optional<int64_t> peak_resident_bytes() { return proc_kilobytes("/proc/self/status", "VmHWM"); }

bool reset_peak_resident_bytes() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.close();
  return !clear_refs.fail();
}

MemoryMeter::MemoryMeter()
    : reporter_(std::make_shared<Reporter>()),
      peak_resident_reset_(reset_peak_resident_bytes()),
      guard_(std::make_unique<c10::DebugInfoGuard>(c10::DebugInfoKind::PROFILER_STATE, reporter_)) {}

MemoryMeter::~MemoryMeter() = default;

void MemoryMeter::enter_phase(Phase phase) { reporter_->enter_phase(phase); }

void MemoryMeter::note_optimizer_state(const Optimizer& optimizer) {
  optimizer_state_bytes_ = std::max(optimizer_state_bytes_, state_bytes(optimizer.state()));
}

int64_t MemoryMeter::allocated_bytes() const { return reporter_->cpu_in_use(); }

int64_t MemoryMeter::peak_allocated_bytes() const { return reporter_->cpu_peak(); }

std::optional<int64_t> MemoryMeter::peak_cuda_bytes() const {
  const int64_t peak = reporter_->cuda_peak();
  return peak == kNone ? std::nullopt : std::optional<int64_t>(peak);
}

nlohmann::json MemoryMeter::to_json(int64_t parameters) const {
  const auto optional_bytes = [](int64_t bytes) { return bytes == kNone ? nlohmann::json() : nlohmann::json(bytes); };
  nlohmann::json phases = nlohmann::json::object();
  for (size_t slot = 0; slot < kPhaseSlots; ++slot) {
    const auto phase = static_cast<Phase>(slot);
    phases[phase == Phase::kCount ? "other" : phase_name(phase)] = {
        {"peak_allocated_bytes", reporter_->cpu_phase_peak(slot)},
        {"cuda_peak_bytes", optional_bytes(reporter_->cuda_phase_peak(slot))}};
  }
  const auto resident = peak_resident_bytes();
  return {{"peak_rss_bytes", resident ? nlohmann::json(*resident) : nlohmann::json()},
          {"peak_rss_since", peak_resident_reset_ ? "run" : "process"},
          {"peak_allocated_bytes", peak_allocated_bytes()},
          {"cuda_peak_bytes", optional_bytes(reporter_->cuda_peak())},
          {"phases", phases},
          {"optimizer_state_bytes", optimizer_state_bytes_},
          {"parameter_bytes", parameters}};
}

}  // namespace ngd
