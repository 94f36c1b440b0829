#include "harness/spec/fidelity_settings.h"

namespace ngd {
namespace {

// λ_p for optimizers without a damping of their own: ngd's, TENGraD's and FNGD's default, so that SGD
// and the rest are measured against the exact step those methods would take.
constexpr double kDefaultProbeDamping = 0.3;

}  // namespace

std::vector<OptionInfo> fidelity_options() {
  return {{"every_steps", 50, "steps between probes (the first step is probed)", {}, at_least(1)},
          {"damping", kDefaultProbeDamping,
           "λ_p of Δ* = (F + λ_p I)⁻¹ḡ for optimizers without their own damping (kfac, tengrad, fngd, ngd use theirs)",
           {},
           above(0)}};
}

FidelitySettings fidelity_settings(const nlohmann::json& block, std::optional<int64_t> every_steps_override) {
  FidelitySettings settings;
  settings.damping = kDefaultProbeDamping;
  if (!block.is_null()) {
    settings.every_steps = block.at("every_steps").get<int64_t>();
    settings.damping = block.at("damping").get<double>();
  }
  if (every_steps_override) settings.every_steps = *every_steps_override;
  return settings;
}

}  // namespace ngd
