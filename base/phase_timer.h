#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <string>
#include <utility>

namespace ngd {

// The parts a training step's time is split into. They never overlap: a nested scope (curvature
// work inside the optimizer step) pauses the enclosing phase, so the phases add up to the total.
enum class Phase { kData, kForward, kBackward, kStep, kCurvature, kCount };

const char* phase_name(Phase phase);

class PhaseTimer {
 public:
  using Clock = std::chrono::steady_clock;

  // A disabled timer records nothing and never synchronises (its scopes cost nothing). `synchronize`,
  // when set, runs before every clock reading of an enabled timer: on a GPU it waits for the queued
  // kernels, so that each phase is charged with its own work rather than with its launches.
  explicit PhaseTimer(bool enabled = true, std::function<void()> synchronize = {})
      : enabled_(enabled), synchronize_(std::move(synchronize)) {}

  // Charges time to `phase` until the returned scope ends, then resumes the enclosing phase.
  class Scope {
   public:
    Scope(PhaseTimer& timer, Phase phase);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    PhaseTimer& timer_;
    Phase previous_;
  };

  Scope scope(Phase phase) { return Scope(*this, phase); }
  bool enabled() const { return enabled_; }
  // Calls `observer` with the phase that starts at every switch (kCount: back outside the phases),
  // enabled or not: memory accounting charges allocations to the phase running. No clock, no sync.
  void observe_phases(std::function<void(Phase)> observer) { observer_ = std::move(observer); }
  double seconds(Phase phase) const { return seconds_[static_cast<size_t>(phase)]; }

 private:
  void switch_to(Phase phase);

  bool enabled_;
  std::function<void()> synchronize_;
  std::function<void(Phase)> observer_;
  std::array<double, static_cast<size_t>(Phase::kCount)> seconds_{};
  Phase current_ = Phase::kCount;  // kCount: no phase running
  Clock::time_point since_ = Clock::now();
};

}  // namespace ngd
