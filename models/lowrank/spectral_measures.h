#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "models/model.h"

namespace ngd {

// A sparsity measure of a weight matrix's singular values σ (1-D, ≥ 0), differentiable through autograd.
// With S = Σσ_i and p_i = σ_i/S:
//   l1              Σσ_i (the nuclear norm)                          scale: grows with σ
//   hoyer           ‖σ‖_1/‖σ‖_2 − 1             ∈ [0, √q − 1]        scale-invariant
//   hoyer_square    ‖σ‖_1²/‖σ‖_2² − 1           ∈ [0, q − 1]         scale-invariant
//   effective_rank  exp(−Σ p_i ln p_i)          ∈ [1, rank]          scale-invariant (Roy & Vetterli 2007)
struct SpectralMeasure {
  std::string name;
  std::string summary;
  std::function<torch::Tensor(const torch::Tensor& singular_values)> value;  // a 0-d tensor
  bool scale_invariant;
};

const std::vector<SpectralMeasure>& spectral_measure_registry();
// Throws std::invalid_argument listing the names.
const SpectralMeasure& spectral_measure(const std::string& name);

// The singular values of a compressible layer's dense weight as a matrix (out × in, or
// C_out × C_in·kh·kw), differentiable through the layer's factors.
torch::Tensor layer_singular_values(CompressibleLayerImpl& layer);

// Σ over the model's compressible layers of `measure` of their singular values (a 0-d tensor that
// back-propagates into the layers' weights or factors).
torch::Tensor spectral_penalty(CaptureModel& model, const SpectralMeasure& measure);

}  // namespace ngd
