#include "harness/run/compression_stage.h"

#include <fmt/format.h>

#include <chrono>
#include <stdexcept>
#include <utility>

#include "base/device.h"
#include "models/lowrank/compact_storage.h"
#include "models/lowrank/decompose.h"
#include "models/lowrank/model_cost.h"
#include "models/lowrank/rank_selection.h"
#include "models/lowrank/spectral_measures.h"
#include "optimizers/registry.h"

namespace ngd {
namespace {

// Forward passes before and in the inference timing: the first ones pay for allocation and caches.
constexpr int kInferenceWarmups = 2;
constexpr int kInferenceTimed = 5;
constexpr int64_t kFloat32Bytes = 4;

// The held-out metrics of an epoch's record: val_acc (when there is a validation split) and test_acc.
nlohmann::json held_out(const EpochRecord& record) {
  nlohmann::json metrics = {{"test_acc", record.test_acc}};
  if (!record.validation.is_null()) metrics["val_acc"] = record.validation.at("val_acc");
  return metrics;
}

int64_t parameter_count(torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& parameter : module.parameters()) count += parameter.numel();
  return count;
}

// The parameters of `model` with every compressible map held dense (weights and bias at its shape):
// the reference of compression ratios, the same for pre-set, pre-trained and compression-aware runs.
int64_t dense_equivalent_parameters(CaptureModel& model) {
  int64_t count = parameter_count(model);
  for (const auto& [name, layer] : model.compressible_layers()) {
    const auto& shape = layer->shape();
    count += shape.dense_weights() + (shape.bias ? shape.out : 0) - parameter_count(*layer);
  }
  return count;
}

// Prunes and quantizes every weight (parameter of dim ≥ 2, as stored_size counts them) in place: the
// model then computes with the values a decoder would restore.
void apply_storage_pipeline(CaptureModel& model, double prune_fraction, int bits) {
  torch::NoGradGuard no_grad;
  for (auto& parameter : model.parameters()) {
    if (parameter.dim() < 2) continue;
    auto stored = magnitude_prune(parameter.detach(), prune_fraction);
    if (bits > 0) stored = dequantize(quantize(stored, bits));
    parameter.copy_(stored.to(parameter.options()));
  }
}

// The training loss of a compression_aware run: L + λ·Σ_layers measure(σ(W_l)), the penalty added to
// every sample's loss (the optimizers reduce per-sample losses by their mean). Recorded training losses
// stay L: accumulate() takes the penalty off again.
class RegularizedWorkload : public Workload {
 public:
  RegularizedWorkload(std::unique_ptr<Workload> inner, const SpectralMeasure& measure, double weight)
      : inner_(std::move(inner)), measure_(measure), weight_(weight) {}

  CaptureModel& model() override { return inner_->model(); }
  int64_t nominal_batches_per_epoch() const override { return inner_->nominal_batches_per_epoch(); }
  int64_t start_epoch(int64_t epoch) override { return inner_->start_epoch(epoch); }
  torch::Tensor next_batch() override { return inner_->next_batch(); }
  std::pair<torch::Tensor, torch::Tensor> forward() override {
    auto [logits, per_sample_loss] = inner_->forward();
    if (!penalised_) return {std::move(logits), std::move(per_sample_loss)};
    penalty_ = weight_ * spectral_penalty(inner_->model(), measure_);
    return {std::move(logits), per_sample_loss + penalty_};
  }
  double batch_loss() override {
    if (!penalised_) return inner_->batch_loss();
    torch::NoGradGuard no_grad;
    return inner_->batch_loss() + weight_ * host_value<double>(spectral_penalty(inner_->model(), measure_));
  }
  torch::Tensor sampled_target_loss(const torch::Tensor& logits) override { return inner_->sampled_target_loss(logits); }
  void accumulate(const torch::Tensor& logits, const torch::Tensor& per_sample_loss) override {
    inner_->accumulate(logits, penalised_ ? per_sample_loss - penalty_.detach() : per_sample_loss);
  }
  torch::Tensor training_loss_sum() const override { return inner_->training_loss_sum(); }
  void finish_epoch(EpochRecord& record) override { inner_->finish_epoch(record); }
  std::pair<double, std::string> held_out_loss(const EpochRecord& record) const override {
    return inner_->held_out_loss(record);
  }
  std::string describe(const EpochRecord& record) const override { return inner_->describe(record); }
  nlohmann::json final_evaluation() override { return inner_->final_evaluation(); }
  // A shared training saves it (the penalty is recomputed at every step).
  NamedTensors state() override { return inner_->state(); }
  void load_state(const NamedTensors& state) override { inner_->load_state(state); }

