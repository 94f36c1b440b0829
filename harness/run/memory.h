#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <c10/util/ThreadLocalDebugInfo.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "base/phase_timer.h"
#include "optimizers/optimizer.h"
#include "optimizers/optimizer_state.h"  // state_bytes

namespace ngd {

// Bytes of a tensor's elements: numel × element size (0 for an undefined tensor). A view counts its own
// elements, not the storage it shares.
int64_t tensor_bytes(const torch::Tensor& tensor);
// Σ tensor_bytes over a module's parameters.
int64_t parameter_bytes(torch::nn::Module& module);

// The process's resident-set high-water mark, VmHWM of /proc/self/status, in bytes; nullopt where the
// file or the line is missing (not Linux).
std::optional<int64_t> peak_resident_bytes();
// Lowers the high-water mark to the current resident set by writing "5" to /proc/self/clear_refs (Linux
// 4.0 and later; one syscall, no page walk). False where that is not allowed (older kernels, some
// containers): the mark then counts from the process's start.
bool reset_peak_resident_bytes();

// Measures a run's memory while it lives (build it before the run's model, end it after the run's last
// tensor is gone):
// - the resident-set high-water mark, reset when built (reset_peak_resident_bytes);
// - the bytes of tensor storage LibTorch's allocators hand out while it lives, on the CPU and on a CUDA
//   device, their peak over the run and per phase. LibTorch's allocators report every allocation and
//   free to the thread's memory reporter (the interface its profiler uses); the meter installs itself as
//   that reporter on the building thread. Threads that inherit the thread's LibTorch state report too:
//   the autograd engine's, and the batch loader's prefetch worker. Each report costs an atomic add and a
//   compare (LibTorch's CPU allocator adds a locked table insert or erase), so the peaks are exact, not
//   sampled at phase boundaries.
class MemoryMeter {
 public:
  MemoryMeter();
  ~MemoryMeter();
  MemoryMeter(const MemoryMeter&) = delete;
  MemoryMeter& operator=(const MemoryMeter&) = delete;

  // The phase the training thread enters (kCount: outside the timed phases): allocations from now on,
  // and the bytes in use now, count toward its peak. For PhaseTimer::observe_phases.
  void enter_phase(Phase phase);
  // Reads the optimizer's state() size; the result keeps the largest seen (the runner reads it at every
  // epoch's end and at the run's end).
  void note_optimizer_state(const Optimizer& optimizer);

  // CPU tensor bytes allocated since the meter was built and not yet freed, and their peak.
  int64_t allocated_bytes() const;
  int64_t peak_allocated_bytes() const;
  // The CUDA device's peak allocated bytes while the meter lived; nullopt when it allocated nothing.
  std::optional<int64_t> peak_cuda_bytes() const;

  // The result's "memory" block (docs/harness.md#memory): peak_rss_bytes, peak_rss_since,
  // peak_allocated_bytes, cuda_peak_bytes (null without CUDA allocations), phases {name:
  // {peak_allocated_bytes, cuda_peak_bytes}}, optimizer_state_bytes, parameter_bytes (`parameters`).
  nlohmann::json to_json(int64_t parameters) const;

 private:
  class Reporter;
  std::shared_ptr<Reporter> reporter_;
  bool peak_resident_reset_;
  int64_t optimizer_state_bytes_ = 0;
  // Last: installs the reporter on this thread until the meter ends.
  std::unique_ptr<c10::DebugInfoGuard> guard_;
};

}  // namespace ngd
