#include "harness/results/aggregate.h"

namespace ngd {

double measure_or_unreached(const nlohmann::json& result, const std::string& measure) {
  if (result.value("status", "") != "completed") return kUnreached;
  const auto it = result.find(measure);
  return it == result.end() || it->is_null() ? kUnreached : it->get<double>();
}

}  // namespace ngd
