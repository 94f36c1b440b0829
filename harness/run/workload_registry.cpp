#include <fmt/format.h>

#include <stdexcept>

#include "base/options.h"
#include "harness/run/image_workload.h"
#include "harness/run/translation_workload.h"
#include "harness/spec/workload_entry.h"

namespace ngd {

// Adding a workload: its Workload class and entry in one file under harness/run/, and one line here.
const std::vector<WorkloadEntry>& workload_registry() {
  static const std::vector<WorkloadEntry> table = {image_workload_entry(), translation_workload_entry()};
  return table;
}

const WorkloadEntry& workload_entry(const std::string& name) {
  const auto* entry = find_entry(workload_registry(), name);
  if (entry == nullptr) {
    throw std::runtime_error(fmt::format("unknown workload '{}' (valid: {})", name, join_names(workload_registry())));
  }
  return *entry;
}

}  // namespace ngd
