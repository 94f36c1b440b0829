#include "harness/regress.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "harness/aggregate.h"

namespace ngd {
namespace {

std::string steps_text(const nlohmann::json& steps) { return steps.is_null() ? "never" : fmt::format("{}", steps.get<double>()); }

}  // namespace

nlohmann::json measure_configurations(const std::vector<nlohmann::json>& results) {
  std::map<std::string, std::vector<const nlohmann::json*>> by_label;
  for (const auto& result : results) by_label[result["label"].get<std::string>()].push_back(&result);
  nlohmann::json measured = nlohmann::json::object();
  for (const auto& [label, runs] : by_label) {
    std::vector<double> steps, accuracy;
    for (const auto* run : runs) {
      steps.push_back(measure_or_unreached(*run, "steps_to_target"));
      if ((*run)["status"] == "completed") accuracy.push_back((*run)["epochs"].back()["test_acc"].get<double>());
    }
    const double median_steps = median(steps);  // the protocol's rule: unreached = ∞, then the median
    measured[label] = {{"optimizer", (*runs.front())["optimizer"]},
                       {"seeds", runs.size()},
                       {"steps_to_target", std::isinf(median_steps) ? nlohmann::json() : nlohmann::json(median_steps)},
                       {"final_test_acc", accuracy.empty() ? nlohmann::json() : nlohmann::json(median(accuracy))}};
  }
  return measured;
}

RegressOutcome compare_with_baseline(const nlohmann::json& measured, const nlohmann::json& baseline,
                                     const std::vector<std::string>& required, const RegressTolerance& tolerance,
                                     std::ostream& out) {
  RegressOutcome outcome;
  auto fail = [&](std::string problem) {
    outcome.passed = false;
    outcome.problems.push_back(std::move(problem));
  };
  fmt::print(out, "{:<28} {:<34} {:<16} {:>10} {:>10} {:>9}  {}\n", "experiment", "configuration", "metric", "baseline",
             "now", "change", "verdict");
  std::set<std::string> covered;
  for (const auto& [experiment, configurations] : measured.items()) {
    const auto base_experiment = baseline.value(experiment, nlohmann::json::object());
    for (const auto& [label, now] : configurations.items()) {
      const auto it = base_experiment.find(label);
      if (it == base_experiment.end()) {
        fail(fmt::format("{} / {}: no baseline entry. If this configuration is new, run `ngdbench regress --update` "
                         "and commit results/baselines/ci.json", experiment, label));
        fmt::print(out, "{:<28} {:<34} {:<16} {:>10} {:>10} {:>9}  {}\n", experiment, label, "—", "missing", "", "",
                   "FAIL");
        continue;
      }
      covered.insert(now["optimizer"].get<std::string>());
      const auto& base = *it;
      // Steps to target: more steps (or never reaching it) beyond the tolerance is a regression.
      const auto& base_steps = base["steps_to_target"];
      const auto& now_steps = now["steps_to_target"];
      std::string verdict = "ok", change = "";
      if (!base_steps.is_null() && now_steps.is_null()) {
        verdict = "FAIL";
        change = "unreached";
      } else if (!base_steps.is_null()) {
        const double ratio = now_steps.get<double>() / base_steps.get<double>();
        change = fmt::format("{:+.1f}%", 100 * (ratio - 1));
        if (ratio > tolerance.steps_ratio) verdict = "FAIL";
      } else if (!now_steps.is_null()) {
        change = "now reached";
      }
      if (verdict == "FAIL") {
        fail(fmt::format("{} / {}: steps to target {} → {} (tolerance ×{:.2f})", experiment, label,
                         steps_text(base_steps), steps_text(now_steps), tolerance.steps_ratio));
      }
      fmt::print(out, "{:<28} {:<34} {:<16} {:>10} {:>10} {:>9}  {}\n", experiment, label, "steps to target",
                 steps_text(base_steps), steps_text(now_steps), change, verdict);
      // Final accuracy: a drop beyond the tolerance is a regression.
      const double base_acc = base["final_test_acc"].is_null() ? 0.0 : base["final_test_acc"].get<double>();
      const double now_acc = now["final_test_acc"].is_null() ? 0.0 : now["final_test_acc"].get<double>();
      const bool dropped = base_acc - now_acc > tolerance.accuracy_drop;
      if (dropped) {
        fail(fmt::format("{} / {}: final test accuracy {:.4f} → {:.4f} (tolerance −{})", experiment, label, base_acc,
                         now_acc, tolerance.accuracy_drop));
      }
      fmt::print(out, "{:<28} {:<34} {:<16} {:>10.4f} {:>10.4f} {:>+9.4f}  {}\n", experiment, label, "final test acc",
                 base_acc, now_acc, now_acc - base_acc, dropped ? "FAIL" : "ok");
    }
  }
  for (const auto& optimizer : required) {
    if (!covered.count(optimizer)) {
      fail(fmt::format("optimizer '{}' has no baseline in the regression suite: add it to a spec in experiments/ci/, "
                       "run `ngdbench regress --update` and commit results/baselines/ci.json", optimizer));
    }
  }
  return outcome;
}

}  // namespace ngd
