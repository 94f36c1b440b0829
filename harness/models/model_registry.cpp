#include <memory>

#include "harness/models/conv3_fc1.h"
#include "harness/models/mlp.h"
#include "harness/models/model.h"

namespace ngd {

// Adding a model: a file in harness/models/ and one entry here.
const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> table = {
      {"mlp",
       "fully connected ReLU network on flattened images",
       {{"hidden", {256, 256}, "widths of the hidden layers"}},
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<Mlp>(options.integers("hidden"), input);
       }},
      {"3c1f",
       "3 conv3×3 + maxpool3 + FC + FC, no BN (TENGraD/HyLo Fashion-MNIST net)",
       {{"channels", 128, "channels of each conv layer (128 in the papers)"},
        {"hidden", 500, "width of the hidden FC layer (500 in the papers)"}},
       [](const Options& options, const ModelInput& input) -> std::shared_ptr<Model> {
         return std::make_shared<Conv3Fc1>(options.integer("channels"), options.integer("hidden"), input);
       }},
  };
  return table;
}

}  // namespace ngd
