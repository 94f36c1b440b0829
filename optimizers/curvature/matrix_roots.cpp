#include "optimizers/curvature/matrix_roots.h"

#include <cmath>

#include "base/device.h"

namespace ngd {
namespace {

torch::Tensor identity_like(const torch::Tensor& matrix) { return torch::eye(matrix.size(0), matrix.options()); }

double distance_from_identity(const torch::Tensor& matrix) {
  return host_value<double>((matrix - identity_like(matrix)).norm()) / std::sqrt(static_cast<double>(matrix.size(0)));
}

}  // namespace

MatrixRoots denman_beavers_roots(const torch::Tensor& spd, int64_t max_iterations, double tolerance) {
  const auto identity = identity_like(spd);
  const double n = static_cast<double>(spd.size(0));
  MatrixRoots roots{spd.clone(), identity.clone()};
  auto product = spd.clone();  // M = Y·Z
  while (roots.iterations < max_iterations) {
    ++roots.iterations;
    const auto product_inverse = torch::linalg_inv(product);
    const double log_det = host_value<double>(std::get<1>(torch::linalg_slogdet(product)));
    const double mu = std::exp(-log_det / (2 * n));
    const auto factor = identity + product_inverse / (mu * mu);
    roots.sqrt = 0.5 * mu * roots.sqrt.mm(factor);
    roots.inverse_sqrt = 0.5 * mu * roots.inverse_sqrt.mm(factor);
    product = 0.5 * (identity + 0.5 * (mu * mu * product + product_inverse / (mu * mu)));
    const double residual = distance_from_identity(product);
    if (!std::isfinite(residual)) break;
    if (residual < tolerance) {
      roots.converged = true;
      break;
    }
  }
  return roots;
}

MatrixRoots newton_schulz_roots(const torch::Tensor& spd, int64_t max_iterations, double tolerance) {
  const auto identity = identity_like(spd);
  const double scale = host_value<double>(spd.norm());
  auto y = spd / scale;
  auto z = identity.clone();
  MatrixRoots roots;
  while (true) {
    const auto zy = z.mm(y);
    const double residual = distance_from_identity(zy);
    if (!std::isfinite(residual)) break;
    if (residual < tolerance) {
      roots.converged = true;
      break;
    }
    if (roots.iterations == max_iterations) break;
    ++roots.iterations;
    const auto t = 0.5 * (3 * identity - zy);
    y = y.mm(t);
    z = t.mm(z);
  }
  roots.sqrt = y * std::sqrt(scale);
  roots.inverse_sqrt = z / std::sqrt(scale);
  return roots;
}

std::tuple<torch::Tensor, torch::Tensor> symmetric_eigh(const torch::Tensor& symmetric) {
  const auto [eigenvalues, eigenvectors] = torch::linalg_eigh(symmetric.to(torch::kDouble));
  return {eigenvalues.to(symmetric.scalar_type()), eigenvectors.to(symmetric.scalar_type())};
}

MatrixRoots eigh_roots(const torch::Tensor& spd) {
  const auto [eigenvalues, eigenvectors] = symmetric_eigh(spd);
  const auto root = eigenvalues.sqrt();
  MatrixRoots roots;
  roots.sqrt = (eigenvectors * root).mm(eigenvectors.t());
  roots.inverse_sqrt = (eigenvectors / root).mm(eigenvectors.t());
  roots.converged = true;
  return roots;
}

}  // namespace ngd
