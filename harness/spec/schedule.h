#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "base/options.h"

namespace ngd {

// A learning-rate schedule: the factor (of the base lr) for an optimizer step. Every schedule can
// be preceded by a linear warmup ("warmup_epochs"), which ramps the factor from 1/warmup_steps to 1.
using LearningRateSchedule = std::function<double(int64_t step)>;

struct ScheduleEntry {
  std::string name;
  std::string summary;
  std::vector<OptionInfo> options;  // "warmup_epochs" is added to every schedule
};

const std::vector<ScheduleEntry>& schedule_registry();

// Validates a spec's "schedule" object (at `json_path`) and returns it with defaults filled in.
nlohmann::json resolve_schedule(const nlohmann::json& schedule, const std::string& json_path);

// The schedule described by a resolved "schedule" object for a run of `epochs` × `steps_per_epoch`.
LearningRateSchedule make_schedule(const nlohmann::json& resolved, int64_t epochs, int64_t steps_per_epoch);

}  // namespace ngd
