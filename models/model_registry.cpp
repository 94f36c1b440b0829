#include <memory>

#include "models/conv3_fc1.h"
#include "models/densenet.h"
#include "models/mlp.h"
#include "models/model.h"
#include "models/resnet.h"
#include "models/small_cnn.h"
#include "models/transformer.h"
#include "models/vgg.h"

namespace ngd {
namespace {

ModelEntry cifar_resnet(int64_t depth) {
  return {"resnet" + std::to_string(depth),
          "He et al. CIFAR ResNet-" + std::to_string(depth) + " (16-32-64 channels, option-A shortcuts, BN)",
          {{"width", 16, "channels of the first stage; the stages have width·1, 2, 4 (16 in the paper)", {}, at_least(1)}},
          [depth](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
            return std::make_shared<CifarResNet>(depth, options.integer("width"), input);
          }};
}

// A rank at least a layer's smaller side saves no weights there (that layer stays dense), so no model
// here needs more than this; the bound makes an absurd rank a spec error instead of an overflow.
constexpr int64_t kMaxRank = int64_t{1} << 20;

OptionInfo rank_option() {
  return {"rank", 0,
          "factorise each Linear/Conv2d as W = U·V through this rank where that saves weights (0 = dense)", {},
          between(0, static_cast<double>(kMaxRank))};
}

// The rank option's value; absent (options not resolved against this table, as some tests build models) = dense.
int64_t rank(const Options& options) { return options.json().value("rank", int64_t{0}); }

}  // namespace

// Adding a model: a file in models/ and one entry here.
const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> table = {
      {"mlp",
       "fully connected ReLU network on flattened images",
       {{"hidden", {256, 256}, "widths of the hidden layers", {}, at_least(1)}, rank_option()},
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<Mlp>(options.integers("hidden"), rank(options), input);
       }},
      {"3c1f",
       "3 conv3×3 + maxpool3 + FC + FC, no BN (TENGraD/HyLo Fashion-MNIST net)",
       {{"channels", 128, "channels of each conv layer (128 in the papers)", {}, at_least(1)},
        {"hidden", 500, "width of the hidden FC layer (500 in the papers)", {}, at_least(1)},
        rank_option()},
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<Conv3Fc1>(options.integer("channels"), options.integer("hidden"),
                                           rank(options), input);
       }},
      {"cnn",
       "small CNN for quick CPU runs: 2× (conv3×3 + ReLU + maxpool2), FC, FC; no BN",
       {{"channels", 32, "channels of the first conv (the second has twice as many)", {}, at_least(1)},
        {"hidden", 128, "width of the hidden FC layer", {}, at_least(1)}},
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<SmallCnn>(options.integer("channels"), options.integer("hidden"), input);
       }},
      {"resnet18",
       "ResNet-18 for CIFAR (3×3 stem, no max-pool, projection shortcuts, BN)",
       {{"width", 64, "channels of the first stage; the stages have width·1, 2, 4, 8 (64 in kuangliu/pytorch-cifar)", {},
         at_least(1)}},
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<ResNet18>(options.integer("width"), input);
       }},
      cifar_resnet(20),
      cifar_resnet(32),
      cifar_resnet(110),
      {"vgg16_bn",
       "VGG-16 with BatchNorm for 32×32 inputs, one FC layer",
       {},
       [](const Options&, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<Vgg16Bn>(input);
       }},
      {"densenet_bc",
       "DenseNet-BC for CIFAR (bottleneck + compression, BN)",
       {{"depth", 19, "3n+4; (depth−4)/6 bottleneck layers per dense block (19 in TENGraD/HyLo)", {}, at_least(10)},
        {"growth", 100, "growth rate k (100 in TENGraD/HyLo)", {}, at_least(1)},
        {"compression", 2, "transitions divide the channels by this", {}, at_least(1)}},
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<DenseNetBc>(options.integer("depth"), options.integer("growth"),
                                             options.integer("compression"), input);
       }},
      {"transformer",
       "encoder–decoder Transformer for translation (pre-norm, sinusoidal positions, captured attention/FF Linears)",
       transformer_options(),
       [](const Options& options, int64_t source_vocab, int64_t target_vocab) -> std::shared_ptr<TranslationModel> {
         return std::make_shared<TranslationModel>(transformer_settings(options), source_vocab, target_vocab);
       }},
  };
  return table;
}

}  // namespace ngd
