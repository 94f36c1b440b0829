#include "datasets/validation_split.h"

#include <fmt/format.h>

namespace ngd {
TrainValidationSplit carve_validation(const ImageSet& full_train, std::optional<int64_t> train_subset,
                                      int64_t validation_size, int64_t num_classes) {
  const int64_t available = full_train.size();
  if (train_subset && (*train_subset <= 0 || *train_subset > available)) {
    throw std::runtime_error(fmt::format("dataset.train_subset = {} is outside 1..{}", *train_subset, available));
  }
  auto all = torch::arange(available, torch::kInt64);
  const auto train = train_subset ? balanced_subset_indices(full_train.labels, *train_subset, num_classes) : all;
  if (validation_size == 0) return {select_images(full_train, train), select_images(full_train, torch::empty({0}, torch::kInt64))};
  // The pool: every training image not in the training subset (all of them without a subset).
  auto in_train = torch::zeros({available}, torch::kBool);
  if (train_subset) in_train.index_fill_(0, train, true);
  const auto pool = all.masked_select(in_train.logical_not());
  if (validation_size < 0 || validation_size > pool.size(0)) {
    throw std::runtime_error(fmt::format(
        "dataset.validation_subset = {} does not fit: {} training images are left beside the {} of train_subset "
        "(valid: 0..{})",
        validation_size, pool.size(0), train_subset ? *train_subset : 0, pool.size(0)));
  }
  const auto validation =
      pool.index_select(0, balanced_subset_indices(full_train.labels.index_select(0, pool), validation_size, num_classes));
  if (train_subset) return {select_images(full_train, train), select_images(full_train, validation)};
  auto keep = torch::ones({available}, torch::kBool);
  keep.index_fill_(0, validation, false);
  return {select_images(full_train, all.masked_select(keep)), select_images(full_train, validation)};
}

}  // namespace ngd
