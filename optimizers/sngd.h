#pragma once

#include "optimizers/optimizer.h"

namespace ngd {

// SNGD as reconstructed from the paper's abstract (Liu et al., arXiv 2412.07441): NGD as gradient
// descent on a network whose layers are rescaled by the square roots of their Kronecker-factored local
// Fisher matrices, computed by Denman–Beavers iteration. docs/optimizers.md#sngd gives the derivation.
OptimizerEntry sngd_entry();

// What the official SNGD code implements for its MLP experiment: per-layer relative Fisher metrics
// (RFIM), one per hidden unit weighted by sigmoid(pre-activation)², input covariance for the first and
// last layers. Linear layers only.
OptimizerEntry sngd_rfim_entry();

}  // namespace ngd
