#include "tests/support/test_support.h"

#include <fmt/format.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "harness/spec/spec.h"

namespace ngd::testing {
namespace {

// Pixel rows each synthetic class brightens: class c owns rows [c·kBandRows, (c+1)·kBandRows).
constexpr int64_t kBandRows = 2;

ImageSet synthetic_split(int64_t size, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  auto labels = torch::randint(10, {size}, generator, torch::kInt64);
  auto images = torch::randint(0, 60, {size, 1, 28, 28}, generator, torch::kInt64);
  for (int64_t i = 0; i < size; ++i) {
    const int64_t row = 4 + labels[i].item<int64_t>() * kBandRows;
    images[i].slice(1, row, row + kBandRows).add_(150);
  }
  return {images.to(torch::kUInt8), labels};
}

std::vector<uint8_t> bytes_of(const torch::Tensor& tensor) {
  auto contiguous = tensor.to(torch::kUInt8).contiguous();
  const auto* data = contiguous.data_ptr<uint8_t>();
  return {data, data + contiguous.numel()};
}

}  // namespace

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "ngdbench-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  if (file == nullptr) throw std::runtime_error("cannot write " + path);
  gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(file);
}

void write_idx(const std::string& path, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& payload,
               bool gzip) {
  std::string bytes = {0, 0, 0x08, static_cast<char>(dims.size())};
  for (uint32_t extent : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>((extent >> shift) & 0xff));
  }
  bytes.append(payload.begin(), payload.end());
  if (gzip) {
    write_gzip(path, bytes);
  } else {
    std::ofstream(path, std::ios::binary) << bytes;
  }
}

ImageDataset synthetic_fashion_mnist(int64_t train_size, int64_t test_size, uint64_t seed) {
  ImageDataset dataset;
  dataset.name = "fashion-mnist";
  dataset.train = synthetic_split(train_size, seed);
  dataset.test = synthetic_split(test_size, seed + 1);
  dataset.num_classes = 10;
  dataset.channel_mean = {0.2860};
  dataset.channel_std = {0.3530};
  return dataset;
}

void write_synthetic_fashion_mnist(const std::string& root, int64_t train_size, int64_t test_size, uint64_t seed) {
  const auto folder = root + "/fashion-mnist";
  std::filesystem::create_directories(folder);
  const auto dataset = synthetic_fashion_mnist(train_size, test_size, seed);
  for (const auto& [prefix, set] : {std::pair{"train", dataset.train}, std::pair{"t10k", dataset.test}}) {
    const auto n = static_cast<uint32_t>(set.size());
    write_idx(folder + "/" + prefix + "-images-idx3-ubyte.gz", {n, 28, 28}, bytes_of(set.images));
    write_idx(folder + "/" + prefix + "-labels-idx1-ubyte.gz", {n}, bytes_of(set.labels));
  }
}

