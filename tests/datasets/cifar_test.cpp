#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/options.h"
#include "datasets/batch_loader.h"
#include "datasets/cifar.h"
#include "datasets/dataset.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

// Writes `count` CIFAR records with `label_bytes` label bytes; record i has labels (i % 20, i % 100)
// (or i % 10 for one label byte) and every pixel equal to i % 251.
void write_cifar_file(const std::string& path, int64_t count, int64_t label_bytes) {
  std::ofstream file(path, std::ios::binary);
  for (int64_t i = 0; i < count; ++i) {
    if (label_bytes == 1) {
      file.put(static_cast<char>(i % 10));
    } else {
      file.put(static_cast<char>(i % 20));
      file.put(static_cast<char>(i % 100));
    }
    file << std::string(3072, static_cast<char>(i % 251));
  }
}

std::string expect_error(const std::function<void()>& body) {
  try {
    body();
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected an error";
  return "";
}

Options cifar100_settings(const std::string& labels) {
  return Options(resolve_options({{"labels", labels}}, cifar100_options(), "cifar100", "dataset"));
}

TEST(Cifar, ReadsGeneratedCifar10WithCountsFromFileSizes) {
  testing::TempDir root;
  const auto folder = root.path() + "/cifar-10-batches-bin";
  std::filesystem::create_directories(folder);
  for (int b = 1; b <= 5; ++b) write_cifar_file(folder + "/data_batch_" + std::to_string(b) + ".bin", 30, 1);
  write_cifar_file(folder + "/test_batch.bin", 20, 1);
  const auto dataset = load_dataset({"cifar10", std::nullopt, std::nullopt,
                                     resolve_options(nlohmann::json::object(), cifar10_options(), "c", "dataset")},
                                    {root.path()});
  // The default validation set (as many images as the test set, at most a tenth of the training
  // split: 15) is carved from the 150 training records.
  EXPECT_EQ(dataset.train.images.sizes(), (std::vector<int64_t>{135, 3, 32, 32}));
  EXPECT_EQ(dataset.validation.size(), 15);
  EXPECT_EQ(dataset.test.size(), 20);
  // Every image keeps its own label: record i of a file has label i % 10 and pixels i % 251 (write_cifar_file).
  const auto labels = torch::cat({dataset.train.labels, dataset.validation.labels});
  const auto values = torch::cat({dataset.train.images, dataset.validation.images}).flatten(1).amax(1).to(torch::kInt64);
  EXPECT_TRUE(labels.eq(values.remainder(10)).all().item<bool>());
  EXPECT_EQ(dataset.augmentation.crop_padding, 4);
  EXPECT_TRUE(dataset.augmentation.horizontal_flip);
  EXPECT_EQ(dataset.channel_mean.size(), 3u);
}

TEST(Cifar, ReadsGeneratedCifar100FineOrCoarse) {
  testing::TempDir root;
  write_cifar_file(root.file("train.bin"), 250, 2);
  write_cifar_file(root.file("test.bin"), 50, 2);
  const auto fine = load_cifar100(root.path(), "fine");
  EXPECT_EQ(fine.num_classes, 100);
  EXPECT_EQ(fine.train.labels[123].item<int64_t>(), 23);
  const auto coarse = load_cifar100(root.path(), "coarse");
  EXPECT_EQ(coarse.num_classes, 20);
  EXPECT_EQ(coarse.train.labels[123].item<int64_t>(), 3);
  EXPECT_EQ(cifar100_settings("coarse").text("labels"), "coarse");
  EXPECT_THROW(cifar100_settings("medium"), std::runtime_error);
}

TEST(Cifar, RejectsPartialRecordsAndBadLabelsNamingFileAndRecord) {
  testing::TempDir root;
  write_cifar_file(root.file("partial.bin"), 3, 1);
  std::filesystem::resize_file(root.file("partial.bin"), 3 * 3073 - 100);
  const auto partial = expect_error([&] { read_cifar_records(root.file("partial.bin"), 1, 0, 10); });
  EXPECT_NE(partial.find("partial.bin"), std::string::npos) << partial;
  EXPECT_NE(partial.find("3073-byte records"), std::string::npos) << partial;
  write_cifar_file(root.file("labels.bin"), 12, 2);  // fine labels 0..11, read as 10 classes
  const auto labels = expect_error([&] { read_cifar_records(root.file("labels.bin"), 2, 1, 10); });
  EXPECT_NE(labels.find("record 10 has label 10"), std::string::npos) << labels;
  EXPECT_NE(expect_error([&] { read_cifar_records(root.file("absent.bin"), 1, 0, 10); }).find("cannot open"),
            std::string::npos);
}

TEST(Cifar, SharedMiniCopyLoadsAsIs) {
  const auto roots = data_roots("");
  const auto* entry = find_entry(dataset_registry(), "cifar10");
  if (!find_dataset_folder(*entry, roots)) GTEST_SKIP() << "no cifar-10-batches-bin in the data roots";
  const auto dataset = load_dataset(
      {"cifar10", std::nullopt, std::nullopt, resolve_options(nlohmann::json::object(), entry->options, "c", "dataset")},
      roots);
  EXPECT_EQ(dataset.train.images.sizes().slice(1), (std::vector<int64_t>{3, 32, 32}));
  // The whole copy is there, the default validation set carved from its training split.
  EXPECT_EQ((dataset.train.size() + dataset.validation.size()) % 2000, 0);
  EXPECT_GT(dataset.validation.size(), 0);
  // Class-balanced as documented: every class has the same share of the training set.
  const auto counts = torch::bincount(dataset.train.labels, {}, 10);
  EXPECT_EQ(counts.min().item<int64_t>(), counts.max().item<int64_t>());
  EXPECT_GT(dataset.train.images.to(torch::kFloat).std().item<double>(), 30.0);  // real images, not constants
}

TEST(Augmentation, CropAndFlipMoveWholeImagesAndKeepShapesAndRange) {
  auto images = torch::arange(2 * 3 * 32 * 32, torch::kInt64).remainder(200).add(1).to(torch::kUInt8).view({2, 3, 32, 32});
  auto generator = at::detail::createCPUGenerator(7);
  const auto augmented = augment_batch(images, {4, true}, generator);
  EXPECT_EQ(augmented.sizes(), images.sizes());
  EXPECT_EQ(augmented.dtype(), torch::kUInt8);
  // Each output pixel is either padding (0) or a pixel of the same image and channel.
  for (int64_t n = 0; n < 2; ++n) {
    for (int64_t c = 0; c < 3; ++c) {
      const auto source = images[n][c].flatten();
      const auto output = augmented[n][c].flatten();
      const auto nonzero = output.masked_select(output != 0);
      EXPECT_TRUE(torch::isin(nonzero, source).all().item<bool>());
    }
  }
}

TEST(Augmentation, FlipOnlyReversesColumnsAndCropOnlyShifts) {
  auto images = torch::randint(0, 255, {64, 1, 8, 8}, torch::kInt64).to(torch::kUInt8);
  auto generator = at::detail::createCPUGenerator(3);
  const auto flipped = augment_batch(images, {0, true}, generator);
  int64_t flips = 0;
  for (int64_t n = 0; n < 64; ++n) {
    const bool same = flipped[n].equal(images[n]);
    const bool mirrored = flipped[n].equal(images[n].flip({2}));
    EXPECT_TRUE(same || mirrored);
    flips += mirrored && !same;
  }
  EXPECT_GT(flips, 16);  // about half of 64
  EXPECT_LT(flips, 48);
  const auto cropped = augment_batch(images, {2, false}, generator);
  for (int64_t n = 0; n < 64; ++n) {
    bool found = false;
    const auto padded = torch::constant_pad_nd(images[n], {2, 2, 2, 2});
    for (int64_t dy = 0; dy <= 4 && !found; ++dy) {
      for (int64_t dx = 0; dx <= 4 && !found; ++dx) found = padded.slice(1, dy, dy + 8).slice(2, dx, dx + 8).equal(cropped[n]);
    }
    EXPECT_TRUE(found) << "sample " << n << " is not a crop of its padded image";
  }
}

TEST(Augmentation, SameSeedSameBatchesWithOrWithoutPrefetch) {
  auto dataset = testing::synthetic_fashion_mnist(100, 10);
  dataset.augmentation = {4, true};
  BatchLoader plain(dataset, 32, 5, torch::kCPU, false), prefetched(dataset, 32, 5, torch::kCPU, true);
  for (int epoch = 0; epoch < 2; ++epoch) {
    plain.start_epoch();
    prefetched.start_epoch();
    for (int64_t b = 0; b < plain.batches_per_epoch(); ++b) {
      const auto x = plain.next(), y = prefetched.next();
      EXPECT_TRUE(x.images.equal(y.images));
      EXPECT_TRUE(x.sample_ids.equal(y.sample_ids));
      EXPECT_TRUE(x.labels.equal(dataset.train.labels.index_select(0, x.sample_ids)));
    }
  }
  BatchLoader other_seed(dataset, 32, 6, torch::kCPU, false);
  plain.start_epoch();
  other_seed.start_epoch();
  EXPECT_FALSE(plain.next().images.equal(other_seed.next().images));
}

TEST(BatchLoader, CoversEveryTrainingSampleOncePerEpoch) {
  const auto dataset = testing::synthetic_fashion_mnist(100, 10);
  BatchLoader loader(dataset, 32, 1, torch::kCPU, true);
  loader.start_epoch();
  std::vector<torch::Tensor> ids;
  for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) ids.push_back(loader.next().sample_ids);
  EXPECT_EQ(loader.batches_per_epoch(), 4);
  EXPECT_TRUE(std::get<0>(torch::cat(ids).sort()).equal(torch::arange(100, torch::kInt64)));
}

