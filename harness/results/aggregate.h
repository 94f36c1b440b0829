#pragma once

#include <nlohmann/json.hpp>

#include <limits>
#include <string>
#include <vector>

namespace ngd {

// The protocol's one aggregation rule (docs/protocol.md, "Aggregation"), applied by the runner's
// summary, `ngdbench regress` and scripts/report.py alike:
//   1. a run that never reached the target — or diverged, or failed — counts as +∞;
//   2. over seeds or studies, the median (an even count: the mean of the middle two, so ∞ when
//      either is);
//   3. comparisons are ratios of those medians.

// +∞: the time or step count of a run that never reached its target.
constexpr double kUnreached = std::numeric_limits<double>::infinity();

// A result file's `measure` ("time_to_target_s" or "steps_to_target"): its value for a completed run
// that reached the target, kUnreached otherwise.
double measure_or_unreached(const nlohmann::json& result, const std::string& measure);

// numerator / denominator of two aggregated measures: x/∞ = 0, ∞/x = ∞, and ∞/∞ NaN (undefined:
// neither reached the target).
double ratio_of(double numerator, double denominator);

// One optimizer's measure in an experiment under AlgoPerf's rule: per study the best trial (the
// smallest measure; a study is the result's "study", or its seed in files written before studies),
// then the median over studies.
struct OptimizerScore {
  std::string optimizer;
  std::vector<double> per_study;  // in study order
  double median = kUnreached;
  int64_t runs = 0;               // trials over all studies: the tuning budget spent
};

// The scores of every optimizer among `results` (one experiment's result objects), in order of first
// appearance.
std::vector<OptimizerScore> score_optimizers(const std::vector<nlohmann::json>& results, const std::string& measure);

}  // namespace ngd
