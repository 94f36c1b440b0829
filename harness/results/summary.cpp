#include "harness/results/summary.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <map>
#include <string>

namespace ngd {

void print_summary(const Spec& spec, const std::vector<nlohmann::json>& results, size_t found_finished,
                   const std::string& out_dir, std::ostream& out) {
  struct Counts {
    int completed = 0, diverged = 0, failed = 0;
  };
  std::vector<std::string> order;
  std::map<std::string, Counts> experiments;
  for (const auto& result : results) {
    const auto experiment = result["experiment"].get<std::string>();
    if (!experiments.count(experiment)) order.push_back(experiment);
    auto& counts = experiments[experiment];
    const auto status = result["status"].get<std::string>();
    (status == "completed" ? counts.completed : status == "diverged" ? counts.diverged : counts.failed)++;
  }
  fmt::print(out, "\n{}: {} runs: {} trained now, {} found finished\n", spec.name, results.size(),
             results.size() - found_finished, found_finished);
  for (const auto& experiment : order) {
    const auto& counts = experiments[experiment];
    fmt::print(out, "  {}: {} completed, {} diverged, {} failed\n", experiment, counts.completed, counts.diverged,
               counts.failed);
  }
  fmt::print(out, "the comparison of optimizers (docs/protocol.md) is the report's: make tables OUT={}\n", out_dir);
}

}  // namespace ngd
