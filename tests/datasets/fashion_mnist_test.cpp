#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "datasets/dataset.h"
#include "datasets/fashion_mnist.h"
#include "datasets/idx_reader.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using testing::TempDir;

// Expects `body` to throw std::runtime_error whose message contains every one of `parts`.
template <class Body>
void expect_error(Body body, const std::vector<std::string>& parts) {
  try {
    body();
    FAIL() << "expected an error mentioning " << parts.front();
  } catch (const std::runtime_error& error) {
    for (const auto& part : parts) EXPECT_NE(std::string(error.what()).find(part), std::string::npos) << error.what();
  }
}

TEST(IdxReader, ReadsGzipAndPlainFilesWithTheirShape) {
  TempDir dir;
  std::vector<uint8_t> payload(2 * 3 * 4);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7);
  testing::write_idx(dir.file("a.gz"), {2, 3, 4}, payload);
  testing::write_idx(dir.file("a"), {2, 3, 4}, payload, /*gzip=*/false);
  for (const auto* name : {"a.gz", "a"}) {
    const auto tensor = read_idx_file(dir.file(name));
    EXPECT_EQ(tensor.sizes(), (std::vector<int64_t>{2, 3, 4}));
    EXPECT_EQ(tensor[1][2][3].item<int>(), payload[23]);
    EXPECT_EQ(tensor.sum().item<int64_t>(), std::accumulate(payload.begin(), payload.end(), int64_t{0}));
  }
}

TEST(IdxReader, RejectsTruncatedPayload) {
  TempDir dir;
  testing::write_idx(dir.file("t.gz"), {10, 28, 28}, std::vector<uint8_t>(10 * 28 * 28 - 5));
  expect_error([&] { read_idx_file(dir.file("t.gz")); }, {dir.file("t.gz"), "truncated"});
}

TEST(IdxReader, RejectsTrailingData) {
  TempDir dir;
  testing::write_idx(dir.file("t.gz"), {4}, std::vector<uint8_t>(5));
  expect_error([&] { read_idx_file(dir.file("t.gz")); }, {"trailing data"});
}

TEST(IdxReader, RejectsBadMagicTypeAndDimensions) {
  TempDir dir;
  testing::write_gzip(dir.file("magic.gz"), std::string("\x01\x02\x08\x01\x00\x00\x00\x01\x05", 9));
  expect_error([&] { read_idx_file(dir.file("magic.gz")); }, {"magic"});
  testing::write_gzip(dir.file("type.gz"), std::string("\x00\x00\x0d\x01\x00\x00\x00\x01\x05", 9));
  expect_error([&] { read_idx_file(dir.file("type.gz")); }, {"0x0d"});
  testing::write_gzip(dir.file("dims.gz"), std::string("\x00\x00\x08\x09", 4));
  expect_error([&] { read_idx_file(dir.file("dims.gz")); }, {"9 dimensions"});
  testing::write_gzip(dir.file("header.gz"), std::string("\x00\x00\x08\x03\x00\x00", 6));
  expect_error([&] { read_idx_file(dir.file("header.gz")); }, {"truncated IDX header"});
  testing::write_gzip(dir.file("zero.gz"), std::string("\x00\x00\x08\x01\x00\x00\x00\x00", 8));
  expect_error([&] { read_idx_file(dir.file("zero.gz")); }, {"zero"});
}

TEST(IdxReader, RejectsCorruptGzipStreamAndMissingFile) {
  TempDir dir;
  testing::write_idx(dir.file("c.gz"), {1000}, std::vector<uint8_t>(1000, 3));
  const auto size = std::filesystem::file_size(dir.file("c.gz"));
  std::filesystem::resize_file(dir.file("c.gz"), size - 12);  // cut the stream and its trailer
  expect_error([&] { read_idx_file(dir.file("c.gz")); }, {dir.file("c.gz")});
  expect_error([&] { read_idx_file(dir.file("missing.gz")); }, {"missing.gz", "cannot open"});
}

