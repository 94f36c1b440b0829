#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace ngd::testing {

// A fresh folder under the system temp dir, removed with everything in it when this goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes an IDX file of unsigned bytes, gzip-compressed unless `gzip` is false.
void write_idx(const std::string& path, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& payload,
               bool gzip = true);
// Writes raw bytes through gzip (for corrupt-file tests).
void write_gzip(const std::string& path, const std::string& bytes);

// A Fashion-MNIST-shaped dataset (1×28×28, 10 classes) that a small model learns in a few epochs:
// each class brightens its own band of rows, plus noise. Written under ROOT/fashion-mnist/ in the
// official file names, so ROOT is a data root.
void write_synthetic_fashion_mnist(const std::string& root, int64_t train_size, int64_t test_size, uint64_t seed = 0);

// The same data in memory, without files.
ImageDataset synthetic_fashion_mnist(int64_t train_size, int64_t test_size, uint64_t seed = 0);

// A Multi30K-shaped parallel corpus a tiny Transformer learns quickly: each German sentence is 2–6
// words of a 12-word vocabulary, its English side the word-by-word translation (capitalised, with a
// final period). Written under ROOT/multi30k/ in the official gzip'd file names.
void write_synthetic_multi30k(const std::string& root, int64_t train_size, int64_t val_size, int64_t test_size,
                              uint64_t seed = 0);

// A valid translation spec for the synthetic corpus: transformer d_model 16, one layer each side,
// 2 epochs, AdamW with the noam schedule, greedy decoding, seeds [0].
nlohmann::json tiny_translation_spec();

// A valid spec for the synthetic dataset: mlp [32], 2 epochs, batch 32, SGD, seeds [0].
nlohmann::json tiny_spec();

// The message parse_spec throws for `spec` (named "spec.json"), or "" when it parses.
std::string spec_error(const nlohmann::json& spec);

// The im2col rows of a 2-D convolution (groups = 1) built window by window with slicing, as an
// independent check of layer_statistics' unfold: (N, S, C_in·kh·kw) with S = H_out·W_out row-major
// and each row ordered like the weight's (C_in, kh, kw).
torch::Tensor conv_patches_by_loops(const torch::Tensor& input, std::array<int64_t, 2> kernel,
                                    std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
                                    std::array<int64_t, 2> dilation);

// A file's whole content ("" when it cannot be read).
std::string read_file(const std::string& path);

// A training outcome against its bound, for EXPECT_TRUE / ASSERT_TRUE. CTest checks mechanisms; a test
// that still bounds an outcome (accuracy, loss after training) records the value and the bound as the
// gtest properties "outcome.NAME" and "outcome.NAME.bound", so that scripts/kernel-matrix.py can gather
// them under every BLAS kernel and ATen CPU capability and check the margin (docs/testing.md).
::testing::AssertionResult outcome_at_least(const std::string& name, double value, double bound);
::testing::AssertionResult outcome_at_most(const std::string& name, double value, double bound);

// A parametrised test's name for a registry name: '-' → '_' (gtest names allow letters, digits and '_').
std::string registry_test_name(const ::testing::TestParamInfo<std::string>& info);

// The built `ngdbench` CLI and the source tree.
std::string ngdbench_binary();
std::string source_dir();

}  // namespace ngd::testing
