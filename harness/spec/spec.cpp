#include "harness/spec/spec.h"

#include <fmt/format.h>

#include <map>

#include "base/device.h"
#include "base/spec_error.h"
#include "base/stable_hash.h"
#include "harness/spec/compression_settings.h"
#include "harness/spec/fidelity_settings.h"
#include "harness/spec/schedule.h"
#include "harness/spec/spec_input.h"
#include "harness/spec/tuning.h"
#include "harness/spec/workload_entry.h"
#include "optimizers/optimizer.h"

namespace ngd {
namespace {

// Every spec's top-level keys; a workload's own (batch_size, decoding) come from its entry.
const std::vector<std::string> kSharedTopLevelKeys = {"name", "description", "notes", "dataset", "model", "epochs",
                                                      "eval_batch_size", "seeds", "target", "optimizers", "scales",
                                                      "device", "fidelity", "data_order", "checkpoint"};

// The top-level keys a spec may have: every spec's and each workload's own.
std::vector<std::string> top_level_keys() {
  auto keys = kSharedTopLevelKeys;
  for (const auto& workload : workload_registry()) {
    for (const auto& key : workload.spec_keys) {
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    }
  }
  return keys;
}

// Refuses the top-level keys of other workloads that `workload` does not read.
void check_workload_keys(const nlohmann::json& spec, const WorkloadEntry& workload) {
  const auto& own = workload.spec_keys;
  for (const auto& other : workload_registry()) {
    for (const auto& key : other.spec_keys) {
      if (spec.contains(key) && std::find(own.begin(), own.end(), key) == own.end()) {
        throw SpecError(key, fmt::format("{} runs take no \"{}\" (a key of {} runs)", workload.name, key, other.name));
      }
    }
  }
}

void check_keys(const nlohmann::json& object, const std::vector<std::string>& valid, const std::string& path) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(valid.begin(), valid.end(), key) == valid.end()) {
      throw SpecError(path.empty() ? key : path + "." + key,
                      fmt::format("unknown key (valid: {})", fmt::join(valid, ", ")));
    }
  }
}

nlohmann::json require_object(const nlohmann::json& object, const std::string& key, const std::string& path) {
  const auto& value = require(object, key, path);
  if (!value.is_object()) {
    throw SpecError(path.empty() ? key : path + "." + key, "expected an object, got " + shown(value));
  }
  return value;
}

std::optional<int64_t> optional_positive_integer(const nlohmann::json& object, const std::string& key,
                                                 const std::string& path) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  return positive_integer(*it, path + "." + key);
}

std::string text(const nlohmann::json& value, const std::string& path) {
  if (!value.is_string()) throw SpecError(path, "expected a string, got " + shown(value));
  return value.get<std::string>();
}

template <class Entry>
const Entry& named_entry(const std::vector<Entry>& table, const nlohmann::json& object, const std::string& path,
                         const char* what) {
  const auto name = with_current_entry_name(text(require(object, "name", path), path + ".name"), path + ".name");
  const auto* entry = find_entry(table, name);
  if (entry == nullptr) {
    throw SpecError(path + ".name", fmt::format("unknown {} \"{}\" (valid: {})", what, abbreviated(name), join_names(table)));
  }
  return *entry;
}

DatasetRequest parse_dataset(const nlohmann::json& spec) {
  const auto dataset = require_object(spec, "dataset", "");
  const auto& entry = named_entry(dataset_registry(), dataset, "dataset", "dataset");
  const auto& workload = workload_entry(entry.workload);
  std::vector<std::string> valid_keys = {"name", "train_subset", "test_subset"};
  if (workload.carves_validation) valid_keys.push_back("validation_subset");
  for (const auto& option : entry.options) valid_keys.push_back(option.name);
  if (!workload.carves_validation && dataset.contains("validation_subset")) {
    throw SpecError("dataset.validation_subset", fmt::format("{} datasets keep {}", workload.name, workload.own_validation_split));
  }
  check_keys(dataset, valid_keys, "dataset");
  auto options = dataset;
  for (const auto* key : {"name", "train_subset", "test_subset", "validation_subset"}) options.erase(key);
  DatasetRequest request{entry.name, optional_positive_integer(dataset, "train_subset", "dataset"),
                         optional_positive_integer(dataset, "test_subset", "dataset"),
                         resolve_options(options, entry.options, "dataset '" + entry.name + "'", "dataset")};
  if (auto it = dataset.find("validation_subset"); it != dataset.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      throw SpecError("dataset.validation_subset", "expected a non-negative integer (0 = none), got " + it->dump());
    }
    request.validation_subset = it->get<int64_t>();
  }
  return request;
}