TEST(FashionMnist, LoadsOfficialLayoutFromADataRoot) {
  TempDir root;
  testing::write_synthetic_fashion_mnist(root.path(), 50, 20);
  const auto dataset = load_dataset({"fashion-mnist", std::nullopt, std::nullopt}, {root.path()});
  // The default validation set: min(test size 20, a tenth of the 50 training images) = 5, taken out.
  EXPECT_EQ(dataset.train.images.sizes(), (std::vector<int64_t>{45, 1, 28, 28}));
  EXPECT_EQ(dataset.validation.size(), 5);
  EXPECT_EQ(dataset.test.size(), 20);
  const auto sized = load_dataset({"fashion-mnist", 30, 10, nlohmann::json::object(), 12}, {root.path()});
  EXPECT_EQ(sized.train.size(), 30);
  EXPECT_EQ(sized.validation.size(), 12);
  EXPECT_EQ(sized.test.size(), 10);
  EXPECT_EQ(dataset.num_classes, 10);
  EXPECT_EQ(dataset.train.labels.dtype(), torch::kInt64);
}

TEST(FashionMnist, RejectsLabelOutOfRangeAndCountMismatch) {
  TempDir root;
  testing::write_synthetic_fashion_mnist(root.path(), 30, 10);
  const auto folder = root.path() + "/fashion-mnist";
  std::vector<uint8_t> labels(10, 1);
  labels[7] = 12;
  testing::write_idx(folder + "/t10k-labels-idx1-ubyte.gz", {10}, labels);
  expect_error([&] { load_fashion_mnist(folder); }, {"t10k-labels", "record 7", "label 12"});
  testing::write_idx(folder + "/t10k-labels-idx1-ubyte.gz", {9}, std::vector<uint8_t>(9, 1));
  expect_error([&] { load_fashion_mnist(folder); }, {"9 labels for 10 images"});
}

TEST(Datasets, MissingDatasetNamesTheRootsSearched) {
  TempDir root;
  expect_error([&] { load_dataset({"fashion-mnist", std::nullopt, std::nullopt}, {root.path()}); },
               {"not found", root.path(), "apt-get install dataset-fashion-mnist"});
  expect_error([&] { load_dataset({"cifar10", std::nullopt, std::nullopt}, {root.path(), "./data"}); },
               {"dataset 'cifar10' not found", "'cifar-10-batches-bin'", root.path() + ", ./data",
                "scripts/fetch-datasets.sh cifar10"});
  EXPECT_THROW(load_dataset({"cifar10", std::nullopt, std::nullopt}, {root.path()}), DatasetNotFound);
}

TEST(Datasets, SubsetIsClassBalancedAndDeterministic) {
  const auto labels = torch::arange(1000, torch::kInt64).remainder(10);
  const auto first = balanced_subset_indices(labels, 105, 10);
  EXPECT_TRUE(first.equal(balanced_subset_indices(labels, 105, 10)));
  EXPECT_EQ(first.size(0), 105);
  EXPECT_EQ(std::get<0>(torch::_unique(first)).size(0), 105);  // no repeats
  const auto counts = torch::bincount(labels.index_select(0, first), {}, 10);
  EXPECT_LE((counts.max() - counts.min()).item<int64_t>(), 1);
}

TEST(Datasets, SubsetOfSkewedLabelsTakesWhatSmallClassesHave) {
  auto labels = torch::zeros({100}, torch::kInt64);
  labels.slice(0, 0, 3).fill_(1);  // class 1 has three samples
  const auto chosen = balanced_subset_indices(labels, 20, 2);
  const auto counts = torch::bincount(labels.index_select(0, chosen), {}, 2);
  EXPECT_EQ(counts[1].item<int64_t>(), 3);
  EXPECT_EQ(counts[0].item<int64_t>(), 17);
}

TEST(Datasets, DataRootsSearchOrder) {
  setenv("NGDBENCH_DATA", "/a:/b", 1);
  const auto roots = data_roots("/explicit");
  unsetenv("NGDBENCH_DATA");
  EXPECT_EQ(roots, (std::vector<std::string>{"/explicit", "/a", "/b", "./data", "/usr/share/datasets"}));
}

}  // namespace
}  // namespace ngd
