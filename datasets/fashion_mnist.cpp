#include "datasets/fashion_mnist.h"

#include <fmt/format.h>

#include "datasets/idx_reader.h"

namespace ngd {
namespace {

// Fashion-MNIST has ten clothing classes.
constexpr int64_t kClasses = 10;
// Pixel mean and standard deviation of the training set, in [0,1] units.
constexpr double kPixelMean = 0.2860;
constexpr double kPixelStd = 0.3530;

ImageSet load_split(const std::string& folder, const std::string& prefix) {
  const auto images_path = fmt::format("{}/{}-images-idx3-ubyte.gz", folder, prefix);
  const auto labels_path = fmt::format("{}/{}-labels-idx1-ubyte.gz", folder, prefix);
  auto images = read_idx_file(images_path);
  auto labels = read_idx_file(labels_path);
  if (images.dim() != 3 || images.size(1) != 28 || images.size(2) != 28) {
    throw std::runtime_error(fmt::format("{}: expected N×28×28 images, got {}", images_path, fmt::join(images.sizes(), "×")));
  }
  if (labels.dim() != 1 || labels.size(0) != images.size(0)) {
    throw std::runtime_error(fmt::format("{}: {} labels for {} images in {}", labels_path,
                                         labels.numel(), images.size(0), images_path));
  }
  if (labels.max().item<int64_t>() >= kClasses) {
    const int64_t bad = (labels >= kClasses).nonzero()[0][0].item<int64_t>();
    throw std::runtime_error(fmt::format("{}: record {} has label {} (expected 0..{})", labels_path, bad,
                                         labels[bad].item<int64_t>(), kClasses - 1));
  }
  return {images.unsqueeze(1).contiguous(), labels.to(torch::kInt64)};
}

}  // namespace

ImageDataset load_fashion_mnist(const std::string& folder) {
  ImageDataset dataset;
  dataset.name = "fashion-mnist";
  dataset.train = load_split(folder, "train");
  dataset.test = load_split(folder, "t10k");
  dataset.num_classes = kClasses;
  return dataset;
}

std::vector<OptionInfo> fashion_mnist_options() { return image_options({kPixelMean}, {kPixelStd}, 0, false); }

}  // namespace ngd