std::optional<Target> parse_target(const nlohmann::json& spec, const WorkloadEntry& workload) {
  auto it = spec.find("target");
  if (it == spec.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) throw SpecError("target", "expected an object or null, got " + shown(*it));
  check_keys(*it, {"metric", "value", "check_every_steps"}, "target");
  Target target;
  target.metric = text(require(*it, "metric", "target"), "target.metric");
  const auto& metrics = workload.target_metrics;
  if (std::find(metrics.begin(), metrics.end(), target.metric) == metrics.end()) {
    throw SpecError("target.metric", fmt::format("unknown metric \"{}\" for {} runs (valid: {})", abbreviated(target.metric),
                                                 workload.name, fmt::join(metrics, ", ")));
  }
  const auto& value = require(*it, "value", "target");
  if (!value.is_number()) throw SpecError("target.value", "expected a number, got " + shown(value));
  target.value = value.get<double>();
  if (const auto every = optional_positive_integer(*it, "check_every_steps", "target")) {
    if (workload.in_epoch_target_metric.empty() || target.metric != workload.in_epoch_target_metric) {
      throw SpecError("target.check_every_steps",
                      workload.in_epoch_target_metric.empty()
                          ? fmt::format("{} runs check targets at epoch ends only", workload.name)
                          : fmt::format("only the {} workload's {} target is checked inside epochs (other metrics "
                                        "are measured at epoch ends)",
                                        workload.name, workload.in_epoch_target_metric));
    }
    target.check_every_steps = *every;
  }
  return target;
}

// Refuses a grid that would expand beyond kMaxExpandedRuns runs, before expanding it.
void check_run_count(size_t runs, const std::string& path) {
  if (runs > kMaxExpandedRuns) {
    throw SpecError(path, fmt::format("the spec expands to more than {} runs (kMaxExpandedRuns); split it", kMaxExpandedRuns));
  }
}

// The grid points of one optimizer's "hparams": a list value is an axis (a list of lists for a
// list-typed setting), everything else a fixed value. Returns (resolved hparams, axis values) pairs.
std::vector<std::pair<nlohmann::json, nlohmann::json>> expand_hparams(const OptimizerEntry& entry,
                                                                     const nlohmann::json& hparams,
                                                                     const std::string& path) {
  if (!hparams.is_object()) throw SpecError(path, "expected an object, got " + shown(hparams));
  std::vector<std::pair<nlohmann::json, nlohmann::json>> points = {{nlohmann::json::object(), nlohmann::json::object()}};
  const auto current = with_current_names(hparams, entry.hyperparameters, path);
  for (const auto& [name, value] : current.items()) {
    const auto* info = find_entry(entry.hyperparameters, name);
    if (info == nullptr) {
      throw SpecError(path + "." + name, fmt::format("unknown hyperparameter for optimizer '{}' (valid: {})",
                                                     entry.name, join_names(entry.hyperparameters)));
    }
    const bool is_axis = value.is_array() && (!info->default_value.is_array() || (!value.empty() && value[0].is_array()));
    if (is_axis && value.empty()) throw SpecError(path + "." + name, "an empty list leaves no grid point");
    const auto axis = is_axis ? value : nlohmann::json::array({value});
    check_run_count(points.size() * axis.size(), path + "." + name);
    std::vector<std::pair<nlohmann::json, nlohmann::json>> expanded;
    for (const auto& point : points) {
      for (size_t i = 0; i < axis.size(); ++i) {
        check_option_value(*info, axis[i], is_axis ? fmt::format("{}.{}[{}]", path, name, i) : path + "." + name);
        auto next = point;
        next.first[name] = axis[i];
        if (is_axis) next.second[name] = axis[i];
        expanded.push_back(std::move(next));
      }
    }
    points = std::move(expanded);
  }
  for (auto& point : points) {
    point.first = resolve_options(point.first, entry.hyperparameters, "optimizer '" + entry.name + "'", path);
  }
  return points;
}

