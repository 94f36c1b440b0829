// Eva against ground truth in float64 on a conv and a linear layer: the Kronecker vectors from explicit
// patches and retained output gradients, the preconditioned gradient from a dense (ḡḡᵀ ⊗ āāᵀ + λI) solve, and
// a few steps with running means, the KL clip, momentum and weight decay re-implemented in the test.
#include <gtest/gtest.h>

#include <cmath>

#include "optimizers/curvature/layer_statistics.h"
#include "optimizers/eva.h"
#include "tests/optimizers/woodbury_test_support.h"
#include "tests/support/test_support.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

using testing::Tolerances;
using woodbury_testing::expect_close;

using woodbury_testing::ConvLinearNet;
using woodbury_testing::weight_bias_gradient;
using woodbury_testing::weight_bias_matrix;
using woodbury_testing::with_ones_column;

// Samples per batch.
constexpr int64_t kBatch = 6;
// Small against ‖ā‖²‖ḡ‖² (≈ 10⁻²: ḡ carries the mean's 1/N), so the Sherman–Morrison term is a large part
// of the step and leaving it out or getting it wrong fails the tests.
constexpr double kDamping = 1e-3;

std::shared_ptr<ConvLinearNet> conv_linear_net() {
  torch::manual_seed(13);
  auto net = std::make_shared<ConvLinearNet>();
  net->to(torch::kDouble);
  return net;
}

struct Vectors {
  torch::Tensor input, grad;  // ā, ḡ
};

// What the test knows about one step, computed without Eva.
struct StepTruth {
  std::vector<Vectors> batch_vectors;  // conv, fc: this batch's means
  std::vector<torch::Tensor> gradients;          // [∇W | ∇b]
  std::vector<torch::Tensor> parameters_before;  // [W | b]
};

// One training step as the runner takes it (record when Eva asks, back-propagate the mean cross-entropy,
// step), with the batch's Kronecker vectors from their definitions: ā the mean of the explicit im2col rows
// (with a ones column) over samples and positions, ḡ the mean of the output gradients as back-propagated.
StepTruth take_step(ConvLinearNet& net, Eva& eva, int64_t step, double lr, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  const auto images = torch::randn({kBatch, 2, ConvLinearNet::kImageSize, ConvLinearNet::kImageSize}, generator, torch::kDouble);
  const auto labels = torch::randint(ConvLinearNet::kClasses, {kBatch}, generator, torch::kInt64);
  const StepInfo info{step, 0, step, 1000, {}, {}};
  const bool record = eva.capture(info) != Capture::kNone;
  for (const auto& layer : net.capture_layers()) {
    layer->set_record_input(record);
    layer->set_record_grad_output(record);
  }
  net.zero_grad();
  auto conv_output = net.conv->forward(images);
  conv_output.retain_grad();
  const auto hidden = torch::tanh(conv_output).flatten(1);
  auto logits = net.fc->forward(hidden);
  logits.retain_grad();
  torch::nn::functional::cross_entropy(logits, labels).backward();

  StepTruth truth;
  const auto patches = with_ones_column(testing::conv_patches_by_loops(images, {3, 3}, {2, 2}, {1, 1}, {1, 1}));
  truth.batch_vectors.push_back({patches.mean(torch::IntArrayRef{0, 1}), conv_output.grad().flatten(2).mean(torch::IntArrayRef{0, 2})});
  truth.batch_vectors.push_back({with_ones_column(hidden.detach()).mean(0), logits.grad().mean(0)});
  for (const auto& layer : net.capture_layers()) {
    truth.gradients.push_back(weight_bias_gradient(*layer).clone());
    truth.parameters_before.push_back(weight_bias_matrix(*layer).clone());
  }
  PhaseTimer timer;
  eva.set_learning_rate(lr);
  eva.step(info, timer);
  return truth;
}

// (ḡḡᵀ ⊗ āāᵀ + λI)⁻¹ vec ∇W̄ by a dense solve, ∇W̄ flattened row-major (out × in+1).
torch::Tensor dense_solve(const Vectors& vectors, const torch::Tensor& gradient) {
  const auto fisher = torch::kron(torch::outer(vectors.grad, vectors.grad), torch::outer(vectors.input, vectors.input));
  const auto damped = fisher + kDamping * torch::eye(fisher.size(0), torch::kDouble);
  return torch::linalg_solve(damped, gradient.flatten()).reshape(gradient.sizes());
}

TEST(Eva, VectorsAreRunningMeansOfTheRecordedRows) {
  const double stat_decay = 0.3;
  auto net = conv_linear_net();
  Eva eva(*net, optimizer_options("eva", {{"lr", 0.1}, {"stat_decay", stat_decay}, {"damping", kDamping}}));
  const auto first = take_step(*net, eva, 0, 0.1, 1);
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i == 0 ? "conv" : "fc");
    expect_close(eva.curvature().input_vector(i), first.batch_vectors[i].input, Tolerances<double>::kExact);
    expect_close(eva.curvature().grad_vector(i), first.batch_vectors[i].grad, Tolerances<double>::kExact);
  }
  const auto second = take_step(*net, eva, 1, 0.1, 2);
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i == 0 ? "conv" : "fc");
    const auto& old = first.batch_vectors[i];
    const auto& now = second.batch_vectors[i];
    expect_close(eva.curvature().input_vector(i), stat_decay * old.input + (1 - stat_decay) * now.input, Tolerances<double>::kExact);
    expect_close(eva.curvature().grad_vector(i), stat_decay * old.grad + (1 - stat_decay) * now.grad, Tolerances<double>::kExact);
  }
}

