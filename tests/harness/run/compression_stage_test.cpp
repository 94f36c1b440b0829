#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "harness/run/checkpoint.h"
#include "harness/run/compression_stage.h"
#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "models/model.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

RunnerOptions quiet_options() {
  RunnerOptions options;
  options.out_dir = "";
  options.progress = false;
  return options;
}

// The tiny spec (mlp 784-32-10, 2 epochs, SGD) with a compression block on its entry.
RunConfig tiny_compression_run(const json& block) {
  auto spec = testing::tiny_spec();
  spec["optimizers"][0]["compression"] = block;
  return parse_spec(spec, "tiny").runs.at(0);
}

// Parameters of a Linear map in → out (with bias) held as U·V at `rank`, or dense where that saves nothing.
int64_t matrix_parameters(int64_t in, int64_t out, int64_t rank) {
  return std::min(rank * (in + out), in * out) + out;
}

TEST(CompressionStage, FineTunePhaseFollowsTheTrainingOptimizersPhases) {
  const auto subspace = with_fine_tune_phase(
      {{"phases", {{{"name", "sampling"}, {"epochs", 2}}, {{"name", "subspace"}}}}, {"kept", 3}}, 5);
  EXPECT_EQ(subspace["kept"], 3);
  EXPECT_EQ(subspace["phases"], json({{{"name", "sampling"}, {"epochs", 2}},
                                      {{"name", "subspace"}, {"epochs", 3}},
                                      {{"name", "fine_tune"}}}));
  const auto plain = with_fine_tune_phase(json::object(), 4);
  EXPECT_EQ(plain["phases"], json({{{"name", "training"}, {"epochs", 4}}, {{"name", "fine_tune"}}}));
  std::vector<EpochRecord> epochs(6);
  for (size_t e = 0; e < epochs.size(); ++e) {
    epochs[e].epoch = static_cast<int64_t>(e) + 1;
    epochs[e].cumulative_steps = 10 * epochs[e].epoch;
  }
  const auto completed = complete_phases(plain, epochs);
  EXPECT_EQ(completed["phases"][0]["epochs_run"], 4);
  EXPECT_EQ(completed["phases"][1]["first_epoch"], 5);
  EXPECT_EQ(completed["phases"][1]["epochs_run"], 2);
  EXPECT_EQ(completed["phases"][1]["steps"], 20);
}

