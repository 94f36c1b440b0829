#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "harness/runner.h"
#include "harness/spec.h"

namespace ngd {

// Convergence regression check: every configuration of a fixed-seed suite is compared with a committed
// baseline on steps to the spec's target and on final test accuracy (medians over seeds). Steps, not
// seconds: CI machines are noisy, step counts are not.
// The defaults pass a change that only perturbs rounding (measured with 1 vs 2 threads: steps +12.5%,
// accuracy −0.023 at worst) and fail when both seeds need an epoch more; docs/harness.md has the numbers.
struct RegressTolerance {
  double steps_ratio = 1.15;     // fail when steps to target grow by more than this factor
  double accuracy_drop = 0.03;   // fail when final test accuracy drops by more than this (absolute)
};

// One configuration's measurement: median steps to target under the protocol's rule (harness/aggregate.h:
// an unreached seed counts as ∞; null when the median is ∞) and median final test accuracy.
nlohmann::json measure_configurations(const std::vector<nlohmann::json>& results);

struct RegressOutcome {
  bool passed = true;
  std::vector<std::string> problems;  // one line each: what failed and how to fix it
};

// Compares `measured` ({experiment: {label: measurement}}) with `baseline` (same layout), writes a
// table (experiment, configuration, metric, baseline, now, change, verdict) to `out`. Experiments
// absent from `measured` (data not found) are skipped, not failed. Every optimizer in `required` must
// appear in the baseline of some measured experiment.
RegressOutcome compare_with_baseline(const nlohmann::json& measured, const nlohmann::json& baseline,
                                     const std::vector<std::string>& required, const RegressTolerance& tolerance,
                                     std::ostream& out);

}  // namespace ngd
