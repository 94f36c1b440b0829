// One optimizer step, for every registered optimizer with its default settings, on the layer shapes of
// one_layer_model.h at batch 32 and 128. Each iteration runs the passes the optimizer asks for
// (forward_backward: capture, sampled labels) untimed, then times Optimizer::step at the next global
// step. Step 0, which sets up curvature (KFAC and SNGD decompose their factors), runs untimed first: the
// figure is the step between setups, with periodic work (KFAC's t_cov factor updates, refreshes every
// t_inv steps) counted at the rate it falls into the kTimedSteps steps timed; refresh costs are
// BM_SymmetricEigh.
// BM_KfacFactorUpdate isolates KFAC's factor update (im2col, A and G products, running averages).
#include <benchmark/benchmark.h>

#include "benchmarks/one_layer_model.h"
#include "harness/run/training_step.h"
#include "optimizers/kfac.h"
#include "optimizers/optimizer.h"
#include "optimizers/registry.h"

namespace ngd::bench {
namespace {

// Batch sizes every layer shape is timed at.
constexpr int64_t kBatchSizes[] = {32, 128};

// Batches in the benchmarks' one long epoch: steps never reach an epoch boundary.
constexpr int64_t kBatchesPerEpoch = 1000000;
// Steps timed per run of a step benchmark, fixed rather than from --benchmark_min_time: the untimed
// passes before each step cost up to 100× a cheap step, so a time-based count would spend minutes
// on them. 20 covers KFAC's and SNGD's default factor-update period (10) twice.
constexpr int64_t kTimedSteps = 20;

// The StepInfo of global step `step` after the passes `optimizer` asks for on `data` (untimed).
StepInfo prepare_step(Model& model, Optimizer& optimizer, const BenchBatch& data, int64_t step) {
  StepInfo info{step, 0, step, kBatchesPerEpoch, torch::arange(data.labels.size(0), torch::kInt64), {}};
  info.batch_loss = [&model, &data] {
    torch::NoGradGuard no_grad;
    return torch::nn::functional::cross_entropy(model.forward(data.images), data.labels).item<double>();
  };
  PhaseTimer untimed;
  forward_backward(model, optimizer, info, data.images, data.labels, untimed);
  return info;
}

void BM_OptimizerStep(benchmark::State& state, const OptimizerEntry& entry, const LayerShape& shape, int64_t batch) {
  torch::manual_seed(0);
  OneLayerModel model(shape);
  std::unique_ptr<Optimizer> optimizer;
  try {
    optimizer = make_optimizer(entry.name, model, nlohmann::json::object());
  } catch (const std::invalid_argument& error) {  // a layer kind the optimizer does not support
    state.SkipWithError(error.what());
    return;
  }
  const auto data = random_batch(shape, batch);
  PhaseTimer setup, timer;
  int64_t step = 0;
  optimizer->step(prepare_step(model, *optimizer, data, step++), setup);
  for (auto _ : state) {
    state.PauseTiming();
    const auto info = prepare_step(model, *optimizer, data, step++);
    state.ResumeTiming();
    optimizer->step(info, timer);
  }
  state.counters["curvature_s_per_step"] = timer.seconds(Phase::kCurvature) / std::max<double>(1, state.iterations());
}

// KFAC with a factor update every step and one eigendecomposition (at step 0, before the timed loop):
// the counters split the step into factor update and preconditioning.
void BM_KfacFactorUpdate(benchmark::State& state, const LayerShape& shape, int64_t batch) {
  torch::manual_seed(0);
  OneLayerModel model(shape);
  Kfac kfac(model, optimizer_options("kfac", {{"stat_interval", 1}, {"inverse_interval", 1 << 30}}));
  const auto data = random_batch(shape, batch);
  PhaseTimer timer;
  int64_t step = 0;
  kfac.step(prepare_step(model, kfac, data, step++), timer);
  const auto before = kfac.curvature().counters();
  for (auto _ : state) {
    state.PauseTiming();
    const auto info = prepare_step(model, kfac, data, step++);
    state.ResumeTiming();
    kfac.step(info, timer);
  }
  const auto& after = kfac.curvature().counters();
  const double updates = std::max<double>(1, after.factor_updates - before.factor_updates);
  state.counters["factor_update_ms"] = 1e3 * (after.factor_update_s - before.factor_update_s) / updates;
  state.counters["precondition_ms"] = 1e3 * (after.precondition_s - before.precondition_s) / updates;
}

}  // namespace
}  // namespace ngd::bench

int main(int argc, char** argv) {
  using namespace ngd::bench;
  for (const auto& entry : ngd::optimizer_registry()) {
    for (const auto& shape : kLayerShapes) {
      for (const int64_t batch : kBatchSizes) {
        benchmark::RegisterBenchmark(("BM_OptimizerStep/" + entry.name + "/" + shape_label(shape, batch)).c_str(),
                                     [&entry, &shape, batch](benchmark::State& state) {
                                       BM_OptimizerStep(state, entry, shape, batch);
                                     })
            ->Iterations(kTimedSteps)
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  for (const auto& shape : kLayerShapes) {
    for (const int64_t batch : kBatchSizes) {
      benchmark::RegisterBenchmark(("BM_KfacFactorUpdate/" + shape_label(shape, batch)).c_str(),
                                   [&shape, batch](benchmark::State& state) { BM_KfacFactorUpdate(state, shape, batch); })
          ->Iterations(kTimedSteps)
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
