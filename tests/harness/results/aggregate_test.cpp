#include "harness/results/aggregate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "harness/results/regress.h"
#include "harness/results/summary.h"

namespace ngd {
namespace {

using nlohmann::json;

json run(const std::string& optimizer, int64_t study, json time, const std::string& status = "completed",
         const std::string& variant = "") {
  return {{"experiment", "exp"}, {"optimizer", optimizer}, {"variant", variant.empty() ? optimizer : variant},
          {"seed", 10 + study}, {"study", study}, {"status", status}, {"time_to_target_s", time},
          {"steps_to_target", nullptr}};
}

TEST(Aggregate, UnreachedDivergedAndFailedRunsCountAsInfinity) {
  EXPECT_EQ(measure_or_unreached(run("sgd", 0, 3.5), "time_to_target_s"), 3.5);
  EXPECT_EQ(measure_or_unreached(run("sgd", 0, nullptr), "time_to_target_s"), kUnreached);
  EXPECT_EQ(measure_or_unreached(run("sgd", 0, 3.5, "diverged"), "time_to_target_s"), kUnreached);
  EXPECT_EQ(measure_or_unreached(run("sgd", 0, 3.5), "steps_to_target"), kUnreached);
}

TEST(Aggregate, RegressTakesTheMedianWithUnreachedSeedsAsInfinity) {
  auto seed = [](int64_t study, json steps, const std::string& status = "completed") {
    auto result = run("sgd", study, nullptr, status);
    result["label"] = "sgd";
    result["steps_to_target"] = steps;
    result["epochs"] = json::array({{{"test_acc", 0.5 + 0.1 * static_cast<double>(study)}}});
    return result;
  };
  // Three seeds, one unreached: median(40, 60, ∞) = 60 (before: "never" when any seed missed).
  auto measured = measure_configurations({seed(0, 40), seed(1, nullptr), seed(2, 60)});
  EXPECT_EQ(measured["sgd"]["steps_to_target"], 60.0);
  EXPECT_NEAR(measured["sgd"]["final_test_acc"].get<double>(), 0.6, 1e-12);
  // Two seeds, one diverged: (40 + ∞)/2 = ∞ → null.
  measured = measure_configurations({seed(0, 40), seed(1, 50, "diverged")});
  EXPECT_TRUE(measured["sgd"]["steps_to_target"].is_null());
  EXPECT_EQ(measured["sgd"]["final_test_acc"], 0.5);
}

TEST(Summary, CountsStatusesAndPointsToTheReportInsteadOfComparing) {
  // Two FNGD study variants and SGD: the report keeps the variants apart, so the console must not pool
  // them (or anything) into a median; it counts statuses and names `make tables`.
  Spec spec;
  spec.name = "exp";
  std::vector<json> results = {run("fngd", 0, 2.0, "completed", "fngd-kfac"), run("fngd", 0, 9.0, "completed", "fngd-ekfac"),
                               run("fngd", 1, nullptr, "diverged", "fngd-kfac"), run("sgd", 0, 4.0),
                               run("sgd", 1, 5.0, "failed")};
  results.push_back(run("sgd", 2, 6.0));
  results.back()["experiment"] = "exp-other";
  std::ostringstream out;
  print_summary(spec, results, 2, "results/runs", out);
  const auto text = out.str();
  EXPECT_NE(text.find("exp: 6 runs: 4 trained now, 2 found finished"), std::string::npos) << text;
  EXPECT_NE(text.find("  exp: 3 completed, 1 diverged, 1 failed\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  exp-other: 1 completed, 0 diverged, 0 failed\n"), std::string::npos) << text;
  EXPECT_NE(text.find("make tables OUT=results/runs"), std::string::npos) << text;
  for (const auto* absent : {"median", "fngd", "sgd", "(3 runs)", "2.0", "9.0"}) {
    EXPECT_EQ(text.find(absent), std::string::npos) << absent << " in\n" << text;
  }
}

}  // namespace
}  // namespace ngd
