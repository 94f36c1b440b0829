#include "datasets/cifar.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace ngd {
namespace {

// Pixels of one 32×32 colour image.
constexpr int64_t kImageBytes = 3 * 32 * 32;
// CIFAR's usual padding for training-time random crops.
constexpr int64_t kCropPadding = 4;

ImageSet concatenate(const std::vector<ImageSet>& parts) {
  std::vector<torch::Tensor> images, labels;
  for (const auto& part : parts) {
    images.push_back(part.images);
    labels.push_back(part.labels);
  }
  return {torch::cat(images), torch::cat(labels)};
}

ImageDataset make_dataset(std::string name, ImageSet train, ImageSet test, int64_t num_classes) {
  ImageDataset dataset;
  dataset.name = std::move(name);
  dataset.train = std::move(train);
  dataset.test = std::move(test);
  dataset.num_classes = num_classes;
  return dataset;
}

}  // namespace

ImageSet read_cifar_records(const std::string& path, int64_t label_bytes, int64_t label_index, int64_t num_classes) {
  errno = 0;  // set by the failing open() below, with the reason
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  const int64_t record_bytes = label_bytes + kImageBytes;
  const auto size = static_cast<int64_t>(std::filesystem::file_size(path));
  if (size == 0 || size % record_bytes != 0) {
    throw std::runtime_error(fmt::format("{}: {} bytes is not a whole number of {}-byte records (truncated or not "
                                         "a CIFAR binary file)", path, size, record_bytes));
  }
  const int64_t count = size / record_bytes;
  auto records = torch::empty({count, record_bytes}, torch::kUInt8);
  file.read(reinterpret_cast<char*>(records.data_ptr<uint8_t>()), size);
  if (!file) throw std::runtime_error(fmt::format("{}: read failed", path));
  auto labels = records.select(1, label_index).to(torch::kInt64);
  if (labels.max().item<int64_t>() >= num_classes) {
    const int64_t bad = (labels >= num_classes).nonzero()[0][0].item<int64_t>();
    throw std::runtime_error(fmt::format("{}: record {} has label {} (expected 0..{})", path, bad,
                                         labels[bad].item<int64_t>(), num_classes - 1));
  }
  auto images = records.slice(1, label_bytes).reshape({count, 3, 32, 32}).contiguous();
  return {images, labels};
}

ImageDataset load_cifar10(const std::string& folder) {
  std::vector<ImageSet> train_parts;
  for (int batch = 1; batch <= 5; ++batch) {
    train_parts.push_back(read_cifar_records(fmt::format("{}/data_batch_{}.bin", folder, batch), 1, 0, 10));
  }
  return make_dataset("cifar10", concatenate(train_parts), read_cifar_records(folder + "/test_batch.bin", 1, 0, 10), 10);
}

ImageDataset load_cifar100(const std::string& folder, const std::string& labels) {
  const bool fine = labels == "fine";
  const int64_t classes = fine ? 100 : 20;
  const int64_t label_index = fine ? 1 : 0;
  return make_dataset("cifar100", read_cifar_records(folder + "/train.bin", 2, label_index, classes),
                      read_cifar_records(folder + "/test.bin", 2, label_index, classes), classes);
}

std::vector<OptionInfo> cifar10_options() {
  return image_options({0.4914, 0.4822, 0.4465}, {0.2023, 0.1994, 0.2010}, kCropPadding, true);
}

std::vector<OptionInfo> cifar100_options() {
  auto options = image_options({0.5071, 0.4867, 0.4408}, {0.2675, 0.2565, 0.2761}, kCropPadding, true);
  options.push_back({"labels", "fine", "fine (100 classes) or coarse (20 superclasses) labels", {"fine", "coarse"}});
  return options;
}

}  // namespace ngd
