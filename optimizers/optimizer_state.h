#pragma once

#include <torch/torch.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "optimizers/optimizer.h"

namespace ngd {

// The pieces every plugin's state() and load_state() are built from (docs/optimizers.md#adding-an-optimizer):
// entry names are "<part>/<index>/<field>" paths, counters and flags are 0-d int64 tensors, reals 0-d
// float64 tensors, all on the CPU.

// Bytes of a state's tensors: what the memory accounts count as the optimizer's.
int64_t state_bytes(const OptimizerState& state);

// A counter or flag as a state entry.
torch::Tensor state_integer(int64_t value);
// A real number (a damping that moves during training) as a state entry.
torch::Tensor state_real(double value);

// Reads a state in load_state: every read checks its entry and returns a copy the plugin adopts, and
// finish() rejects entries nothing read. Errors are std::invalid_argument naming the entry. A load that
// throws may have taken in part of the state: the optimizer is then to be discarded, not stepped.
class StateReader {
 public:
  // `state` must outlive the reader. Throws when two entries share a name.
  explicit StateReader(const OptimizerState& state);

  bool contains(const std::string& name) const;
  // Whether any of `names` is there: for entries that come into being together, so that a state missing
  // one of them is named missing rather than taken for a state from before they existed.
  bool contains_any(const std::vector<std::string>& names) const;
  // A copy of entry `name` on `options`' device, which must have `options`' dtype and the shape `sizes`
  // (-1: any extent in that dimension).
  torch::Tensor tensor(const std::string& name, const std::vector<int64_t>& sizes, const torch::TensorOptions& options);
  // The same with `like`'s shape, dtype and device.
  torch::Tensor tensor_like(const std::string& name, const torch::Tensor& like);
  // A counter or flag written by state_integer, a real written by state_real.
  int64_t integer(const std::string& name);
  double real(const std::string& name);
  // The entries not read yet named `prefix` followed by a number, as (number, name) by increasing number:
  // one per item of a collection whose size is part of the state.
  std::vector<std::pair<int64_t, std::string>> numbered_names(const std::string& prefix) const;
  // Throws naming the first entry no read asked for.
  void finish() const;

 private:
  const torch::Tensor& take(const std::string& name);

  const OptimizerState& state_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<bool> read_;
};

// The per-parameter state of a LibTorch SGD or AdamW (the LibTorch optimizers the plugins build), as
// entries "<prefix>/param<i>/<field>" with i the parameter's position over all parameter groups: SGD's
// momentum_buffer; AdamW's step, exp_avg, exp_avg_sq and, with amsgrad, max_exp_avg_sq. A parameter that
// has not stepped yet (or SGD without momentum) has no entries.
void append_torch_state(OptimizerState& state, const torch::optim::Optimizer& optimizer, const std::string& prefix);
// Installs what append_torch_state wrote, creating the per-parameter states a fresh optimizer has not
// created yet and dropping those the state does not have.
void load_torch_state(StateReader& reader, torch::optim::Optimizer& optimizer, const std::string& prefix);

}  // namespace ngd
