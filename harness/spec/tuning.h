#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "base/options.h"

namespace ngd {

// The Halton sequence's coordinate in `base` (a prime) of point `index`: the radical inverse, the
// digits of `index` in `base` mirrored behind the point. radical_inverse(1, 2) = 0.5,
// radical_inverse(5, 3) = 0.(21)₃ = 7/9.
double radical_inverse(uint64_t index, uint64_t base);

// `count` points of the `dims`-dimensional Halton sequence (primes 2, 3, 5, … per dimension, points
// 1, 2, …), each dimension shifted modulo 1 by an offset drawn from `seed` (Cranley–Patterson
// rotation): the same seed always gives the same points, another seed another low-discrepancy set.
// At most kMaxTuningDimensions dimensions.
std::vector<std::vector<double>> halton_points(int64_t count, int64_t dims, uint64_t seed);

// Settings one tuning block may search at once (the Halton primes used).
constexpr int64_t kMaxTuningDimensions = 16;

// One searched setting of a spec's "tuning.space": a list of values (a grid axis, drawn uniformly), or
// {"log_uniform": [lo, hi]} (lo > 0) or {"uniform": [lo, hi]} (a range).
struct SearchDimension {
  std::string name;
  nlohmann::json values;  // the list, or null for a range
  std::string range;      // "log_uniform" or "uniform" for a range
  double low = 0, high = 0;
  bool integer = false;   // the setting takes integers: range draws are rounded
  // The value at `u` in [0, 1): a range maps it linearly (in log space for log_uniform), a list picks
  // entry ⌊u·n⌋. Drawn numbers keep 4 significant digits, so that labels and result files read well.
  nlohmann::json value_at(double u) const;
};

// An optimizer entry's "tuning" block: {"space": {...}, "trials": N, "studies": K, "seed": S}.
struct TuningPlan {
  std::vector<SearchDimension> space;  // in the space's key order
  int64_t trials = 0;                  // per study
  int64_t studies = 0;
  uint64_t seed = 0;
  // The settings of study `study`'s trials ({name: value} each): Halton points under a seed made of
  // `seed` and `study`, so studies draw different trials and a study's draw never depends on another's.
  std::vector<nlohmann::json> draw(int64_t study) const;
  // {"trials", "studies", "seed", "space"}: the budget as result files and the report state it.
  nlohmann::json describe() const;
};

// Reads a "tuning" block at `json_path`, checking every searched name against `settings` (the
// optimizer's hyperparameters) and each list value with check_option_value; `default_studies` is used
// when "studies" is absent. Throws SpecError.
TuningPlan parse_tuning(const nlohmann::json& block, const std::vector<OptionInfo>& settings, int64_t default_studies,
                        const std::string& json_path);

}  // namespace ngd
