#include "models/model.h"

namespace ngd {

CompressibleLayer CaptureModel::add_compressible_layer(const std::string& name, const LayerShape& shape,
                                                       const LowRankSettings& low_rank) {
  auto layer = make_compressible_layer(shape, low_rank);
  register_module(name, layer);
  compressible_layers_.emplace_back(name, layer.ptr());
  capture_sources_.push_back({nullptr, layer.ptr()});
  for (const auto& part : layer->layer().capture_layers()) capture_layers_.push_back(part);
  return layer;
}

void CaptureModel::relist_capture_layers() {
  capture_layers_.clear();
  for (const auto& source : capture_sources_) {
    if (source.layer) {
      capture_layers_.push_back(source.layer);
    } else {
      for (const auto& part : source.compressible->layer().capture_layers()) capture_layers_.push_back(part);
    }
  }
}

int64_t trainable_parameter_count(CaptureModel& model) {
  int64_t count = 0;
  for (const auto& parameter : model.parameters()) count += parameter.numel();
  return count;
}

BufferCopy::BufferCopy(torch::nn::Module& module) : buffers_(module.buffers()) {
  for (const auto& buffer : buffers_) saved_.push_back(buffer.detach().clone());
}

void BufferCopy::restore() const {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].copy_(saved_[i]);
}

int64_t flops_per_sample(Model& model, const std::vector<int64_t>& image_shape) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> batch_shape{1};
  batch_shape.insert(batch_shape.end(), image_shape.begin(), image_shape.end());
  for (const auto& layer : model.capture_layers()) layer->set_record_input(true);
  model.forward(torch::zeros(batch_shape));
  int64_t multiply_adds = 0;
  for (const auto& layer : model.capture_layers()) {
    layer->set_record_input(false);
    int64_t output_positions = 1;
    if (layer->kind() == CaptureLayer::Kind::kConv2d) {
      const auto output = static_cast<CaptureConv2dImpl&>(*layer).conv->forward(layer->input());
      output_positions = output.size(2) * output.size(3);
    }
    multiply_adds += output_positions * layer->weight().numel();
    layer->clear_captures();
  }
  return 2 * multiply_adds;
}

}  // namespace ngd