  // From now on the loss is L alone (fine-tuning without the regularizer).
  void end_penalty() {
    penalised_ = false;
    penalty_ = torch::Tensor();
  }

 private:
  std::unique_ptr<Workload> inner_;
  const SpectralMeasure& measure_;
  double weight_;
  bool penalised_ = true;
  torch::Tensor penalty_;  // λR of the current step, with its graph
};

}  // namespace

CompressionStage::CompressionStage(const RunConfig& config, Workload& workload, const torch::Device& device)
    : config_(config), workload_(workload), device_(device), settings_(compression_settings(config.compression)) {
  record_["mode"] = settings_.mode;
  record_["format"] = settings_.format;
}

nlohmann::json CompressionStage::evaluate() {
  // The workload's end-of-epoch evaluation on a record of its own: the run's epochs are not touched.
  EpochRecord scratch;
  workload_.finish_epoch(scratch);
  return held_out(scratch);
}

std::unique_ptr<Optimizer> CompressionStage::compress(const EpochRecord& trained) {
  auto& model = workload_.model();
  const auto& layers = model.compressible_layers();
  if (layers.empty()) {
    throw std::runtime_error(fmt::format("model '{}' has no compressible layers to compress", config_.model));
  }
  record_["dense_parameters"] = trainable_parameter_count(model);
  record_["accuracy"] = {{"before_compression", held_out(trained)}};
  std::vector<torch::Tensor> singular_values;
  std::vector<LayerShape> shapes;
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, layer] : layers) {
      singular_values.push_back(layer_singular_values(*layer).to(torch::kCPU, torch::kDouble));
      shapes.push_back(layer->shape());
    }
  }
  const auto ranks = select_ranks(singular_values, shapes, {settings_.rank_rule_kind, settings_.rank_rule_value});
  nlohmann::json selected = nlohmann::json::object();
  for (size_t i = 0; i < layers.size(); ++i) selected[layers[i].first] = ranks[i];
  record_["selected_ranks"] = std::move(selected);
  compress_model(model, ranks, settings_.format);
  model.to(device_);
  record_["accuracy"]["after_truncation"] = evaluate();
  if (auto* regularized = dynamic_cast<RegularizedWorkload*>(&workload_); regularized && !settings_.penalty_during_fine_tune) {
    regularized->end_penalty();
  }
  return make_optimizer(settings_.fine_tune_optimizer, model, settings_.fine_tune_hparams);
}

