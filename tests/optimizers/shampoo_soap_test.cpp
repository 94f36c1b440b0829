// Shampoo, SOAP and the Kronecker-factor piece they share, in float64 against dense ground truth: the
// factors by explicit block loops, Shampoo's direction by a dense inverse root, SOAP's step by the
// rotate / Adam / rotate-back formula, and both trajectories against straightforward re-implementations
// of the reference algorithms (distributed_shampoo, soap.py) written here, on Linear and Conv2d layers.
#include <gtest/gtest.h>

#include <cmath>

#include "optimizers/shampoo.h"
#include "optimizers/soap.h"
#include "tests/optimizers/woodbury_test_support.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

using testing::Tolerances;
using woodbury_testing::Batch;
using woodbury_testing::ConvShape;
using woodbury_testing::expect_close;
using woodbury_testing::SmallConvNet;

// Classes of woodbury_testing's batches (and of the models here).
constexpr int64_t kClasses = 5;
// Samples per batch.
constexpr int64_t kBatch = 6;
// Large enough that Shampoo's inverse roots stay well conditioned (κ ≤ (λ_max/ε)^{1/4}) in float64, small
// enough that it changes the roots well beyond the tolerance.
constexpr double kEpsilon = 1e-4;

// conv(1→4, 2×2) – tanh – global mean – linear(4→5) on 1×3×3 images: every weight's factors have at most
// one-dimensional null spaces after a step, so the eigenbases SOAP starts from are unique up to signs and
// two implementations follow the same trajectory.
class TinyNet : public Model {
 public:
  TinyNet() {
    conv_ = add_capture_layer("conv", CaptureConv2d(torch::nn::Conv2dOptions(1, 4, 2)));
    fc_ = add_capture_layer("fc", CaptureLinear(4, kClasses));
  }
  torch::Tensor forward(const torch::Tensor& input) override {
    return fc_(torch::tanh(conv_(input)).mean({2, 3}));
  }

 private:
  CaptureConv2d conv_{nullptr};
  CaptureLinear fc_{nullptr};
};

template <class Net, class... Args>
std::shared_ptr<Net> double_net(uint64_t seed, Args... args) {
  torch::manual_seed(seed);
  auto net = std::make_shared<Net>(args...);
  net->to(torch::kDouble);
  return net;
}

std::shared_ptr<SmallConvNet> small_conv_net() { return double_net<SmallConvNet>(3, ConvShape{2, 1, true}, ConvShape{}); }

Batch double_batch(std::vector<int64_t> shape, uint64_t seed) {
  auto batch = woodbury_testing::random_batch(kBatch, std::move(shape), seed);
  return {batch.images.to(torch::kDouble), batch.labels};
}

// Mean cross-entropy gradients of `net` on `batch`, left in the parameters' .grad.
void backward(Model& net, const Batch& batch) {
  net.zero_grad();
  torch::nn::functional::cross_entropy(net.forward(batch.images), batch.labels).backward();
}

std::vector<torch::Tensor> snapshot(Model& net) {
  std::vector<torch::Tensor> copies;
  for (const auto& parameter : net.parameters()) copies.push_back(parameter.detach().clone());
  return copies;
}

std::vector<torch::Tensor> gradients(Model& net) {
  std::vector<torch::Tensor> copies;
  for (const auto& parameter : net.parameters()) copies.push_back(parameter.grad().detach().clone());
  return copies;
}

// One optimizer step on `batch` the way the runner takes it; returns the gradients it used.
std::vector<torch::Tensor> optimizer_step(Model& net, Optimizer& optimizer, int64_t step, const Batch& batch) {
  backward(net, batch);
  const auto used = gradients(net);
  PhaseTimer timer;
  optimizer.step({step, 0, step, 1000, {}, {}}, timer);
  return used;
}

