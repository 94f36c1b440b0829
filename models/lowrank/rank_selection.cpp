#include "models/lowrank/rank_selection.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "models/lowrank/spectral_measures.h"

namespace ngd {
namespace {

int64_t clamp_rank(int64_t rank, const LayerShape& shape) { return std::clamp<int64_t>(rank, 1, shape.full_rank()); }

std::vector<double> to_vector(const torch::Tensor& sigma) {
  const auto values = sigma.detach().to(torch::kCPU, torch::kDouble).contiguous();
  return {values.data_ptr<double>(), values.data_ptr<double>() + values.numel()};
}

std::vector<int64_t> by_ratio(const std::vector<torch::Tensor>&, const std::vector<LayerShape>& shapes, double value) {
  std::vector<int64_t> ranks;
  for (const auto& shape : shapes) {
    ranks.push_back(clamp_rank(static_cast<int64_t>(std::ceil(value * static_cast<double>(shape.full_rank()))), shape));
  }
  return ranks;
}

std::vector<int64_t> by_energy(const std::vector<torch::Tensor>& spectra, const std::vector<LayerShape>& shapes,
                               double value) {
  std::vector<int64_t> ranks;
  for (size_t l = 0; l < spectra.size(); ++l) {
    const auto sigma = to_vector(spectra[l]);
    double total = 0.0;
    for (const double s : sigma) total += s * s;
    double kept = 0.0;
    int64_t rank = 0;
    while (rank < static_cast<int64_t>(sigma.size()) && kept < value * total) {
      kept += sigma[rank] * sigma[rank];
      ++rank;
    }
    ranks.push_back(clamp_rank(rank, shapes[l]));
  }
  return ranks;
}

std::vector<int64_t> by_effective_rank(const std::vector<torch::Tensor>& spectra, const std::vector<LayerShape>& shapes,
                                       double multiplier) {
  const auto& measure = spectral_measure("effective_rank");
  std::vector<int64_t> ranks;
  for (size_t l = 0; l < spectra.size(); ++l) {
    const double erank = measure.value(spectra[l].detach().to(torch::kDouble)).item<double>();
    ranks.push_back(clamp_rank(std::llround(multiplier * erank), shapes[l]));
  }
  return ranks;
}

// A layer's matrix-format weights at rank r: it stays dense where factoring would not save weights.
int64_t matrix_weights(const LayerShape& shape, int64_t rank) {
  return std::min(rank * (shape.fan_in() + shape.out), shape.dense_weights());
}

std::vector<int64_t> by_budget(const std::vector<torch::Tensor>& spectra, const std::vector<LayerShape>& shapes,
                               double value) {
  double dense = 0.0;
  for (const auto& shape : shapes) dense += static_cast<double>(shape.dense_weights());
  const double budget = value * dense;
  std::vector<int64_t> ranks(shapes.size(), 1);
  double used = 0.0;
  for (const auto& shape : shapes) used += static_cast<double>(matrix_weights(shape, 1));
  if (used > budget) {
    throw std::invalid_argument(fmt::format("budget rank rule: {} × {} dense weights = {} is below the {} weights of "
                                            "rank 1 everywhere", value, dense, budget, used));
  }
  // Every singular value after each layer's first, largest first: lowering the threshold τ admits
  // them in this order; equal values enter together (one threshold cannot split them).
  struct Candidate {
    double sigma;
    size_t layer;
  };
  std::vector<Candidate> candidates;
  for (size_t l = 0; l < spectra.size(); ++l) {
    const auto sigma = to_vector(spectra[l]);
    for (size_t i = 1; i < sigma.size(); ++i) candidates.push_back({sigma[i], l});
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.sigma > b.sigma; });
  for (size_t start = 0; start < candidates.size();) {
    size_t end = start;
    auto grown = ranks;
    while (end < candidates.size() && candidates[end].sigma == candidates[start].sigma) ++grown[candidates[end++].layer];
    double cost = 0.0;
    for (size_t l = 0; l < shapes.size(); ++l) cost += static_cast<double>(matrix_weights(shapes[l], grown[l]));
    if (cost > budget) break;
    ranks = grown;
    start = end;
  }
  return ranks;
}

}  // namespace

const std::vector<RankRuleKind>& rank_rule_registry() {
  static const std::vector<RankRuleKind> table = {
      {"ratio", "r = ⌈value × full rank⌉", by_ratio},
      {"energy", "the smallest r keeping value × Σσ² (value in (0, 1])", by_energy},
      {"effective_rank", "r = round(value × exp H(σ/‖σ‖_1)), value a multiplier > 0", by_effective_rank},
      {"budget", "one global σ threshold keeping the matrix-format weights ≤ value × the dense weights", by_budget},
  };
  return table;
}

const RankRuleKind& rank_rule_kind(const std::string& name) {
  for (const auto& kind : rank_rule_registry()) {
    if (kind.name == name) return kind;
  }
  std::string names;
  for (const auto& kind : rank_rule_registry()) names += (names.empty() ? "" : ", ") + kind.name;
  throw std::invalid_argument(fmt::format("unknown rank rule '{}' (known: {})", name, names));
}

std::vector<int64_t> select_ranks(const std::vector<torch::Tensor>& layer_singular_values,
                                  const std::vector<LayerShape>& shapes, const RankRule& rule) {
  const auto& kind = rank_rule_kind(rule.kind);
  if (layer_singular_values.size() != shapes.size()) {
    throw std::invalid_argument(fmt::format("select_ranks: {} spectra for {} layer shapes", layer_singular_values.size(),
                                            shapes.size()));
  }
  for (size_t l = 0; l < shapes.size(); ++l) {
    if (layer_singular_values[l].dim() != 1 || layer_singular_values[l].numel() != shapes[l].full_rank()) {
      throw std::invalid_argument(fmt::format("select_ranks: layer {} has {} singular values, its full rank is {}", l,
                                              layer_singular_values[l].numel(), shapes[l].full_rank()));
    }
  }
  if (rule.kind == "effective_rank" ? !(rule.value > 0.0 && std::isfinite(rule.value))
                                    : !(rule.value > 0.0 && rule.value <= 1.0)) {
    throw std::invalid_argument(fmt::format("rank rule '{}': value {} outside {}", rule.kind, rule.value,
                                            rule.kind == "effective_rank" ? "(0, ∞)" : "(0, 1]"));
  }
  return kind.select(layer_singular_values, shapes, rule.value);
}

}  // namespace ngd
