#include "harness/results/summary.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "harness/results/aggregate.h"
#include "harness/results/results.h"

namespace ngd {

namespace {

std::string seconds_text(double seconds) { return std::isinf(seconds) ? "∞" : fmt::format("{:.1f}", seconds); }

std::string spread(const std::vector<double>& values, const char* format) {
  if (values.empty()) return "—";
  const auto [low, high] = std::minmax_element(values.begin(), values.end());
  return fmt::format(fmt::runtime(format), median(values), *low, *high);
}

}  // namespace

void print_summary(const Spec& spec, const std::vector<nlohmann::json>& results, std::ostream& out) {
  struct Row {
    std::string label;
    int completed = 0, diverged = 0, failed = 0, reached = 0;
    std::vector<double> test_acc, validation, train_loss, epoch_time, time_to_target;
  };
  std::vector<std::string> order;
  std::map<std::string, Row> rows;
  for (const auto& result : results) {
    const auto hash = result["config_hash"].get<std::string>();
    if (!rows.count(hash)) order.push_back(hash);
    auto& row = rows[hash];
    row.label = result["label"].get<std::string>();
    const auto status = result["status"].get<std::string>();
    (status == "completed" ? row.completed : status == "diverged" ? row.diverged : row.failed)++;
    row.time_to_target.push_back(measure_or_unreached(result, "time_to_target_s"));
    row.reached += std::isinf(row.time_to_target.back()) ? 0 : 1;
    if (status != "completed" || result["epochs"].empty()) continue;
    const auto& last = result["epochs"].back();
    row.test_acc.push_back(result.contains("final") ? result["final"]["test_bleu"].get<double>()
                                                    : last["test_acc"].get<double>());
    const auto* validation_key = result.contains("final") ? "val_bleu" : "val_acc";  // translation: BLEU
    if (last.contains(validation_key) && !last[validation_key].is_null()) {
      row.validation.push_back(last[validation_key].get<double>());
    }
    row.train_loss.push_back(last["train_loss"].get<double>());
    std::vector<double> epoch_times;
    for (const auto& epoch : result["epochs"]) epoch_times.push_back(epoch["train_time_s"].get<double>());
    row.epoch_time.push_back(median(epoch_times));
  }
  const auto target = spec.runs.empty() || !spec.runs[0].target
                          ? std::string("no target")
                          : fmt::format("{} {} {}", spec.runs[0].target->metric,
                                        spec.runs[0].target->lower_is_better() ? "≤" : "≥", spec.runs[0].target->value);
  fmt::print(out, "\n{} — median [min–max] over seeds; time to target: {} (unreached = ∞)\n", spec.name, target);
  const bool translation = !spec.runs.empty() && spec.runs[0].workload == WorkloadKind::kTranslation;
  fmt::print(out, "{:<40} {:>5} {:>24} {:>24} {:>24} {:>10} {:>16}\n", "optimizer", "runs",
             translation ? "val BLEU" : "final val acc", translation ? "test BLEU (best val)" : "final test acc",
             "final train loss", "epoch s", "to target s");
  for (const auto& hash : order) {
    const auto& row = rows[hash];
    auto runs = fmt::format("{}", row.completed);
    if (row.diverged) runs += fmt::format("+{}d", row.diverged);
    if (row.failed) runs += fmt::format("+{}f", row.failed);
    const auto to_target = fmt::format("{} ({}/{})", seconds_text(median(row.time_to_target)), row.reached,
                                       row.time_to_target.size());
    const char* metric_format = translation ? "{:.2f} [{:.2f}–{:.2f}]" : "{:.4f} [{:.4f}–{:.4f}]";
    fmt::print(out, "{:<40} {:>5} {:>24} {:>24} {:>24} {:>10} {:>16}\n", row.label, runs,
               spread(row.validation, metric_format), spread(row.test_acc, metric_format),
               spread(row.train_loss, "{:.4f} [{:.4f}–{:.4f}]"),
               row.epoch_time.empty() ? "—" : fmt::format("{:.2f}", median(row.epoch_time)), to_target);
  }
  // The protocol's selection (docs/protocol.md): per study the best trial, the median over studies.
  if (!spec.runs.empty() && spec.runs[0].target) {
    fmt::print(out, "time to target, best trial per study, median over studies:");
    for (const auto& score : score_optimizers(results, "time_to_target_s")) {
      fmt::print(out, " {} {} ({} runs)", score.optimizer, seconds_text(score.median), score.runs);
    }
    fmt::print(out, "\n");
  }
}

}  // namespace ngd
