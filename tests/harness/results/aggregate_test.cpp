#include "harness/results/aggregate.h"

#include <gtest/gtest.h>

#include <cmath>

#include "harness/results/regress.h"

namespace ngd {
namespace {

using nlohmann::json;

json run(const std::string& optimizer, int64_t study, json time, const std::string& status = "completed") {
  return {{"optimizer", optimizer}, {"seed", 10 + study}, {"study", study}, {"status", status},
          {"time_to_target_s", time}, {"steps_to_target", nullptr}};
}

TEST(Aggregate, UnreachedDivergedAndFailedRunsCountAsInfinity) {
  EXPECT_EQ(measure_or_unreached(run("sgd", 0, 3.5), "time_to_target_s"), 3.5);
  EXPECT_EQ(measure_or_unreached(run("sgd", 0, nullptr), "time_to_target_s"), kUnreached);
  EXPECT_EQ(measure_or_unreached(run("sgd", 0, 3.5, "diverged"), "time_to_target_s"), kUnreached);
  EXPECT_EQ(measure_or_unreached(run("sgd", 0, 3.5), "steps_to_target"), kUnreached);
}

TEST(Aggregate, RatiosOfInfinities) {
  EXPECT_EQ(ratio_of(6.0, 4.0), 1.5);
  EXPECT_EQ(ratio_of(6.0, kUnreached), 0.0);
  EXPECT_EQ(ratio_of(kUnreached, 4.0), kUnreached);
  EXPECT_TRUE(std::isnan(ratio_of(kUnreached, kUnreached)));
}

TEST(Aggregate, BestTrialPerStudyThenMedianOverStudies) {
  // By hand: sgd studies {0: min(5, 3) = 3, 1: min(∞, 7) = 7, 2: ∞} → median 7;
  // kfac {0: 2, 1: ∞} → median of an even count, (2 + ∞)/2 = ∞.
  const std::vector<json> results = {run("sgd", 0, 5.0),     run("kfac", 0, 2.0), run("sgd", 0, 3.0),
                                     run("sgd", 1, nullptr), run("sgd", 1, 7.0),  run("kfac", 1, 1.0, "failed"),
                                     run("sgd", 2, nullptr)};
  const auto scores = score_optimizers(results, "time_to_target_s");
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_EQ(scores[0].optimizer, "sgd");
  EXPECT_EQ(scores[0].per_study, (std::vector<double>{3.0, 7.0, kUnreached}));
  EXPECT_EQ(scores[0].median, 7.0);
  EXPECT_EQ(scores[0].runs, 5);
  EXPECT_EQ(scores[1].optimizer, "kfac");
  EXPECT_EQ(scores[1].median, kUnreached);
}

TEST(Aggregate, FilesWithoutStudiesUseTheSeed) {
  auto old = run("sgd", 0, 4.0);
  old.erase("study");
  auto other = run("sgd", 1, 2.0);
  other.erase("study");
  const auto scores = score_optimizers({old, other}, "time_to_target_s");
  EXPECT_EQ(scores[0].per_study, (std::vector<double>{4.0, 2.0}));  // seeds 10 and 11: two studies
  EXPECT_EQ(scores[0].median, 3.0);
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

}  // namespace
}  // namespace ngd