TEST(CompressionStage, PreTrainRunTruncatesToTheBudgetFineTunesAndRecordsItsCost) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  const auto run = tiny_compression_run({{"mode", "pre_train"},
                                         {"rank_rule", {{"kind", "budget"}, {"value", 0.25}}},
                                         {"fine_tune", {{"epochs", 1}, {"hparams", {{"lr", 0.01}}}}}});
  const auto result = train_run(run, dataset, quiet_options());
  ASSERT_EQ(result.status, "completed") << result.error;
  ASSERT_EQ(result.epochs.size(), 3u);  // 2 training + 1 fine-tuning
  EXPECT_EQ(result.optimizer_report["phases"][1]["name"], "fine_tune");
  EXPECT_EQ(result.optimizer_report["phases"][1]["epochs_run"], 1);

  const auto& record = result.compression;
  const int64_t dense = 784 * 32 + 32 + 32 * 10 + 10;
  EXPECT_EQ(record["dense_parameters"], dense);
  const auto& ranks = record["selected_ranks"];
  ASSERT_EQ(ranks.size(), 2u);
  std::vector<int64_t> rank_values;
  for (const auto& [name, rank] : ranks.items()) rank_values.push_back(rank.get<int64_t>());
  EXPECT_GE(rank_values[0], 1);
  EXPECT_LE(rank_values[0], 32);
  EXPECT_GE(rank_values[1], 1);
  EXPECT_LE(rank_values[1], 10);
  // The budget counts matrix-format weights against the dense ones (biases aside).
  const int64_t kept_weights = std::min(rank_values[0] * (784 + 32), int64_t{784 * 32}) +
                               std::min(rank_values[1] * (32 + 10), int64_t{32 * 10});
  EXPECT_LE(kept_weights, 0.25 * (784 * 32 + 32 * 10));
  const int64_t expected = matrix_parameters(784, 32, rank_values[0]) + matrix_parameters(32, 10, rank_values[1]);
  EXPECT_EQ(record["parameters"], expected);
  EXPECT_DOUBLE_EQ(record["compression_ratio"].get<double>(), static_cast<double>(dense) / expected);
  EXPECT_EQ(record["stored_bytes"]["float32"], 4 * expected);
  EXPECT_EQ(record["stored_bytes"]["final"], 4 * expected);
  EXPECT_FALSE(record["stored_bytes"].contains("quantized"));
  for (const auto* stage : {"before_compression", "after_truncation", "after_fine_tune", "after_pipeline"}) {
    EXPECT_TRUE(record["accuracy"][stage].contains("test_acc")) << stage;
  }
  EXPECT_EQ(record["accuracy"]["before_compression"]["test_acc"], result.epochs[1].test_acc);
  EXPECT_EQ(record["accuracy"]["after_fine_tune"]["test_acc"], result.epochs[2].test_acc);
  EXPECT_EQ(record["accuracy"]["after_pipeline"], record["accuracy"]["after_fine_tune"]);  // no pipeline

  const auto& cost = result.model_cost;
  EXPECT_EQ(cost["parameters"], expected);
  EXPECT_EQ(cost["dense_parameters"], dense);
  // Multiply-adds of a per-sample forward pass: one per weight of every Linear map.
  EXPECT_EQ(cost["multiply_adds_per_sample"], expected - 32 - 10);
  EXPECT_GT(cost["inference_s_per_eval_batch"].get<double>(), 0.0);
}

TEST(CompressionStage, QuantizedRunIsEvaluatedAsDecodedAndStoresFewerBytes) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  const auto run = tiny_compression_run({{"mode", "pre_train"},
                                         {"rank_rule", {{"kind", "ratio"}, {"value", 0.25}}},
                                         {"pipeline", {{"quantize_bits", 4}, {"entropy_coding", true}}}});
  const auto result = train_run(run, dataset, quiet_options());
  ASSERT_EQ(result.status, "completed") << result.error;
  ASSERT_EQ(result.epochs.size(), 2u);  // no fine-tuning epochs
  const auto& stored = result.compression["stored_bytes"];
  // 4-bit weights take an eighth of float32 plus scales: well under half of the float32 model.
  EXPECT_LT(stored["quantized"].get<double>(), 0.5 * stored["float32"].get<double>());
  EXPECT_LE(stored["entropy_bound"].get<double>(), stored["quantized"].get<double>());
  EXPECT_EQ(stored["final"], stored["coded"]);
  EXPECT_DOUBLE_EQ(result.compression["storage_ratio"].get<double>(),
                   stored["dense_float32"].get<double>() / stored["coded"].get<double>());
  // Decoded weights differ from the trained ones, so the accuracy is measured again (and recorded).
  EXPECT_TRUE(result.compression["accuracy"]["after_pipeline"].contains("test_acc"));
}

// A workload whose per-sample losses are fixed, on a real model with compressible layers: what the
// regularized workload adds and takes off is then explicit.
class FixedLossWorkload : public Workload {
 public:
  explicit FixedLossWorkload(std::shared_ptr<Model> model) : model_(std::move(model)) {}
  CaptureModel& model() override { return *model_; }
  int64_t nominal_batches_per_epoch() const override { return 1; }
  int64_t start_epoch(int64_t) override { return 1; }
  torch::Tensor next_batch() override { return torch::arange(3); }
  std::pair<torch::Tensor, torch::Tensor> forward() override {
    return {torch::zeros({3, 10}), torch::tensor({1.0f, 2.0f, 3.0f})};
  }
  double batch_loss() override { return 2.0; }
  torch::Tensor sampled_target_loss(const torch::Tensor& logits) override { return logits.sum(); }
  void accumulate(const torch::Tensor&, const torch::Tensor& per_sample_loss) override {
    accumulated = per_sample_loss.clone();
  }
  torch::Tensor training_loss_sum() const override { return accumulated.sum(); }
  void finish_epoch(EpochRecord&) override {}
  std::pair<double, std::string> held_out_loss(const EpochRecord&) const override { return {0.0, "test loss"}; }
  std::string describe(const EpochRecord&) const override { return ""; }
  json final_evaluation() override { return nullptr; }
  NamedTensors state() override { return {}; }
  void load_state(const NamedTensors&) override {}

