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

// A model's own options followed by the low-rank ones (every image model builds its Linear/Conv2d maps
// through make_compressible_layer).
std::vector<OptionInfo> with_low_rank(std::vector<OptionInfo> options) {
  for (auto& option : low_rank_options()) options.push_back(std::move(option));
  return options;
}

// mlp and 3c1f had `rank` before the other low-rank options: their runs' identity keeps it at its default.
std::vector<OptionInfo> with_low_rank_and_rank_in_identity(std::vector<OptionInfo> options) {
  options = with_low_rank(std::move(options));
  for (auto& option : options) {
    if (option.name == "rank") option.identity_at_default = true;
  }
  return options;
}

ModelEntry cifar_resnet(int64_t depth) {
  return {"resnet" + std::to_string(depth),
          "He et al. CIFAR ResNet-" + std::to_string(depth) + " (16-32-64 channels, option-A shortcuts, BN)",
          with_low_rank({{"width", 16, "channels of the first stage; the stages have width·1, 2, 4 (16 in the paper)", {},
                          at_least(1)}}),
          [depth](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
            return std::make_shared<CifarResNet>(depth, options.integer("width"), low_rank_settings(options), input);
          }};
}

}  // namespace

// Adding a model: a file in models/ and one entry here.
const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> table = {
      {"mlp",
       "fully connected ReLU network on flattened images",
       with_low_rank_and_rank_in_identity({{"hidden", {256, 256}, "widths of the hidden layers", {}, at_least(1)}}),
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<Mlp>(options.integers("hidden"), low_rank_settings(options), input);
       }},
      {"3c1f",
       "3 conv3×3 + maxpool3 + FC + FC, no BN (TENGraD/HyLo Fashion-MNIST net)",
       with_low_rank_and_rank_in_identity({{"channels", 128, "channels of each conv layer (128 in the papers)", {}, at_least(1)},
                                           {"hidden", 500, "width of the hidden FC layer (500 in the papers)", {}, at_least(1)}}),
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<Conv3Fc1>(options.integer("channels"), options.integer("hidden"),
                                           low_rank_settings(options), input);
       }},
      {"cnn",
       "small CNN for quick CPU runs: 2× (conv3×3 + ReLU + maxpool2), FC, FC; no BN",
       with_low_rank({{"channels", 32, "channels of the first conv (the second has twice as many)", {}, at_least(1)},
                      {"hidden", 128, "width of the hidden FC layer", {}, at_least(1)}}),
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<SmallCnn>(options.integer("channels"), options.integer("hidden"),
                                           low_rank_settings(options), input);
       }},
      {"resnet18",
       "ResNet-18 for CIFAR (3×3 stem, no max-pool, projection shortcuts, BN)",
       with_low_rank({{"width", 64, "channels of the first stage; the stages have width·1, 2, 4, 8 (64 in kuangliu/pytorch-cifar)",
                       {}, at_least(1)}}),
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<ResNet18>(options.integer("width"), low_rank_settings(options), input);
       }},
      cifar_resnet(20),
      cifar_resnet(32),
      cifar_resnet(110),
      {"vgg16_bn",
       "VGG-16 with BatchNorm for 32×32 inputs, one FC layer",
       with_low_rank({}),
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<Vgg16Bn>(low_rank_settings(options), input);
       }},
      {"densenet_bc",
       "DenseNet-BC for CIFAR (bottleneck + compression, BN)",
       with_low_rank({{"depth", 19, "3n+4; (depth−4)/6 bottleneck layers per dense block (19 in TENGraD/HyLo)", {},
                       at_least(10)},
                      {"growth", 100, "growth rate k (100 in TENGraD/HyLo)", {}, at_least(1)},
                      {"compression", 2, "transitions divide the channels by this", {}, at_least(1)}}),
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<DenseNetBc>(options.integer("depth"), options.integer("growth"),
                                             options.integer("compression"), low_rank_settings(options), input);
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
