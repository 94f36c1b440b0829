#pragma once

#include "optimizers/optimizer.h"

namespace ngd {

OptimizerEntry sgd_entry();

}  // namespace ngd
