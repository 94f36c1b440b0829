#pragma once

#include <nlohmann/json.hpp>

#include <memory>

#include "datasets/dataset.h"
#include "harness/run/runner.h"
#include "harness/run/workload.h"
#include "harness/spec/spec.h"

namespace ngd {

// Image classification: an image Model trained with cross-entropy per image on the dataset's training
// split (BatchLoader batches); each epoch records train loss and accuracy and evaluates the
// validation split (when there is one) and the test split.
std::unique_ptr<Workload> make_image_workload(const RunConfig& config, const ImageDataset& dataset,
                                              const RunnerOptions& options, nlohmann::json& meta);

}  // namespace ngd
