#include "harness/spec/tuning.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "optimizers/optimizer.h"
#include "tests/support/test_support.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

using nlohmann::json;
using Tol = testing::Tolerances<double>;

const std::vector<OptionInfo>& sgd_settings() { return find_entry(optimizer_registry(), "sgd")->hyperparameters; }

TEST(Halton, RadicalInverseByHand) {
  EXPECT_EQ(radical_inverse(1, 2), 0.5);
  EXPECT_EQ(radical_inverse(2, 2), 0.25);
  EXPECT_EQ(radical_inverse(3, 2), 0.75);
  EXPECT_EQ(radical_inverse(6, 2), 0.375);  // 110₂ → 0.011₂
  EXPECT_NEAR(radical_inverse(1, 3), 1.0 / 3, Tol::kExact);
  EXPECT_NEAR(radical_inverse(5, 3), 7.0 / 9, Tol::kExact);  // 12₃ → 0.21₃
  EXPECT_NEAR(radical_inverse(7, 5), 11.0 / 25, Tol::kExact);  // 7 = 12₅ → 0.21₅ = 2/5 + 1/25
}

TEST(Halton, PointsAreReproducibleAndDependOnTheSeed) {
  const auto first = halton_points(16, 3, 7);
  EXPECT_EQ(first, halton_points(16, 3, 7));
  EXPECT_NE(first, halton_points(16, 3, 8));
  for (const auto& point : first) {
    ASSERT_EQ(point.size(), 3u);
    for (double u : point) {
      EXPECT_GE(u, 0.0);
      EXPECT_LT(u, 1.0);
    }
  }
}

TEST(Halton, EveryDimensionStratifiesLikeTheSequence) {
  // 2^k consecutive points of base 2 (3^k of base 3) fill each interval of width 2^-k (3^-k) once; a
  // shift modulo 1 keeps that, up to the interval the shift splits, which then holds one point per
  // piece. Counting intervals from the shift checks it exactly.
  for (uint64_t seed : {0u, 1u, 12345u}) {
    const auto points = halton_points(27, 2, seed);
    const double shift2 = points[0][0] - 0.5 - std::floor(points[0][0] - 0.5);  // point 1 of base 2 is 0.5
    const double shift3 = points[0][1] - 1.0 / 3 - std::floor(points[0][1] - 1.0 / 3);
    std::set<int> cells2, cells3;
    for (int i = 0; i < 16; ++i) {
      const double u = points[i][0] - shift2;
      cells2.insert(static_cast<int>(std::floor((u - std::floor(u)) * 16 + 1e-9)));
    }
    for (int i = 0; i < 27; ++i) {
      const double u = points[i][1] - shift3;
      cells3.insert(static_cast<int>(std::floor((u - std::floor(u)) * 27 + 1e-9)));
    }
    EXPECT_EQ(cells2.size(), 16u) << "seed " << seed;
    EXPECT_EQ(cells3.size(), 27u) << "seed " << seed;
  }
}

TEST(Tuning, ValuesAtPointsOfTheSpace) {
  const auto plan = parse_tuning(json::parse(R"({"trials": 4, "space": {
      "lr": {"log_uniform": [0.001, 0.1]}, "momentum": {"uniform": [0.5, 0.9]}, "nesterov": [false, true]}})"),
                                 sgd_settings(), 3, "tuning");
  ASSERT_EQ(plan.space.size(), 3u);
  EXPECT_EQ(plan.studies, 3);  // default: one per seed
  const auto& lr = plan.space[0];
  EXPECT_EQ(lr.name, "lr");
  EXPECT_EQ(lr.value_at(0.5).get<double>(), 0.01);  // geometric midpoint
  EXPECT_EQ(lr.value_at(0.0).get<double>(), 0.001);
  EXPECT_EQ(lr.value_at(0.25).get<double>(), 0.003162);  // 10^-2.5, 4 significant digits
  EXPECT_EQ(plan.space[1].value_at(0.5).get<double>(), 0.7);
  EXPECT_EQ(plan.space[2].value_at(0.49), false);
  EXPECT_EQ(plan.space[2].value_at(0.5), true);
  EXPECT_EQ(plan.space[2].value_at(0.999), true);
}

TEST(Tuning, StudiesDrawDifferentReproducibleTrials) {
  const auto plan =
      parse_tuning(json::parse(R"({"trials": 5, "seed": 3, "space": {"lr": {"log_uniform": [1e-4, 1]}}})"),
                   sgd_settings(), 2, "tuning");
  const auto study0 = plan.draw(0), study1 = plan.draw(1);
  ASSERT_EQ(study0.size(), 5u);
  EXPECT_EQ(study0, plan.draw(0));
  EXPECT_NE(study0, study1);
  std::set<double> distinct;
  for (const auto& trial : study0) {
    const double lr = trial["lr"].get<double>();
    EXPECT_GE(lr, 1e-4);
    EXPECT_LE(lr, 1.0);
    distinct.insert(lr);
  }
  EXPECT_EQ(distinct.size(), 5u);
  EXPECT_EQ(plan.describe()["space"]["lr"], json::parse(R"({"log_uniform": [0.0001, 1.0]})"));
}