nlohmann::json CompressionStage::finish(const EpochRecord* fine_tuned, const nlohmann::json& fine_tune_report) {
  auto& model = workload_.model();
  auto& accuracy = record_["accuracy"];
  accuracy["after_fine_tune"] = fine_tuned ? held_out(*fine_tuned) : accuracy["after_truncation"];
  const int bits = static_cast<int>(settings_.quantize_bits);
  nlohmann::json stored = {{"float32", kFloat32Bytes * parameter_count(model)}};
  if (bits > 0) {
    const auto size = stored_size(model, bits, settings_.prune_fraction);
    stored["quantized"] = size.quantized_bytes;
    stored["entropy_bound"] = size.entropy_bound_bytes;
    if (settings_.entropy_coding) stored["coded"] = size.coded_bytes;
  }
  const bool transformed = bits > 0 || settings_.prune_fraction > 0;
  if (transformed) apply_storage_pipeline(model, settings_.prune_fraction, bits);
  accuracy["after_pipeline"] = transformed ? evaluate() : accuracy["after_fine_tune"];
  // What the model takes to store as the pipeline leaves it: coded, else quantized, else float32.
  const auto final_bytes = stored.value("coded", stored.value("quantized", stored["float32"].get<double>()));
  stored["final"] = final_bytes;
  stored["dense_float32"] = kFloat32Bytes * record_["dense_parameters"].get<int64_t>();
  record_["storage_ratio"] = stored["dense_float32"].get<double>() / final_bytes;
  record_["stored_bytes"] = std::move(stored);
  record_["parameters"] = parameter_count(model);
  record_["compression_ratio"] =
      record_["dense_parameters"].get<double>() / record_["parameters"].get<double>();
  record_["pipeline"] = {{"prune_fraction", settings_.prune_fraction},
                         {"quantize_bits", bits},
                         {"entropy_coding", settings_.entropy_coding}};
  record_["fine_tune"] = {{"epochs", settings_.fine_tune_epochs},
                          {"optimizer", settings_.fine_tune_optimizer},
                          {"optimizer_report", fine_tune_report}};
  return record_;
}

std::unique_ptr<Workload> regularized_workload(std::unique_ptr<Workload> workload, const CompressionSettings& settings) {
  if (settings.mode != "compression_aware") return workload;
  return std::make_unique<RegularizedWorkload>(std::move(workload), spectral_measure(settings.measure),
                                               settings.regularizer_weight);
}

nlohmann::json with_fine_tune_phase(nlohmann::json report, int64_t training_epochs) {
  nlohmann::json phases = report.contains("phases") ? report["phases"]
                                                    : nlohmann::json::array({{{"name", "training"}}});
  int64_t given = 0;  // epochs of the phases before the open-ended one
  for (const auto& phase : phases) given += phase.value("epochs", int64_t{0});
  for (auto& phase : phases) {
    if (!phase.contains("epochs")) phase["epochs"] = training_epochs - given;
  }
  phases.push_back({{"name", "fine_tune"}});
  report["phases"] = std::move(phases);
  return report;
}

nlohmann::json model_cost_record(Model& model, const std::vector<int64_t>& image_shape, int64_t eval_batch_size,
                                 const torch::Device& device) {
  torch::NoGradGuard no_grad;
  model.eval();  // a forward pass here must not move BatchNorm's statistics
  nlohmann::json layers = nlohmann::json::array();
  int64_t multiply_adds = 0;
  for (const auto& layer : model_cost(model, image_shape)) {
    layers.push_back({{"name", layer.name},
                      {"kind", layer.kind},
                      {"parameters", layer.parameters},
                      {"multiply_adds_per_sample", layer.multiply_adds_per_sample},
                      {"ranks", layer.ranks}});
    multiply_adds += layer.multiply_adds_per_sample;
  }
  std::vector<int64_t> batch_shape = {eval_batch_size};
  batch_shape.insert(batch_shape.end(), image_shape.begin(), image_shape.end());
  const auto input = torch::zeros(batch_shape, torch::TensorOptions().device(device));  // values do not change the time
  std::vector<double> seconds;
  for (int pass = 0; pass < kInferenceWarmups + kInferenceTimed; ++pass) {
    synchronize(device);
    const auto start = std::chrono::steady_clock::now();
    model.forward(input);
    synchronize(device);
    if (pass >= kInferenceWarmups) {
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
  const int64_t parameters = parameter_count(model);
  const int64_t dense_parameters = dense_equivalent_parameters(model);
  return {{"parameters", parameters},
          {"multiply_adds_per_sample", multiply_adds},
          {"float32_bytes", kFloat32Bytes * parameters},
          {"dense_parameters", dense_parameters},
          {"compression_ratio", static_cast<double>(dense_parameters) / static_cast<double>(parameters)},
          {"layers", std::move(layers)},
          {"inference_s_per_eval_batch", median(seconds)},
          {"eval_batch_size", eval_batch_size}};
}

}  // namespace ngd
