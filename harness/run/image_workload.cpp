#include "harness/run/image_workload.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/device.h"
#include "datasets/batch_loader.h"
#include "datasets/dataset.h"
#include "harness/run/compression_stage.h"
#include "harness/run/memory_estimate.h"
#include "harness/run/runner.h"
#include "harness/run/training_step.h"
#include "harness/run/workload.h"
#include "harness/spec/spec.h"
#include "harness/spec/spec_input.h"
#include "models/model.h"

namespace ngd {
namespace {

struct Evaluation {
  double loss = 0;
  double accuracy = 0;
};

Evaluation evaluate(Model& model, const ImageSet& set, const ImageDataset& dataset, int64_t batch_size,
                    const torch::Device& device) {
  torch::NoGradGuard no_grad;
  model.eval();
  auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
  auto correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device));
  for (int64_t start = 0; start < set.size(); start += batch_size) {
    const int64_t end = std::min(start + batch_size, set.size());
    auto images = normalize_images(set.images.slice(0, start, end), dataset).to(device);
    auto labels = set.labels.slice(0, start, end).to(device);
    auto logits = model.forward(images);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .to(torch::kDouble);
    correct += logits.argmax(1).eq(labels).sum();
  }
  const double n = static_cast<double>(set.size());
  return {loss_sum.item<double>() / n, static_cast<double>(correct.item<int64_t>()) / n};
}

// Image classification: cross-entropy per image, validation- and test-set loss and accuracy each epoch.
class ImageWorkload : public Workload {
 public:
  ImageWorkload(const RunConfig& config, const ImageDataset& dataset, const RunnerOptions& options, nlohmann::json& meta)
      : config_(config), dataset_(dataset), device_(options.device) {
    const auto* model_entry = find_entry(model_registry(), config.model);
    model_ = model_entry->make(Options(config.model_options), {dataset.image_shape(), dataset.num_classes});
    meta["model_parameters"] = trainable_parameter_count(*model_);
    meta["model_flops_per_sample"] = flops_per_sample(*model_, dataset.image_shape());
    model_->to(device_);
    loader_ = std::make_unique<BatchLoader>(dataset, config.batch_size, static_cast<uint64_t>(config.seed), device_,
                                            options.prefetch, config.data_order);
  }

