#include "harness/spec/compression_settings.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/options.h"
#include "base/spec_error.h"
#include "models/lowrank/rank_selection.h"
#include "models/lowrank/spectral_measures.h"
#include "models/lowrank/tensorized_layers.h"
#include "optimizers/optimizer.h"

namespace ngd {
namespace {

const std::vector<std::string> kModes = {"pre_train", "compression_aware"};

template <class Entry>
std::vector<std::string> names_of(const std::vector<Entry>& table) {
  std::vector<std::string> names;
  for (const auto& entry : table) names.push_back(entry.name);
  return names;
}

// The decompositions a trained layer can be replaced by: every registered format but "dense".
std::vector<std::string> decomposition_formats() {
  auto names = names_of(low_rank_format_registry());
  names.erase(std::remove(names.begin(), names.end(), "dense"), names.end());
  return names;
}

std::vector<OptionInfo> top_level_options() {
  return {{"mode", "pre_train", "pre_train: decompose the trained dense model; compression_aware: also penalise a "
                                "spectral measure during training", kModes},
          {"format", "matrix", "the decomposition of each compressible layer", decomposition_formats()},
          {"rank_rule", nlohmann::json::object(), "how each layer's rank is chosen"},
          {"regularizer", nullptr, "compression_aware: the penalised measure and its weight"},
          {"fine_tune", nlohmann::json::object(), "training of the compressed model"},
          {"pipeline", nlohmann::json::object(), "pruning, quantization and coding after fine-tuning"}};
}

std::vector<OptionInfo> rank_rule_options() {
  return {{"kind", "energy", "the rank rule", names_of(rank_rule_registry())},
          {"value", 0.99,
           "ratio: fraction of full rank; energy: kept share of Σσ²; budget: compressed/dense matrix-format weights; "
           "effective_rank: the multiplier c of r = round(c · erank)",
           {},
           above(0)}};
}

std::vector<OptionInfo> regularizer_options() {
  return {{"measure", "effective_rank", "the measure of each layer's singular values", names_of(spectral_measure_registry())},
          {"weight", 0.0, "λ of loss + λ·Σ_layers measure(σ(W_l))", {}, above(0)},
          {"during_fine_tune", false, "whether the penalty stays in the loss while fine-tuning (SVD training "
                                      "fine-tunes without it)"}};
}

std::vector<OptionInfo> fine_tune_options() {
  return {{"epochs", 0, "epochs of training after compression (0: none)", {}, at_least(0)},
          {"optimizer", "sgd", "any registered optimizer", names_of(optimizer_registry())},
          {"hparams", nlohmann::json::object(), "its settings (fixed values; defaults filled in)"}};
}

std::vector<OptionInfo> pipeline_options() {
  return {{"prune_fraction", 0.0, "share of each compressed weight's entries set to zero, smallest magnitudes first",
           {}, below_one()},
          {"quantize_bits", 0, "per-channel symmetric quantization (0: float32)", {}, {}},
          {"entropy_coding", false, "code the quantized symbols (needs quantize_bits)"}};
}

// The kinds whose value is a fraction of the dense model (of its rank, energy or parameters).
bool value_is_fraction(const std::string& kind) { return kind != "effective_rank"; }

nlohmann::json resolved_object(const nlohmann::json& given, const std::vector<OptionInfo>& known,
                               const std::string& owner, const std::string& path) {
  if (!given.is_object()) throw SpecError(path, "expected an object, got " + shown(given));
  return resolve_options(given, known, owner, path);
}

}  // namespace

nlohmann::json resolve_compression(const nlohmann::json& block, const std::string& path) {
  auto resolved = resolved_object(block, top_level_options(), "compression", path);
  resolved["rank_rule"] = resolved_object(resolved["rank_rule"], rank_rule_options(), "compression.rank_rule",
                                          path + ".rank_rule");
  const auto kind = resolved["rank_rule"]["kind"].get<std::string>();
  if (value_is_fraction(kind) && resolved["rank_rule"]["value"].get<double>() > 1) {
    throw SpecError(path + ".rank_rule.value", fmt::format("a {} rule's value is a fraction in (0, 1], got {}", kind,
                                                           resolved["rank_rule"]["value"].dump()));
  }
  const bool aware = resolved["mode"] == "compression_aware";
  if (aware != !resolved["regularizer"].is_null()) {
    throw SpecError(path + ".regularizer", aware ? "compression_aware training needs a regularizer {measure, weight}"
                                                 : "only compression_aware training has a regularizer");
  }
  if (aware) {
    if (resolved["regularizer"].is_object() && !resolved["regularizer"].contains("weight")) {
      throw SpecError(path + ".regularizer.weight", "missing required key (λ differs by orders of magnitude "
                                                    "between measures: no default)");
    }
    resolved["regularizer"] = resolved_object(resolved["regularizer"], regularizer_options(), "compression.regularizer",
                                              path + ".regularizer");
  }
  auto fine_tune = resolved_object(resolved["fine_tune"], fine_tune_options(), "compression.fine_tune",
                                   path + ".fine_tune");
  const auto* optimizer = find_entry(optimizer_registry(), fine_tune["optimizer"].get<std::string>());
  fine_tune["hparams"] = resolved_object(fine_tune["hparams"], optimizer->hyperparameters,
                                         "optimizer '" + optimizer->name + "'", path + ".fine_tune.hparams");
  resolved["fine_tune"] = std::move(fine_tune);
  auto pipeline = resolved_object(resolved["pipeline"], pipeline_options(), "compression.pipeline", path + ".pipeline");
  const auto bits = pipeline["quantize_bits"].get<int64_t>();
  if (bits != 0 && bits != 4 && bits != 6 && bits != 8) {
    throw SpecError(path + ".pipeline.quantize_bits", fmt::format("expected 0, 4, 6 or 8, got {}", bits));
  }
  if (pipeline["entropy_coding"].get<bool>() && bits == 0) {
    throw SpecError(path + ".pipeline.entropy_coding", "coding needs quantized symbols (set quantize_bits)");
  }
  resolved["pipeline"] = std::move(pipeline);
  return resolved;
}

CompressionSettings compression_settings(const nlohmann::json& resolved) {
  CompressionSettings settings;
  settings.mode = resolved.at("mode").get<std::string>();
  settings.format = resolved.at("format").get<std::string>();
  settings.rank_rule_kind = resolved.at("rank_rule").at("kind").get<std::string>();
  settings.rank_rule_value = resolved.at("rank_rule").at("value").get<double>();
  if (const auto& regularizer = resolved.at("regularizer"); !regularizer.is_null()) {
    settings.measure = regularizer.at("measure").get<std::string>();
    settings.regularizer_weight = regularizer.at("weight").get<double>();
    settings.penalty_during_fine_tune = regularizer.at("during_fine_tune").get<bool>();
  }
  const auto& fine_tune = resolved.at("fine_tune");
  settings.fine_tune_epochs = fine_tune.at("epochs").get<int64_t>();
  settings.fine_tune_optimizer = fine_tune.at("optimizer").get<std::string>();
  settings.fine_tune_hparams = fine_tune.at("hparams");
  const auto& pipeline = resolved.at("pipeline");
  settings.prune_fraction = pipeline.at("prune_fraction").get<double>();
  settings.quantize_bits = pipeline.at("quantize_bits").get<int64_t>();
  settings.entropy_coding = pipeline.at("entropy_coding").get<bool>();
  return settings;
}

nlohmann::json training_part(const nlohmann::json& resolved) {
  auto regularizer = resolved.at("regularizer");
  if (regularizer.is_object()) regularizer.erase("during_fine_tune");
  return {{"mode", resolved.at("mode")}, {"regularizer", std::move(regularizer)}};
}

}  // namespace ngd
