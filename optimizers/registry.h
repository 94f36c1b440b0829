#pragma once

#include <memory>
#include <string>

#include "optimizers/optimizer.h"

namespace ngd {

// The registered optimizer `name`'s settings: `hparams` over its defaults, checked as a spec's are
// (types, choices, ranges; SpecError naming the setting). An unknown name is an std::invalid_argument.
Options optimizer_options(const std::string& name, const nlohmann::json& hparams);

// The registered optimizer `name` on `model`, with optimizer_options(name, hparams): the one way the
// runner, the tests and the benchmarks build a plugin.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, CaptureModel& model, const nlohmann::json& hparams);

}  // namespace ngd