// Each parameter's displacement from `before` against the expected one, relative to its largest entry.
void expect_moved_by(Model& net, const std::vector<torch::Tensor>& before, const std::vector<torch::Tensor>& expected) {
  const auto parameters = net.parameters();
  ASSERT_EQ(parameters.size(), expected.size());
  for (size_t i = 0; i < parameters.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    expect_close(parameters[i].detach() - before[i], expected[i], Tolerances<double>::kExact);
  }
}

// The parameter as the matrix both optimizers see: first dimension × the rest (a vector as one column).
torch::Tensor as_matrix(const torch::Tensor& tensor) { return tensor.reshape({tensor.size(0), -1}); }

// A^p of a symmetric positive definite matrix from its eigendecomposition.
torch::Tensor spd_power(const torch::Tensor& matrix, double power) {
  const auto [eigenvalues, eigenvectors] = torch::linalg_eigh(matrix, "L");
  return (eigenvectors * eigenvalues.pow(power)).mm(eigenvectors.t());
}

// ---------------------------------------------------------------------------------------------------
// KroneckerFactors

TEST(KroneckerFactors, BlocksTileTheMatrixAndEachAccumulatesItsOwnGrams) {
  torch::manual_seed(0);
  const auto conv_weight = torch::zeros({5, 2, 1, 4}, torch::kDouble);  // a conv weight: 5 × 8 as a matrix
  KroneckerFactors factors(conv_weight, 3, KroneckerFactors::Blocking::kSplit, true);
  ASSERT_EQ(factors.blocks().size(), 6u);  // rows {0..2, 3..4} × columns {0..2, 3..5, 6..7}
  const auto first = torch::randn({5, 2, 1, 4}, torch::kDouble), second = torch::randn({5, 2, 1, 4}, torch::kDouble);
  const double decay = 0.9, weight = 0.1;
  factors.accumulate(factors.matrix(first), decay, weight);
  factors.accumulate(factors.matrix(second), decay, weight);
  const auto g1 = first.reshape({5, 8}), g2 = second.reshape({5, 8});
  for (const auto& block : factors.blocks()) {
    SCOPED_TRACE(std::to_string(block.row_begin) + "," + std::to_string(block.column_begin));
    const auto piece = [&](const torch::Tensor& g) {
      return g.slice(0, block.row_begin, block.row_begin + block.rows)
          .slice(1, block.column_begin, block.column_begin + block.columns);
    };
    const auto p1 = piece(g1), p2 = piece(g2);
    expect_close(block.left, decay * weight * p1.mm(p1.t()) + weight * p2.mm(p2.t()), Tolerances<double>::kExact);
    expect_close(block.right, decay * weight * p1.t().mm(p1) + weight * p2.t().mm(p2), Tolerances<double>::kExact);
  }
  EXPECT_TRUE(torch::equal(factors.unmatrix(factors.merge(factors.split(factors.matrix(first)))), first));
}

TEST(KroneckerFactors, VectorsAndLongSidesFollowTheOwnersRules) {
  const auto vector = torch::zeros({7}, torch::kDouble);
  KroneckerFactors shampoo_vector(vector, 4, KroneckerFactors::Blocking::kSplit, true);
  ASSERT_EQ(shampoo_vector.blocks().size(), 2u);  // 4 + 3 entries, one factor each, no column side
  EXPECT_EQ(shampoo_vector.blocks()[1].left.size(0), 3);
  EXPECT_FALSE(shampoo_vector.blocks()[0].right.defined());
  KroneckerFactors soap_vector(vector, 100, KroneckerFactors::Blocking::kSkipLongSides, false);
  EXPECT_FALSE(soap_vector.blocks()[0].left.defined());
  KroneckerFactors soap_matrix(torch::zeros({3, 6}, torch::kDouble), 4, KroneckerFactors::Blocking::kSkipLongSides, false);
  ASSERT_EQ(soap_matrix.blocks().size(), 1u);
  EXPECT_EQ(soap_matrix.blocks()[0].left.size(0), 3);
  EXPECT_FALSE(soap_matrix.blocks()[0].right.defined());  // 6 columns > 4: identity basis on that side
}

