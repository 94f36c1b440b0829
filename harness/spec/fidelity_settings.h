#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <vector>

#include "base/options.h"

namespace ngd {

// The fidelity probes' settings, part of a spec (the probes: harness/run/fidelity.h; docs/harness.md,
// "Fidelity probes").
struct FidelitySettings {
  int64_t every_steps = 0;  // 0: no probes
  double damping = 0;       // λ_p for optimizers without a damping of their own (Preconditioner::damping)
};

// The settings of a spec's "fidelity" block, with defaults.
std::vector<OptionInfo> fidelity_options();
// A run's settings: its resolved "fidelity" block (null: none), with `every_steps_override` (the CLI's
// --fidelity-every; 0 turns probes off) in place of the block's every_steps when given.
FidelitySettings fidelity_settings(const nlohmann::json& block, std::optional<int64_t> every_steps_override);

}  // namespace ngd
