#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/options.h"
#include "models/capture_layers.h"
#include "models/lowrank/compressible_layer.h"

namespace ngd {

// A network built from capture-aware Linear/Conv2d layers. It knows no optimizer: optimizers see
// its parameters and its capture layers.
class CaptureModel : public torch::nn::Module {
 public:
  // The Linear/Conv2d layers natural-gradient optimizers may precondition, in forward order.
  const std::vector<std::shared_ptr<CaptureLayer>>& capture_layers() const { return capture_layers_; }
  // The maps registered through add_compressible_layer, with their names, in forward order.
  const std::vector<std::pair<std::string, std::shared_ptr<CompressibleLayerImpl>>>& compressible_layers() const {
    return compressible_layers_;
  }
  // Lists capture_layers() anew after compression replaced compressible layers' parts.
  void relist_capture_layers();

 protected:
  // Registers a capture layer as a submodule and lists it in capture_layers().
  template <class Holder>
  Holder add_capture_layer(const std::string& name, Holder layer) {
    register_module(name, layer);
    capture_layers_.push_back(layer.ptr());
    capture_sources_.push_back({layer.ptr(), nullptr});
    return layer;
  }

  // Builds the map of `shape` in the settings' format (make_compressible_layer), registers it and lists
  // its capture layers.
  CompressibleLayer add_compressible_layer(const std::string& name, const LayerShape& shape,
                                           const LowRankSettings& low_rank);

 private:
  // What capture_layers() lists, in registration order: a capture layer, or a compressible map's.
  struct CaptureSource {
    std::shared_ptr<CaptureLayer> layer;
    std::shared_ptr<CompressibleLayerImpl> compressible;
  };
  std::vector<std::shared_ptr<CaptureLayer>> capture_layers_;
  std::vector<CaptureSource> capture_sources_;
  std::vector<std::pair<std::string, std::shared_ptr<CompressibleLayerImpl>>> compressible_layers_;
};

// An image classifier (the image workload's models).
class Model : public CaptureModel {
 public:
  virtual torch::Tensor forward(const torch::Tensor& input) = 0;  // logits, N × classes
};

// What a model is built for: the dataset's image shape and class count.
struct ModelInput {
  std::vector<int64_t> image_shape;  // C, H, W
  int64_t num_classes = 0;
};

class TranslationModel;

// A model the harness can build for its workload: image models through `make`, translation models
// through `make_translation` (from the source and target vocabulary sizes).
struct ModelEntry {
  using ImageFactory = std::function<std::shared_ptr<Model>(const Options&, const ModelInput&)>;
  using TranslationFactory =
      std::function<std::shared_ptr<TranslationModel>(const Options&, int64_t source_vocab, int64_t target_vocab)>;

  ModelEntry(std::string name, std::string summary, std::vector<OptionInfo> options, ImageFactory make)
      : name(std::move(name)), summary(std::move(summary)), options(std::move(options)), make(std::move(make)) {}
  ModelEntry(std::string name, std::string summary, std::vector<OptionInfo> options, TranslationFactory make_translation)
      : name(std::move(name)), summary(std::move(summary)), options(std::move(options)),
        workload("translation"), make_translation(std::move(make_translation)) {}

  std::string name;
  std::string summary;
  std::vector<OptionInfo> options;
  std::string workload = "image";  // the workload entry it is built for (harness/spec/workload_entry.h)
  ImageFactory make;                // image models
  TranslationFactory make_translation;  // translation models
};

const std::vector<ModelEntry>& model_registry();

// Number of trainable parameters.
int64_t trainable_parameter_count(CaptureModel& model);

// A copy of a module's buffers (BatchNorm running statistics and batch counters), to put back after
// a training-mode forward pass that must change no model state (a line search's trial, a fidelity
// probe) or to return to an earlier point (DLDR's restart loads the whole saved state).
class BufferCopy {
 public:
  explicit BufferCopy(torch::nn::Module& module);
  // Copies the saved values into the module's buffers.
  void restore() const;
  // The saved values, in module.buffers() order (an optimizer's state holds them).
  const std::vector<torch::Tensor>& saved() const { return saved_; }
  std::vector<torch::Tensor>& saved() { return saved_; }

 private:
  std::vector<torch::Tensor> buffers_;  // the module's own tensors
  std::vector<torch::Tensor> saved_;
};

// FLOPs of one sample's forward pass through the capture layers: 2 × the multiply-adds of every
// Linear and Conv2d (bias adds, activations and pooling not counted). Runs one forward pass.
int64_t flops_per_sample(Model& model, const std::vector<int64_t>& image_shape);

}  // namespace ngd
