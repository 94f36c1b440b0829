#pragma once

#include <nlohmann/json.hpp>

#include <limits>
#include <string>

namespace ngd {

// The one piece of the comparison protocol's arithmetic the C++ side needs (docs/protocol.md,
// "Aggregation"): a run that never reached the target — or diverged, or failed — counts as +∞.
// `ngdbench regress` takes the median over the seeds of one configuration with it (regress.h); that is
// not the study protocol. Selecting a trial per study and the median over studies, per optimizer variant,
// is implemented once, in scripts/ngdreport/protocol.py (`make tables`); the runner does not compare.

// +∞: the time or step count of a run that never reached its target.
constexpr double kUnreached = std::numeric_limits<double>::infinity();

// A result file's `measure` ("time_to_target_s" or "steps_to_target"): its value for a completed run
// that reached the target, kUnreached otherwise.
double measure_or_unreached(const nlohmann::json& result, const std::string& measure);

}  // namespace ngd
