#include "optimizers/registry.h"

#include <stdexcept>

#include "optimizers/adamw.h"
#include "optimizers/eva.h"
#include "optimizers/fngd.h"
#include "optimizers/kfac.h"
#include "optimizers/muon.h"
#include "optimizers/nadamw.h"
#include "optimizers/ngd.h"
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
      dldr_psgd_entry(),
      dldr_pbfgs_entry(),
      // The 2026 baselines: Kronecker-factored adaptive methods.
      shampoo_entry(),
      soap_entry(),
      // The 2026 baselines: first-order and Kronecker-vector methods.
      nadamw_entry(),
      muon_entry(),
      eva_entry(),
  };
  return table;
}

Options optimizer_options(const std::string& name, const nlohmann::json& hparams) {
  const auto* entry = find_entry(optimizer_registry(), name);
  if (entry == nullptr) throw std::invalid_argument("no optimizer '" + name + "' is registered");
  return Options(resolve_options(hparams, entry->hyperparameters, "optimizer '" + name + "'", "hparams"));
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, CaptureModel& model, const nlohmann::json& hparams) {
  return find_entry(optimizer_registry(), name)->make(model, optimizer_options(name, hparams));
}

}  // namespace ngd
