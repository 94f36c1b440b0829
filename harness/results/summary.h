#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <vector>

#include "harness/spec/spec.h"

namespace ngd {

// A table with one row per configuration (grid point): seeds, status, final test accuracy and train
// loss (median [min–max] over seeds), median epoch time and time to target.
void print_summary(const Spec& spec, const std::vector<nlohmann::json>& results, std::ostream& out);

}  // namespace ngd