TEST(Tuning, DrawsArePinned) {
  // The draws of a spec must not change between versions or machines (results are resumed by the
  // drawn settings' hash). Values from a separate Python transcription of the documented algorithm
  // (docs/protocol.md, Tuning): SplitMix64 study seeds and shifts, base-2 radical inverses of 1, 2, 3.
  const auto plan = parse_tuning(json::parse(R"({"trials": 3, "space": {"lr": {"log_uniform": [0.01, 0.1]}}})"),
                                 sgd_settings(), 3, "tuning");
  const std::vector<std::vector<double>> expected = {
      {0.0317, 0.01782, 0.05637}, {0.01446, 0.08132, 0.02572}, {0.0516, 0.02902, 0.09177}};
  for (int64_t study = 0; study < 3; ++study) {
    const auto trials = plan.draw(study);
    for (size_t t = 0; t < 3; ++t) EXPECT_EQ(trials[t]["lr"].get<double>(), expected[study][t]) << study << "/" << t;
  }
}

TEST(Tuning, RejectsBadBlocks) {
  auto message = [](const std::string& block, int64_t seeds = 2) {
    try {
      parse_tuning(json::parse(block), sgd_settings(), seeds, "optimizers[0].tuning");
    } catch (const std::runtime_error& error) {
      return std::string(error.what());
    }
    return std::string();
  };
  EXPECT_NE(message(R"({"space": {"lr": [0.1]}})").find("optimizers[0].tuning.trials: missing"), std::string::npos);
  EXPECT_NE(message(R"({"trials": 2, "space": {"lr": {"log_uniform": [0, 1]}}})").find("low > 0"), std::string::npos);
  EXPECT_NE(message(R"({"trials": 2, "space": {"lr": {"uniform": [1, 0.5]}}})").find("low ≤ high"), std::string::npos);
  EXPECT_NE(message(R"({"trials": 2, "space": {"rate": [0.1]}})").find("tuning.space.rate: unknown setting"),
            std::string::npos);
  EXPECT_NE(message(R"({"trials": 2, "space": {"nesterov": {"uniform": [0, 1]}}})").find("numeric"), std::string::npos);
  EXPECT_NE(message(R"({"trials": 2, "studies": 3, "space": {"lr": [0.1]}})").find("3 studies need as many seeds"),
            std::string::npos);
  EXPECT_NE(message(R"({"trials": 2, "space": {}})").find("non-empty"), std::string::npos);
  EXPECT_NE(message(R"({"trials": 2, "budget": 1, "space": {"lr": [0.1]}})").find("unknown key"), std::string::npos);
}

TEST(Tuning, SpecExpandsStudiesOfDrawnTrialsBesideGrids) {
  auto document = testing::tiny_spec();
  document["seeds"] = {4, 5, 6};
  document["optimizers"] = json::parse(R"([
    {"name": "sgd", "hparams": {"lr": [0.01, 0.1]}},
    {"name": "sgd", "hparams": {"momentum": 0.5},
     "tuning": {"trials": 3, "studies": 2, "space": {"lr": {"log_uniform": [0.001, 0.1]}}}}])");
  const auto spec = parse_spec(document, "spec.json");
  ASSERT_EQ(spec.runs.size(), 3u * 2 + 2u * 3);  // grid 2 points × 3 seeds, 3 trials × 2 studies
  int tuned = 0;
  for (const auto& run : spec.runs) {
    EXPECT_EQ(run.seed, 4 + run.study);  // study k trains with the k-th seed
    if (run.tuning.is_null()) continue;
    ++tuned;
    EXPECT_LT(run.study, 2);
    EXPECT_EQ(run.hparams["momentum"], 0.5);  // fixed settings stay
    EXPECT_EQ(run.grid_values.size(), 1u);
    EXPECT_EQ(run.grid_values["lr"], run.hparams["lr"]);
    EXPECT_EQ(run.tuning["trials"], 3);
  }
  EXPECT_EQ(tuned, 6);
  EXPECT_EQ(spec.runs[2].study, 0);  // seed-major: study 0's grid points, then its trials
  EXPECT_EQ(spec.runs[4].trial, 2);
  EXPECT_EQ(spec.runs[5].study, 1);
}

TEST(Tuning, MaxTrialsKeepsTheFullBudgetsFirstTrialsAndEveryGridPoint) {
  auto document = testing::tiny_spec();
  document["seeds"] = {4, 5};
  document["optimizers"] = json::parse(R"([
    {"name": "sgd", "hparams": {"lr": [0.01, 0.1, 0.2]}},
    {"name": "sgd", "hparams": {"momentum": 0.5},
     "tuning": {"trials": 3, "space": {"lr": {"log_uniform": [0.001, 0.1]}}}}])");
  const auto full = parse_spec(document, "spec.json");
  RunnerOptions options;
  options.max_trials = 2;
  const auto capped = selected_runs(full, options);
  std::set<std::string> full_ids;
  for (const auto& run : full.runs) full_ids.insert(run.run_id());
  ASSERT_EQ(capped.size(), 3u * 2 + 2u * 2);  // the grid untouched; 2 of 3 trials in each study
  int tuned = 0;
  for (const auto& run : capped) {
    EXPECT_EQ(full_ids.count(run.run_id()), 1u) << "a run of the full budget, so resuming without the cap keeps it";
    if (run.tuning.is_null()) continue;
    ++tuned;
    EXPECT_LT(run.trial, 2);
  }
  EXPECT_EQ(tuned, 4);
}

TEST(Tuning, SpecRejectsASettingBothFixedAndSearched) {
  auto document = testing::tiny_spec();
  document["optimizers"] = json::parse(R"([{"name": "sgd", "hparams": {"lr": 0.1},
      "tuning": {"trials": 2, "space": {"lr": [0.1, 0.2]}}}])");
  const auto message = testing::spec_error(document);
  EXPECT_NE(message.find("optimizers[0].hparams.lr: also searched in tuning.space"), std::string::npos) << message;
}

}  // namespace
}  // namespace ngd
