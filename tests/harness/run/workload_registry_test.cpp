#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <set>

#include "base/options.h"
#include "datasets/dataset.h"
#include "harness/run/runner.h"
#include "harness/run/workload.h"
#include "harness/spec/spec.h"
#include "harness/spec/workload_entry.h"
#include "models/model.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

TEST(WorkloadRegistry, EveryDatasetAndModelBelongsToARegisteredWorkloadAndEveryWorkloadHasBoth) {
  std::set<std::string> with_dataset, with_model;
  for (const auto& dataset : dataset_registry()) {
    EXPECT_NO_THROW(workload_entry(dataset.workload)) << dataset.name;
    with_dataset.insert(dataset.workload);
  }
  for (const auto& model : model_registry()) {
    EXPECT_NO_THROW(workload_entry(model.workload)) << model.name;
    with_model.insert(model.workload);
  }
  for (const auto& workload : workload_registry()) {
    EXPECT_TRUE(with_dataset.count(workload.name)) << workload.name << " has no dataset";
    EXPECT_TRUE(with_model.count(workload.name)) << workload.name << " has no model";
    EXPECT_TRUE(workload.parse_settings && workload.load && workload.make) << workload.name;
    EXPECT_GT(workload.default_eval_batch_size, 0) << workload.name;
    EXPECT_FALSE(workload.target_metrics.empty()) << workload.name;
    EXPECT_NE(workload.carves_validation, !workload.own_validation_split.empty()) << workload.name;
  }
  EXPECT_THROW(workload_entry("speech"), std::runtime_error);
}

// A run's identity does not depend on how workloads are looked up: these hashes were written by the
// harness before workloads were registry entries (2cf6eae), and committed results are named by them.
TEST(WorkloadRegistry, RunIdentitiesOfBothWorkloadsAreThoseOfBeforeTheRegistry) {
  EXPECT_EQ(parse_spec(testing::tiny_spec(), "tiny").runs.at(0).config_hash(), "d376bad2");
  EXPECT_EQ(parse_spec(testing::tiny_translation_spec(), "tiny").runs.at(0).config_hash(), "26d66a9d");
}

// The spec's workload rules come from the run's entry: its own top-level keys, its in-epoch target.
TEST(WorkloadRegistry, ASpecIsCheckedAgainstItsWorkloadsEntry) {
  auto image = testing::tiny_spec();
  image["decoding"] = {{"method", "greedy"}};
  EXPECT_NE(testing::spec_error(image).find("decoding: image runs take no \"decoding\" (a key of translation runs)"),
            std::string::npos)
      << testing::spec_error(image);
  auto translation = testing::tiny_translation_spec();
  translation["batch_size"] = 32;
  EXPECT_NE(testing::spec_error(translation)
                .find("batch_size: translation runs take no \"batch_size\" (a key of image runs)"),
            std::string::npos)
      << testing::spec_error(translation);
  translation.erase("batch_size");
  translation["target"] = {{"metric", "train_loss"}, {"value", 1.0}, {"check_every_steps", 5}};
  EXPECT_NE(testing::spec_error(translation).find("translation runs check targets at epoch ends only"),
            std::string::npos)
      << testing::spec_error(translation);
  translation["target"] = {{"metric", "test_acc"}, {"value", 0.5}};
  EXPECT_NE(testing::spec_error(translation).find("unknown metric \"test_acc\" for translation runs"),
            std::string::npos)
      << testing::spec_error(translation);
}

// A third workload that lives in this file only: least-squares regression on synthetic linear data,
// with the registry's mlp giving one output. The runner, the optimizers and the result record handle
// it from its entry alone: nothing in harness/ names it.
struct RegressionData : WorkloadData {
  torch::Tensor train_x, train_y, validation_x, validation_y, test_x, test_y;
};

RegressionData synthetic_regression() {
  auto generator = at::detail::createCPUGenerator(11);
  const auto weights = torch::randn({8}, generator);
  const auto split = [&](int64_t n) {
    auto x = torch::randn({n, 1, 1, 8}, generator);
    auto y = x.flatten(1).matmul(weights) + 0.1 * torch::randn({n}, generator);
    return std::pair{x, y};
  };
  RegressionData data;
  std::tie(data.train_x, data.train_y) = split(128);
  std::tie(data.validation_x, data.validation_y) = split(32);
  std::tie(data.test_x, data.test_y) = split(32);
  return data;
}

