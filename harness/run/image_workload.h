#pragma once

#include "harness/spec/workload_entry.h"

namespace ngd {

// Image classification: an image Model trained with cross-entropy per image on the dataset's training
// split (BatchLoader batches); each epoch records train loss and accuracy and evaluates the
// validation split (when there is one) and the test split. Its data is an ImageDataset.
WorkloadEntry image_workload_entry();

}  // namespace ngd