  CaptureModel& model() override { return *model_; }
  int64_t nominal_batches_per_epoch() const override { return loader_->batches_per_epoch(); }
  int64_t start_epoch(int64_t) override {
    loader_->start_epoch();
    loss_sum_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
    correct_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device_));
    return loader_->batches_per_epoch();
  }
  torch::Tensor next_batch() override {
    auto next = loader_->next();
    images_ = std::move(next.images);
    labels_ = std::move(next.labels);
    return std::move(next.sample_ids);
  }
  std::pair<torch::Tensor, torch::Tensor> forward() override { return classifier_forward(*model_, images_, labels_); }
  double batch_loss() override {
    torch::NoGradGuard no_grad;
    return host_value<double>(torch::nn::functional::cross_entropy(model_->forward(images_), labels_));
  }
  torch::Tensor sampled_target_loss(const torch::Tensor& logits) override { return sampled_labels_loss(logits); }
  void accumulate(const torch::Tensor& logits, const torch::Tensor& per_sample_loss) override {
    loss_sum_ += per_sample_loss.detach().sum().to(torch::kDouble);
    correct_ += logits.detach().argmax(1).eq(labels_).sum();
  }
  torch::Tensor training_loss_sum() const override { return loss_sum_; }
  void finish_epoch(EpochRecord& record) override {
    const auto test = evaluate(*model_, dataset_.test, dataset_, config_.eval_batch_size, device_);
    const double n = static_cast<double>(dataset_.train.size());
    record.train_loss = loss_sum_.item<double>() / n;
    record.train_acc = static_cast<double>(correct_.item<int64_t>()) / n;
    record.test_loss = test.loss;
    record.test_acc = test.accuracy;
    if (!dataset_.validation.empty()) {
      const auto validation = evaluate(*model_, dataset_.validation, dataset_, config_.eval_batch_size, device_);
      record.validation = {{"val_loss", validation.loss}, {"val_acc", validation.accuracy}};
    }
  }
  std::pair<double, std::string> held_out_loss(const EpochRecord& record) const override {
    return {record.test_loss, "test loss"};
  }
  std::string describe(const EpochRecord& record) const override {
    const auto validation = record.validation.is_null()
                                ? std::string()
                                : fmt::format(" | val loss {:.4f} acc {:.4f}", record.validation["val_loss"].get<double>(),
                                              record.validation["val_acc"].get<double>());
    return fmt::format("train loss {:.4f} acc {:.4f}{} | test loss {:.4f} acc {:.4f}", record.train_loss,
                       record.train_acc, validation, record.test_loss, record.test_acc);
  }
  nlohmann::json final_evaluation() override { return nullptr; }
  NamedTensors state() override {
    const auto position = loader_->position();
    NamedTensors state{{"next_batch", torch::tensor(position.next_index)},
                       {"order_generator", position.order_generator},
                       {"augmentation_generator", position.augmentation_generator},
                       {"loss_sum", loss_sum_},
                       {"correct", correct_}};
    if (position.order.defined()) state["order"] = position.order;
    return state;
  }
  void load_state(const NamedTensors& state) override {
    const auto order = state.find("order");
    loader_->resume({order == state.end() ? torch::Tensor() : order->second,
                     named_tensor(state, "next_batch").item<int64_t>(), named_tensor(state, "order_generator"),
                     named_tensor(state, "augmentation_generator")});
    loss_sum_ = named_tensor(state, "loss_sum").to(device_);
    correct_ = named_tensor(state, "correct").to(device_);
  }

 private:
  const RunConfig& config_;
  const ImageDataset& dataset_;
  torch::Device device_;
  std::shared_ptr<Model> model_;
  std::unique_ptr<BatchLoader> loader_;
  torch::Tensor images_, labels_;
  torch::Tensor loss_sum_, correct_;
};

}  // namespace

WorkloadEntry image_workload_entry() {
  const auto images = [](const WorkloadData& data) -> const ImageDataset& { return loaded_as<ImageDataset>(data, "image"); };
  WorkloadEntry entry;
  entry.name = "image";
  entry.summary = "image classification: cross-entropy, accuracy, a validation set carved from the training split";
  entry.target_metrics = {"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"};
  entry.in_epoch_target_metric = "train_loss";
  entry.carves_validation = true;
  entry.spec_keys = {"batch_size"};
  entry.parse_settings = [](const nlohmann::json& spec, RunConfig& run) {
    run.batch_size = positive_integer(require(spec, "batch_size", ""), "batch_size");
  };
  entry.default_eval_batch_size = 1000;  // evaluation is untimed; larger is faster
  entry.epoch_numbers = {"test_acc"};
  entry.load = [](const DatasetRequest& dataset, const std::vector<std::string>& data_roots) {
    return std::make_shared<const ImageDataset>(load_dataset(dataset, data_roots));
  };
  entry.make = [images](const RunConfig& run, const WorkloadData& data, const RunnerOptions& options,
                        nlohmann::json& meta) -> std::unique_ptr<Workload> {
    return std::make_unique<ImageWorkload>(run, images(data), options, meta);
  };
  entry.estimate_memory = [images](const RunConfig& run, const WorkloadData& data) {
    return estimate_run_memory(run, {images(data).image_shape(), images(data).num_classes});
  };
  entry.model_cost = [images](CaptureModel& model, const RunConfig& run, const WorkloadData& data,
                              const torch::Device& device) {
    return model_cost_record(dynamic_cast<Model&>(model), images(data).image_shape(), run.eval_batch_size, device);
  };
  return entry;
}

}  // namespace ngd