// The document with the chosen scale's merge patch applied (and "scales" removed).
nlohmann::json apply_scale(const nlohmann::json& document, const std::string& scale) {
  if (!document.is_object()) throw SpecError("$", "a spec is a JSON object");
  auto it = document.find("scales");
  if (it == document.end()) return document;
  if (!it->is_object() || it->empty()) throw SpecError("scales", "expected an object of named merge patches");
  for (const auto& [name, patch] : it->items()) {
    if (const auto problem = folder_name_problem(name)) throw SpecError("scales." + name, "a scale name " + *problem);
    if (!patch.is_object()) throw SpecError("scales." + name, "expected an object (a JSON merge patch)");
    if (patch.contains("scales") || patch.contains("name")) {
      throw SpecError("scales." + name, "a scale may not change \"name\" or \"scales\"");
    }
  }
  auto scaled = document;
  scaled.erase("scales");
  if (scale.empty()) return scaled;
  auto patch = it->find(scale);
  if (patch == it->end()) {
    std::vector<std::string> names;
    for (const auto& [name, value] : it->items()) names.push_back(name);
    throw SpecError("scales", fmt::format("no scale \"{}\" (valid: {})", abbreviated(scale), fmt::join(names, ", ")));
  }
  scaled.merge_patch(*patch);
  return scaled;
}

// Refuses two configurations that are the same run (one result file, counted twice in summaries).
void check_distinct(const std::vector<RunConfig>& configurations, const std::vector<std::string>& paths) {
  std::map<std::string, size_t> first;  // identity → index of its first configuration
  for (size_t i = 0; i < configurations.size(); ++i) {
    const auto [it, inserted] = first.emplace(configurations[i].identity().dump(), i);
    if (!inserted) {
      throw SpecError(paths[i], fmt::format("\"{}\" repeats the configuration of {} (the same runs twice)",
                                            configurations[i].label(), paths[it->second]));
    }
  }
}

// The spec's own fields: name (its results folder), description, device, checkpoints and notes.
void parse_spec_header(const nlohmann::json& spec, Spec& result) {
  result.name = text(require(spec, "name", ""), "name");
  if (const auto problem = folder_name_problem(result.name)) {
    throw SpecError("name", *problem + " (the name is the results folder OUT/<name>)");
  }
  if (auto it = spec.find("description"); it != spec.end()) result.description = text(*it, "description");
  if (auto it = spec.find("device"); it != spec.end()) {
    result.device = text(*it, "device");
    try {
      check_device_name(result.device);
    } catch (const std::runtime_error& error) {
      throw SpecError("device", error.what());
    }
  }
  if (auto it = spec.find("checkpoint"); it != spec.end() && !it->is_null()) {
    result.checkpoint = checkpoint_settings(resolve_options(*it, checkpoint_options(), "checkpoint", "checkpoint"));
  }
  if (auto it = spec.find("notes"); it != spec.end()) {
    const bool list_of_strings =
        it->is_array() && std::all_of(it->begin(), it->end(), [](const nlohmann::json& line) { return line.is_string(); });
    if (!it->is_string() && !list_of_strings) throw SpecError("notes", "expected a string or a list of strings");
  }
}

// The spec's model: one of the dataset's workload, its settings resolved.
void parse_model(const nlohmann::json& spec, RunConfig& base) {
  const auto model = require_object(spec, "model", "");
  const auto& model_entry = named_entry(model_registry(), model, "model", "model");
  if (model_entry.workload != base.workload) {
    std::vector<std::string> fitting;
    for (const auto& entry : model_registry()) {
      if (entry.workload == base.workload) fitting.push_back(entry.name);
    }
    throw SpecError("model.name", fmt::format("model '{}' does not fit dataset '{}' ({} workload) (valid: {})",
                                              model_entry.name, base.dataset.name, base.workload,
                                              fmt::join(fitting, ", ")));
  }
  auto model_options = model;
  model_options.erase("name");
  base.model = model_entry.name;
  base.model_options = resolve_options(model_options, model_entry.options, "model '" + model_entry.name + "'", "model");
}

