#pragma once

#include <vector>

#include "optimizers/optimizer.h"

namespace ngd {

OptimizerEntry adamw_entry();

// The settings of Adam with decoupled weight decay ("lr", "beta1", "beta2", "eps", "weight_decay")
// with adamw's defaults: shared by adamw and nadamw.
std::vector<OptionInfo> adam_hyperparameters();

}  // namespace ngd
