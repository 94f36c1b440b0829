#include "base/options.h"

#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <mutex>
#include <set>

#include "base/spec_error.h"

namespace ngd {
namespace {

const char* type_name(const nlohmann::json& value) {
  if (value.is_number_integer()) return "an integer";
  if (value.is_number()) return "a number";
  if (value.is_boolean()) return "true or false";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "a list";
  if (value.is_null()) return "null";
  return "an object";
}

bool same_type(const nlohmann::json& expected, const nlohmann::json& value) {
  if (expected.is_number_integer()) return value.is_number_integer();
  if (expected.is_number()) return value.is_number();
  if (expected.is_null()) return true;  // "no default": any scalar is accepted
  return expected.type() == value.type();
}

// A setting's value against its declared type: the default's, or for a null default null or the
// declared null_default_type.
bool declared_type(const OptionInfo& info, const nlohmann::json& value) {
  return (info.default_value.is_null() && value.is_null()) || same_type(typed_default(info), value);
}

// Settings renamed when the vocabulary was unified: old name → current name. Specs may use the old
// names for one more release (with a warning); docs/optimizers.md#one-vocabulary lists them.
struct RenamedSetting {
  const char* old_name;
  const char* name;
};
const RenamedSetting kRenamedSettings[] = {
    {"t_cov", "stat_interval"},         {"stats_interval", "stat_interval"},
    {"t_inv", "inverse_interval"},      {"freq", "inverse_interval"},
    {"precondition_frequency", "inverse_interval"},
    {"ema_decay", "stat_decay"},        {"metric_decay", "stat_decay"},
    {"shampoo_beta", "stat_decay"},
    {"epsilon", "eps"},                 {"grafting_epsilon", "grafting_eps"},
};
// Values renamed: a setting's old value → current value (snake_case choices, null for "absent").
struct RenamedValue {
  const char* setting;
  nlohmann::json old_value;
  nlohmann::json value;
};
const RenamedValue kRenamedValues[] = {
    {"fisher", "true", "sampled"},
    {"root_method", "denman-beavers", "denman_beavers"},
    {"root_method", "newton-schulz", "newton_schulz"},
    {"start_preconditioning_step", -1, nullptr},
    {"stat_decay", -1, nullptr},  // soap's "beta2"; a null target only where the setting's default is null
    {"optimizer", "psgd", "dldr-psgd"},  // a compression block's fine-tuning optimizer
    {"optimizer", "pbfgs", "dldr-pbfgs"},
};
// Registry entries renamed (optimizers), old name → current name.
const RenamedSetting kRenamedEntries[] = {
    {"psgd", "dldr-psgd"},
    {"pbfgs", "dldr-pbfgs"},
};

// Prints `message` once per process (a spec's settings are resolved once per expanded run).
void warn_once(const std::string& message) {
  static std::mutex mutex;
  static std::set<std::string> printed;
  const std::lock_guard<std::mutex> lock(mutex);
  if (printed.insert(message).second) std::cerr << "warning: " << message << "\n";
}

// `value` (or each item of a list, a grid axis) with `renamed`'s old value replaced.
nlohmann::json with_current_value(nlohmann::json value, const RenamedValue& renamed, const std::string& json_path) {
  auto translate = [&](nlohmann::json& item) {
    if (item == renamed.old_value) {
      warn_once(fmt::format("{}: {} is the old name of {}; accepted until the next release", json_path,
                            renamed.old_value.dump(), renamed.value.dump()));
      item = renamed.value;
    }
  };
  if (value.is_array()) {
    for (auto& item : value) translate(item);
  } else {
    translate(value);
  }
  return value;
}

}  // namespace

nlohmann::json with_current_names(const nlohmann::json& given, const std::vector<OptionInfo>& known,
                                  const std::string& json_path) {
  if (!given.is_object()) return given;
  nlohmann::json current = nlohmann::json::object();
  for (const auto& [given_name, value] : given.items()) {
    std::string name = given_name;
    for (const auto& renamed : kRenamedSettings) {
      if (name == renamed.old_name && find_entry(known, name) == nullptr && find_entry(known, renamed.name) != nullptr) {
        if (given.contains(renamed.name)) {
          throw SpecError(json_path + "." + name, fmt::format("both \"{}\" and its old name \"{}\" are set; keep \"{}\"",
                                                              renamed.name, name, renamed.name));
        }
        warn_once(fmt::format("{}.{}: \"{}\" is the old name of \"{}\"; accepted until the next release", json_path,
                              name, name, renamed.name));
        name = renamed.name;
      }
    }
    current[name] = value;
    for (const auto& renamed : kRenamedValues) {
      const auto* declared = find_entry(known, name);
      if (name == renamed.setting && declared != nullptr &&
          (!renamed.value.is_null() || declared->default_value.is_null())) {
        current[name] = with_current_value(current[name], renamed, json_path + "." + name);
      }
    }
  }
  return current;
}

std::string with_current_entry_name(const std::string& name, const std::string& json_path) {
  for (const auto& renamed : kRenamedEntries) {
    if (name == renamed.old_name) {
      warn_once(fmt::format("{}: \"{}\" is the old name of \"{}\"; accepted until the next release", json_path,
                            name, renamed.name));
      return renamed.name;
    }
  }
  return name;
}

Range at_least_within_float(double min) { return between(min, static_cast<double>(std::numeric_limits<float>::max())); }

bool Range::contains(double value) const {
  if (std::isnan(value)) return !bounded();
  if (min && (min_open ? value <= *min : value < *min)) return false;
  if (max && (max_open ? value >= *max : value > *max)) return false;
  return true;
}

std::string Range::describe() const {
  if (min && max) return fmt::format("in {}{}, {}{}", min_open ? "(" : "[", *min, *max, max_open ? ")" : "]");
  if (min) return fmt::format("{} {}", min_open ? ">" : "≥", *min);
  if (max) return fmt::format("{} {}", max_open ? "<" : "≤", *max);
  return "any number";
}

const nlohmann::json& Options::at(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw std::logic_error("option '" + name + "' was not declared");
  return *it;
}

double Options::number(const std::string& name) const { return at(name).get<double>(); }
int64_t Options::integer(const std::string& name) const { return at(name).get<int64_t>(); }
bool Options::flag(const std::string& name) const { return at(name).get<bool>(); }
std::string Options::text(const std::string& name) const { return at(name).get<std::string>(); }
std::vector<int64_t> Options::integers(const std::string& name) const {
  return at(name).get<std::vector<int64_t>>();
}
std::vector<double> Options::numbers(const std::string& name) const {
  return at(name).get<std::vector<double>>();
}

nlohmann::json typed_default(const OptionInfo& info) {
  if (!info.default_value.is_null() || info.null_default_type == nlohmann::json::value_t::discarded) {
    return info.default_value;
  }
  return nlohmann::json(info.null_default_type);  // 0, 0.0, "", false, [] or {} of that type
}

void check_option_value(const OptionInfo& info, const nlohmann::json& value, const std::string& json_path) {
  if (!declared_type(info, value)) {
    const auto expected = info.default_value.is_null()
                              ? fmt::format("null or {}", type_name(typed_default(info)))
                              : std::string(type_name(info.default_value));
    throw SpecError(json_path, fmt::format("expected {}, got {}", expected, shown(value)));
  }
  if (info.default_value.is_array() && !info.default_value.empty()) {
    const auto& element = info.default_value.front();
    for (size_t i = 0; i < value.size(); ++i) {
      if (!same_type(element, value[i])) {
        throw SpecError(fmt::format("{}[{}]", json_path, i),
                        fmt::format("expected {}, got {}", type_name(element), shown(value[i])));
      }
    }
  }
  if (info.range.bounded()) {
    const auto check = [&info](const nlohmann::json& number, const std::string& path) {
      if (number.is_number() && !info.range.contains(number.get<double>())) {
        throw SpecError(path, fmt::format("expected a value {}, got {}", info.range.describe(), shown(number)));
      }
    };
    if (value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) check(value[i], fmt::format("{}[{}]", json_path, i));
    } else {
      check(value, json_path);
    }
  }
  if (!info.choices.empty() && !value.is_null()) {
    const auto text = value.get<std::string>();
    if (std::find(info.choices.begin(), info.choices.end(), text) == info.choices.end()) {
      throw SpecError(json_path, fmt::format("unknown value \"{}\" (valid: {})", abbreviated(text), fmt::join(info.choices, ", ")));
    }
  }
}

nlohmann::json identity_options(const nlohmann::json& resolved, const std::vector<OptionInfo>& known) {
  auto identity = resolved;
  for (const auto& info : known) {
    const auto it = identity.find(info.name);
    if (!info.identity_at_default && it != identity.end() && *it == info.default_value) identity.erase(it);
  }
  return identity;
}

nlohmann::json resolve_options(const nlohmann::json& given, const std::vector<OptionInfo>& known,
                               const std::string& owner, const std::string& json_path) {
  if (!given.is_object()) throw SpecError(json_path, "expected an object, got " + shown(given));
  nlohmann::json resolved = nlohmann::json::object();
  for (const auto& info : known) resolved[info.name] = info.default_value;
  const auto current = with_current_names(given, known, json_path);
  for (const auto& [name, value] : current.items()) {
    const auto* info = find_entry(known, name);
    if (info == nullptr) {
      throw SpecError(json_path + "." + name,
                      fmt::format("unknown setting for {} (valid: {})", owner, join_names(known)));
    }
    check_option_value(*info, value, json_path + "." + name);
    resolved[name] = value;
  }
  return resolved;
}

}  // namespace ngd
