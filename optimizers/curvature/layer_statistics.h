#pragma once

#include <torch/torch.h>

#include "models/capture_layers.h"

namespace ngd {

// What the natural-gradient optimizers compute from a capture layer's recordings. Shapes use
// N = batch size (images, or sentences), S = positions per sample: output positions of a conv layer
// (H_out·W_out) or tokens of a Linear layer on sequences (batch, tokens, features), and a ones
// column appended to the inputs when the layer has a bias, so that [W | b] acts on [a, 1] as one
// matrix. A sequence's padded tokens (its token mask) give all-zero rows, ones column included, in
// both the input and the output-gradient rows: padding adds nothing to any statistic.

// Whether the recordings have positions: a Conv2d layer, or a Linear layer on sequences.
bool has_positions(CaptureLayer& layer);

// The real (unpadded) tokens of a Linear layer's recorded sequence input (all tokens without a
// mask); for other layers the number of samples.
int64_t real_token_count(CaptureLayer& layer);

// The recorded input as the rows the weight multiplies: Linear (N, in[+1]); Linear on sequences
// (N, S, in[+1]); Conv2d the im2col patches (N, S, C_in·kh·kw[+1]), matching the layer's stride,
// padding and dilation (groups = 1).
torch::Tensor input_rows(CaptureLayer& layer);

// The recorded output gradients: Linear (N, out); with positions (N, S, out). These are gradients of
// the loss as back-propagated, so under a mean reduction each row carries a factor 1/N.
torch::Tensor grad_output_rows(CaptureLayer& layer);

// The layer's parameter gradient as one matrix [∇W.view(out, -1) | ∇b] (out × in[+1]).
torch::Tensor gradient_matrix(CaptureLayer& layer);

// The shape {out, in[+1]} of gradient_matrix(), without a gradient: what a restored state is checked against.
std::vector<int64_t> gradient_matrix_shape(CaptureLayer& layer);

// Writes a matrix laid out like gradient_matrix() into the weight's and bias's .grad.
void set_gradient_matrix(CaptureLayer& layer, const torch::Tensor& matrix);

// Per-sample gradients (N, out, in[+1]) of the back-propagated loss's terms, from the recordings:
// Linear g_i a_iᵀ; with positions Σ_s g_{i,s} a_{i,s}ᵀ (a sentence's gradient sums over its tokens).
// Summed over i they give gradient_matrix().
torch::Tensor per_sample_gradients(CaptureLayer& layer);

// Eva's Kronecker vectors: the mean of input_rows() (ā, ones column included) and of grad_output_rows()
// (ḡ) over every recorded row: the samples of a Linear layer, samples × output positions of a Conv2d,
// the real tokens of a sequence layer. ḡ keeps the loss's reduction (a factor 1/N under a mean).
// Conv: computed from the batch-mean image, without the batch's im2col.
torch::Tensor mean_input_row(CaptureLayer& layer);
torch::Tensor mean_grad_output_row(CaptureLayer& layer);

// KFC's Kronecker factors of one capture (Grosse & Martens 2016), the statistics KFAC and SNGD share.
// With N samples (the real tokens of a Linear layer on sequences: its tokens are its samples), S the
// output positions of a Conv2d layer (1 otherwise), ā the input rows and D = N·g the output gradients
// with the mean reduction's 1/N undone (padded tokens give zero rows):
//   input = 1/(N·S) Σ_{n,s} ā āᵀ   (the mean over every row),
//   grad  = 1/N Σ_{n,s} D Dᵀ = N·Σ_{n,s} g gᵀ   (positions summed, samples averaged),
// so input ⊗ grad = (1/S)·E[Σ_s ā āᵀ] ⊗ E[Σ_s D Dᵀ]. `positions` is S, for a split that moves it
// between the two (KFAC's). `grad` is left undefined unless `with_grad`.
struct KroneckerStatistics {
  torch::Tensor input;
  torch::Tensor grad;
  double positions = 1;
};
KroneckerStatistics kronecker_statistics(CaptureLayer& layer, bool with_grad);

// A running Kronecker factor: starts at I (early steps stay close to SGD, as in the KFAC codes) and
// takes each new statistic with weight 1 − decay.
void blend_into(torch::Tensor& running, const torch::Tensor& statistic, double decay);

// KFAC's KL clip factor min(1, sqrt(kl_clip / (lr²·alignment))) for alignment = Σ ⟨update, ∇W̄⟩ (the
// step's squared Fisher norm / lr²); 1 when kl_clip is 0 or alignment ≤ 0. A 0-d tensor on the
// alignment's device: scaling the updates by it needs no read-back.
torch::Tensor kl_clip_factor(const torch::Tensor& alignment, double kl_clip, double learning_rate);

}  // namespace ngd
