#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "base/workload_data.h"
#include "harness/results/results.h"
#include "models/model.h"

namespace ngd {

// Tensors by name: a part of a checkpoint (harness/run/checkpoint.h).
using NamedTensors = std::map<std::string, torch::Tensor>;

// `state`'s tensor `name`; throws std::runtime_error naming what is missing.
inline const torch::Tensor& named_tensor(const NamedTensors& state, const std::string& name) {
  const auto it = state.find(name);
  if (it == state.end()) throw std::runtime_error("the checkpoint holds no '" + name + "'");
  return it->second;
}

// One workload's side of training (image classification, translation): its model, batches, losses
// and evaluation. The runner's loop owns the step sequence (capture decision, recording, forward,
// per-sample loss and the optimizer's reduction, the sampled-target backward of the true Fisher,
// backward, schedule and optimizer step), the phase timing and the divergence handling, once for
// every workload.
class Workload {
 public:
  virtual ~Workload() = default;

  virtual CaptureModel& model() = 0;
  // Batches of an epoch as the learning-rate schedule counts them (epoch-based schedules).
  virtual int64_t nominal_batches_per_epoch() const = 0;
  // Prepares epoch `epoch`'s batches (from 0); returns how many there are.
  virtual int64_t start_epoch(int64_t epoch) = 0;
  // Makes the next training batch current; returns its sample ids (dataset indices, batch order).
  virtual torch::Tensor next_batch() = 0;
  // The current batch's logits and per-sample losses (shape [batch]), with gradients.
  virtual std::pair<torch::Tensor, torch::Tensor> forward() = 0;
  // Mean training loss of the current batch at the current parameters, without gradients.
  virtual double batch_loss() = 0;
  // The loss of targets drawn from the predictive distribution `logits` (the true Fisher's labels),
  // reduced as the training loss is, so that its backward records the sampled output gradients.
  virtual torch::Tensor sampled_target_loss(const torch::Tensor& logits) = 0;
  // Adds a step's (detached) losses and predictions to the epoch's training metrics.
  virtual void accumulate(const torch::Tensor& logits, const torch::Tensor& per_sample_loss) = 0;
  // The epoch's summed training loss so far, a device scalar (reading it synchronises).
  virtual torch::Tensor training_loss_sum() const = 0;
  // Fills the record's training metrics and evaluates the held-out split (untimed).
  virtual void finish_epoch(EpochRecord& record) = 0;
  // The record's held-out loss and how messages name it ("test loss").
  virtual std::pair<double, std::string> held_out_loss(const EpochRecord& record) const = 0;
  // The per-epoch progress line's metrics.
  virtual std::string describe(const EpochRecord& record) const = 0;
  // After the last epoch, untimed: the result's "final" object (null for none).
  virtual nlohmann::json final_evaluation() = 0;

  // For a checkpoint, between two steps (or after an epoch's record): everything besides the model
  // that the rest of the run depends on (the data order's position and generators, the epoch's running
  // sums, what is kept across epochs). CPU or device tensors.
  virtual NamedTensors state() = 0;
  // Restores a state() of a workload built from the same run and dataset: the next next_batch() is
  // the one that followed when it was taken (or start_epoch() begins the epoch that followed).
  virtual void load_state(const NamedTensors& state) = 0;
};

// `data` as the type its workload's entry loaded (the entry's own code reads it back); throws
// std::logic_error naming the workload when it is another type.
template <class Data>
const Data& loaded_as(const WorkloadData& data, const std::string& workload) {
  const auto* typed = dynamic_cast<const Data*>(&data);
  if (typed == nullptr) throw std::logic_error("the " + workload + " workload was given another workload's data");
  return *typed;
}

}  // namespace ngd
