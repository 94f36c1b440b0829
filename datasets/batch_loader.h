#pragma once

#include <torch/torch.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "datasets/data_order.h"
#include "datasets/dataset.h"

namespace ngd {

// Where a loader stands in its data order, for a checkpoint: resuming from it gives the same batches,
// bit for bit, as going on would have.
struct LoaderPosition {
  torch::Tensor order;                   // the epoch's sample order (undefined before the first epoch)
  int64_t next_index = 0;                // the epoch's next batch
  torch::Tensor order_generator;         // generator states (Generator::get_state)
  torch::Tensor augmentation_generator;  // as it was before the next batch was made (prefetch)
};

// One training batch, ready for the model.
struct Batch {
  torch::Tensor images;      // float, normalised, on the device
  torch::Tensor labels;      // int64, on the device
  torch::Tensor sample_ids;  // int64 dataset indices, batch order
};

// Draws a run's training batches in the given data order (by default a fresh seeded shuffle each epoch), augmentation from its own seeded
// generator, normalisation, transfer to the device (on a GPU from pinned memory, without blocking).
// With prefetch, a worker thread prepares the next batch while the caller trains on the current one;
// batches are made strictly in order by one producer, so the numbers are the same with or without
// prefetch.
class BatchLoader {
 public:
  BatchLoader(const ImageDataset& dataset, int64_t batch_size, uint64_t seed, torch::Device device, bool prefetch,
              DataOrder order = DataOrder::kReshuffle);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t batches_per_epoch() const { return batches_per_epoch_; }

  // Orders the samples for a new epoch (DataOrder); then next() returns its batches in order, batches_per_epoch() times.
  void start_epoch();
  Batch next();

  // Where the loader stands between two next() calls; a batch prefetched ahead does not count as made.
  LoaderPosition position();
  // Continues from `position` (taken from a loader of the same dataset, batch size, seed and order),
  // in place of start_epoch: next() returns the batches going on from there would have returned.
  void resume(const LoaderPosition& position);

 private:
  Batch make_batch(int64_t index);
  torch::Tensor to_device(const torch::Tensor& host) const;
  void request(int64_t index);
  void wait_until_idle();
  void work();

  const ImageDataset& dataset_;
  const int64_t batch_size_;
  const int64_t batches_per_epoch_;
  const torch::Device device_;
  const DataOrder data_order_;
  at::Generator order_generator_;
  at::Generator augmentation_generator_;
  torch::Tensor order_;
  int64_t next_index_ = 0;

  // Prefetch: the worker makes batch `requested_` into `ready_`.
  bool prefetch_;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<int64_t> requested_;
  // The augmentation generator's state when the pending or ready batch was requested: position()'s,
  // since that batch counts as not made yet.
  torch::Tensor augmentation_state_at_request_;
  std::optional<Batch> ready_;
  std::exception_ptr error_;
  bool stopping_ = false;
};

}  // namespace ngd