TEST(Eva, PreconditionedGradientIsTheDenseDampedSolve) {
  auto net = conv_linear_net();
  Eva eva(*net, optimizer_options("eva", {{"lr", 1.0}, {"momentum", 0.0}, {"kl_clip", 0.0}, {"damping", kDamping}}));
  const auto truth = take_step(*net, eva, 0, 1.0, 3);
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i == 0 ? "conv" : "fc");
    const auto expected = dense_solve(truth.batch_vectors[i], truth.gradients[i]);
    // The rank-one term matters: without it the step would be ∇W̄/λ.
    const auto plain = truth.gradients[i] / kDamping;
    ASSERT_GT((expected - plain).abs().max().item<double>(), 1e-3 * expected.abs().max().item<double>());
    const auto applied = truth.parameters_before[i] - weight_bias_matrix(*net->capture_layers()[i]);
    expect_close(applied, expected, Tolerances<double>::kExact);
  }
}

// Three steps with the vectors refreshed every second step, a KL clip that binds, momentum, weight decay and
// a changing learning rate, against the same steps written out with dense solves and torch SGD's formula
// buf ← μ·buf + (ν·V + wd·θ), θ ← θ − lr·buf.
TEST(Eva, StepsMatchAReimplementationWithKlClipMomentumAndWeightDecay) {
  const double lr = 0.05, momentum = 0.9, weight_decay = 0.01, kl_clip = 1e-4, stat_decay = 0.3;
  const double rates[] = {lr, 0.5 * lr, 0.25 * lr};
  auto net = conv_linear_net();
  Eva eva(*net, optimizer_options("eva", {{"lr", lr},
                                          {"momentum", momentum},
                                          {"weight_decay", weight_decay},
                                          {"kl_clip", kl_clip},
                                          {"stat_decay", stat_decay},
                                          {"stat_interval", 2},
                                          {"damping", kDamping}}));
  std::vector<Vectors> running(2);
  std::vector<torch::Tensor> theta, buffer(2);
  for (const auto& layer : net->capture_layers()) theta.push_back(weight_bias_matrix(*layer).clone());
  bool clipped = false;
  for (int64_t step = 0; step < 3; ++step) {
    SCOPED_TRACE(step);
    EXPECT_EQ(eva.capture({step, 0, step, 1000, {}, {}}), step % 2 == 0 ? Capture::kEmpirical : Capture::kNone);
    const auto truth = take_step(*net, eva, step, rates[step], 30 + step);
    std::vector<torch::Tensor> solves;
    double alignment = 0;
    for (size_t i = 0; i < 2; ++i) {
      if (step == 0) running[i] = truth.batch_vectors[i];
      if (step == 2) {
        running[i] = {stat_decay * running[i].input + (1 - stat_decay) * truth.batch_vectors[i].input,
                      stat_decay * running[i].grad + (1 - stat_decay) * truth.batch_vectors[i].grad};
      }
      solves.push_back(dense_solve(running[i], truth.gradients[i]));
      alignment += (solves[i] * truth.gradients[i]).sum().item<double>();
    }
    const double nu = std::min(1.0, std::sqrt(kl_clip / (rates[step] * rates[step] * alignment)));
    clipped = clipped || nu < 0.9;
    for (size_t i = 0; i < 2; ++i) {
      SCOPED_TRACE(i == 0 ? "conv" : "fc");
      const auto direction = nu * solves[i] + weight_decay * theta[i];
      buffer[i] = step == 0 ? direction : momentum * buffer[i] + direction;
      theta[i] = theta[i] - rates[step] * buffer[i];
      expect_close(weight_bias_matrix(*net->capture_layers()[i]), theta[i], Tolerances<double>::kExact);
    }
  }
  EXPECT_TRUE(clipped) << "the KL clip never bound: the test would not notice it missing";
}

// On sequences the means run over the real tokens only: padded tokens add nothing and do not count.
TEST(Eva, SequenceVectorsAverageTheRealTokensOnly) {
  torch::manual_seed(17);
  CaptureLinear layer(3, 2);
  layer->to(torch::kDouble);
  layer->set_record_input(true);
  layer->set_record_grad_output(true);
  const auto input = torch::randn({2, 4, 3}, torch::kDouble);
  const auto mask = torch::tensor({1, 1, 1, 0, 1, 1, 0, 0}, torch::kBool).reshape({2, 4});
  auto output = layer->forward_tokens(input, mask);
  output.retain_grad();
  (output * torch::randn({2, 4, 2}, torch::kDouble)).sum().backward();
  const auto real = mask.reshape({-1}).nonzero().squeeze(1);
  const auto real_inputs = input.reshape({-1, 3}).index_select(0, real);
  const auto real_grads = output.grad().reshape({-1, 2}).index_select(0, real);
  // Padded tokens' output gradients are not zero here: masking the recordings must drop them.
  ASSERT_GT(output.grad().reshape({-1, 2}).index_select(0, (~mask).reshape({-1}).nonzero().squeeze(1)).abs().sum().item<double>(), 0);
  expect_close(mean_input_row(*layer), with_ones_column(real_inputs).mean(0), Tolerances<double>::kExact);
  expect_close(mean_grad_output_row(*layer), real_grads.mean(0), Tolerances<double>::kExact);
}

}  // namespace
}  // namespace ngd
