#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "harness/spec/spec.h"

namespace ngd {

// What `ngdbench run` prints after a spec: per experiment how many runs completed, diverged and failed,
// and how many of them were trained now versus found finished in `out_dir` (`found_finished`: the runner's
// count), then where the comparison is. The runner does not compare optimizers: the comparison protocol
// (best trial per study, median over studies, per variant; docs/protocol.md) has one implementation,
// scripts/ngdreport/protocol.py, and the console points to `make tables OUT=out_dir`.
void print_summary(const Spec& spec, const std::vector<nlohmann::json>& results, size_t found_finished,
                   const std::string& out_dir, std::ostream& out);

}  // namespace ngd
