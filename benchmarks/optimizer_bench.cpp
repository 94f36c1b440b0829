// One optimizer step, for every registered optimizer, on the layer shapes the issue tracker names:
// Linear 512→512 and 3136→256, Conv 64→64 3×3 on 16×16, at batch 32 and 128. Each iteration runs the
// forward and backward pass the optimizer asks for (capture, sampled labels) untimed, then times
// Optimizer::step at the next global step, so periodic refreshes (KFAC's t_inv, TENGraD's freq) are
// amortised as in training with the optimizer's default settings.
#include <benchmark/benchmark.h>

#include "harness/models/model.h"
#include "optimizers/optimizer.h"

namespace ngd {
namespace {

// Classes of the small head that turns the benchmarked layer's output into a loss.
constexpr int64_t kClasses = 10;

// The benchmarked layer followed by ReLU, global pooling (conv) and a linear head.
class OneLayerModel : public Model {
 public:
  OneLayerModel(bool conv, int64_t in, int64_t out) : conv_(conv) {
    if (conv) {
      conv_layer_ = add_capture_layer("layer", CaptureConv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)));
    } else {
      linear_layer_ = add_capture_layer("layer", CaptureLinear(in, out));
    }
    head_ = add_capture_layer("head", CaptureLinear(out, kClasses));
  }
  torch::Tensor forward(const torch::Tensor& input) override {
    auto x = torch::relu(conv_ ? conv_layer_->forward(input) : linear_layer_->forward(input));
    if (conv_) x = x.mean({2, 3});
    return head_->forward(x);
  }

 private:
  bool conv_;
  CaptureConv2d conv_layer_{nullptr};
  CaptureLinear linear_layer_{nullptr}, head_{nullptr};
};

struct Shape {
  const char* name;
  bool conv;
  int64_t in, out;
};

const Shape kShapes[] = {{"linear512x512", false, 512, 512},
                         {"linear3136x256", false, 3136, 256},
                         {"conv64x64k3@16x16", true, 64, 64}};

void BM_OptimizerStep(benchmark::State& state, const OptimizerEntry& entry, const Shape& shape, int64_t batch) {
  torch::manual_seed(0);
  OneLayerModel model(shape.conv, shape.in, shape.out);
  auto optimizer = entry.make(model, Options(resolve_options(nlohmann::json::object(), entry.hyperparameters,
                                                             entry.name, "hparams")));
  const auto input = shape.conv ? torch::randn({batch, shape.in, 16, 16}) : torch::randn({batch, shape.in});
  const auto labels = torch::randint(kClasses, {batch}, torch::kInt64);
  PhaseTimer timer;
  int64_t step = 0;
  for (auto _ : state) {
    state.PauseTiming();
    StepInfo info{step, 0, step, 1000000, torch::arange(batch, torch::kInt64), {}};
    info.batch_loss = [&] {
      torch::NoGradGuard no_grad;
      return torch::nn::functional::cross_entropy(model.forward(input), labels).item<double>();
    };
    const auto capture = optimizer->capture(info);
    for (const auto& layer : model.capture_layers()) {
      layer->set_record_input(capture != Capture::kNone);
      layer->set_record_grad_output(capture != Capture::kNone);
    }
    auto logits = model.forward(input);
    auto per_sample = torch::nn::functional::cross_entropy(
        logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    auto loss = optimizer->reduce_loss(per_sample, info);
    if (capture == Capture::kSampled) {
      const auto sampled = torch::multinomial(torch::softmax(logits.detach(), 1), 1).squeeze(1);
      torch::nn::functional::cross_entropy(logits, sampled).backward({}, true);
      for (const auto& layer : model.capture_layers()) layer->set_record_grad_output(false);
    }
    model.zero_grad();
    loss.backward();
    state.ResumeTiming();
    optimizer->step(info, timer);
    ++step;
  }
  state.counters["curvature_s_per_step"] = timer.seconds(Phase::kCurvature) /
                                      std::max(1e-12, state.iterations() ? state.iterations() * 1.0 : 1.0);
}

}  // namespace
}  // namespace ngd

int main(int argc, char** argv) {
  for (const auto& entry : ngd::optimizer_registry()) {
    for (const auto& shape : ngd::kShapes) {
      for (const int64_t batch : {32, 128}) {
        benchmark::RegisterBenchmark(("BM_OptimizerStep/" + entry.name + "/" + shape.name + "/batch:" + std::to_string(batch)).c_str(),
                                     [&entry, &shape, batch](benchmark::State& state) {
                                       ngd::BM_OptimizerStep(state, entry, shape, batch);
                                     })
            ->Unit(benchmark::kMillisecond)
            ->MinTime(0.5);
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