// The settings every run of the spec shares (dataset, model, epochs, batching, target, probes): a
// RunConfig without optimizer, settings and seed.
RunConfig parse_shared_config(const nlohmann::json& spec, const std::string& scale) {
  RunConfig base;
  base.experiment = text(spec["name"], "name");
  base.scale = scale;
  base.dataset = parse_dataset(spec);
  base.workload = find_entry(dataset_registry(), base.dataset.name)->workload;
  const auto& workload = workload_entry(base.workload);
  parse_model(spec, base);
  base.epochs = positive_integer(require(spec, "epochs", ""), "epochs");
  check_workload_keys(spec, workload);
  workload.parse_settings(spec, base);
  base.eval_batch_size = spec.contains("eval_batch_size") ? positive_integer(spec["eval_batch_size"], "eval_batch_size")
                                                          : workload.default_eval_batch_size;
  if (auto it = spec.find("data_order"); it != spec.end()) {
    try {
      base.data_order = parse_data_order(text(*it, "data_order"));
    } catch (const std::invalid_argument& error) {
      throw SpecError("data_order", error.what());
    }
  }
  base.target = parse_target(spec, workload);
  if (base.target && base.dataset.validation_subset == 0 && base.target->metric.rfind("val_", 0) == 0) {
    throw SpecError("target.metric", "a validation target needs a validation set (dataset.validation_subset is 0)");
  }
  if (spec.contains("fidelity") && !spec["fidelity"].is_null()) {
    base.fidelity = resolve_options(spec["fidelity"], fidelity_options(), "fidelity", "fidelity");
  }
  return base;
}

// The seeds: a non-empty list of distinct non-negative integers (one study each under tuning).
std::vector<int64_t> parse_seeds(const nlohmann::json& spec) {
  const auto& seeds = require(spec, "seeds", "");
  if (!seeds.is_array() || seeds.empty()) throw SpecError("seeds", "expected a non-empty list of integers");
  std::vector<int64_t> seed_values;
  for (size_t i = 0; i < seeds.size(); ++i) {
    if (!seeds[i].is_number_integer() || seeds[i].get<int64_t>() < 0) {
      throw SpecError(fmt::format("seeds[{}]", i), "expected a non-negative integer, got " + shown(seeds[i]));
    }
    if (std::find(seed_values.begin(), seed_values.end(), seeds[i].get<int64_t>()) != seed_values.end()) {
      throw SpecError(fmt::format("seeds[{}]", i), fmt::format("seed {} is listed twice", seeds[i].get<int64_t>()));
    }
    seed_values.push_back(seeds[i].get<int64_t>());
  }
  return seed_values;
}

// An entry's own model options ("model": overrides of the spec's, e.g. a pre-set low_rank_format and
// rank per entry) and its "compression" block; both enter the runs' identity only when given.
void parse_entry_model_and_compression(const nlohmann::json& optimizer, RunConfig& config, const std::string& path) {
  if (auto it = optimizer.find("model"); it != optimizer.end()) {
    if (!it->is_object()) throw SpecError(path + ".model", "expected an object of model options, got " + shown(*it));
    if (it->contains("name")) throw SpecError(path + ".model.name", "an entry may change the model's options, not the model");
    auto options = config.model_options;
    options.update(*it);
    config.model_options = resolve_options(options, find_entry(model_registry(), config.model)->options,
                                           "model '" + config.model + "'", path + ".model");
  }
  if (auto it = optimizer.find("compression"); it != optimizer.end()) {
    if (const auto& refusal = workload_entry(config.workload).compression_refusal; !refusal.empty()) {
      throw SpecError(path + ".compression", refusal);
    }
    if (!config.fidelity.is_null()) {
      throw SpecError(path + ".compression", "fidelity probes follow one optimizer on one model: not with compression");
    }
    config.compression = resolve_compression(*it, path + ".compression");
  }
}

// One optimizer entry: its configuration without settings, and its grid points or tuning plan.
struct EntryPlan {
  RunConfig base;
  std::vector<std::pair<nlohmann::json, nlohmann::json>> grid;  // (hparams, axis values); fixed hparams when tuned
  std::optional<TuningPlan> tuning;
};

