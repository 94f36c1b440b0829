#include "harness/spec/tuning.h"

#include <fmt/format.h>

#include <cmath>

#include "base/spec_error.h"

namespace ngd {
namespace {

// The Halton bases: one prime per searched setting.
constexpr uint64_t kPrimes[kMaxTuningDimensions] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53};
// Largest number of trials a study may draw (a guard against typos, not a statistical limit).
constexpr int64_t kMaxTrials = 10000;
// Significant digits drawn numbers keep.
constexpr int kDrawnDigits = 4;

// SplitMix64's output function: a fixed, portable mixing of 64 bits (std:: distributions are not
// specified bit for bit, so they would not reproduce across standard libraries).
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The top 53 bits as a double in [0, 1).
double unit_interval(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

std::pair<double, double> range_bounds(const nlohmann::json& bounds, const std::string& path) {
  if (!bounds.is_array() || bounds.size() != 2 || !bounds[0].is_number() || !bounds[1].is_number()) {
    throw SpecError(path, "expected [low, high], got " + bounds.dump());
  }
  const double low = bounds[0].get<double>(), high = bounds[1].get<double>();
  if (!std::isfinite(low) || !std::isfinite(high) || low > high) {
    throw SpecError(path, fmt::format("expected finite low ≤ high, got {}", bounds.dump()));
  }
  return {low, high};
}

SearchDimension parse_dimension(const std::string& name, const nlohmann::json& value, const OptionInfo& info,
                                const std::string& path) {
  SearchDimension dimension;
  dimension.name = name;
  if (value.is_array()) {
    if (value.empty()) throw SpecError(path, "an empty list leaves nothing to draw");
    for (size_t i = 0; i < value.size(); ++i) check_option_value(info, value[i], fmt::format("{}[{}]", path, i));
    dimension.values = value;
    return dimension;
  }
  if (!value.is_object() || value.size() != 1 || !(value.contains("log_uniform") || value.contains("uniform"))) {
    throw SpecError(path, "expected a list of values, {\"log_uniform\": [low, high]} or {\"uniform\": [low, high]}, "
                          "got " + value.dump());
  }
  const auto typed = typed_default(info);
  if (!typed.is_number()) {
    throw SpecError(path, fmt::format("a range needs a numeric setting; '{}' takes {} (give a list)", name,
                                      info.default_value.dump()));
  }
  dimension.range = value.begin().key();
  std::tie(dimension.low, dimension.high) = range_bounds(value.begin().value(), path + "." + dimension.range);
  if (dimension.range == "log_uniform" && dimension.low <= 0) {
    throw SpecError(path + ".log_uniform", "a log-uniform range needs low > 0");
  }
  dimension.integer = typed.is_number_integer();
  check_option_value(info, dimension.value_at(0.0), path);  // e.g. a negative bound of an unsigned setting
  return dimension;
}

}  // namespace

double radical_inverse(uint64_t index, uint64_t base) {
  double value = 0, digit_weight = 1.0 / static_cast<double>(base);
  for (; index > 0; index /= base, digit_weight /= static_cast<double>(base)) {
    value += static_cast<double>(index % base) * digit_weight;
  }
  return value;
}

std::vector<std::vector<double>> halton_points(int64_t count, int64_t dims, uint64_t seed) {
  if (dims > kMaxTuningDimensions) throw std::invalid_argument("halton_points: too many dimensions");
  std::vector<double> shift(static_cast<size_t>(dims));
  for (int64_t d = 0; d < dims; ++d) shift[d] = unit_interval(splitmix64(splitmix64(seed) + static_cast<uint64_t>(d)));
  std::vector<std::vector<double>> points;
  for (int64_t i = 0; i < count; ++i) {
    std::vector<double> point;
    for (int64_t d = 0; d < dims; ++d) {
      const double u = radical_inverse(static_cast<uint64_t>(i + 1), kPrimes[d]) + shift[d];
      point.push_back(u - std::floor(u));
    }
    points.push_back(std::move(point));
  }
  return points;
}

nlohmann::json SearchDimension::value_at(double u) const {
  if (!values.is_null()) {
    const auto n = values.size();
    return values[std::min(n - 1, static_cast<size_t>(u * static_cast<double>(n)))];
  }
  const double value = range == "log_uniform" ? std::exp(std::log(low) + u * (std::log(high) - std::log(low)))
                                              : low + u * (high - low);
  if (integer) return static_cast<int64_t>(std::llround(value));
  return std::stod(fmt::format("{:.{}g}", value, kDrawnDigits));
}

std::vector<nlohmann::json> TuningPlan::draw(int64_t study) const {
  const uint64_t study_seed = splitmix64(seed) ^ splitmix64(static_cast<uint64_t>(study) + 1);
  std::vector<nlohmann::json> trials_drawn;
  for (const auto& point : halton_points(trials, static_cast<int64_t>(space.size()), study_seed)) {
    nlohmann::json settings = nlohmann::json::object();
    for (size_t d = 0; d < space.size(); ++d) settings[space[d].name] = space[d].value_at(point[d]);
    trials_drawn.push_back(std::move(settings));
  }
  return trials_drawn;
}

nlohmann::json TuningPlan::describe() const {
  nlohmann::json searched = nlohmann::json::object();
  for (const auto& dimension : space) {
    searched[dimension.name] = dimension.values.is_null()
                                   ? nlohmann::json{{dimension.range, {dimension.low, dimension.high}}}
                                   : dimension.values;
  }
  return {{"trials", trials}, {"studies", studies}, {"seed", seed}, {"space", searched}};
}

TuningPlan parse_tuning(const nlohmann::json& block, const std::vector<OptionInfo>& settings, int64_t default_studies,
                        const std::string& json_path) {
  if (!block.is_object()) throw SpecError(json_path, "expected an object, got " + block.dump());
  for (const auto& [key, value] : block.items()) {
    if (key != "space" && key != "trials" && key != "studies" && key != "seed") {
      throw SpecError(json_path + "." + key, "unknown key (valid: space, trials, studies, seed)");
    }
  }
  auto positive = [&](const char* key, int64_t fallback, int64_t limit) {
    const auto it = block.find(key);
    if (it == block.end()) return fallback;
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > limit) {
      throw SpecError(json_path + "." + key, fmt::format("expected an integer in 1..{}, got {}", limit, it->dump()));
    }
    return it->get<int64_t>();
  };
  TuningPlan plan;
  if (!block.contains("trials")) throw SpecError(json_path + ".trials", "missing required key");
  plan.trials = positive("trials", 0, kMaxTrials);
  plan.studies = positive("studies", default_studies, kMaxTrials);
  if (plan.studies > default_studies) {
    throw SpecError(json_path + ".studies", fmt::format("{} studies need as many seeds; the spec has {}", plan.studies,
                                                        default_studies));
  }
  if (auto it = block.find("seed"); it != block.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      throw SpecError(json_path + ".seed", "expected a non-negative integer, got " + it->dump());
    }
    plan.seed = it->get<uint64_t>();
  }
  const auto space = block.find("space");
  if (space == block.end() || !space->is_object() || space->empty()) {
    throw SpecError(json_path + ".space", "expected a non-empty object of searched settings");
  }
  if (static_cast<int64_t>(space->size()) > kMaxTuningDimensions) {
    throw SpecError(json_path + ".space", fmt::format("at most {} settings may be searched", kMaxTuningDimensions));
  }
  const auto current = with_current_names(*space, settings, json_path + ".space");
  for (const auto& [name, value] : current.items()) {
    const auto* info = find_entry(settings, name);
    if (info == nullptr) {
      throw SpecError(json_path + ".space." + name, fmt::format("unknown setting (valid: {})", join_names(settings)));
    }
    plan.space.push_back(parse_dimension(name, value, *info, json_path + ".space." + name));
  }
  return plan;
}

}  // namespace ngd
