#pragma once

#include "datasets/dataset.h"

namespace ngd {

// CIFAR-10 from `cifar-10-batches-bin/` (data_batch_1..5.bin, test_batch.bin): records of 1 label
// byte + 3072 pixel bytes (R, G, B planes of 32×32). Record counts come from file sizes, so smaller
// files in the same layout (such as a mini copy) load as they are.
ImageDataset load_cifar10(const std::string& folder);

// CIFAR-100 from `cifar-100-binary/` (train.bin, test.bin): records of coarse label, fine label and
// 3072 pixel bytes. `labels` is "fine" (100 classes) or "coarse" (20 superclasses).
ImageDataset load_cifar100(const std::string& folder, const std::string& labels);

// Reads one file of CIFAR records: `label_bytes` label bytes then 3072 pixels each; the label used is
// byte `label_index`; throws naming the file and record if the size or a label is out of range.
ImageSet read_cifar_records(const std::string& path, int64_t label_bytes, int64_t label_index, int64_t num_classes);

// Augmentation and normalisation defaults: crop 32 with padding 4, horizontal flip, the usual
// per-channel statistics of each training set.
std::vector<OptionInfo> cifar10_options();
std::vector<OptionInfo> cifar100_options();

}  // namespace ngd