  torch::Tensor accumulated;

 private:
  std::shared_ptr<Model> model_;
};

// Σ_layers exp(H(σ/‖σ‖₁)) of the dense weights, in float64 from an explicit SVD.
double effective_rank_sum(CaptureModel& model) {
  double sum = 0;
  for (const auto& [name, layer] : model.compressible_layers()) {
    const auto sigma = torch::linalg_svdvals(layer->layer().dense_weight().detach().to(torch::kDouble));
    const auto p = sigma / sigma.sum();
    sum += std::exp(-(p * torch::log(p)).sum().item<double>());
  }
  return sum;
}

TEST(CompressionStage, RegularizedWorkloadAddsTheWeightedPenaltyToEverySampleAndRecordsThePlainLoss) {
  torch::manual_seed(0);
  const auto* entry = find_entry(model_registry(), "mlp");
  const auto options = resolve_options({{"hidden", {12}}}, entry->options, "model 'mlp'", "model");
  auto model = entry->make(Options(options), {{1, 28, 28}, 10});
  auto inner = std::make_unique<FixedLossWorkload>(model);
  auto* fixed = inner.get();
  CompressionSettings settings;
  settings.mode = "compression_aware";
  settings.measure = "effective_rank";
  settings.regularizer_weight = 0.25;
  auto workload = regularized_workload(std::move(inner), settings);
  ASSERT_NE(workload.get(), fixed);

  const double penalty = 0.25 * effective_rank_sum(*model);
  const auto [logits, per_sample_loss] = workload->forward();
  ASSERT_EQ(per_sample_loss.size(0), 3);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(per_sample_loss[i].item<double>(), static_cast<double>(i + 1) + penalty, 1e-4 * penalty);
  }
  EXPECT_NEAR(workload->batch_loss(), 2.0 + penalty, 1e-4 * penalty);
  // The penalty back-propagates into the weights: its mean reduction has a gradient.
  model->zero_grad();
  per_sample_loss.mean().backward();
  bool any_gradient = false;
  for (const auto& parameter : model->parameters()) {
    any_gradient = any_gradient || (parameter.grad().defined() && parameter.grad().abs().sum().item<double>() > 0);
  }
  EXPECT_TRUE(any_gradient);
  workload->accumulate(logits, per_sample_loss);
  EXPECT_TRUE(torch::allclose(fixed->accumulated, torch::tensor({1.0f, 2.0f, 3.0f}), 1e-5, 1e-4));

  // Compression ends the penalty: fine-tuning minimises L alone, unless during_fine_tune keeps it.
  for (const bool kept : {false, true}) {
    auto fine_tuned =
        regularized_workload(std::make_unique<FixedLossWorkload>(entry->make(Options(options), {{1, 28, 28}, 10})), settings);
    const auto run = tiny_compression_run(
        {{"mode", "compression_aware"},
         {"regularizer", {{"measure", "effective_rank"}, {"weight", 0.25}, {"during_fine_tune", kept}}},
         {"rank_rule", {{"kind", "ratio"}, {"value", 0.5}}}});
    CompressionStage stage(run, *fine_tuned, torch::kCPU);
    stage.compress(EpochRecord{});
    const auto after = fine_tuned->forward().second;
    if (kept) {
      EXPECT_GT(after[0].item<double>(), 1.0 + 0.25);  // an effective rank is at least 1 per layer
    } else {
      EXPECT_TRUE(torch::equal(after, torch::tensor({1.0f, 2.0f, 3.0f})));
      EXPECT_EQ(fine_tuned->batch_loss(), 2.0);
    }
  }

  CompressionSettings pre_train;
  pre_train.mode = "pre_train";
  auto same = std::make_unique<FixedLossWorkload>(model);
  auto* same_pointer = same.get();
  EXPECT_EQ(regularized_workload(std::move(same), pre_train).get(), same_pointer);
}

