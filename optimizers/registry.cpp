#include "optimizers/adamw.h"
#include "optimizers/eva.h"
#include "optimizers/fngd.h"
#include "optimizers/kfac.h"
#include "optimizers/muon.h"
#include "optimizers/nadamw.h"
#include "optimizers/ngd.h"
#include "optimizers/optimizer.h"
#include "optimizers/sgd.h"
#include "optimizers/shampoo.h"
#include "optimizers/sngd.h"
#include "optimizers/soap.h"
#include "optimizers/subspace.h"
#include "optimizers/tengrad.h"

namespace ngd {

// Every optimizer the harness knows, one line each. An explicit table rather than static
// self-registration, which the linker silently drops from a static library.
const std::vector<OptimizerEntry>& optimizer_registry() {
  static const std::vector<OptimizerEntry> table = {
      sgd_entry(),
      adamw_entry(),
      kfac_entry(),
      tengrad_entry(),
      fngd_entry(),
      ngd_entry(),
      sngd_entry(),
      sngd_rfim_entry(),
      psgd_entry(),
      pbfgs_entry(),
      // The 2026 baselines: Kronecker-factored adaptive methods (issue 18).
      shampoo_entry(),
      soap_entry(),
      // The 2026 baselines: first-order and Kronecker-vector methods (issue 18).
      nadamw_entry(),
      muon_entry(),
      eva_entry(),
  };
  return table;
}

}  // namespace ngd
