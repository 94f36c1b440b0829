#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/options.h"
#include "base/workload_data.h"

namespace ngd {

// Images as stored on disk (uint8, N×C×H×W) with their class labels (int64, N). Kept as uint8 so a
// whole dataset fits in memory cheaply; batches are converted to normalised float when drawn.
struct ImageSet {
  torch::Tensor images;
  torch::Tensor labels;
  int64_t size() const { return labels.size(0); }
  bool empty() const { return !labels.defined() || labels.size(0) == 0; }
};

// Random training-time transforms, applied to uint8 batches (see augment_batch).
struct Augmentation {
  int64_t crop_padding = 0;  // random crop back to the image size after zero-padding each side (0 = off)
  bool horizontal_flip = false;
  bool enabled() const { return crop_padding > 0 || horizontal_flip; }
};

// A train/validation/test triple with what a model needs to know about it. The validation set is
// carved from the training split (see carve_validation); it is empty (no images) when a spec asks for none.
struct ImageDataset : WorkloadData {
  std::string name;
  ImageSet train;
  ImageSet validation;
  ImageSet test;
  int64_t num_classes = 0;
  std::vector<double> channel_mean;  // per-channel normalisation applied to [0,1] pixels
  std::vector<double> channel_std;
  Augmentation augmentation;  // for training batches only
  std::vector<int64_t> image_shape() const;  // C, H, W
};

// How a spec selects a dataset: sizes of the deterministic, class-balanced subsets (nullopt = all)
// and the entry's options (resolved: normalisation, augmentation, dataset-specific choices).
// `validation_subset` sizes the image validation set carved from the training split (carve_validation):
// nullopt = as many images as the test set has (after test_subset) but at most a tenth of the official
// training split, 0 = none. Translation datasets have their own validation split.
struct DatasetRequest {
  std::string name;
  std::optional<int64_t> train_subset;
  std::optional<int64_t> test_subset;
  nlohmann::json options = nlohmann::json::object();
  std::optional<int64_t> validation_subset = std::nullopt;
};

struct TranslationDataset;

// A dataset the harness can load: the folder a data root holds it in (official archive name), how
// to get that folder, and its options. Every image entry has "mean", "std", "random_crop_padding" and
// "horizontal_flip" (image_options()), which load_dataset applies after the entry's loader;
// translation entries have translation_options() (datasets/translation.h).
struct DatasetEntry {
  using ImageLoader = std::function<ImageDataset(const std::string& folder_path, const Options& options)>;
  // The folder, the resolved options and the train/test subset sizes.
  using TranslationLoader = std::function<TranslationDataset(const std::string& folder_path, const Options& options,
                                                             std::optional<int64_t> train_subset,
                                                             std::optional<int64_t> test_subset)>;

  DatasetEntry(std::string name, std::string folder, std::string summary, std::vector<OptionInfo> options,
               ImageLoader load, std::string fetch)
      : name(std::move(name)), folder(std::move(folder)), summary(std::move(summary)), options(std::move(options)),
        load(std::move(load)), fetch(std::move(fetch)) {}
  DatasetEntry(std::string name, std::string folder, std::string summary, std::vector<OptionInfo> options,
               TranslationLoader load_translation, std::string fetch)
      : name(std::move(name)), folder(std::move(folder)), summary(std::move(summary)), options(std::move(options)),
        workload("translation"), load_translation(std::move(load_translation)), fetch(std::move(fetch)) {}

  std::string name;
  std::string folder;
  std::string summary;
  std::vector<OptionInfo> options;
  std::string workload = "image";  // the workload entry its runs train (harness/spec/workload_entry.h)
  ImageLoader load;                  // image datasets
  TranslationLoader load_translation;  // translation datasets
  std::string fetch;  // the command that puts `folder` into a data root, for the not-found message
};

// Thrown by load_dataset when the dataset's folder is in none of the data roots: one line naming the
// dataset, the folder, the roots searched and how to fetch it. A sweep skips such a spec.
class DatasetNotFound : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The normalisation and augmentation options every image dataset has, with its defaults.
std::vector<OptionInfo> image_options(std::vector<double> mean, std::vector<double> std, int64_t crop_padding,
                                      bool horizontal_flip);

const std::vector<DatasetEntry>& dataset_registry();

// Data roots in search order: the explicit root if given, then $NGDBENCH_DATA (':'-separated),
// ./data and /usr/share/datasets.
std::vector<std::string> data_roots(const std::string& explicit_root);

// The first `roots` entry holding `entry.folder`, or nullopt.
std::optional<std::string> find_dataset_folder(const DatasetEntry& entry, const std::vector<std::string>& roots);

// The registry entry of a request's dataset; throws std::runtime_error listing the valid names.
const DatasetEntry& dataset_entry(const std::string& name);

// Loads and subsets an image dataset; throws std::runtime_error naming the roots searched if it is
// absent ("not found" in the message), or when the entry is not an image dataset.
ImageDataset load_dataset(const DatasetRequest& request, const std::vector<std::string>& roots);

// The same for a translation dataset.
TranslationDataset load_translation_dataset(const DatasetRequest& request, const std::vector<std::string>& roots);

// `count` indices of `labels`, as equal per class as the classes allow, chosen by a fixed-seed
// shuffle so the same request always gives the same subset; sorted ascending.
torch::Tensor balanced_subset_indices(const torch::Tensor& labels, int64_t count, int64_t num_classes);

// The images of `set` at `indices` (int64), in that order.
ImageSet select_images(const ImageSet& set, const torch::Tensor& indices);

// A batch as float, scaled to [0,1] and normalised per channel.
torch::Tensor normalize_images(const torch::Tensor& images_uint8, const ImageDataset& dataset);

// A uint8 batch (N×C×H×W) randomly cropped (after zero padding) and flipped per sample, drawing from
// `generator`; one gather over the batch, no per-pixel loops.
torch::Tensor augment_batch(const torch::Tensor& images_uint8, const Augmentation& augmentation,
                            at::Generator& generator);

}  // namespace ngd
