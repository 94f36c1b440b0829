#pragma once

#include <torch/torch.h>

#include <optional>

#include "datasets/dataset.h"

namespace ngd {

// A training split divided into the images a run trains on and a held-out validation set.
struct TrainValidationSplit {
  ImageSet train;
  ImageSet validation;  // no images when validation_size is 0
};

// Divides an official training split: the training images are the class-balanced fixed-seed subset
// of `train_subset` images (all when nullopt, exactly the images a spec got before validation sets
// existed), and the validation set is a class-balanced fixed-seed choice of `validation_size` among
// the images left over. Without a train_subset the validation images are taken out of the training
// set. Throws std::runtime_error when fewer than `validation_size` images are left over.
TrainValidationSplit carve_validation(const ImageSet& full_train, std::optional<int64_t> train_subset,
                                      int64_t validation_size, int64_t num_classes);

}  // namespace ngd
