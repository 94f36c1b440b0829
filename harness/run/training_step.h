#pragma once

#include <torch/torch.h>

#include <functional>
#include <utility>

#include "base/phase_timer.h"
#include "models/model.h"
#include "optimizers/optimizer.h"

namespace ngd {

// What the passes of one training step produced.
struct StepPasses {
  torch::Tensor logits;
  torch::Tensor per_sample_loss;
  // False when the optimizer asked for sampled capture and the logits were not finite: there was no
  // distribution to sample from, so nothing was back-propagated (the run has diverged).
  bool back_propagated = true;
};

// The model's output and per-sample losses for the current batch.
using ForwardPass = std::function<std::pair<torch::Tensor, torch::Tensor>()>;
// The loss of targets drawn from the model's prediction (`logits`), for the true Fisher.
using SampledTargetLoss = std::function<torch::Tensor(const torch::Tensor& logits)>;

// The passes that precede Optimizer::step in a training step, in the order the Optimizer contract
// fixes: ask capture(), switch the capture layers' recording, forward, reduce_loss() of the
// per-sample losses, for kSampled an extra backward of the sampled-target loss (the true Fisher's
// output gradients), then zero the gradients and back-propagate the loss. Time goes to `timer`'s
// forward, curvature (the sampled pass) and backward phases. The runner's one step sequence.
StepPasses forward_backward(CaptureModel& model, Optimizer& optimizer, const StepInfo& info,
                            const ForwardPass& forward, const SampledTargetLoss& sampled_target_loss,
                            PhaseTimer& timer);

// An image classifier's logits and per-sample cross-entropies of `labels`.
std::pair<torch::Tensor, torch::Tensor> classifier_forward(Model& model, const torch::Tensor& images,
                                                           const torch::Tensor& labels);
// The cross-entropy of labels drawn from softmax(logits): the true Fisher's sampled loss.
torch::Tensor sampled_labels_loss(const torch::Tensor& logits);

// A line search's trial loss: `loss` (a training-mode forward pass) with `model`'s buffers, BatchNorm's
// running statistics, put back afterwards, as DLDR's line search reloads its saved state after each
// trial. What the runner hands optimizers as StepInfo::batch_loss.
std::function<double()> loss_keeping_buffers(torch::nn::Module& model, std::function<double()> loss);

// forward_backward for an image classifier: cross-entropy of `labels`, sampled labels for kSampled.
StepPasses forward_backward(Model& model, Optimizer& optimizer, const StepInfo& info, const torch::Tensor& images,
                            const torch::Tensor& labels, PhaseTimer& timer);

}  // namespace ngd
