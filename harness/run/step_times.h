#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

namespace ngd {

// The p-th percentile (0 < p ≤ 1) of `sorted` (ascending, non-empty) by nearest rank: the ⌈p·n⌉-th
// smallest value, always one of the values (no interpolation).
double nearest_rank_percentile(const std::vector<double>& sorted, double p);

// A series of step times summarised by nearest-rank percentiles, in seconds.
struct StepTimeSummary {
  int64_t steps = 0;
  double min = 0, p25 = 0, p50 = 0, p75 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};
// The summary of `seconds` (non-empty).
StepTimeSummary summarize_step_times(std::vector<double> seconds);

// Every step's wall time, from the start of its data phase to the end of its optimizer step, leaving
// out the fidelity probes (untimed, as in the epoch's clock). The clock is read on the host without
// synchronising: on a GPU with --no-phase-timing a step's time is the host's (launches, and waits for
// what it reads back), and queued work shows in later steps; with phase timing every phase boundary
// synchronises, so it is the device's too. Costs three clock reads and a vector append per step.
class StepTimes {
 public:
  // A new epoch's series (the last one's is dropped).
  void start_epoch() { epoch_.clear(); }
  // One finished step: its seconds and whether it refreshed the optimizer's curvature.
  void add(double seconds, bool refresh);

  // The epoch's {"steps", "p50", "p90", "p99", "max"}; null when it took no step.
  nlohmann::json epoch_json() const;
  // The run's {"steps", "min", "p25", "p50", "p75", "p90", "p99", "max", "mean", "refresh": {"steps",
  // "mean"}, "ordinary": {"steps", "mean"}} (a mean is null without steps); null when no step was taken.
  nlohmann::json run_json() const;

 private:
  std::vector<double> epoch_;
  std::vector<double> run_;
  int64_t refresh_steps_ = 0;
  double refresh_seconds_ = 0;
  double ordinary_seconds_ = 0;
};

}  // namespace ngd
