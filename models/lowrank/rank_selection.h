#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "models/lowrank/layer_shape.h"

namespace ngd {

// How ranks are chosen from trained layers' singular values (each 1-D, descending, ≥ 0):
//   ratio           r = ⌈value × full rank⌉ (value in (0, 1])
//   energy          the smallest r with Σ_{i<r} σ_i² ≥ value × Σ σ_i² (value in (0, 1])
//   effective_rank  r = round(value × exp H(σ/‖σ‖_1)) (value a multiplier c > 0: the survey seed's ⌈c·erank⌉
//                   swept to hit parameter budgets, rounded as erank itself is)
//   budget          one global threshold τ, r_l = #{σ_{l,i} ≥ τ} (at least 1), the smallest τ whose matrix-
//                   format weights Σ_l min(r_l(fan_in_l + out_l), fan_in_l·out_l) are ≤ value × Σ_l fan_in_l·out_l
// Every rank is in [1, full rank].
struct RankRule {
  std::string kind;
  double value = 0.0;
};

struct RankRuleKind {
  std::string name;
  std::string summary;
  // The ranks of all layers at once (budget couples them); the vectors are parallel.
  std::function<std::vector<int64_t>(const std::vector<torch::Tensor>& singular_values,
                                     const std::vector<LayerShape>& shapes, double value)>
      select;
};

const std::vector<RankRuleKind>& rank_rule_registry();
// Throws std::invalid_argument listing the kinds.
const RankRuleKind& rank_rule_kind(const std::string& name);

// Throws std::invalid_argument on an unknown kind, a value out of range or vectors of different lengths.
std::vector<int64_t> select_ranks(const std::vector<torch::Tensor>& layer_singular_values,
                                  const std::vector<LayerShape>& shapes, const RankRule& rule);

}  // namespace ngd