// ---------------------------------------------------------------------------------------------------
// Shampoo

Shampoo make_shampoo(Model& net, nlohmann::json given) {
  given.emplace("eps", kEpsilon);
  return Shampoo(net, optimizer_options("shampoo", given));
}

TEST(Shampoo, BeforeTheStartStepItIsItsGraftedAdamW) {
  const double lr = 0.01, beta1 = 0.9, beta2 = 0.99, eps = 1e-8, weight_decay = 0.1;
  auto net = small_conv_net();
  auto shampoo = make_shampoo(*net, {{"lr", lr},
                                     {"beta1", beta1},
                                     {"grafting_beta2", beta2},
                                     {"grafting_eps", eps},
                                     {"weight_decay", weight_decay},
                                     {"inverse_interval", 3}});
  std::vector<torch::Tensor> m(net->parameters().size()), v(m.size());
  for (int64_t step = 0; step < 2; ++step) {  // steps 1 and 2 of distributed_shampoo's count, start = 3
    const auto before = snapshot(*net);
    const auto g = optimizer_step(*net, shampoo, step, double_batch({2, 8, 8}, 10 + step));
    std::vector<torch::Tensor> expected;
    for (size_t i = 0; i < g.size(); ++i) {
      m[i] = step == 0 ? (1 - beta1) * g[i] : beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = step == 0 ? (1 - beta2) * g[i] * g[i] : beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      const auto m_hat = m[i] / (1 - std::pow(beta1, step + 1)), v_hat = v[i] / (1 - std::pow(beta2, step + 1));
      expected.push_back(-lr * (m_hat / (v_hat.sqrt() + eps) + weight_decay * before[i]));
    }
    expect_moved_by(*net, before, expected);
  }
  EXPECT_EQ(shampoo.counters().grafted_steps, 2);
  EXPECT_EQ(shampoo.counters().root_refreshes, 0);
}

// Shampoo's first step with β1 = 0 and no grafting, blocks of at most `max_dim`: per block
// (L̂ + εI)^{-e} G (R̂ + εI)^{-e} with L̂ = GGᵀ, R̂ = GᵀG (the bias correction undoes 1 − β2), vectors
// (L̂ + εI)^{-1/2} g. The roots are dense eigendecompositions here, each checked against its definition.
void expect_first_step_is_the_dense_inverse_root(int64_t max_dim, double exponent) {
  const double lr = 0.1;
  auto net = small_conv_net();
  auto shampoo = make_shampoo(*net, {{"lr", lr},
                                     {"beta1", 0.0},
                                     {"beta2", 0.95},
                                     {"grafting", "none"},
                                     {"exponent", exponent},
                                     {"max_preconditioner_dim", max_dim},
                                     {"inverse_interval", 1}});
  const auto before = snapshot(*net);
  const auto g = optimizer_step(*net, shampoo, 0, double_batch({2, 8, 8}, 5));
  ASSERT_EQ(shampoo.counters().root_refreshes, 1);
  const auto root = [](const torch::Tensor& gram, double power) {
    const auto damped = gram + kEpsilon * torch::eye(gram.size(0), gram.options());
    const auto x = spd_power(damped, -power);
    // X^{1/p}·(Gram + εI) = I: the root is the one asked for.
    expect_close(spd_power(x, 1 / power).mm(damped), torch::eye(gram.size(0), gram.options()), 1e-8);
    return x;
  };
  std::vector<torch::Tensor> expected;
  for (const auto& gradient : g) {
    if (gradient.dim() == 1) {
      std::vector<torch::Tensor> parts;
      for (int64_t begin = 0; begin < gradient.size(0); begin += max_dim) {
        const auto part = gradient.slice(0, begin, std::min(begin + max_dim, gradient.size(0))).unsqueeze(1);
        parts.push_back(root(part.mm(part.t()), 0.5).mm(part).squeeze(1));
      }
      expected.push_back(-lr * torch::cat(parts));
      continue;
    }
    const auto matrix = as_matrix(gradient);
    auto direction = torch::zeros_like(matrix);
    for (int64_t r = 0; r < matrix.size(0); r += max_dim) {
      for (int64_t c = 0; c < matrix.size(1); c += max_dim) {
        const auto block = matrix.slice(0, r, std::min(r + max_dim, matrix.size(0))).slice(1, c, std::min(c + max_dim, matrix.size(1)));
        direction.slice(0, r, r + block.size(0))
            .slice(1, c, c + block.size(1))
            .copy_(root(block.mm(block.t()), exponent).mm(block).mm(root(block.t().mm(block), exponent)));
      }
    }
    expected.push_back(-lr * direction.reshape(gradient.sizes()));
  }
  expect_moved_by(*net, before, expected);
}

