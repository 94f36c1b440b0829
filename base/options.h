#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ngd {

// The values a numeric setting accepts (each element, for a list of numbers), checked when a spec is
// parsed: from `min` to `max`, an end absent = unbounded, an open end excluded. Declared with the
// helpers below, e.g. {"momentum", 0.9, "...", {}, below_one()}.
struct Range {
  std::optional<double> min;
  std::optional<double> max;
  bool min_open = false;
  bool max_open = false;

  bool contains(double value) const;
  bool bounded() const { return min.has_value() || max.has_value(); }
  std::string describe() const;  // "≥ 0", "> 0", "in [0, 1)"
};

inline Range at_least(double min) { return {min, std::nullopt, false, false}; }
inline Range above(double min) { return {min, std::nullopt, true, false}; }
// [0, 1): decays, momenta, dropout rates.
inline Range below_one() { return {0.0, 1.0, false, true}; }
// [0, 1]: fractions that may reach 1.
inline Range unit_interval() { return {0.0, 1.0, false, false}; }
// [min, max], both ends included.
inline Range between(double min, double max) { return {min, max, false, false}; }
// [min, FLT_MAX]: a factor that is applied in float32 (a learning-rate factor) must fit a float.
Range at_least_within_float(double min);

// One setting of an optimizer, model or schedule: its name, default and meaning. The default's JSON
// type is the setting's type (an integer default accepts integers only); `docs/` tables list these.
struct OptionInfo {
  std::string name;
  nlohmann::json default_value;
  std::string help;
  std::vector<std::string> choices = {};  // for string settings: the accepted values; empty = any
  Range range = {};                       // for numeric settings: the accepted values; unbounded = any
  // false for a setting added after results existed: at its default it stays out of a run's identity,
  // so those results keep their config hashes (see identity_options).
  bool identity_at_default = true;
  // For a null default ("absent"): the JSON type a given value must have besides null (an integer
  // type accepts integers only); discarded = any scalar.
  nlohmann::json::value_t null_default_type = nlohmann::json::value_t::discarded;
};

// Settings after validation, every declared name present (defaults filled in).
class Options {
 public:
  Options() = default;
  explicit Options(nlohmann::json values) : values_(std::move(values)) {}

  double number(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  bool flag(const std::string& name) const;
  std::string text(const std::string& name) const;
  std::vector<int64_t> integers(const std::string& name) const;
  std::vector<double> numbers(const std::string& name) const;
  const nlohmann::json& json() const { return values_; }

 private:
  const nlohmann::json& at(const std::string& name) const;
  nlohmann::json values_ = nlohmann::json::object();
};

// An example value of the setting's declared type: its default, or for a null default with a
// null_default_type a value of that type (what a tuning range draws).
nlohmann::json typed_default(const OptionInfo& info);

// Validates one value against its declaration; throws SpecError at `json_path`.
void check_option_value(const OptionInfo& info, const nlohmann::json& value, const std::string& json_path);

// `given` (an object of settings) with names and values from before the settings' vocabulary was
// unified (docs/optimizers.md#one-vocabulary: `t_cov` → `stat_interval`, `epsilon` → `eps`, `fisher:
// "true"` → `"sampled"`, −1 → null for "absent", ...) replaced by the current ones, printing one
// warning per old name and `json_path`.
// A name is translated only where `known` declares its current name and not the old one.
nlohmann::json with_current_names(const nlohmann::json& given, const std::vector<OptionInfo>& known,
                                  const std::string& json_path);

// A registry entry's current name for `name` (an optimizer renamed: `psgd` → `dldr-psgd`, `pbfgs` →
// `dldr-pbfgs`), printing one warning naming `json_path`; other names are returned as given.
std::string with_current_entry_name(const std::string& name, const std::string& json_path);

// `resolved` (resolve_options' output) without the settings that `known` declares
// identity_at_default = false while they hold their default: what a run's identity records.
nlohmann::json identity_options(const nlohmann::json& resolved, const std::vector<OptionInfo>& known);

// Validates `given` (an object) against `known` and returns it with defaults filled in (old names
// accepted through with_current_names). `owner` names
// what the settings belong to in messages ("optimizer 'sgd'"). Unknown names list the valid ones.
nlohmann::json resolve_options(const nlohmann::json& given, const std::vector<OptionInfo>& known,
                               const std::string& owner, const std::string& json_path);

// "a, b, c": the names of a registry table, for error messages and `ngdbench list`.
template <class Entry>
std::string join_names(const std::vector<Entry>& table) {
  std::string names;
  for (const auto& entry : table) names += (names.empty() ? "" : ", ") + entry.name;
  return names;
}

// The entry called `name` in a registry table, or nullptr.
template <class Entry>
const Entry* find_entry(const std::vector<Entry>& table, const std::string& name) {
  for (const auto& entry : table) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

}  // namespace ngd
