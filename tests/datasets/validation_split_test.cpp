#include "datasets/validation_split.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/support/test_support.h"

namespace ngd {
namespace {

// Each image of the synthetic set made unique by writing its index into the first pixels, so that
// splits can be compared by identity.
ImageSet numbered_images(int64_t count) {
  auto set = testing::synthetic_fashion_mnist(count, 10).train;
  auto flat = set.images.view({count, -1});
  flat.select(1, 0).copy_(torch::arange(count, torch::kInt64).remainder(256).to(torch::kUInt8));
  flat.select(1, 1).copy_(torch::arange(count, torch::kInt64).div(256, "floor").to(torch::kUInt8));
  return set;
}

std::set<int64_t> ids(const ImageSet& set) {
  const auto flat = set.images.view({set.size(), -1}).to(torch::kInt64);
  std::set<int64_t> result;
  for (int64_t i = 0; i < set.size(); ++i) result.insert(flat[i][0].item<int64_t>() + 256 * flat[i][1].item<int64_t>());
  return result;
}

std::vector<int64_t> class_counts(const ImageSet& set) {
  const auto counts = torch::bincount(set.labels, {}, 10);
  return std::vector<int64_t>(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + 10);
}

TEST(ValidationSplit, TrainingSubsetIsUnchangedAndValidationDisjointAndBalanced) {
  const auto full = numbered_images(600);
  const auto split = carve_validation(full, 200, 100, 10);
  // The training images are exactly the subset the spec selected before validation sets existed.
  const auto before = select_images(full, balanced_subset_indices(full.labels, 200, 10));
  EXPECT_TRUE(torch::equal(split.train.images, before.images));
  EXPECT_TRUE(torch::equal(split.train.labels, before.labels));
  ASSERT_EQ(split.validation.size(), 100);
  const auto train_ids = ids(split.train), validation_ids = ids(split.validation);
  EXPECT_EQ(validation_ids.size(), 100u);
  for (auto id : validation_ids) EXPECT_EQ(train_ids.count(id), 0u) << "image " << id << " in both";
  EXPECT_EQ(class_counts(split.validation), std::vector<int64_t>(10, 10));
  // A fixed seed: the same request, the same split.
  EXPECT_TRUE(torch::equal(carve_validation(full, 200, 100, 10).validation.images, split.validation.images));
}

TEST(ValidationSplit, WithoutSubsetTheValidationImagesLeaveTheTrainingSet) {
  const auto full = numbered_images(300);
  const auto split = carve_validation(full, std::nullopt, 50, 10);
  EXPECT_EQ(split.train.size(), 250);
  EXPECT_EQ(split.validation.size(), 50);
  auto all = ids(split.train);
  for (auto id : ids(split.validation)) EXPECT_TRUE(all.insert(id).second) << "image " << id << " in both";
  EXPECT_EQ(all.size(), 300u);
}

TEST(ValidationSplit, ZeroMeansNoneAndTooManyIsAnError) {
  const auto full = numbered_images(100);
  const auto none = carve_validation(full, 60, 0, 10);
  EXPECT_EQ(none.train.size(), 60);
  EXPECT_TRUE(none.validation.empty());
  try {
    carve_validation(full, 60, 41, 10);
    FAIL() << "accepted";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("dataset.validation_subset = 41 does not fit: 40 training images"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace ngd
