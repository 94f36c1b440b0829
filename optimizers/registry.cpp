#include "optimizers/adamw.h"
#include "optimizers/fngd.h"
#include "optimizers/kfac.h"
#include "optimizers/ngd.h"
#include "optimizers/optimizer.h"
#include "optimizers/sgd.h"
#include "optimizers/sngd.h"
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
  };
  return table;
}

}  // namespace ngd
