#pragma once

#include <torch/torch.h>

#include "harness/models/model.h"
#include "harness/phase_timer.h"
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

// The passes that precede Optimizer::step in a training step, in the order the Optimizer contract
// fixes: ask capture(), switch the capture layers' recording, forward, reduce_loss() of the
// per-sample cross-entropies, for kSampled an extra backward with labels drawn from the model's
// prediction (the true Fisher's output gradients), then zero the gradients and back-propagate the
// loss. Time goes to `timer`'s forward, curvature (the sampled pass) and backward phases.
StepPasses forward_backward(Model& model, Optimizer& optimizer, const StepInfo& info, const torch::Tensor& images,
                            const torch::Tensor& labels, PhaseTimer& timer);

}  // namespace ngd