TEST(Shampoo, DirectionIsTheDenseInverseFourthRootOnEachSide) { expect_first_step_is_the_dense_inverse_root(1024, 0.25); }

TEST(Shampoo, BlockingPreconditionsEachBlockWithItsOwnFactors) { expect_first_step_is_the_dense_inverse_root(4, 0.25); }

TEST(Shampoo, ExponentIsASetting) { expect_first_step_is_the_dense_inverse_root(1024, 0.5); }

// A square bias-free layer whose gradients are multiples of orthogonal matrices: its factors stay
// multiples of I, so Shampoo's direction is the filtered gradient and grafting gives it the Adam step's norm.
class SquareLayer : public Model {
 public:
  SquareLayer() { fc_ = add_capture_layer("fc", CaptureLinear(3, 3, false)); }
  torch::Tensor forward(const torch::Tensor& input) override { return fc_(input); }

 private:
  CaptureLinear fc_{nullptr};
};

TEST(Shampoo, WithFactorsAtIdentityTheStepIsTheFilteredGradientAtAdamsNorm) {
  const double lr = 0.05, beta1 = 0.9, beta2 = 0.99, eps = 1e-8;
  auto net = double_net<SquareLayer>(1);
  auto shampoo = make_shampoo(*net, {{"lr", lr},
                                     {"beta1", beta1},
                                     {"grafting_beta2", beta2},
                                     {"grafting_eps", eps},
                                     {"inverse_interval", 1}});
  auto weight = net->parameters()[0];
  torch::Tensor m, v;
  PhaseTimer timer;
  for (int64_t step = 1; step <= 3; ++step) {
    torch::manual_seed(step);
    const auto orthogonal = std::get<0>(torch::linalg_qr(torch::randn({3, 3}, torch::kDouble)));
    const auto g = (0.5 * static_cast<double>(step)) * orthogonal;
    weight.mutable_grad() = g.clone();
    const auto before = weight.detach().clone();
    shampoo.step({step - 1, 0, step - 1, 1000, {}, {}}, timer);
    m = step == 1 ? (1 - beta1) * g : beta1 * m + (1 - beta1) * g;
    v = step == 1 ? (1 - beta2) * g * g : beta2 * v + (1 - beta2) * g * g;
    const auto filtered = m / (1 - std::pow(beta1, step));
    const auto adam = filtered / ((v / (1 - std::pow(beta2, step))).sqrt() + eps);
    SCOPED_TRACE(step);
    expect_close(weight.detach() - before, -lr * (adam.norm() / filtered.norm()) * filtered, Tolerances<double>::kExact);
  }
  EXPECT_EQ(shampoo.counters().root_refreshes, 3);
}

// distributed_shampoo's step written out per parameter and block: factors from zero with EMA β2 and
// bias correction, roots on the start step and every f steps after, filtered gradient, Adam grafting per
// block, decoupled weight decay.
class ShampooReference {
 public:
  struct Settings {
    double lr, beta1, beta2, grafting_beta2, grafting_eps, weight_decay, exponent;
    int64_t max_dim, frequency, start;
  };
  explicit ShampooReference(Settings settings) : s_(settings) {}

