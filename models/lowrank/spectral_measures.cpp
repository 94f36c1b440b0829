#include "models/lowrank/spectral_measures.h"

#include <fmt/format.h>

#include <stdexcept>

namespace ngd {
namespace {

// Keeps p = σ/Σσ and p·ln p finite at σ = 0 (an all-zero spectrum, a zero singular value).
constexpr double kEntropyEpsilon = 1e-12;

torch::Tensor nuclear(const torch::Tensor& sigma) { return sigma.sum(); }

torch::Tensor hoyer(const torch::Tensor& sigma) { return sigma.sum() / sigma.norm() - 1; }

torch::Tensor hoyer_square(const torch::Tensor& sigma) { return sigma.sum().square() / sigma.square().sum() - 1; }

torch::Tensor effective_rank(const torch::Tensor& sigma) {
  const auto p = sigma.abs() / (sigma.abs().sum() + kEntropyEpsilon);
  return torch::exp(-(p * torch::log(p + kEntropyEpsilon)).sum());
}

}  // namespace

const std::vector<SpectralMeasure>& spectral_measure_registry() {
  static const std::vector<SpectralMeasure> table = {
      {"l1", "Σσ_i, the nuclear norm (grows with the weights' scale)", nuclear, false},
      {"hoyer", "‖σ‖_1/‖σ‖_2 − 1 (Yang et al. 2020's Hoyer)", hoyer, true},
      {"hoyer_square", "‖σ‖_1²/‖σ‖_2² − 1 (Hoyer-Square; + 1 is the order-2 Rényi effective rank)", hoyer_square, true},
      {"effective_rank", "exp of the Shannon entropy of σ/‖σ‖_1 (Roy & Vetterli 2007)", effective_rank, true},
  };
  return table;
}

const SpectralMeasure& spectral_measure(const std::string& name) {
  for (const auto& measure : spectral_measure_registry()) {
    if (measure.name == name) return measure;
  }
  std::string names;
  for (const auto& measure : spectral_measure_registry()) names += (names.empty() ? "" : ", ") + measure.name;
  throw std::invalid_argument(fmt::format("unknown spectral measure '{}' (known: {})", name, names));
}

torch::Tensor layer_singular_values(CompressibleLayerImpl& layer) {
  const auto weight = layer.layer().dense_weight();
  return torch::linalg_svdvals(weight.reshape({weight.size(0), -1}));
}

torch::Tensor spectral_penalty(CaptureModel& model, const SpectralMeasure& measure) {
  const auto& layers = model.compressible_layers();
  if (layers.empty()) {
    throw std::invalid_argument(fmt::format("spectral penalty '{}': the model has no compressible layers", measure.name));
  }
  torch::Tensor total;
  for (const auto& [name, layer] : layers) {
    const auto value = measure.value(layer_singular_values(*layer));
    total = total.defined() ? total + value : value;
  }
  return total;
}

}  // namespace ngd