EntryPlan parse_optimizer_entry(const nlohmann::json& optimizer, const RunConfig& base, size_t seed_count,
                                const std::string& path) {
  if (!optimizer.is_object()) throw SpecError(path, "expected an object, got " + shown(optimizer));
  check_keys(optimizer, {"name", "variant", "hparams", "schedule", "tuning", "model", "compression"}, path);
  const auto& entry = named_entry(optimizer_registry(), optimizer, path, "optimizer");
  EntryPlan plan{base, {}, std::nullopt};
  plan.base.optimizer = entry.name;
  if (auto it = optimizer.find("variant"); it != optimizer.end()) {
    plan.base.variant = text(*it, path + ".variant");
    if (plan.base.variant.empty() || plan.base.variant.find_first_of(" \t\n/") != std::string::npos) {
      throw SpecError(path + ".variant", "expected a name without spaces or slashes, got " + shown(*it));
    }
  }
  plan.base.schedule = optimizer.contains("schedule") ? resolve_schedule(optimizer["schedule"], path + ".schedule")
                                                      : resolve_schedule({{"name", "constant"}}, path + ".schedule");
  parse_entry_model_and_compression(optimizer, plan.base, path);
  const auto hparams = optimizer.contains("hparams") ? optimizer["hparams"] : nlohmann::json::object();
  plan.grid = expand_hparams(entry, hparams, path + ".hparams");
  if (optimizer.contains("tuning")) {
    plan.tuning = parse_tuning(optimizer["tuning"], entry.hyperparameters, static_cast<int64_t>(seed_count),
                               path + ".tuning");
    if (plan.grid.size() != 1) {
      throw SpecError(path + ".hparams", "with a tuning block, searched settings go in tuning.space (lists there)");
    }
    // Compared under the current names, so an old name in hparams cannot hide the clash.
    const auto fixed = with_current_names(hparams, entry.hyperparameters, path + ".hparams");
    for (const auto& dimension : plan.tuning->space) {
      if (fixed.is_object() && fixed.contains(dimension.name)) {
        throw SpecError(path + ".hparams." + dimension.name, "also searched in tuning.space: give it in one place");
      }
    }
  }
  return plan;
}

// Refuses a spec that trains the same configuration twice or expands beyond the run limit.
void check_expansion(const std::vector<EntryPlan>& plans, size_t seed_count) {
  std::vector<RunConfig> configurations;  // the untuned grid points (drawn trials differ by construction)
  std::vector<std::string> configuration_paths;
  size_t runs_per_seed = 0;
  for (size_t i = 0; i < plans.size(); ++i) {
    const auto path = fmt::format("optimizers[{}]", i);
    if (plans[i].tuning) {
      runs_per_seed += static_cast<size_t>(plans[i].tuning->trials);
    } else {
      for (const auto& [hparams, values] : plans[i].grid) {
        RunConfig config = plans[i].base;
        config.hparams = hparams;
        config.grid_values = values;
        configurations.push_back(std::move(config));
        configuration_paths.push_back(path);
      }
      runs_per_seed += plans[i].grid.size();
    }
    check_run_count(runs_per_seed * seed_count, path);
  }
  check_distinct(configurations, configuration_paths);
}

// Every run, seed-major: per seed (= study), each entry's grid points or its study's drawn trials.
std::vector<RunConfig> expand_runs(const std::vector<EntryPlan>& plans, const std::vector<int64_t>& seed_values) {
  std::vector<RunConfig> runs;
  for (size_t study = 0; study < seed_values.size(); ++study) {
    for (const auto& plan : plans) {
      auto add = [&](int64_t trial, nlohmann::json hparams, nlohmann::json values) {
        RunConfig config = plan.base;
        config.hparams = std::move(hparams);
        config.grid_values = std::move(values);
        config.seed = seed_values[study];
        config.study = static_cast<int64_t>(study);
        config.trial = trial;
        if (plan.tuning) config.tuning = plan.tuning->describe();
        runs.push_back(std::move(config));
      };
      if (!plan.tuning) {
        for (size_t point = 0; point < plan.grid.size(); ++point) {
          add(static_cast<int64_t>(point), plan.grid[point].first, plan.grid[point].second);
        }
      } else if (static_cast<int64_t>(study) < plan.tuning->studies) {
        const auto trials = plan.tuning->draw(static_cast<int64_t>(study));
        for (size_t trial = 0; trial < trials.size(); ++trial) {
          auto hparams = plan.grid.front().first;
          hparams.update(trials[trial]);
          add(static_cast<int64_t>(trial), std::move(hparams), trials[trial]);
        }
      }
    }
  }
  return runs;
}

Spec parse_spec_document(const nlohmann::json& document, const std::string& scale) {
  const auto spec = apply_scale(document, scale);
  check_keys(spec, top_level_keys(), "");
  Spec result;
  parse_spec_header(spec, result);
  result.scale = document.contains("scales") ? scale : "";
  const auto base = parse_shared_config(spec, result.scale);
  const auto seeds = parse_seeds(spec);
  const auto& optimizers = require(spec, "optimizers", "");
  if (!optimizers.is_array() || optimizers.empty()) throw SpecError("optimizers", "expected a non-empty list");
  std::vector<EntryPlan> plans;
  for (size_t i = 0; i < optimizers.size(); ++i) {
    plans.push_back(parse_optimizer_entry(optimizers[i], base, seeds.size(), fmt::format("optimizers[{}]", i)));
  }
  check_expansion(plans, seeds.size());
  result.runs = expand_runs(plans, seeds);
  return result;
}

}  // namespace