// The numbers of a result (image run): its epochs without their clocks, and its compression record
// without the inference clock.
json result_numbers(json result) {
  for (auto& epoch : result["epochs"]) {
    for (const auto* clock : {"train_time_s", "cumulative_train_time_s", "cpu_time_s", "load_average", "timing_suspect",
                              "step_time_s"}) {
      epoch.erase(clock);
    }
  }
  return {{"epochs", result["epochs"]}, {"compression", result["compression"]}, {"status", result["status"]},
          {"steps_to_target", result["steps_to_target"]}};
}

// Two compression_aware entries that differ only in the rank rule: the sweep trains once, the second
// run resumes after that training, and it ends with the numbers it has when it trains by itself.
TEST(CompressionStage, RunsThatDifferOnlyAfterTrainingShareOneTraining) {
  testing::TempDir root, shared_out, alone_out;
  testing::write_synthetic_fashion_mnist(root.path(), 256, 64);
  auto document = testing::tiny_spec();
  document["optimizers"] = json::array();
  for (const double budget : {0.5, 0.25}) {
    document["optimizers"].push_back(
        {{"name", "sgd"},
         {"variant", budget == 0.5 ? "half" : "quarter"},
         {"hparams", {{"lr", 0.05}}},
         {"compression", {{"mode", "compression_aware"},
                          {"regularizer", {{"measure", "effective_rank"}, {"weight", 0.01}}},
                          {"rank_rule", {{"kind", "budget"}, {"value", budget}}},
                          {"fine_tune", {{"epochs", 1}, {"hparams", {{"lr", 0.01}}}}}}}});
  }
  const auto spec = parse_spec(document, "tiny");
  ASSERT_EQ(spec.runs.size(), 2u);
  ASSERT_EQ(spec.runs[0].shared_training_id(), spec.runs[1].shared_training_id());
  auto options = quiet_options();
  options.data_roots = {root.path()};
  options.out_dir = shared_out.path();
  const auto shared = run_spec(spec, options);
  ASSERT_EQ(shared[1]["status"], "completed") << shared[1]["error"];
  EXPECT_FALSE(shared[0]["meta"].contains("training_from"));
  EXPECT_EQ(shared[1]["meta"]["training_from"], shared[0]["run_id"]);
  EXPECT_EQ(shared[1]["meta"]["resumes"], 0);
  // The training epochs' clocks are the first run's: the second ran only its fine-tuning.
  EXPECT_EQ(shared[1]["epochs"][1]["train_time_s"], shared[0]["epochs"][1]["train_time_s"]);
  EXPECT_NE(shared[1]["compression"]["selected_ranks"], shared[0]["compression"]["selected_ranks"]);
  EXPECT_FALSE(std::filesystem::exists(shared_training_path(shared_out.path(), spec.runs[1])));  // the sweep is done

  // The second run alone, beside a torn shared training (not used: it trains, then the file goes).
  auto alone = spec;
  alone.runs.erase(alone.runs.begin());
  options.out_dir = alone_out.path();
  std::filesystem::create_directories(alone_out.path() + "/tiny");
  std::ofstream(shared_training_path(alone_out.path(), alone.runs[0])) << "ngdbench-checkpoint 1\n{}\n";
  const auto trained = run_spec(alone, options);
  ASSERT_EQ(trained[0]["status"], "completed") << trained[0]["error"];
  EXPECT_FALSE(trained[0]["meta"].contains("training_from"));
  EXPECT_FALSE(std::filesystem::exists(shared_training_path(alone_out.path(), alone.runs[0])));
  EXPECT_EQ(result_numbers(shared[1]), result_numbers(trained[0]));
}

}  // namespace
}  // namespace ngd
