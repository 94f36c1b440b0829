#pragma once

#include "datasets/dataset.h"

namespace ngd {

// Fashion-MNIST from a folder holding the four official IDX files (gzip'd, as Debian's
// dataset-fashion-mnist and the official archive ship them).
ImageDataset load_fashion_mnist(const std::string& folder);

// Normalisation by the training set's statistics; no augmentation by default.
std::vector<OptionInfo> fashion_mnist_options();

}  // namespace ngd
