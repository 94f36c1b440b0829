#include "base/phase_timer.h"

namespace ngd {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kData: return "data";
    case Phase::kForward: return "forward";
    case Phase::kBackward: return "backward";
    case Phase::kStep: return "step";
    case Phase::kCurvature: return "curvature";
    case Phase::kCount: break;
  }
  return "none";
}

void PhaseTimer::switch_to(Phase phase) {
  if (observer_) observer_(phase);
  if (!enabled_) {
    current_ = phase;  // nested scopes resume the right phase for the observer
    return;
  }
  if (synchronize_) synchronize_();
  const auto now = Clock::now();
  if (current_ != Phase::kCount) {
    seconds_[static_cast<size_t>(current_)] += std::chrono::duration<double>(now - since_).count();
  }
  current_ = phase;
  since_ = now;
}

PhaseTimer::Scope::Scope(PhaseTimer& timer, Phase phase) : timer_(timer), previous_(timer.current_) {
  timer_.switch_to(phase);
}

PhaseTimer::Scope::~Scope() { timer_.switch_to(previous_); }

}  // namespace ngd
