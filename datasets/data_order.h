#pragma once

#include <string>
#include <vector>

namespace ngd {

// The order in which each epoch visits the training data (a spec's "data_order"). Methods that keep
// per-sample state across epochs (FNGD's coefficients) depend on it: under kFixed the first epoch's
// batches recur unchanged.
enum class DataOrder {
  kReshuffle,  // a fresh seeded shuffle every epoch (the default)
  kFixed,      // the first epoch's seeded shuffle, every epoch
  kNone,       // the dataset's own order, never shuffled
};

// "reshuffle", "fixed", "none", in DataOrder's order.
const std::vector<std::string>& data_order_names();
// Throws std::invalid_argument naming the choices.
DataOrder parse_data_order(const std::string& name);
const std::string& data_order_name(DataOrder order);

}  // namespace ngd