  // Applies one step to `parameters` given their gradients.
  void step(std::vector<torch::Tensor> parameters, const std::vector<torch::Tensor>& gradients) {
    ++k_;
    const double k = static_cast<double>(k_);
    const bool refresh = k_ == s_.start || (k_ > s_.start && k_ % s_.frequency == 0);
    states_.resize(parameters.size());
    for (size_t p = 0; p < parameters.size(); ++p) {
      auto& state = states_[p];
      const auto& g = gradients[p];
      const bool vector = g.dim() == 1;
      const auto matrix = vector ? g.unsqueeze(1) : as_matrix(g);
      if (!state.m.defined()) state.m = torch::zeros_like(g), state.v = torch::zeros_like(g);
      state.m = s_.beta1 * state.m + (1 - s_.beta1) * g;
      state.v = s_.grafting_beta2 * state.v + (1 - s_.grafting_beta2) * g * g;
      const auto filtered = as_matrix(state.m / (1 - std::pow(s_.beta1, k)));
      const auto adam = filtered / as_matrix((state.v / (1 - std::pow(s_.grafting_beta2, k))).sqrt() + s_.grafting_eps);
      auto direction = torch::zeros_like(filtered);
      size_t b = 0;
      for (int64_t r = 0; r < matrix.size(0); r += s_.max_dim) {
        for (int64_t c = 0; c < matrix.size(1); c += s_.max_dim, ++b) {
          const auto rows = torch::indexing::Slice(r, std::min(r + s_.max_dim, matrix.size(0)));
          const auto columns = torch::indexing::Slice(c, std::min(c + s_.max_dim, matrix.size(1)));
          const auto block = matrix.index({rows, columns});
          if (state.blocks.size() <= b) {
            state.blocks.push_back({torch::zeros({block.size(0), block.size(0)}, block.options()),
                                    torch::zeros({block.size(1), block.size(1)}, block.options()),
                                    torch::eye(block.size(0), block.options()), torch::eye(block.size(1), block.options())});
          }
          auto& factors = state.blocks[b];
          factors.left = s_.beta2 * factors.left + (1 - s_.beta2) * block.mm(block.t());
          factors.right = s_.beta2 * factors.right + (1 - s_.beta2) * block.t().mm(block);
          if (refresh) {
            const double correction = 1 - std::pow(s_.beta2, k);
            const auto damped = [&](const torch::Tensor& f) { return f / correction + kEpsilon * torch::eye(f.size(0), f.options()); };
            factors.left_root = spd_power(damped(factors.left), vector ? -0.5 : -s_.exponent);
            if (!vector) factors.right_root = spd_power(damped(factors.right), -s_.exponent);
          }
          auto shampoo = factors.left_root.mm(filtered.index({rows, columns}));
          if (!vector) shampoo = shampoo.mm(factors.right_root);
          if (k_ >= s_.start) shampoo = shampoo * (adam.index({rows, columns}).norm() / shampoo.norm());
          direction.index_put_({rows, columns}, k_ < s_.start ? adam.index({rows, columns}) : shampoo);
        }
      }
      torch::NoGradGuard no_grad;
      parameters[p].sub_(s_.lr * (direction.reshape(g.sizes()) + s_.weight_decay * parameters[p]));
    }
  }

 private:
  struct BlockFactors {
    torch::Tensor left, right, left_root, right_root;
  };
  struct State {
    torch::Tensor m, v;
    std::vector<BlockFactors> blocks;
  };
  Settings s_;
  int64_t k_ = 0;
  std::vector<State> states_;
};

// Two copies of `Net` from one seed, one stepped by `optimizer`, the other by `reference`, each on its own
// gradients of the same batches; their displacements agree at every step.
template <class Net, class Reference>
void expect_same_trajectory(Net& net, Net& twin, Optimizer& optimizer, Reference& reference,
                            const std::vector<int64_t>& image_shape, int64_t steps) {
  const auto start = snapshot(net);
  for (int64_t step = 0; step < steps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const auto batch = double_batch(image_shape, 100 + step);
    optimizer_step(net, optimizer, step, batch);
    backward(twin, batch);
    reference.step(twin.parameters(), gradients(twin));
    expect_moved_by(net, start, [&] {
      std::vector<torch::Tensor> moved;
      for (size_t i = 0; i < start.size(); ++i) moved.push_back(twin.parameters()[i].detach() - start[i]);
      return moved;
    }());
  }
}

