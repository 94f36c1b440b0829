// SGD and AdamW against their update formulas written out by hand on a single linear layer.
#include <gtest/gtest.h>

#include "models/model.h"
#include "optimizers/optimizer.h"
#include "optimizers/registry.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

// The optimizers and the formulas run in float64: they differ by rounding alone.
constexpr double kTolerance = testing::Tolerances<double>::kExact;

// One Linear layer 3→2 without hidden layers, in float64.
std::shared_ptr<Model> tiny_linear() {
  torch::manual_seed(0);
  auto model =
      find_entry(model_registry(), "mlp")->make(Options(nlohmann::json{{"hidden", nlohmann::json::array()}}), {{1, 1, 3}, 2});
  model->to(torch::kDouble);
  return model;
}

// Sets every parameter's gradient to `scale` times a fixed pattern.
void set_gradients(Model& model, double scale) {
  int64_t offset = 0;
  for (auto& parameter : model.parameters()) {
    parameter.mutable_grad() =
        scale * torch::arange(offset, offset + parameter.numel(), torch::kDouble).reshape(parameter.sizes()).sin();
    offset += parameter.numel();
  }
}

std::vector<torch::Tensor> snapshot(Model& model) {
  std::vector<torch::Tensor> copies;
  for (const auto& parameter : model.parameters()) copies.push_back(parameter.detach().clone());
  return copies;
}

TEST(Sgd, TwoStepsMatchTheMomentumFormula) {
  auto model = tiny_linear();
  const double lr = 0.1, momentum = 0.9, weight_decay = 0.01;
  auto optimizer = make_optimizer("sgd", *model, {{"lr", lr}, {"momentum", momentum}, {"weight_decay", weight_decay}});
  PhaseTimer timer;
  auto theta = snapshot(*model);
  std::vector<torch::Tensor> buffer(theta.size());
  for (int step = 0; step < 2; ++step) {
    set_gradients(*model, 1.0 + step);
    for (size_t i = 0; i < theta.size(); ++i) {
      const auto d = model->parameters()[i].grad() + weight_decay * theta[i];
      buffer[i] = step == 0 ? d : momentum * buffer[i] + d;
      theta[i] = theta[i] - lr * buffer[i];
    }
    optimizer->step({step, 0, step, 2, {}, {}}, timer);
  }
  for (size_t i = 0; i < theta.size(); ++i) EXPECT_TRUE(torch::allclose(model->parameters()[i], theta[i], kTolerance, kTolerance));
}

TEST(Sgd, LearningRateCanBeChangedBetweenSteps) {
  auto model = tiny_linear();
  auto optimizer = make_optimizer("sgd", *model, {{"lr", 1.0}, {"momentum", 0.0}});
  PhaseTimer timer;
  const auto before = snapshot(*model);
  set_gradients(*model, 1.0);
  optimizer->set_learning_rate(0.25);
  optimizer->step({}, timer);
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::allclose(model->parameters()[i], before[i] - 0.25 * model->parameters()[i].grad()));
  }
}

TEST(AdamW, TwoStepsMatchTheDecoupledFormula) {
  auto model = tiny_linear();
  const double lr = 0.01, beta1 = 0.9, beta2 = 0.99, eps = 1e-8, weight_decay = 0.1;
  auto optimizer = make_optimizer(
      "adamw", *model, {{"lr", lr}, {"beta1", beta1}, {"beta2", beta2}, {"eps", eps}, {"weight_decay", weight_decay}});
  PhaseTimer timer;
  auto theta = snapshot(*model);
  std::vector<torch::Tensor> m(theta.size()), v(theta.size());
  for (int step = 1; step <= 2; ++step) {
    set_gradients(*model, static_cast<double>(step));
    for (size_t i = 0; i < theta.size(); ++i) {
      const auto g = model->parameters()[i].grad();
      m[i] = step == 1 ? (1 - beta1) * g : beta1 * m[i] + (1 - beta1) * g;
      v[i] = step == 1 ? (1 - beta2) * g * g : beta2 * v[i] + (1 - beta2) * g * g;
      const auto m_hat = m[i] / (1 - std::pow(beta1, step));
      const auto v_hat = v[i] / (1 - std::pow(beta2, step));
      theta[i] = theta[i] * (1 - lr * weight_decay) - lr * m_hat / (v_hat.sqrt() + eps);
    }
    optimizer->step({step - 1, 0, step - 1, 2, {}, {}}, timer);
  }
  for (size_t i = 0; i < theta.size(); ++i) EXPECT_TRUE(torch::allclose(model->parameters()[i], theta[i], kTolerance, kTolerance));
}

TEST(Registry, EveryOptimizerDeclaresALearningRateAndUniqueName) {
  std::set<std::string> names;
  for (const auto& entry : optimizer_registry()) {
    EXPECT_TRUE(names.insert(entry.name).second) << entry.name;
    EXPECT_NE(find_entry(entry.hyperparameters, "lr"), nullptr) << entry.name << " has no lr";
  }
}

}  // namespace
}  // namespace ngd
