#include "datasets/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "base/options.h"
#include "datasets/cifar.h"
#include "datasets/fashion_mnist.h"
#include "datasets/translation.h"
#include "datasets/validation_split.h"

namespace ngd {
namespace {

// Seed of the shuffle that picks subsets: fixed so a subset is the same in every run and seed.
constexpr uint64_t kSubsetSeed = 20240305;
// A spec without dataset.validation_subset validates on as many images as its test set has, but at
// most 1/this of the official training split (CIFAR: 5,000 of 50,000, the usual 45k/5k division).
constexpr int64_t kDefaultValidationShare = 10;

ImageSet subset(const ImageSet& set, std::optional<int64_t> count, int64_t num_classes, const std::string& what) {
  if (!count) return set;
  if (*count <= 0 || *count > set.size()) {
    throw std::runtime_error(fmt::format("{} = {} is outside 1..{}", what, *count, set.size()));
  }
  return select_images(set, balanced_subset_indices(set.labels, *count, num_classes));
}

}  // namespace

std::vector<int64_t> ImageDataset::image_shape() const {
  return {train.images.size(1), train.images.size(2), train.images.size(3)};
}

std::vector<OptionInfo> image_options(std::vector<double> mean, std::vector<double> std, int64_t crop_padding,
                                      bool horizontal_flip) {
  return {{"mean", mean, "per-channel mean of [0,1] pixels, subtracted"},
          {"std", std, "per-channel standard deviation, divided by", {}, above(0)},
          {"random_crop_padding", crop_padding, "training crops after zero-padding each side by this (0 = none)", {}, at_least(0)},
          {"horizontal_flip", horizontal_flip, "training images flipped left-right with probability 1/2"}};
}

// Adding a dataset: a reader in datasets/ and one entry here.
const std::vector<DatasetEntry>& dataset_registry() {
  static const std::vector<DatasetEntry> table = {
      {"fashion-mnist", "fashion-mnist", "Fashion-MNIST, 60k/10k 28×28 grey images, 10 classes (IDX gz)",
       fashion_mnist_options(), [](const std::string& folder, const Options&) { return load_fashion_mnist(folder); },
       "apt-get install dataset-fashion-mnist (as scripts/install-deps.sh does)"},
      {"cifar10", "cifar-10-batches-bin", "CIFAR-10 binary version, 32×32 colour images, 10 classes", cifar10_options(),
       [](const std::string& folder, const Options&) { return load_cifar10(folder); }, "scripts/fetch-datasets.sh cifar10"},
      {"cifar100", "cifar-100-binary", "CIFAR-100 binary version, 32×32 colour images, 100 fine / 20 coarse classes",
       cifar100_options(),
       [](const std::string& folder, const Options& options) { return load_cifar100(folder, options.text("labels")); },
       "scripts/fetch-datasets.sh cifar100"},
      {"multi30k", "multi30k",
       "Multi30K task 1 (raw, gzip'd), 29k/1,014/1,000 English–German caption pairs, SentencePiece subwords",
       translation_options(), DatasetEntry::TranslationLoader(load_multi30k_translation),
       "scripts/fetch-datasets.sh multi30k"},
  };
  return table;
}

std::vector<std::string> data_roots(const std::string& explicit_root) {
  std::vector<std::string> roots;
  if (!explicit_root.empty()) roots.push_back(explicit_root);
  if (const char* env = std::getenv("NGDBENCH_DATA")) {
    std::stringstream list(env);
    for (std::string root; std::getline(list, root, ':');) {
      if (!root.empty()) roots.push_back(root);
    }
  }
  roots.push_back("./data");
  roots.push_back("/usr/share/datasets");
  return roots;
}

std::optional<std::string> find_dataset_folder(const DatasetEntry& entry, const std::vector<std::string>& roots) {
  for (const auto& root : roots) {
    const auto folder = std::filesystem::path(root) / entry.folder;
    if (std::filesystem::is_directory(folder)) return folder.string();
  }
  return std::nullopt;
}

const DatasetEntry& dataset_entry(const std::string& name) {
  const auto* entry = find_entry(dataset_registry(), name);
  if (entry == nullptr) {
    throw std::runtime_error(fmt::format("unknown dataset '{}' (valid: {})", name, join_names(dataset_registry())));
  }
  return *entry;
}

namespace {

// The entry's folder in the first root holding it, and the request's options resolved.
std::pair<std::string, Options> locate(const DatasetEntry& entry, const DatasetRequest& request,
                                       const std::vector<std::string>& roots) {
  const auto folder = find_dataset_folder(entry, roots);
  if (!folder) {
    throw DatasetNotFound(fmt::format("dataset '{}' not found: no folder '{}' in the data roots {}; get it with: {}; "
                                      "a root elsewhere is named with --data-root or NGDBENCH_DATA",
                                      request.name, entry.folder, fmt::join(roots, ", "), entry.fetch));
  }
  // Resolving again is idempotent for a spec's request and fills defaults for hand-made ones.
  return {*folder, Options(resolve_options(request.options, entry.options, "dataset '" + entry.name + "'", "dataset"))};
}

}  // namespace

TranslationDataset load_translation_dataset(const DatasetRequest& request, const std::vector<std::string>& roots) {
  const auto& entry = dataset_entry(request.name);
  if (!entry.load_translation) {
    throw std::runtime_error(fmt::format("dataset '{}' is not a translation dataset", request.name));
  }
  const auto [folder, options] = locate(entry, request, roots);
  return entry.load_translation(folder, options, request.train_subset, request.test_subset);
}

ImageDataset load_dataset(const DatasetRequest& request, const std::vector<std::string>& roots) {
  const auto* entry = &dataset_entry(request.name);
  if (!entry->load) {
    throw std::runtime_error(fmt::format("dataset '{}' is not an image dataset", request.name));
  }
  const auto [folder, options] = locate(*entry, request, roots);
  auto dataset = entry->load(folder, options);
  dataset.channel_mean = options.numbers("mean");
  dataset.channel_std = options.numbers("std");
  const auto channels = static_cast<size_t>(dataset.train.images.size(1));
  if (dataset.channel_mean.size() != channels || dataset.channel_std.size() != channels) {
    throw std::runtime_error(fmt::format("dataset.mean and dataset.std need {} values for '{}'", channels, request.name));
  }
  dataset.augmentation = {options.integer("random_crop_padding"), options.flag("horizontal_flip")};
  dataset.test = subset(dataset.test, request.test_subset, dataset.num_classes, "dataset.test_subset");
  const int64_t default_validation = std::min(dataset.test.size(), dataset.train.size() / kDefaultValidationShare);
  auto split = carve_validation(dataset.train, request.train_subset,
                                request.validation_subset.value_or(default_validation), dataset.num_classes);
  dataset.train = std::move(split.train);
  dataset.validation = std::move(split.validation);
  return dataset;
}

torch::Tensor balanced_subset_indices(const torch::Tensor& labels, int64_t count, int64_t num_classes) {
  auto generator = at::detail::createCPUGenerator(kSubsetSeed);
  const auto order = torch::randperm(labels.size(0), generator, torch::kInt64);
  const auto shuffled_labels = labels.index_select(0, order);
  // Round-robin over classes in shuffled order: class c contributes its first k shuffled samples,
  // with the remainder going to the classes that still have samples left.
  std::vector<torch::Tensor> per_class;
  for (int64_t c = 0; c < num_classes; ++c) {
    per_class.push_back(order.index_select(0, (shuffled_labels == c).nonzero().squeeze(1)));
  }
  std::vector<int64_t> taken(num_classes, 0);
  int64_t remaining = count;
  while (remaining > 0) {
    bool progressed = false;
    for (int64_t c = 0; c < num_classes && remaining > 0; ++c) {
      if (taken[c] < per_class[c].size(0)) {
        ++taken[c];
        --remaining;
        progressed = true;
      }
    }
    if (!progressed) break;
  }
  std::vector<torch::Tensor> chosen;
  for (int64_t c = 0; c < num_classes; ++c) chosen.push_back(per_class[c].slice(0, 0, taken[c]));
  return std::get<0>(torch::cat(chosen).sort());
}

ImageSet select_images(const ImageSet& set, const torch::Tensor& indices) {
  return {set.images.index_select(0, indices).contiguous(), set.labels.index_select(0, indices)};
}

torch::Tensor normalize_images(const torch::Tensor& images_uint8, const ImageDataset& dataset) {
  const auto channels = static_cast<int64_t>(dataset.channel_mean.size());
  auto mean = torch::tensor(dataset.channel_mean, torch::kFloat).view({1, channels, 1, 1});
  auto std = torch::tensor(dataset.channel_std, torch::kFloat).view({1, channels, 1, 1});
  return images_uint8.to(torch::kFloat).div_(255.0).sub_(mean).div_(std);
}

torch::Tensor augment_batch(const torch::Tensor& images_uint8, const Augmentation& augmentation,
                            at::Generator& generator) {
  if (!augmentation.enabled()) return images_uint8;
  const int64_t n = images_uint8.size(0), channels = images_uint8.size(1);
  const int64_t height = images_uint8.size(2), width = images_uint8.size(3);
  const int64_t pad = augmentation.crop_padding;
  const auto padded = pad > 0 ? torch::constant_pad_nd(images_uint8, {pad, pad, pad, pad}) : images_uint8;
  const int64_t padded_width = width + 2 * pad;
  // Per sample: the crop's top-left corner in the padded image, and whether to read columns backwards.
  const auto top = torch::randint(0, 2 * pad + 1, {n, 1, 1}, generator, torch::kInt64);
  const auto left = torch::randint(0, 2 * pad + 1, {n, 1, 1}, generator, torch::kInt64);
  const auto flip = augmentation.horizontal_flip ? torch::randint(0, 2, {n, 1, 1}, generator, torch::kInt64)
                                                 : torch::zeros({n, 1, 1}, torch::kInt64);
  const auto rows = torch::arange(height, torch::kInt64).view({1, height, 1});
  const auto columns = torch::arange(width, torch::kInt64).view({1, 1, width});
  const auto source_columns = left + columns + flip * (width - 1 - 2 * columns);
  const auto source = ((top + rows) * padded_width + source_columns).view({n, 1, height * width});
  return padded.flatten(2).gather(2, source.expand({n, channels, height * width})).view({n, channels, height, width});
}

}  // namespace ngd