std::vector<OptionInfo> decoding_options() {
  return {{"method", "beam", "decoding for BLEU: beam search or greedy", {"beam", "greedy"}},
          {"beam_size", 4, "hypotheses kept per sentence (beam)", {}, at_least(1)},
          {"length_penalty", 0.6, "GNMT length penalty exponent α of lp(L) = ((5+L)/6)^α (beam)"},
          {"max_length_offset", 50, "outputs stop at the source's token count + this", {}, at_least(1)},
          {"bleu_every", 1, "epochs between validation BLEU evaluations (the last epoch always has one)", {},
           at_least(1)}};
}

nlohmann::json RunConfig::identity() const {
  const auto* model_entry = find_entry(model_registry(), model);
  auto identity = nlohmann::json{{"dataset", {{"name", dataset.name},
                       {"train_subset", dataset.train_subset ? nlohmann::json(*dataset.train_subset) : nlohmann::json()},
                       {"test_subset", dataset.test_subset ? nlohmann::json(*dataset.test_subset) : nlohmann::json()},
                       {"options", dataset.options}}},
          {"model", {{"name", model}, {"options", model_entry ? identity_options(model_options, model_entry->options) : model_options}}},
          {"epochs", epochs},
          {"batch_size", batch_size},
          {"eval_batch_size", eval_batch_size},
          {"optimizer", optimizer},
          {"hparams", hparams},
          {"schedule", schedule}};
  if (!decoding.is_null()) identity["decoding"] = decoding;
  if (!compression.is_null()) identity["compression"] = compression;
  // Only a non-default order enters the identity: runs from before the setting keep their hashes.
  if (data_order != DataOrder::kReshuffle) identity["data_order"] = data_order_name(data_order);
  // The size of a validation set carved from the training split (null = the default size).
  // (A workload outside the registry, as a test's, carves none.)
  if (const auto* entry = find_entry(workload_registry(), workload); entry != nullptr && entry->carves_validation) {
    identity["dataset"]["validation_subset"] =
        dataset.validation_subset ? nlohmann::json(*dataset.validation_subset) : nlohmann::json();
  }
  return identity;
}

std::string RunConfig::config_hash() const {
  return stable_hash(identity().dump());  // the canonical (key-sorted) dump
}

std::string RunConfig::run_id() const { return fmt::format("{}-{}-s{}", optimizer, config_hash(), seed); }

nlohmann::json RunConfig::training_identity() const {
  if (compression.is_null()) return nullptr;
  auto training = identity();
  training["compression"] = training_part(compression);
  return training;
}

std::string RunConfig::shared_training_id() const {
  if (compression.is_null()) return "";
  return fmt::format("{}-{}-s{}.trained", optimizer, stable_hash(training_identity().dump()), seed);
}

const std::string& RunConfig::variant_name() const { return variant.empty() ? optimizer : variant; }

std::string RunConfig::label() const {
  std::string label = variant_name();
  for (const auto& [name, value] : grid_values.items()) label += fmt::format(" {}={}", name, value.dump());
  return label;
}

Spec parse_spec(const nlohmann::json& document, const std::string& source, const std::string& scale) {
  Spec spec;
  try {
    spec = parse_spec_document(document, scale);
    spec.path = source;
  } catch (const SpecError& error) {
    throw std::runtime_error(source + ": " + error.what());
  }
  // Every scale must be valid, not only the one run today.
  if (auto scales = document.find("scales"); scales != document.end()) {
    for (const auto& [name, patch] : scales->items()) {
      try {
        parse_spec_document(document, name);
      } catch (const SpecError& error) {
        throw std::runtime_error(fmt::format("{}: at scale '{}': {}", source, abbreviated(name), error.what()));
      }
    }
  }
  return spec;
}

Spec parse_spec_text(const std::string& text, const std::string& source, const std::string& scale) {
  nlohmann::json document;
  try {
    document = parse_spec_json(text);
  } catch (const nlohmann::json::exception& error) {  // syntax errors, and numbers out of range
    throw std::runtime_error(fmt::format("{}: invalid JSON: {}", source, abbreviated(error.what())));
  } catch (const SpecError& error) {  // too large, too deep, a repeated key
    throw std::runtime_error(source + ": " + error.what());
  }
  return parse_spec(document, source, scale);
}

Spec load_spec(const std::string& path, const std::string& scale) {
  return parse_spec_text(read_spec_file(path), path, scale);
}

}  // namespace ngd
