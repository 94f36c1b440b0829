#include "harness/spec/schedule.h"

#include <fmt/format.h>

#include <cmath>

#include "base/spec_error.h"

namespace ngd {
namespace {

const OptionInfo kWarmupOption{"warmup_epochs", 0.0, "linear warmup length in epochs before the schedule (0 = none)", {},
                              at_least(0)};

std::vector<OptionInfo> options_with_warmup(const ScheduleEntry& entry) {
  auto options = entry.options;
  options.push_back(kWarmupOption);
  options.push_back({"name", "", "schedule name"});
  return options;
}

}  // namespace

const std::vector<ScheduleEntry>& schedule_registry() {
  static const std::vector<ScheduleEntry> table = {
      {"constant", "the base learning rate throughout", {}},
      {"step",
       "multiply by gamma every step_size epochs",
       {{"step_size", 30, "epochs between decays", {}, at_least(1)}, {"gamma", 0.1, "decay factor", {}, at_least_within_float(0)}}},
      {"multistep",
       "multiply by gamma at each milestone epoch",
       {{"milestones", nlohmann::json::array({30, 60}), "epochs (from 0) at which the rate decays", {}, at_least(0)},
        {"gamma", 0.1, "decay factor", {}, at_least_within_float(0)}}},
      {"cosine",
       "cosine annealing from the base rate to min_factor·lr over the run, per step",
       {{"min_factor", 0.0, "final rate as a fraction of the base rate", {}, unit_interval()}}},
      {"noam",
       "inverse square root with linear warmup (Vaswani et al. 2017), per step: lr·min(s/w, √(w/s)) for step "
       "s = 1, 2, …; the peak, at s = w, is the base rate",
       {{"warmup_steps", 4000, "steps w of the linear warmup (the rate peaks there)", {}, at_least(1)}}},
  };
  return table;
}

nlohmann::json resolve_schedule(const nlohmann::json& schedule, const std::string& json_path) {
  if (!schedule.is_object()) throw SpecError(json_path, "expected an object, got " + shown(schedule));
  const auto name = schedule.find("name");
  if (name == schedule.end() || !name->is_string()) {
    throw SpecError(json_path + ".name", fmt::format("missing schedule name (valid: {})", join_names(schedule_registry())));
  }
  const auto* entry = find_entry(schedule_registry(), name->get<std::string>());
  if (entry == nullptr) {
    throw SpecError(json_path + ".name", fmt::format("unknown schedule \"{}\" (valid: {})", abbreviated(name->get<std::string>()),
                                                     join_names(schedule_registry())));
  }
  return resolve_options(schedule, options_with_warmup(*entry), fmt::format("schedule '{}'", entry->name), json_path);
}

LearningRateSchedule make_schedule(const nlohmann::json& resolved, int64_t epochs, int64_t steps_per_epoch) {
  const Options options(resolved);
  const auto name = options.text("name");
  const double steps_per_epoch_d = static_cast<double>(steps_per_epoch);
  LearningRateSchedule decay;
  if (name == "constant") {
    decay = [](int64_t) { return 1.0; };
  } else if (name == "step") {
    const auto step_size = options.integer("step_size");
    const auto gamma = options.number("gamma");
    decay = [=](int64_t step) { return std::pow(gamma, static_cast<double>((step / steps_per_epoch) / step_size)); };
  } else if (name == "multistep") {
    const auto milestones = options.integers("milestones");
    const auto gamma = options.number("gamma");
    decay = [=](int64_t step) {
      const int64_t epoch = step / steps_per_epoch;
      int passed = 0;
      for (auto milestone : milestones) passed += epoch >= milestone ? 1 : 0;
      return std::pow(gamma, passed);
    };
  } else if (name == "cosine") {
    const auto min_factor = options.number("min_factor");
    const double total = static_cast<double>(epochs) * steps_per_epoch_d;
    decay = [=](int64_t step) {
      return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(step) / total));
    };
  } else if (name == "noam") {
    // Vaswani et al.'s d_model^-0.5·min(s^-0.5, s·w^-1.5), normalised by its peak w^-0.5·d_model^-0.5.
    const double warmup = static_cast<double>(options.integer("warmup_steps"));
    decay = [=](int64_t step) {
      const double s = static_cast<double>(step + 1);
      return std::min(s / warmup, std::sqrt(warmup / s));
    };
  } else {
    throw std::logic_error("schedule '" + name + "' has no implementation");
  }
  const double warmup_steps = options.number("warmup_epochs") * steps_per_epoch_d;
  if (warmup_steps <= 0) return decay;
  return [=](int64_t step) {
    return decay(step) * std::min(1.0, static_cast<double>(step + 1) / warmup_steps);
  };
}

}  // namespace ngd
