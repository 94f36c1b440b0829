#include "harness/run/training_step.h"

#include "base/device.h"

namespace ngd {
namespace {

void set_recording(CaptureModel& model, bool inputs, bool grad_outputs) {
  for (const auto& layer : model.capture_layers()) {
    layer->set_record_input(inputs);
    layer->set_record_grad_output(grad_outputs);
  }
}

}  // namespace

StepPasses forward_backward(CaptureModel& model, Optimizer& optimizer, const StepInfo& info,
                            const ForwardPass& forward, const SampledTargetLoss& sampled_target_loss,
                            PhaseTimer& timer) {
  const Capture capture = optimizer.capture(info);
  // Output gradients are recorded by hooks the forward pass registers, so both switches go on
  // before it for either kind of capture.
  set_recording(model, capture != Capture::kNone, capture != Capture::kNone);
  StepPasses passes;
  torch::Tensor loss;
  {
    auto scope = timer.scope(Phase::kForward);
    std::tie(passes.logits, passes.per_sample_loss) = forward();
    loss = optimizer.reduce_loss(passes.per_sample_loss, info);
  }
  if (capture == Capture::kSampled) {
    auto scope = timer.scope(Phase::kCurvature);
    // No distribution to sample from (and on a GPU, multinomial would fail on the device).
    if (!host_value<bool>(torch::isfinite(passes.logits).all())) {
      passes.back_propagated = false;
      return passes;
    }
    sampled_target_loss(passes.logits).backward({}, /*retain_graph=*/true);
    set_recording(model, true, false);  // keep the sampled targets' gradients through the real backward
  }
  {
    auto scope = timer.scope(Phase::kBackward);
    model.zero_grad();
    loss.backward();
  }
  return passes;
}

std::pair<torch::Tensor, torch::Tensor> classifier_forward(Model& model, const torch::Tensor& images,
                                                           const torch::Tensor& labels) {
  auto logits = model.forward(images);
  auto per_sample_loss = torch::nn::functional::cross_entropy(
      logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  return {std::move(logits), std::move(per_sample_loss)};
}

torch::Tensor sampled_labels_loss(const torch::Tensor& logits) {
  const auto sampled = torch::multinomial(torch::softmax(logits.detach(), 1), 1).squeeze(1);
  return torch::nn::functional::cross_entropy(logits, sampled);
}

std::function<double()> loss_keeping_buffers(torch::nn::Module& model, std::function<double()> loss) {
  return [&model, loss = std::move(loss)] {
    const BufferCopy buffers(model);
    const double value = loss();
    buffers.restore();
    return value;
  };
}

StepPasses forward_backward(Model& model, Optimizer& optimizer, const StepInfo& info, const torch::Tensor& images,
                            const torch::Tensor& labels, PhaseTimer& timer) {
  return forward_backward(
      model, optimizer, info, [&] { return classifier_forward(model, images, labels); }, sampled_labels_loss, timer);
}

}  // namespace ngd
