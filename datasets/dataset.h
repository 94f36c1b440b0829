#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ngd {

// Images as stored on disk (uint8, N×C×H×W) with their class labels (int64, N). Kept as uint8 so a
// whole dataset fits in memory cheaply; batches are converted to normalised float when drawn.
struct ImageSet {
  torch::Tensor images;
  torch::Tensor labels;
  int64_t size() const { return labels.size(0); }
};

// A train/test pair with what a model needs to know about it.
struct ImageDataset {
  std::string name;
  ImageSet train;
  ImageSet test;
  int64_t num_classes = 0;
  std::vector<double> channel_mean;  // per-channel normalisation applied to [0,1] pixels
  std::vector<double> channel_std;
  std::vector<int64_t> image_shape() const;  // C, H, W
};

// How a spec selects a dataset: sizes of the deterministic, class-balanced subsets (nullopt = all).
struct DatasetRequest {
  std::string name;
  std::optional<int64_t> train_subset;
  std::optional<int64_t> test_subset;
};

// A dataset the harness can load: the folder a data root holds it in (official archive name).
struct DatasetEntry {
  std::string name;
  std::string folder;
  std::string summary;
  std::function<ImageDataset(const std::string& folder_path)> load;
};

const std::vector<DatasetEntry>& dataset_registry();

// Data roots in search order: the explicit root if given, then $NGDBENCH_DATA (':'-separated),
// ./data and /usr/share/datasets.
std::vector<std::string> data_roots(const std::string& explicit_root);

// The first `roots` entry holding `entry.folder`, or nullopt.
std::optional<std::string> find_dataset_folder(const DatasetEntry& entry, const std::vector<std::string>& roots);

// Loads and subsets a dataset; throws std::runtime_error naming the roots searched if it is absent.
ImageDataset load_dataset(const DatasetRequest& request, const std::vector<std::string>& roots);

// `count` indices of `labels`, as equal per class as the classes allow, chosen by a fixed-seed
// shuffle so the same request always gives the same subset; sorted ascending.
torch::Tensor balanced_subset_indices(const torch::Tensor& labels, int64_t count, int64_t num_classes);

// A batch as float, scaled to [0,1] and normalised per channel.
torch::Tensor normalize_images(const torch::Tensor& images_uint8, const ImageDataset& dataset);

}  // namespace ngd
