#include "datasets/data_order.h"

#include <algorithm>
#include <stdexcept>

namespace ngd {

const std::vector<std::string>& data_order_names() {
  static const std::vector<std::string> names = {"reshuffle", "fixed", "none"};
  return names;
}

DataOrder parse_data_order(const std::string& name) {
  const auto& names = data_order_names();
  const auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) {
    throw std::invalid_argument("unknown data order \"" + name + "\" (choices: reshuffle, fixed, none)");
  }
  return static_cast<DataOrder>(it - names.begin());
}

const std::string& data_order_name(DataOrder order) { return data_order_names().at(static_cast<size_t>(order)); }

}  // namespace ngd
