#include "harness/results/aggregate.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "harness/results/results.h"

namespace ngd {

double measure_or_unreached(const nlohmann::json& result, const std::string& measure) {
  if (result.value("status", "") != "completed") return kUnreached;
  const auto it = result.find(measure);
  return it == result.end() || it->is_null() ? kUnreached : it->get<double>();
}

double ratio_of(double numerator, double denominator) {
  if (std::isinf(numerator) && std::isinf(denominator)) return std::nan("");
  if (std::isinf(denominator)) return 0.0;
  return numerator / denominator;
}

std::vector<OptimizerScore> score_optimizers(const std::vector<nlohmann::json>& results, const std::string& measure) {
  std::vector<OptimizerScore> scores;
  std::vector<std::map<int64_t, double>> best;  // per optimizer: study → best trial's measure
  for (const auto& result : results) {
    const auto optimizer = result["optimizer"].get<std::string>();
    auto it = std::find_if(scores.begin(), scores.end(), [&](const auto& s) { return s.optimizer == optimizer; });
    if (it == scores.end()) {
      scores.push_back({optimizer, {}, kUnreached, 0});
      best.emplace_back();
      it = scores.end() - 1;
    }
    auto& studies = best[static_cast<size_t>(it - scores.begin())];
    const auto study = result.contains("study") ? result["study"].get<int64_t>() : result["seed"].get<int64_t>();
    const double value = measure_or_unreached(result, measure);
    auto [entry, inserted] = studies.emplace(study, value);
    if (!inserted) entry->second = std::min(entry->second, value);
    ++it->runs;
  }
  for (size_t i = 0; i < scores.size(); ++i) {
    for (const auto& [study, value] : best[i]) scores[i].per_study.push_back(value);
    scores[i].median = median(scores[i].per_study);
  }
  return scores;
}

}  // namespace ngd