// The sample ids of one epoch, in batch order.
torch::Tensor epoch_ids(BatchLoader& loader) {
  loader.start_epoch();
  std::vector<torch::Tensor> ids;
  for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) ids.push_back(loader.next().sample_ids);
  return torch::cat(ids);
}

TEST(BatchLoader, DataOrdersReshuffleRepeatTheFirstShuffleOrKeepTheDatasetOrder) {
  const auto dataset = testing::synthetic_fashion_mnist(100, 10);
  BatchLoader reshuffle(dataset, 32, 1, torch::kCPU, true, DataOrder::kReshuffle);
  BatchLoader fixed(dataset, 32, 1, torch::kCPU, true, DataOrder::kFixed);
  BatchLoader none(dataset, 32, 1, torch::kCPU, false, DataOrder::kNone);
  const auto first = epoch_ids(reshuffle);
  EXPECT_TRUE(epoch_ids(fixed).equal(first)) << "the same seed draws the same first shuffle";
  EXPECT_FALSE(first.equal(torch::arange(100, torch::kInt64)));
  EXPECT_FALSE(epoch_ids(reshuffle).equal(first));
  EXPECT_TRUE(epoch_ids(fixed).equal(first));
  for (int epoch = 0; epoch < 2; ++epoch) EXPECT_TRUE(epoch_ids(none).equal(torch::arange(100, torch::kInt64)));
}

}  // namespace
}  // namespace ngd
