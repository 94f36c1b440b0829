#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

namespace ngd {

// Convergence regression check: every configuration of a fixed-seed suite is compared with a committed
// baseline on steps to the spec's target and on final test accuracy (medians over seeds). Steps, not
// seconds: CI machines are noisy, step counts are not.
// Each baseline row carries tolerances derived from its own noise when it was written (derive_tolerance);
// these are the floor of that derivation and the limits of rows without one.
struct RegressTolerance {
  double steps_ratio = 1.15;     // fail when steps to target grow by more than this factor
  double accuracy_drop = 0.03;   // fail when final test accuracy drops by more than this (absolute)
};

// One configuration's measurement: median steps to target over its seeds, an unreached seed counting as
// ∞ (harness/results/aggregate.h; null when the median is ∞), and median final test accuracy, with the
// per-seed values and the test split's size that its tolerance is derived from, and the steps a run
// takes (`run_steps`): a target no longer reached is a regression only when base × ratio < run_steps + 1. Configurations are
// grouped by label (optimizer variant and grid values) and only seeds are aggregated: this is a
// regression check of fixed configurations, not the comparison protocol's best trial per study and
// median over studies (scripts/ngdreport/protocol.py).
nlohmann::json measure_configurations(const std::vector<nlohmann::json>& results);

// A measurement's tolerances (docs/testing.md, regress): another kernel or thread count perturbs the
// rounding, which redraws the chaotic part of training like another seed does, so it moves a median of k
// seeds by about σ·√(2/k), σ the seed-to-seed standard deviation. The tolerance is three of those, σ of
// the final accuracy at least the test split's binomial standard error √(p(1−p)/n); the steps' relative
// σ likewise, never below `floor`. Returns {"steps_ratio", "accuracy_drop", "derivation"}.
nlohmann::json derive_tolerance(const nlohmann::json& measurement, const RegressTolerance& floor);

struct RegressOutcome {
  bool passed = true;
  std::vector<std::string> problems;  // one line each: what failed and how to fix it
};

// Compares `measured` ({experiment: {label: measurement}}) with `baseline` (same layout), writes a
// table (experiment, configuration, metric, baseline, now, change, tolerance, verdict) to `out`. A
// baseline row's "tolerance" (derive_tolerance) is its limit; `tolerance` serves rows without one. Experiments
// absent from `measured` (data not found) are skipped, not failed. Every optimizer in `required` must
// appear in the baseline of some measured experiment.
RegressOutcome compare_with_baseline(const nlohmann::json& measured, const nlohmann::json& baseline,
                                     const std::vector<std::string>& required, const RegressTolerance& tolerance,
                                     std::ostream& out);

}  // namespace ngd
