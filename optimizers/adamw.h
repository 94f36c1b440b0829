#pragma once

#include "optimizers/optimizer.h"

namespace ngd {

OptimizerEntry adamw_entry();

}  // namespace ngd
