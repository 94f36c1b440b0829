// Known allocations: state_bytes() of an optimizer's state() against the bytes its algorithm keeps
// between steps, derived here by hand from the layer sizes (not from the implementation), on an MLP
// 64 → 8 → 3 with biases in float32 and batches of 6.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/phase_timer.h"
#include "harness/run/training_step.h"
#include "models/model.h"
#include "optimizers/optimizer.h"
#include "optimizers/optimizer_state.h"
#include "optimizers/registry.h"

namespace ngd {
namespace {

using nlohmann::json;

constexpr int64_t kBatch = 6;
constexpr int64_t kFloat32 = 4, kFloat64 = 8, kInt64 = 8;
// The two Linear layers as the Fisher blocks see them: inputs with the bias's ones column.
constexpr int64_t kIn1 = 64 + 1, kOut1 = 8;
constexpr int64_t kIn2 = 8 + 1, kOut2 = 3;
// Weights and biases: what one momentum buffer per parameter holds.
constexpr int64_t kParameterBytes = (kOut1 * kIn1 + kOut2 * kIn2) * kFloat32;

std::shared_ptr<Model> mlp() {
  torch::manual_seed(3);
  const auto* entry = find_entry(model_registry(), "mlp");
  auto model = entry->make(Options(resolve_options({{"hidden", {8}}}, entry->options, "mlp", "model")), {{1, 8, 8}, 3});
  // The sizes the expectations below are written for.
  const auto& layers = model->capture_layers();
  EXPECT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0]->weight().sizes().vec(), (std::vector<int64_t>{kOut1, kIn1 - 1}));
  EXPECT_EQ(layers[1]->weight().sizes().vec(), (std::vector<int64_t>{kOut2, kIn2 - 1}));
  EXPECT_TRUE(layers[0]->has_bias() && layers[1]->has_bias());
  return model;
}

// Optimizer `name` after `steps` runner steps over two batches of kBatch samples (ids 0–5, 6–11).
OptimizerState state_after(const std::string& name, const json& hparams, int64_t steps) {
  auto model = mlp();
  auto optimizer = make_optimizer(name, *model, hparams);
  const auto images = torch::randn({2, kBatch, 1, 8, 8});
  const auto labels = torch::randint(3, {2, kBatch}, torch::kLong);
  PhaseTimer timer;
  model->train();
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t batch = step % 2;
    StepInfo info{step, step / 2, batch, 2, torch::arange(batch * kBatch, (batch + 1) * kBatch, torch::kLong), {}};
    forward_backward(*model, *optimizer, info, images[batch], labels[batch], timer);
    optimizer->set_learning_rate(optimizer_options(name, hparams).number("lr"));
    optimizer->step(info, timer);
  }
  return optimizer->state();
}

// The bytes of the entries whose names contain `part`.
int64_t bytes_of(const OptimizerState& state, const std::string& part) {
  OptimizerState selected;
  for (const auto& entry : state) {
    if (entry.name.find(part) != std::string::npos) selected.push_back(entry);
  }
  return state_bytes(selected);
}

TEST(KnownAllocations, SgdKeepsOneMomentumBufferPerParameterAndNothingWithoutMomentum) {
  EXPECT_EQ(state_bytes(state_after("sgd", {{"momentum", 0.0}}, 2)), 0);
  EXPECT_EQ(state_bytes(state_after("sgd", {{"momentum", 0.9}}, 2)), kParameterBytes);
}

// After step 0 (which updates the factors and refreshes): per layer the factors A (d_in²) and G (d_out²)
// and two matrices of the same sizes from the refresh, the damped inverses (inverse) or the eigenbases
// (eigen, which also keeps the reciprocals 1/(d_G d_Aᵀ + λ), one per weight), plus SGD's momentum.
TEST(KnownAllocations, KfacKeepsTwoMatricesPerKroneckerFactorAndTheMomentum) {
  constexpr int64_t factor_elements = kIn1 * kIn1 + kOut1 * kOut1 + kIn2 * kIn2 + kOut2 * kOut2;
  const auto inverse = state_after("kfac", {{"inverse_method", "inverse"}}, 1);
  EXPECT_EQ(state_bytes(inverse), factor_elements * 2 * kFloat32 + kParameterBytes);
  const auto eigen = state_after("kfac", {{"inverse_method", "eigen"}}, 1);
  EXPECT_EQ(state_bytes(eigen), factor_elements * 2 * kFloat32 + (kOut1 * kIn1 + kOut2 * kIn2) * kFloat32 + kParameterBytes);
}

// TENGraD keeps the last refresh's per-sample gradients until the next: for Linear layers their factored
// rows, an input row (d_in) and an output-gradient row (d_out) per sample and layer, since the dense
// d_in·d_out per sample would be larger; and per layer the float64 Cholesky factor of K + nλI (n × n) with
// its λ, the schedule's λ, and SGD's momentum.
TEST(KnownAllocations, TengradKeepsTheRefreshsPerSampleRowsAndFactors) {
  const auto state = state_after("tengrad", json::object(), 1);
  const int64_t per_sample = kBatch * (kIn1 + kOut1 + kIn2 + kOut2) * kFloat32;
  EXPECT_EQ(bytes_of(state, "/inputs") + bytes_of(state, "/grad_outputs"), per_sample);
  EXPECT_EQ(state_bytes(state), per_sample + 2 * (kBatch * kBatch * kFloat64 + kFloat64) + kFloat64 + kParameterBytes);
}

// FNGD keeps no per-sample buffer between steps (a step's recordings are combined and dropped within it):
// its state is the first epoch's coefficients, one float64 per sample seen (by sample id; one set shared
// by the layers), its λ, whether the logits layer was checked, and SGD's momentum.
TEST(KnownAllocations, FngdKeepsOneCoefficientPerSampleAndNoPerSampleGradients) {
  const auto state = state_after("fngd", {{"coefficients", "shared"}, {"coefficient_index", "sample_id"}}, 2);
  EXPECT_EQ(bytes_of(state, "fngd/coefficients/"), 2 * kBatch * kFloat64);
  EXPECT_EQ(state_bytes(state), 2 * kBatch * kFloat64 + kFloat64 + kInt64 + kParameterBytes);
  // Per layer (one set per layer), by position in the batch: layers × batch per batch.
  const auto per_layer = state_after("fngd", {{"coefficients", "per_layer"}, {"coefficient_index", "batch_position"}}, 2);
  EXPECT_EQ(bytes_of(per_layer, "fngd/coefficients/"), 2 * 2 * kBatch * kFloat64);
}

}  // namespace
}  // namespace ngd
