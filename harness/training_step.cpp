#include "harness/training_step.h"

namespace ngd {
namespace {

void set_recording(Model& model, bool inputs, bool grad_outputs) {
  for (const auto& layer : model.capture_layers()) {
    layer->set_record_input(inputs);
    layer->set_record_grad_output(grad_outputs);
  }
}

}  // namespace

StepPasses forward_backward(Model& model, Optimizer& optimizer, const StepInfo& info, const torch::Tensor& images,
                            const torch::Tensor& labels, PhaseTimer& timer) {
  const Capture capture = optimizer.capture(info);
  // Output gradients are recorded by hooks the forward pass registers, so both switches go on
  // before it for either kind of capture.
  set_recording(model, capture != Capture::kNone, capture != Capture::kNone);
  StepPasses passes;
  torch::Tensor loss;
  {
    auto scope = timer.scope(Phase::kForward);
    passes.logits = model.forward(images);
    passes.per_sample_loss = torch::nn::functional::cross_entropy(
        passes.logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    loss = optimizer.reduce_loss(passes.per_sample_loss, info);
  }
  if (capture == Capture::kSampled) {
    auto scope = timer.scope(Phase::kCurvature);
    if (!torch::isfinite(passes.logits).all().item<bool>()) {
      passes.back_propagated = false;
      return passes;
    }
    const auto sampled = torch::multinomial(torch::softmax(passes.logits.detach(), 1), 1).squeeze(1);
    torch::nn::functional::cross_entropy(passes.logits, sampled).backward({}, /*retain_graph=*/true);
    set_recording(model, true, false);  // keep the sampled labels' gradients through the real backward
  }
  {
    auto scope = timer.scope(Phase::kBackward);
    model.zero_grad();
    loss.backward();
  }
  return passes;
}

}  // namespace ngd
