#include "harness/results/regress.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "harness/results/aggregate.h"
#include "harness/results/results.h"

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
    int64_t run_steps = 0;
    for (const auto* run : runs) {
      steps.push_back(measure_or_unreached(*run, "steps_to_target"));
      if ((*run)["status"] == "completed") {
        accuracy.push_back((*run)["epochs"].back()["test_acc"].get<double>());
        run_steps = std::max<int64_t>(run_steps, (*run)["epochs"].back().value("cumulative_steps", int64_t{0}));
      }
    }
    const double median_steps = median(steps);  // unreached = ∞, then the median over seeds
    nlohmann::json seed_steps = nlohmann::json::array();
    for (const double value : steps) seed_steps.push_back(std::isinf(value) ? nlohmann::json() : nlohmann::json(value));
    const auto dataset = runs.front()->value("dataset", nlohmann::json());
    const auto test_images = dataset.is_object() ? dataset.value("test_subset", nlohmann::json()) : nlohmann::json();
    measured[label] = {{"optimizer", (*runs.front())["optimizer"]},
                       {"seeds", runs.size()},
                       {"steps_to_target", std::isinf(median_steps) ? nlohmann::json() : nlohmann::json(median_steps)},
                       {"final_test_acc", accuracy.empty() ? nlohmann::json() : nlohmann::json(median(accuracy))},
                       {"seed_steps_to_target", seed_steps},
                       {"seed_final_test_acc", accuracy},
                       {"test_images", test_images},
                       {"run_steps", run_steps}};
  }
  return measured;
}

namespace {

// The sample standard deviation (0 for fewer than two values).
double standard_deviation(const std::vector<double>& values) {
  if (values.size() < 2) return 0;
  double mean = 0;
  for (const double value : values) mean += value / static_cast<double>(values.size());
  double squares = 0;
  for (const double value : values) squares += (value - mean) * (value - mean);
  return std::sqrt(squares / static_cast<double>(values.size() - 1));
}

// Rounds a tolerance up to `digits` decimals so that the committed number is the one compared.
double round_up(double value, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::ceil(value * scale - 1e-9) / scale;
}

}  // namespace

nlohmann::json derive_tolerance(const nlohmann::json& measurement, const RegressTolerance& floor) {
  constexpr double kStandardErrors = 3;
  const auto accuracy = measurement.value("seed_final_test_acc", std::vector<double>{});
  std::vector<double> reached;
  for (const auto& steps : measurement.value("seed_steps_to_target", nlohmann::json::array())) {
    if (!steps.is_null()) reached.push_back(steps.get<double>());
  }
  const double seeds = std::max<double>(1, static_cast<double>(accuracy.size()));
  const double median_shift = std::sqrt(2 / seeds);  // σ of a difference of two k-seed medians, in σ
  const double p = measurement["final_test_acc"].is_number() ? measurement["final_test_acc"].get<double>() : 0.0;
  const auto& images = measurement.value("test_images", nlohmann::json());
  const double binomial = images.is_number() ? std::sqrt(p * (1 - p) / images.get<double>()) : 0.0;
  const double accuracy_sigma = std::max(standard_deviation(accuracy), binomial);
  double mean_steps = 0;
  for (const double value : reached) mean_steps += value / static_cast<double>(reached.size());
  const double steps_sigma = reached.size() >= 2 ? standard_deviation(reached) / mean_steps : 0.0;
  const double accuracy_drop =
      accuracy_sigma > 0 ? round_up(kStandardErrors * accuracy_sigma * median_shift, 3) : floor.accuracy_drop;
  const double steps_ratio = std::max(floor.steps_ratio, round_up(1 + kStandardErrors * steps_sigma * median_shift, 2));
  return {{"steps_ratio", steps_ratio},
          {"accuracy_drop", accuracy_drop},
          {"derivation",
           fmt::format("accuracy: 3 x max(seed sd {:.4f}, binomial se {:.4f}{}) x sqrt(2/{}); steps: 3 x seed cv {:.3f} "
                       "x sqrt(2/{}), at least {}",
                       standard_deviation(accuracy), binomial,
                       images.is_number() ? fmt::format(" of {} images", images.get<int64_t>()) : "", accuracy.size(),
                       steps_sigma, accuracy.size(), floor.steps_ratio)}};
}