// Per-sample loss ½(f − y)²; "accuracy" is the share of predictions within 0.5 of the target.
class RegressionWorkload : public Workload {
 public:
  RegressionWorkload(const RunConfig& config, const RegressionData& data)
      : config_(config), data_(data), generator_(at::detail::createCPUGenerator(static_cast<uint64_t>(config.seed))) {
    model_ = find_entry(model_registry(), config.model)->make(Options(config.model_options), {{1, 1, 8}, 1});
  }

  CaptureModel& model() override { return *model_; }
  int64_t nominal_batches_per_epoch() const override { return data_.train_y.size(0) / config_.batch_size; }
  int64_t start_epoch(int64_t) override {
    order_ = torch::randperm(data_.train_y.size(0), generator_);
    next_ = 0;
    loss_sum_ = torch::zeros({}, torch::kDouble);
    within_ = torch::zeros({}, torch::kLong);
    return nominal_batches_per_epoch();
  }
  torch::Tensor next_batch() override {
    const auto ids = order_.slice(0, next_ * config_.batch_size, (next_ + 1) * config_.batch_size);
    ++next_;
    x_ = data_.train_x.index_select(0, ids);
    y_ = data_.train_y.index_select(0, ids);
    return ids;
  }
  std::pair<torch::Tensor, torch::Tensor> forward() override {
    auto predictions = model_->forward(x_);
    return {predictions, 0.5 * (predictions.squeeze(1) - y_).pow(2)};
  }
  double batch_loss() override {
    torch::NoGradGuard no_grad;
    return forward().second.mean().item<double>();
  }
  // Targets drawn from N(f, 1), the model's predictive distribution under this loss.
  torch::Tensor sampled_target_loss(const torch::Tensor& predictions) override {
    const auto drawn = predictions.detach() + torch::randn(predictions.sizes(), generator_);
    return (0.5 * (predictions - drawn).pow(2)).mean();
  }
  void accumulate(const torch::Tensor& predictions, const torch::Tensor& per_sample_loss) override {
    loss_sum_ += per_sample_loss.detach().sum().to(torch::kDouble);
    within_ += (predictions.detach().squeeze(1) - y_).abs().lt(0.5).sum();
  }
  torch::Tensor training_loss_sum() const override { return loss_sum_; }
  void finish_epoch(EpochRecord& record) override {
    const double n = static_cast<double>(data_.train_y.size(0));
    record.train_loss = loss_sum_.item<double>() / n;
    record.train_acc = static_cast<double>(within_.item<int64_t>()) / n;
    std::tie(record.test_loss, record.test_acc) = evaluate(data_.test_x, data_.test_y);
    const auto [val_loss, val_acc] = evaluate(data_.validation_x, data_.validation_y);
    record.validation = {{"val_loss", val_loss}, {"val_acc", val_acc}};
  }
  std::pair<double, std::string> held_out_loss(const EpochRecord& record) const override {
    return {record.test_loss, "test loss"};
  }
  std::string describe(const EpochRecord& record) const override {
    return fmt::format("train loss {:.4f} | test loss {:.4f}", record.train_loss, record.test_loss);
  }
  nlohmann::json final_evaluation() override {
    return {{"test_mse", 2 * evaluate(data_.test_x, data_.test_y).first}};
  }
  NamedTensors state() override {
    return {{"order", order_}, {"next", torch::tensor(next_)}, {"generator", generator_.get_state()},
            {"loss_sum", loss_sum_}, {"within", within_}};
  }
  void load_state(const NamedTensors& state) override {
    order_ = named_tensor(state, "order");
    next_ = named_tensor(state, "next").item<int64_t>();
    generator_.set_state(named_tensor(state, "generator"));
    loss_sum_ = named_tensor(state, "loss_sum");
    within_ = named_tensor(state, "within");
  }

 private:
  std::pair<double, double> evaluate(const torch::Tensor& x, const torch::Tensor& y) {
    torch::NoGradGuard no_grad;
    const auto errors = model_->forward(x).squeeze(1) - y;
    return {(0.5 * errors.pow(2)).mean().item<double>(), errors.abs().lt(0.5).to(torch::kDouble).mean().item<double>()};
  }