TEST(Shampoo, TrajectoryMatchesTheReferenceAlgorithm) {
  for (const int64_t max_dim : {1024, 3}) {
    SCOPED_TRACE("max_preconditioner_dim " + std::to_string(max_dim));
    auto net = double_net<TinyNet>(7), twin = double_net<TinyNet>(7);
    auto shampoo = make_shampoo(*net, {{"lr", 0.05},
                                       {"beta1", 0.9},
                                       {"beta2", 0.9},
                                       {"weight_decay", 0.01},
                                       {"max_preconditioner_dim", max_dim},
                                       {"inverse_interval", 2},
                                       {"start_preconditioning_step", 3}});
    ShampooReference reference({0.05, 0.9, 0.9, 0.999, 1e-8, 0.01, 0.25, max_dim, 2, 3});
    expect_same_trajectory(*net, *twin, shampoo, reference, {1, 3, 3}, 7);
    EXPECT_EQ(shampoo.counters().root_refreshes, 3);  // steps 3, 4 and 6 of 1..7
    EXPECT_EQ(shampoo.counters().grafted_steps, 2);
  }
}

TEST(Shampoo, RejectsAStartBeforeTheFirstRefresh) {
  auto net = double_net<TinyNet>(1);
  EXPECT_THROW(make_shampoo(*net, {{"inverse_interval", 5}, {"start_preconditioning_step", 2}}),
               std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------------
// SOAP

Soap make_soap(Model& net, const nlohmann::json& given) { return Soap(net, optimizer_options("soap", given)); }

TEST(Soap, FirstStepOnlySetsTheEigenbasesOfTheFactors) {
  const double beta2 = 0.9;
  auto net = small_conv_net();
  auto soap = make_soap(*net, {{"beta2", beta2}});
  const auto before = snapshot(*net);
  const auto g = optimizer_step(*net, soap, 0, double_batch({2, 8, 8}, 1));
  for (size_t i = 0; i < g.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    EXPECT_TRUE(torch::equal(net->parameters()[i].detach(), before[i])) << "the first step moves nothing";
    if (g[i].dim() == 1) {
      EXPECT_FALSE(soap.left_basis(i).defined()) << "vectors are not rotated";
      continue;
    }
    const auto matrix = as_matrix(g[i]);
    for (const auto& [basis, gram] : {std::pair{soap.left_basis(i), (1 - beta2) * matrix.mm(matrix.t())},
                                      std::pair{soap.right_basis(i), (1 - beta2) * matrix.t().mm(matrix)}}) {
      const int64_t n = gram.size(0);
      expect_close(basis.t().mm(basis), torch::eye(n, gram.options()), Tolerances<double>::kExact);
      const auto rotated = basis.t().mm(gram).mm(basis);
      const auto diagonal = rotated.diagonal();
      EXPECT_LE((rotated - torch::diag(diagonal)).abs().max().item<double>(),
                Tolerances<double>::kExact * gram.abs().max().item<double>())
          << "QᵀFQ is diagonal";
      EXPECT_TRUE((diagonal.slice(0, 1) <= diagonal.slice(0, 0, n - 1) + Tolerances<double>::kExact).all().item<bool>())
          << "eigenvalues by decreasing size";
    }
  }
  EXPECT_EQ(soap.counters().adam_steps, 0);
}

// soap.py's Adam: moments from the second step on, ε added to √v, √(1 − β₂ᵗ)/(1 − β₁ᵗ) in the step size,
// weight decay on the updated parameter.
struct SoapAdamSettings {
  double lr, beta1, beta2, eps, weight_decay;
};

torch::Tensor soap_adam_parameter(const torch::Tensor& before, const torch::Tensor& direction, int64_t t,
                                  const SoapAdamSettings& s) {
  const double step_size = s.lr * std::sqrt(1 - std::pow(s.beta2, t)) / (1 - std::pow(s.beta1, t));
  const auto moved = before - step_size * direction;
  return moved - s.lr * s.weight_decay * moved;
}

TEST(Soap, WithTheIdentityBasisItIsAdam) {
  const SoapAdamSettings s{0.01, 0.9, 0.95, 1e-8, 0.1};
  auto net = small_conv_net();
  // No side is at most one long: no factor, no rotation, on any parameter.
  auto soap = make_soap(*net, {{"lr", s.lr}, {"beta1", s.beta1}, {"beta2", s.beta2}, {"eps", s.eps},
                               {"weight_decay", s.weight_decay}, {"max_preconditioner_dim", 1}});
  optimizer_step(*net, soap, 0, double_batch({2, 8, 8}, 1));
  std::vector<torch::Tensor> m, v;
  for (int64_t t = 1; t <= 3; ++t) {
    SCOPED_TRACE("t " + std::to_string(t));
    const auto before = snapshot(*net);
    const auto g = optimizer_step(*net, soap, t, double_batch({2, 8, 8}, 1 + t));
    std::vector<torch::Tensor> expected;
    m.resize(g.size()), v.resize(g.size());
    for (size_t i = 0; i < g.size(); ++i) {
      m[i] = t == 1 ? (1 - s.beta1) * g[i] : s.beta1 * m[i] + (1 - s.beta1) * g[i];
      v[i] = t == 1 ? (1 - s.beta2) * g[i] * g[i] : s.beta2 * v[i] + (1 - s.beta2) * g[i] * g[i];
      expected.push_back(soap_adam_parameter(before[i], m[i] / (v[i].sqrt() + s.eps), t, s) - before[i]);
    }
    expect_moved_by(*net, before, expected);
  }
  EXPECT_EQ(soap.counters().adam_steps, 3);
}

TEST(Soap, StepIsAdamInTheEigenbasisRotatedBack) {
  const SoapAdamSettings s{0.01, 0.9, 0.95, 1e-8, 0.1};
  auto net = small_conv_net();
  auto soap = make_soap(*net, {{"lr", s.lr}, {"beta1", s.beta1}, {"beta2", s.beta2}, {"eps", s.eps},
                               {"weight_decay", s.weight_decay}});
  optimizer_step(*net, soap, 0, double_batch({2, 8, 8}, 1));
  std::vector<torch::Tensor> left, right;
  for (size_t i = 0; i < net->parameters().size(); ++i) left.push_back(soap.left_basis(i)), right.push_back(soap.right_basis(i));
  const auto before = snapshot(*net);
  const auto g = optimizer_step(*net, soap, 1, double_batch({2, 8, 8}, 2));
  std::vector<torch::Tensor> expected;
  for (size_t i = 0; i < g.size(); ++i) {
    auto rotated = as_matrix(g[i]);
    if (left[i].defined()) rotated = left[i].t().mm(rotated).mm(right[i]);
    const auto m = (1 - s.beta1) * rotated, v = (1 - s.beta2) * rotated * rotated;
    auto direction = m / (v.sqrt() + s.eps);
    if (left[i].defined()) direction = left[i].mm(direction).mm(right[i].t());
    expected.push_back(soap_adam_parameter(before[i], direction.reshape(g[i].sizes()), 1, s) - before[i]);
  }
  expect_moved_by(*net, before, expected);
}

// soap.py's step written out: the moments live in the current bases and are carried to the original
// space and back around every factor update; bases from eigh on the first step, then every f Adam steps
// one power iteration with QR after sorting by the estimated eigenvalues (the second moment follows).
class SoapReference {
 public:
  SoapReference(SoapAdamSettings adam, double factor_beta, int64_t frequency)
      : s_(adam), factor_beta_(factor_beta), frequency_(frequency) {}

  void step(std::vector<torch::Tensor> parameters, const std::vector<torch::Tensor>& gradients) {
    states_.resize(parameters.size());
    for (size_t p = 0; p < parameters.size(); ++p) {
      auto& state = states_[p];
      const auto& g = gradients[p];
      const bool rotated = g.dim() >= 2;
      const auto matrix = rotated ? as_matrix(g) : g;
      if (!state.m.defined()) {
        state.m = torch::zeros_like(matrix), state.v = torch::zeros_like(matrix);
        if (rotated) {
          state.left = torch::zeros({matrix.size(0), matrix.size(0)}, matrix.options());
          state.right = torch::zeros({matrix.size(1), matrix.size(1)}, matrix.options());
          update_factors(state, matrix);
          state.q_left = std::get<1>(torch::linalg_eigh(state.left, "L")).flip({1});
          state.q_right = std::get<1>(torch::linalg_eigh(state.right, "L")).flip({1});
        }
        continue;
      }
      const auto project = [&](const torch::Tensor& x) { return rotated ? state.q_left.t().mm(x).mm(state.q_right) : x; };
      const auto project_back = [&](const torch::Tensor& x) {
        return rotated ? state.q_left.mm(x).mm(state.q_right.t()) : x;
      };
      const auto g_projected = project(matrix);
      ++state.t;
      state.m = s_.beta1 * state.m + (1 - s_.beta1) * g_projected;
      state.v = s_.beta2 * state.v + (1 - s_.beta2) * g_projected * g_projected;
      const auto direction = project_back(state.m / (state.v.sqrt() + s_.eps));
      torch::NoGradGuard no_grad;
      parameters[p].copy_(soap_adam_parameter(parameters[p].detach(), direction.reshape(g.sizes()), state.t, s_));
      if (!rotated) continue;
      state.m = project_back(state.m);
      update_factors(state, matrix);
      if (state.t % frequency_ == 0) {
        state.q_left = power_iteration(state.left, state.q_left, 0, state);
        state.q_right = power_iteration(state.right, state.q_right, 1, state);
      }
      state.m = project(state.m);
    }
  }

 private:
  struct State {
    torch::Tensor left, right, q_left, q_right, m, v;
    int64_t t = 0;
  };

  void update_factors(State& state, const torch::Tensor& g) const {
    state.left = factor_beta_ * state.left + (1 - factor_beta_) * g.mm(g.t());
    state.right = factor_beta_ * state.right + (1 - factor_beta_) * g.t().mm(g);
  }

  static torch::Tensor power_iteration(const torch::Tensor& factor, const torch::Tensor& q, int64_t dim, State& state) {
    const auto estimates = torch::diag(q.t().mm(factor).mm(q));
    const auto order = torch::argsort(estimates, 0, true);
    state.v = state.v.index_select(dim, order);
    return std::get<0>(torch::linalg_qr(factor.mm(q.index_select(1, order))));
  }

  SoapAdamSettings s_;
  double factor_beta_;
  int64_t frequency_;
  std::vector<State> states_;
};

TEST(Soap, TrajectoryMatchesTheReferenceAlgorithm) {
  const SoapAdamSettings s{0.02, 0.9, 0.95, 1e-8, 0.01};
  auto net = double_net<TinyNet>(5), twin = double_net<TinyNet>(5);
  auto soap = make_soap(*net, {{"lr", s.lr}, {"beta1", s.beta1}, {"beta2", s.beta2}, {"eps", s.eps},
                               {"weight_decay", s.weight_decay}, {"stat_decay", 0.8}, {"inverse_interval", 2}});
  SoapReference reference(s, 0.8, 2);
  expect_same_trajectory(*net, *twin, soap, reference, {1, 3, 3}, 7);
  EXPECT_EQ(soap.counters().adam_steps, 6);
  EXPECT_EQ(soap.counters().basis_refreshes, 3);  // Adam steps 2, 4, 6
}

}  // namespace
}  // namespace ngd