std::string spec_error(const nlohmann::json& spec) {
  try {
    parse_spec(spec, "spec.json");
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

nlohmann::json tiny_spec() {
  return nlohmann::json::parse(R"({
    "name": "tiny",
    "dataset": {"name": "fashion-mnist"},
    "model": {"name": "mlp", "hidden": [32]},
    "epochs": 2, "batch_size": 32, "seeds": [0],
    "target": {"metric": "test_acc", "value": 0.5},
    "optimizers": [{"name": "sgd", "hparams": {"lr": 0.05}}]
  })");
}

torch::Tensor conv_patches_by_loops(const torch::Tensor& input, std::array<int64_t, 2> kernel,
                                    std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
                                    std::array<int64_t, 2> dilation) {
  const auto padded = torch::constant_pad_nd(input, {padding[1], padding[1], padding[0], padding[0]});
  const int64_t span_h = dilation[0] * (kernel[0] - 1) + 1;
  const int64_t span_w = dilation[1] * (kernel[1] - 1) + 1;
  const int64_t out_h = (padded.size(2) - span_h) / stride[0] + 1;
  const int64_t out_w = (padded.size(3) - span_w) / stride[1] + 1;
  std::vector<torch::Tensor> windows;
  for (int64_t row = 0; row < out_h; ++row) {
    for (int64_t column = 0; column < out_w; ++column) {
      const auto window = padded.slice(2, row * stride[0], row * stride[0] + span_h, dilation[0])
                              .slice(3, column * stride[1], column * stride[1] + span_w, dilation[1]);
      windows.push_back(window.reshape({input.size(0), -1}));
    }
  }
  return torch::stack(windows, 1);
}

void write_synthetic_multi30k(const std::string& root, int64_t train_size, int64_t val_size, int64_t test_size,
                              uint64_t seed) {
  static const std::vector<std::pair<std::string, std::string>> kWords = {
      {"hund", "dog"},  {"katze", "cat"},   {"mann", "man"}, {"frau", "woman"}, {"läuft", "runs"}, {"spielt", "plays"},
      {"im", "in"},     {"park", "park"},   {"rot", "red"},  {"blau", "blue"},  {"groß", "big"},   {"klein", "small"}};
  const auto folder = std::filesystem::path(root) / "multi30k";
  std::filesystem::create_directories(folder);
  std::mt19937_64 random(seed);
  const std::vector<std::pair<std::string, int64_t>> splits = {
      {"train", train_size}, {"val", val_size}, {"test_2016_flickr", test_size}};
  for (const auto& [split, size] : splits) {
    std::string german, english;
    for (int64_t i = 0; i < size; ++i) {
      const auto length = 2 + random() % 5;
      std::string de, en;
      for (uint64_t w = 0; w < length; ++w) {
        const auto& [de_word, en_word] = kWords[random() % kWords.size()];
        de += (w ? " " : "") + de_word;
        en += (w ? " " : "") + en_word;
      }
      en[0] = static_cast<char>(std::toupper(en[0]));
      german += de + ".\n";
      english += en + ".\n";
    }
    write_gzip((folder / (split + ".de.gz")).string(), german);
    write_gzip((folder / (split + ".en.gz")).string(), english);
  }
}

nlohmann::json tiny_translation_spec() {
  return {{"name", "tiny-translation"},
          {"dataset", {{"name", "multi30k"}, {"vocab_size", 64}, {"batch_tokens", 0}, {"batch_sentences", 16}}},
          {"model",
           {{"name", "transformer"},
            {"d_model", 16},
            {"heads", 2},
            {"encoder_layers", 1},
            {"decoder_layers", 1},
            {"d_ff", 32},
            {"dropout", 0.0}}},
          {"decoding", {{"method", "greedy"}, {"max_length_offset", 5}}},
          {"epochs", 2},
          {"eval_batch_size", 32},
          {"seeds", {0}},
          {"optimizers",
           {{{"name", "adamw"}, {"hparams", {{"lr", 0.01}}}, {"schedule", {{"name", "noam"}, {"warmup_steps", 5}}}}}}};
}

std::string ngdbench_binary() { return NGDBENCH_BINARY; }
std::string source_dir() { return NGDBENCH_SOURCE_DIR; }

std::string read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

namespace {

::testing::AssertionResult bounded_outcome(const std::string& name, double value, const char* relation, double bound,
                                           bool holds) {
  ::testing::Test::RecordProperty("outcome." + name, fmt::format("{}", value));
  ::testing::Test::RecordProperty("outcome." + name + ".bound", fmt::format("{} {}", relation, bound));
  if (holds) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << " = " << value << ", expected " << relation << " " << bound;
}

}  // namespace

::testing::AssertionResult outcome_at_least(const std::string& name, double value, double bound) {
  return bounded_outcome(name, value, ">=", bound, value >= bound);
}

::testing::AssertionResult outcome_at_most(const std::string& name, double value, double bound) {
  return bounded_outcome(name, value, "<=", bound, value <= bound);
}

std::string registry_test_name(const ::testing::TestParamInfo<std::string>& info) {
  auto name = info.param;
  for (auto& c : name) c = c == '-' ? '_' : c;
  return name;
}

}  // namespace ngd::testing
