#include "datasets/batch_loader.h"

#include <c10/util/ThreadLocalDebugInfo.h>
#include <dlfcn.h>

namespace ngd {
namespace {

// Offset between a run's seed and its augmentation generator's seed, so crops and flips do not
// repeat the shuffle's random stream.
constexpr uint64_t kAugmentationSeedOffset = 0x9e3779b97f4a7c15ULL;

// Makes LibTorch's parallel operations on the calling thread run on it alone. With OpenMP every thread
// that opens a parallel region gets a team of its own: the prefetch worker's team of --threads would
// wait (spinning) beside the training thread's team, oversubscribing the cores for work (gathering
// and normalising a batch) that needs no more than one. Elementwise results do not depend on it.
void use_one_thread_here() {
  // LibTorch's once-per-thread setup sets the thread's OpenMP count to --threads; run it first, or the
  // first parallel operation here would undo the line below.
  at::internal::lazy_init_num_threads();
  using SetThreads = void (*)(int);
  if (auto set_threads = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "omp_set_num_threads"))) set_threads(1);
}

}  // namespace

BatchLoader::BatchLoader(const ImageDataset& dataset, int64_t batch_size, uint64_t seed, torch::Device device,
                         bool prefetch, DataOrder order)
    : dataset_(dataset),
      batch_size_(batch_size),
      batches_per_epoch_((dataset.train.size() + batch_size - 1) / batch_size),
      device_(device),
      data_order_(order),
      order_generator_(at::detail::createCPUGenerator(seed)),
      augmentation_generator_(at::detail::createCPUGenerator(seed + kAugmentationSeedOffset)),
      prefetch_(prefetch) {
  // The worker runs under the training thread's LibTorch debug info: a memory reporter installed there
  // (harness/run/memory.h) counts the worker's batches too.
  if (prefetch_) {
    worker_ = std::thread([this, debug_info = c10::ThreadLocalDebugInfo::current()] {
      const c10::DebugInfoGuard inherit(debug_info);
      work();
    });
  }
}

BatchLoader::~BatchLoader() {
  if (!prefetch_) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

void BatchLoader::wait_until_idle() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return !requested_.has_value(); });
}

void BatchLoader::start_epoch() {
  // A batch prefetched past the end of the last epoch does not exist: nothing is pending here.
  if (prefetch_) wait_until_idle();
  if (data_order_ == DataOrder::kNone) {
    order_ = torch::arange(dataset_.train.size(), torch::kInt64);
  } else if (data_order_ == DataOrder::kReshuffle || !order_.defined()) {
    order_ = torch::randperm(dataset_.train.size(), order_generator_, torch::kInt64);
  }
  next_index_ = 0;
  if (prefetch_) request(0);
}

Batch BatchLoader::make_batch(int64_t index) {
  const auto& train = dataset_.train;
  Batch batch;
  batch.sample_ids = order_.slice(0, index * batch_size_, std::min((index + 1) * batch_size_, train.size()));
  auto images = augment_batch(train.images.index_select(0, batch.sample_ids), dataset_.augmentation,
                              augmentation_generator_);
  batch.images = to_device(normalize_images(images, dataset_));
  batch.labels = to_device(train.labels.index_select(0, batch.sample_ids));
  return batch;
}

torch::Tensor BatchLoader::to_device(const torch::Tensor& host) const {
  if (!device_.is_cuda()) return host.to(device_);
  // From page-locked memory the copy runs asynchronously on the stream, so it overlaps the training
  // thread's kernels; LibTorch's pinned allocator keeps the buffer until the copy has finished.
  return host.pin_memory().to(device_, /*non_blocking=*/true);
}

LoaderPosition BatchLoader::position() {
  // With prefetch the epoch's next batch may be made already, and the augmentation generator past it.
  bool made_ahead = false;
  if (prefetch_) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return !requested_.has_value(); });
    made_ahead = ready_.has_value() || error_;
  }
  return {order_, next_index_, order_generator_.get_state(),
          made_ahead ? augmentation_state_at_request_ : augmentation_generator_.get_state()};
}

void BatchLoader::resume(const LoaderPosition& position) {
  TORCH_CHECK(position.next_index >= 0 && position.next_index <= batches_per_epoch_,
              "BatchLoader::resume: batch ", position.next_index, " of an epoch of ", batches_per_epoch_);
  if (prefetch_) {
    wait_until_idle();
    std::lock_guard<std::mutex> lock(mutex_);
    ready_.reset();
    error_ = nullptr;
  }
  order_ = position.order;
  next_index_ = position.next_index;
  order_generator_.set_state(position.order_generator);
  augmentation_generator_.set_state(position.augmentation_generator);
  if (prefetch_ && next_index_ < batches_per_epoch_) request(next_index_);
}

void BatchLoader::request(int64_t index) {
  // The worker is idle here (nothing requested), so the generator can be read on this thread.
  augmentation_state_at_request_ = augmentation_generator_.get_state();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    requested_ = index;
  }
  changed_.notify_all();
}

Batch BatchLoader::next() {
  const int64_t index = next_index_++;
  TORCH_CHECK(index < batches_per_epoch_, "BatchLoader::next past the end of the epoch");
  if (!prefetch_) return make_batch(index);
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return ready_.has_value() || error_; });
  if (error_) std::rethrow_exception(error_);
  Batch batch = std::move(*ready_);
  ready_.reset();
  lock.unlock();
  if (index + 1 < batches_per_epoch_) request(index + 1);
  return batch;
}

void BatchLoader::work() {
  use_one_thread_here();
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    changed_.wait(lock, [this] { return stopping_ || requested_.has_value(); });
    if (stopping_) return;
    const int64_t index = *requested_;
    lock.unlock();
    std::optional<Batch> batch;
    std::exception_ptr error;
    try {
      batch = make_batch(index);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    ready_ = std::move(batch);
    error_ = error;
    requested_.reset();
    changed_.notify_all();
  }
}

}  // namespace ngd
