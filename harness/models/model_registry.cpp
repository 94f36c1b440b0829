#include <memory>

#include "harness/models/conv3_fc1.h"
#include "harness/models/mlp.h"
#include "harness/models/model.h"

namespace ngd {
namespace {

OptionInfo rank_option() {
  return {"rank", 0,
          "factorise each Linear/Conv2d as W = U·V through this rank where that saves weights (0 = dense)"};
}

// The rank option's value; absent (options not resolved against this table, as some tests build models) = dense.
int64_t rank(const Options& options) { return options.json().value("rank", int64_t{0}); }

}  // namespace

// Adding a model: a file in harness/models/ and one entry here.
const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> table = {
      {"mlp",
       "fully connected ReLU network on flattened images",
       {{"hidden", {256, 256}, "widths of the hidden layers"}, rank_option()},
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<Mlp>(options.integers("hidden"), rank(options), input);
       }},
      {"3c1f",
       "3 conv3×3 + maxpool3 + FC + FC, no BN (TENGraD/HyLo Fashion-MNIST net)",
       {{"channels", 128, "channels of each conv layer (128 in the papers)"},
        {"hidden", 500, "width of the hidden FC layer (500 in the papers)"},
        rank_option()},
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<Conv3Fc1>(options.integer("channels"), options.integer("hidden"),
                                           rank(options), input);
       }},
  };
  return table;
}

}  // namespace ngd
