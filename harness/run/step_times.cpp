#include "harness/run/step_times.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace ngd {
namespace {

nlohmann::json mean_json(int64_t steps, double seconds) {
  return {{"steps", steps}, {"mean", steps > 0 ? nlohmann::json(seconds / static_cast<double>(steps)) : nlohmann::json()}};
}

}  // namespace

double nearest_rank_percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty() || !(p > 0 && p <= 1)) throw std::invalid_argument("nearest_rank_percentile: empty series or p outside (0, 1]");
  const auto n = static_cast<double>(sorted.size());
  // The rank ⌈p·n⌉, computed so that p·n a whole number in exact arithmetic is not pushed up by rounding.
  const auto rank = static_cast<size_t>(std::ceil(p * n - 1e-9 * n));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

StepTimeSummary summarize_step_times(std::vector<double> seconds) {
  std::sort(seconds.begin(), seconds.end());
  StepTimeSummary summary;
  summary.steps = static_cast<int64_t>(seconds.size());
  summary.min = seconds.front();
  summary.p25 = nearest_rank_percentile(seconds, 0.25);
  summary.p50 = nearest_rank_percentile(seconds, 0.50);
  summary.p75 = nearest_rank_percentile(seconds, 0.75);
  summary.p90 = nearest_rank_percentile(seconds, 0.90);
  summary.p99 = nearest_rank_percentile(seconds, 0.99);
  summary.max = seconds.back();
  summary.mean = std::accumulate(seconds.begin(), seconds.end(), 0.0) / static_cast<double>(seconds.size());
  return summary;
}

void StepTimes::add(double seconds, bool refresh) {
  epoch_.push_back(seconds);
  run_.push_back(seconds);
  if (refresh) {
    ++refresh_steps_;
    refresh_seconds_ += seconds;
  } else {
    ordinary_seconds_ += seconds;
  }
}

nlohmann::json StepTimes::epoch_json() const {
  if (epoch_.empty()) return nullptr;
  const auto summary = summarize_step_times(epoch_);
  return {{"steps", summary.steps}, {"p50", summary.p50}, {"p90", summary.p90}, {"p99", summary.p99},
          {"max", summary.max}};
}

nlohmann::json StepTimes::run_json() const {
  if (run_.empty()) return nullptr;
  const auto summary = summarize_step_times(run_);
  return {{"steps", summary.steps},
          {"min", summary.min},
          {"p25", summary.p25},
          {"p50", summary.p50},
          {"p75", summary.p75},
          {"p90", summary.p90},
          {"p99", summary.p99},
          {"max", summary.max},
          {"mean", summary.mean},
          {"refresh", mean_json(refresh_steps_, refresh_seconds_)},
          {"ordinary", mean_json(summary.steps - refresh_steps_, ordinary_seconds_)}};
}

}  // namespace ngd
