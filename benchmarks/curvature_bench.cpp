// The curvature kernels the natural-gradient optimizers spend their time in, outside any optimizer:
// the Woodbury optimizers' Gram K = UᵀU of per-sample gradients (both exact forms), the damped
// Cholesky factorisation and solve of K + nλI, and KFAC's float64 eigendecomposition of a factor.
#include <benchmark/benchmark.h>

#include "benchmarks/one_layer_model.h"
#include "optimizers/curvature/matrix_roots.h"
#include "optimizers/curvature/woodbury.h"

namespace ngd::bench {
namespace {

// The Woodbury optimizers' default block size for the pairwise form (WoodburySettings).
const int64_t kMaxBlockElements = WoodburySettings{}.max_block_elements;
// Damping of the benchmarked solves: a typical TENGraD / FNGD value.
constexpr double kDamping = 1e-3;

// The benchmarked layer of `shape` after one forward and backward pass with its recording on, as
// on a capture step (mean cross-entropy, so the recorded output gradients carry 1/batch).
void record_layer(OneLayerModel& model, const BenchBatch& data) {
  model.layer().set_record_input(true);
  model.layer().set_record_grad_output(true);
  model.zero_grad();
  torch::nn::functional::cross_entropy(model.forward(data.images), data.labels).backward();
}

void BM_Gram(benchmark::State& state, const LayerShape& shape, int64_t batch, GramForm form) {
  torch::manual_seed(0);
  OneLayerModel model(shape);
  record_layer(model, random_batch(shape, batch));
  for (auto _ : state) {
    const auto gradients = SampleGradients::from_layer(model.layer(), static_cast<double>(batch), form, kMaxBlockElements);
    benchmark::DoNotOptimize(gradients.gram());
  }
}

// Factorises K + nλI for the Gram K of n random gradients (float32, solved in float64 as by default)
// and solves it for one right-hand side.
void BM_DampedCholeskySolve(benchmark::State& state) {
  const int64_t n = state.range(0);
  torch::manual_seed(0);
  const auto gradients = torch::randn({n, 2 * n});
  const auto gram = gradients.mm(gradients.t());
  const auto rhs = torch::randn({n});
  WoodburySolver solver{WoodburySettings{}};
  for (auto _ : state) {
    const auto factor = solver.factorize(gram, kDamping, "bench");
    benchmark::DoNotOptimize(solver.solve(factor, rhs));
  }
}
BENCHMARK(BM_DampedCholeskySolve)->ArgName("n")->Arg(32)->Arg(128)->Arg(512)->Unit(benchmark::kMicrosecond);

// KFAC's refresh of one factor: a float32 SPD matrix decomposed in float64 (symmetric_eigh). 577 and
// 1153 are the input factors of 3×3 convs with 64 and 128 input channels and a bias.
void BM_SymmetricEigh(benchmark::State& state) {
  const int64_t dim = state.range(0);
  torch::manual_seed(0);
  const auto rows = torch::randn({2 * dim, dim});
  const auto factor = rows.t().mm(rows) / static_cast<double>(2 * dim) + 1e-3 * torch::eye(dim);
  for (auto _ : state) benchmark::DoNotOptimize(symmetric_eigh(factor));
}
BENCHMARK(BM_SymmetricEigh)->ArgName("dim")->Arg(577)->Arg(1153)->Unit(benchmark::kMillisecond);

struct GramCase {
  const char* form_name;
  GramForm form;
  int64_t shape_index;  // into kLayerShapes
  int64_t batch;
};

// The pairwise form is the exact one kAuto picks for Linear layers; a conv layer gets both exact
// forms (pairwise costs O(n²S²(in+out)), so only at batch 32).
const GramCase kGramCases[] = {{"pairwise", GramForm::kPairwise, 0, 32},   {"pairwise", GramForm::kPairwise, 0, 128},
                               {"pairwise", GramForm::kPairwise, 1, 32},   {"pairwise", GramForm::kPairwise, 1, 128},
                               {"pairwise", GramForm::kPairwise, 2, 32},   {"per_sample", GramForm::kPerSample, 2, 32},
                               {"per_sample", GramForm::kPerSample, 2, 128}};

const bool kGramsRegistered = [] {
  for (const auto& c : kGramCases) {
    const auto& shape = kLayerShapes[c.shape_index];
    benchmark::RegisterBenchmark(("BM_Gram/" + std::string(c.form_name) + "/" + shape_label(shape, c.batch)).c_str(),
                                 [&shape, c](benchmark::State& state) { BM_Gram(state, shape, c.batch, c.form); })
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
}  // namespace ngd::bench
