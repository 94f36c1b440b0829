#include "models/lowrank/model_cost.h"

#include <map>

namespace ngd {
namespace {

// Multiply-adds of one capture layer on its recorded input (one sample).
int64_t multiply_adds(CaptureLayer& layer) {
  const auto& input = layer.input();
  const auto& weight = layer.weight();
  if (layer.kind() == CaptureLayer::Kind::kLinear) return (input.numel() / weight.size(1)) * weight.numel();
  const auto output = static_cast<CaptureConv2dImpl&>(layer).conv->forward(input);
  return output.size(2) * output.size(3) * weight.numel();
}

int64_t parameter_count(torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& parameter : module.parameters()) count += parameter.numel();
  return count;
}

std::string kind_name(CaptureLayer::Kind kind) { return kind == CaptureLayer::Kind::kLinear ? "linear" : "conv2d"; }

}  // namespace

std::vector<LayerCost> model_cost(Model& model, const std::vector<int64_t>& input_shape) {
  torch::NoGradGuard no_grad;
  std::map<const CaptureLayer*, int64_t> costs;
  {
    const auto& layers = model.capture_layers();
    for (const auto& layer : layers) layer->set_record_input(true);
    std::vector<int64_t> batch_shape{1};
    batch_shape.insert(batch_shape.end(), input_shape.begin(), input_shape.end());
    const auto parameter = model.parameters().front();
    model.forward(torch::zeros(batch_shape, parameter.options()));
    for (const auto& layer : layers) {
      layer->set_record_input(false);
      costs[layer.get()] = multiply_adds(*layer);
      layer->clear_captures();
    }
  }
  // Each capture layer's owner: the compressible layer holding it, if any.
  std::map<const CaptureLayer*, size_t> owner;
  const auto& compressible = model.compressible_layers();
  for (size_t i = 0; i < compressible.size(); ++i) {
    for (const auto& part : compressible[i].second->layer().capture_layers()) owner[part.get()] = i;
  }
  std::vector<LayerCost> result;
  std::vector<bool> listed(compressible.size(), false);
  for (size_t index = 0; index < model.capture_layers().size(); ++index) {
    const auto& layer = model.capture_layers()[index];
    const auto found = owner.find(layer.get());
    if (found == owner.end()) {
      result.push_back({"capture" + std::to_string(index), "dense " + kind_name(layer->kind()), parameter_count(*layer),
                        costs[layer.get()], {}});
      continue;
    }
    if (listed[found->second]) continue;
    listed[found->second] = true;
    const auto& [name, slot] = compressible[found->second];
    LayerCost cost{name, slot->format() + " " + kind_name(slot->shape().kind), parameter_count(*slot), 0,
                   slot->layer().ranks()};
    for (const auto& part : slot->layer().capture_layers()) cost.multiply_adds_per_sample += costs[part.get()];
    result.push_back(cost);
  }
  return result;
}

}  // namespace ngd