RegressOutcome compare_with_baseline(const nlohmann::json& measured, const nlohmann::json& baseline,
                                     const std::vector<std::string>& required, const RegressTolerance& tolerance,
                                     std::ostream& out) {
  RegressOutcome outcome;
  auto fail = [&](std::string problem) {
    outcome.passed = false;
    outcome.problems.push_back(std::move(problem));
  };
  fmt::print(out, "{:<28} {:<34} {:<16} {:>10} {:>10} {:>9} {:>9}  {}\n", "experiment", "configuration", "metric",
             "baseline", "now", "change", "tolerance", "verdict");
  std::set<std::string> covered;
  for (const auto& [experiment, configurations] : measured.items()) {
    const auto base_experiment = baseline.value(experiment, nlohmann::json::object());
    for (const auto& [label, now] : configurations.items()) {
      const auto it = base_experiment.find(label);
      if (it == base_experiment.end()) {
        fail(fmt::format("{} / {}: no baseline entry. If this configuration is new, run `ngdbench regress --update` "
                         "and commit results/baselines/ci.json", experiment, label));
        fmt::print(out, "{:<28} {:<34} {:<16} {:>10} {:>10} {:>9} {:>9}  {}\n", experiment, label, "—", "missing", "", "",
                   "", "FAIL");
        continue;
      }
      covered.insert(now["optimizer"].get<std::string>());
      const auto& base = *it;
      const auto& row_tolerance = base.value("tolerance", nlohmann::json::object());
      const double steps_ratio = row_tolerance.value("steps_ratio", tolerance.steps_ratio);
      const double accuracy_drop = row_tolerance.value("accuracy_drop", tolerance.accuracy_drop);
      // Steps to target: more steps (or never reaching it) beyond the tolerance is a regression.
      const auto& base_steps = base["steps_to_target"];
      const auto& now_steps = now["steps_to_target"];
      std::string verdict = "ok", change = "";
      if (!base_steps.is_null() && now_steps.is_null()) {
        // Unreached: more steps than the run takes. A regression only when the run is long enough to
        // show it, i.e. when the tolerated steps end before the run does.
        const double run_steps = base.value("run_steps", 0.0);
        const bool too_short_to_tell = run_steps > 0 && (run_steps + 1) / base_steps.get<double>() <= steps_ratio;
        verdict = too_short_to_tell ? "ok (the run ends inside the tolerance)" : "FAIL";
        change = "unreached";
      } else if (!base_steps.is_null()) {
        const double ratio = now_steps.get<double>() / base_steps.get<double>();
        change = fmt::format("{:+.1f}%", 100 * (ratio - 1));
        if (ratio > steps_ratio) verdict = "FAIL";
      } else if (!now_steps.is_null()) {
        change = "now reached";
      }
      if (verdict == "FAIL") {
        fail(fmt::format("{} / {}: steps to target {} → {} (tolerance ×{:.2f})", experiment, label,
                         steps_text(base_steps), steps_text(now_steps), steps_ratio));
      }
      fmt::print(out, "{:<28} {:<34} {:<16} {:>10} {:>10} {:>9} {:>9}  {}\n", experiment, label, "steps to target",
                 steps_text(base_steps), steps_text(now_steps), change, fmt::format("x{:.2f}", steps_ratio), verdict);
      // Final accuracy: a drop beyond the tolerance is a regression.
      const double base_acc = base["final_test_acc"].is_null() ? 0.0 : base["final_test_acc"].get<double>();
      const double now_acc = now["final_test_acc"].is_null() ? 0.0 : now["final_test_acc"].get<double>();
      const bool dropped = base_acc - now_acc > accuracy_drop;
      if (dropped) {
        fail(fmt::format("{} / {}: final test accuracy {:.4f} → {:.4f} (tolerance −{})", experiment, label, base_acc,
                         now_acc, accuracy_drop));
      }
      fmt::print(out, "{:<28} {:<34} {:<16} {:>10.4f} {:>10.4f} {:>+9.4f} {:>9}  {}\n", experiment, label,
                 "final test acc", base_acc, now_acc, now_acc - base_acc, fmt::format("-{:.3f}", accuracy_drop),
                 dropped ? "FAIL" : "ok");
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