  const RunConfig& config_;
  const RegressionData& data_;
  at::Generator generator_;
  std::shared_ptr<Model> model_;
  torch::Tensor order_, x_, y_, loss_sum_, within_;
  int64_t next_ = 0;
};

// Its entry: the one line a registry would hold.
WorkloadEntry regression_entry() {
  WorkloadEntry entry;
  entry.name = "regression";
  entry.summary = "least squares on synthetic linear data";
  entry.target_metrics = {"train_loss", "val_loss", "test_loss"};
  entry.own_validation_split = "a validation split of their own";
  entry.parse_settings = [](const nlohmann::json&, RunConfig&) {};
  entry.default_eval_batch_size = 32;
  entry.compression_refusal = "regression runs take no compression block";
  entry.epoch_numbers = {"test_loss"};
  entry.final_numbers = {"test_mse"};
  entry.load = [](const DatasetRequest&, const std::vector<std::string>&) {
    return std::make_shared<const RegressionData>(synthetic_regression());
  };
  entry.make = [](const RunConfig& run, const WorkloadData& data, const RunnerOptions&,
                  nlohmann::json&) -> std::unique_ptr<Workload> {
    return std::make_unique<RegressionWorkload>(run, loaded_as<RegressionData>(data, "regression"));
  };
  return entry;
}

RunConfig regression_run(const std::string& optimizer) {
  auto document = testing::tiny_spec();
  document["optimizers"] = {{{"name", optimizer}, {"hparams", {{"lr", 0.01}}}}};
  auto run = parse_spec(document, "tiny").runs.at(0);
  run.workload = "regression";
  run.target = Target{"val_loss", 1e9};  // met by the first epoch: the target bookkeeping runs
  return run;
}

RunnerOptions quiet_options() {
  RunnerOptions options;
  options.out_dir = "";
  options.progress = false;
  return options;
}

TEST(WorkloadRegistry, AToyThirdWorkloadTrainsThroughTheRunnerFromItsEntryAlone) {
  const auto entry = regression_entry();
  const auto data = entry.load({}, {});
  // Plain SGD, and a curvature optimizer that captures the mlp's layers on the workload's batches and
  // draws its sampled-target backward from the workload's predictive distribution.
  for (const std::string optimizer : {"sgd", "kfac"}) {
    const auto run = regression_run(optimizer);
    const auto first = train_run(run, entry, *data, quiet_options());
    ASSERT_EQ(first.status, "completed") << optimizer << ": " << first.error;
    ASSERT_EQ(first.epochs.size(), 2u);
    for (const auto& epoch : first.epochs) {
      EXPECT_TRUE(std::isfinite(epoch.train_loss) && std::isfinite(epoch.test_loss)) << optimizer;
      EXPECT_EQ(epoch.cumulative_steps, epoch.epoch * 4) << optimizer;  // 128 samples, batches of 32
    }
    EXPECT_EQ(first.epochs_to_target, 1) << optimizer;
    EXPECT_TRUE(first.final_evaluation["test_mse"].is_number()) << optimizer;
    EXPECT_TRUE(first.model_cost.is_null()) << optimizer;  // the entry has no model cost
    const auto json = to_json(first);
    EXPECT_EQ(json["workload"], "regression");
    EXPECT_EQ(json["epochs"][0]["val_loss"], first.epochs[0].validation["val_loss"]);
    // Same seed, same numbers (bitwise).
    const auto second = train_run(run, entry, *data, quiet_options());
    for (size_t e = 0; e < first.epochs.size(); ++e) {
      EXPECT_EQ(first.epochs[e].train_loss, second.epochs[e].train_loss) << optimizer;
      EXPECT_EQ(first.epochs[e].test_loss, second.epochs[e].test_loss) << optimizer;
    }
  }
}

TEST(WorkloadRegistry, ARunOfAnUnregisteredWorkloadNamesTheRegisteredOnes) {
  auto run = regression_run("sgd");
  const auto data = synthetic_regression();
  // train_run without the entry looks config.workload up in the registry, which does not hold it.
  EXPECT_THROW(
      {
        try {
          train_run(run, data, quiet_options());
        } catch (const std::runtime_error& error) {
          EXPECT_NE(std::string(error.what()).find("unknown workload 'regression' (valid: image, translation)"),
                    std::string::npos)
              << error.what();
          throw;
        }
      },
      std::runtime_error);
}

}  // namespace
}  // namespace ngd
