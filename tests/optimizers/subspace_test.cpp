// DLDR subspace training: the PCA projector, the Armijo rule, BFGS, and P-SGD/P-BFGS end to end.
#include <gtest/gtest.h>

#include "harness/run/runner.h"
#include "harness/run/training_step.h"
#include "harness/spec/spec.h"
#include "models/model.h"
#include "optimizers/optimizer.h"
#include "optimizers/registry.h"
#include "optimizers/subspace.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

// n points of a random walk in D dimensions, as a training trajectory would be.
std::vector<torch::Tensor> random_walk(int64_t count, int64_t length) {
  torch::manual_seed(4);
  std::vector<torch::Tensor> snapshots{torch::randn({length}, torch::kDouble)};
  for (int64_t i = 1; i < count; ++i) snapshots.push_back(snapshots.back() + 0.1 * torch::randn({length}, torch::kDouble));
  return snapshots;
}

TEST(Subspace, PcaProjectorIsTheOrthogonalProjectorOntoTheDenseSvdSpan) {
  const int64_t count = 6, length = 70001, dim = 3;  // D spans two PCA chunks
  const auto snapshots = random_walk(count, length);
  const auto basis = pca_basis(snapshots, dim);
  ASSERT_EQ(basis.components.sizes(), (std::vector<int64_t>{dim, length}));
  EXPECT_TRUE(torch::allclose(basis.components.mm(basis.components.t()), torch::eye(dim, torch::kDouble), 1e-10, 1e-10));

  const auto stacked = torch::stack(snapshots);
  const auto centred = stacked - stacked.mean(0, true);
  const auto [u, s, vh] = torch::linalg_svd(centred, /*full_matrices=*/false);
  const auto top = vh.slice(0, 0, dim);
  // Compare the projectors Pᵀ P and V_k V_kᵀ through their action on a few random vectors (D×D is big).
  const auto probes = torch::randn({length, 4}, torch::kDouble);
  EXPECT_TRUE(torch::allclose(basis.components.t().mm(basis.components.mm(probes)), top.t().mm(top.mm(probes)), 1e-8, 1e-10));
  const auto variance = s.pow(2);
  EXPECT_TRUE(torch::allclose(basis.explained_variance / basis.total_variance, variance.slice(0, 0, dim) / variance.sum(), 1e-10));
}

TEST(Subspace, PcaKeepsNoMoreDirectionsThanTheCentredTrajectorySpans) {
  const auto basis = pca_basis(random_walk(3, 50), 40);
  EXPECT_EQ(basis.components.size(0), 2);  // 3 centred points span 2 directions
}

TEST(Pbfgs, ArmijoAcceptsTheFirstTrialWithSufficientDecrease) {
  // f(θ) = 1, slope −1, c = 0.4: t = 1 needs f < 0.6, t = 0.4 needs f < 0.84.
  std::vector<double> scales;
  const auto result = armijo_backtracking(1.0, -1.0, [&](double scale) {
    scales.push_back(scale);
    return scale == 1.0 ? 0.7 : 0.8;
  });
  EXPECT_TRUE(result.accepted);
  EXPECT_EQ(result.trials, 2);
  EXPECT_DOUBLE_EQ(result.scale, 0.4);
  EXPECT_EQ(scales, (std::vector<double>{1.0, 0.4}));
}

TEST(Pbfgs, ArmijoRejectsEqualityAndTakesTheTinyStepWhenNothingIsAccepted) {
  EXPECT_FALSE(armijo_backtracking(1.0, -1.0, [](double scale) { return 1.0 - 0.4 * scale; }).accepted);  // strict <
  const auto result = armijo_backtracking(1.0, -1.0, [](double) { return 2.0; });
  EXPECT_FALSE(result.accepted);
  EXPECT_EQ(result.trials, 20);
  EXPECT_DOUBLE_EQ(result.scale, std::pow(0.4, 20));
}

TEST(Pbfgs, BfgsWithArmijoFindsTheMinimiserOfAQuadratic) {
  torch::manual_seed(5);
  const int64_t dim = 8;
  const auto q = std::get<0>(torch::linalg_qr(torch::randn({dim, dim}, torch::kDouble)));
  const auto hessian = (q * torch::linspace(0.5, 20.0, dim, torch::kDouble)).mm(q.t());
  const auto b = torch::randn({dim}, torch::kDouble);
  const auto loss = [&](const torch::Tensor& x) { return (0.5 * x.dot(hessian.mv(x)) - b.dot(x)).item<double>(); };
  auto x = torch::zeros({dim}, torch::kDouble);
  Bfgs bfgs(dim);
  for (int iteration = 0; iteration < 60; ++iteration) {
    const auto gradient = hessian.mv(x) - b;
    const auto direction = bfgs.direction(gradient);
    const auto search = armijo_backtracking(loss(x), gradient.dot(direction).item<double>(),
                                            [&](double scale) { return loss(x + scale * direction); });
    x = x + search.scale * direction;
    bfgs.record_step(search.scale * direction);
  }
  EXPECT_TRUE(torch::allclose(x, torch::linalg_solve(hessian, b, /*left=*/true), 1e-8, 1e-10));
  // B approaches H⁻¹ along the directions explored.
  EXPECT_LT((bfgs.inverse_hessian().mm(hessian) - torch::eye(dim, torch::kDouble)).norm().item<double>(), 0.5);
}

std::vector<torch::Tensor> snapshot(Model& model) {
  std::vector<torch::Tensor> copies;
  for (const auto& parameter : model.parameters()) copies.push_back(parameter.detach().clone().reshape(-1));
  return copies;
}

TEST(Psgd, RestartsFromTheFirstSnapshotAndMovesOnlyInTheTrajectorysSpan) {
  torch::manual_seed(6);
  auto model = find_entry(model_registry(), "mlp")->make(Options({{"hidden", {5}}, {"rank", 0}}), {{1, 1, 4}, 3});
  auto optimizer = make_optimizer("dldr-psgd", *model, {{"lr", 0.1}, {"sampling_lr", 0.05}, {"sampling_epochs", 2},
                                                   {"snapshots_per_epoch", 2}, {"subspace_dim", 3}});
  const int64_t batches = 4;
  PhaseTimer timer;
  std::vector<torch::Tensor> trajectory;
  for (int64_t step = 0; step < 4 * batches; ++step) {
    const int64_t epoch = step / batches, batch = step % batches;
    if (epoch < 2 && batch % 2 == 0) trajectory.push_back(torch::cat(snapshot(*model)));
    if (epoch == 2 && batch == 0) trajectory.push_back(torch::cat(snapshot(*model)));
    for (auto& parameter : model->parameters()) parameter.mutable_grad() = torch::randn_like(parameter);
    optimizer->set_learning_rate(0.1);
    optimizer->step({step, epoch, batch, batches, {}, {}}, timer);
    if (epoch == 2 && batch == 0) {
      EXPECT_TRUE(torch::equal(torch::cat(snapshot(*model)), trajectory.front())) << "restart from the first snapshot";
    }
  }
  ASSERT_EQ(trajectory.size(), 5u);
  // θ − θ_start lies in the span of the centred trajectory (P's rows): least squares leaves no residual.
  const auto stacked = torch::stack(trajectory);
  const auto span = (stacked - stacked.mean(0, true)).t();  // D × 5
  const auto moved = (torch::cat(snapshot(*model)) - trajectory.front()).unsqueeze(1);
  ASSERT_GT(moved.norm().item<float>(), 1e-3);
  const auto coefficients = torch::linalg_lstsq(span, moved);
  const auto residual = span.mm(std::get<0>(coefficients)) - moved;
  EXPECT_LT(residual.norm().item<float>(), 1e-4 * moved.norm().item<float>());
  EXPECT_EQ(optimizer->report()["snapshots"], 5);
  EXPECT_EQ(optimizer->report()["subspace_dim"], 3);
}

std::vector<torch::Tensor> buffer_values(Model& model) {
  std::vector<torch::Tensor> values;
  for (const auto& buffer : model.buffers()) values.push_back(buffer.clone());
  return values;
}

bool all_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

TEST(Psgd, RestartPutsBackTheBatchNormStatisticsOfTheFirstSnapshot) {
  torch::manual_seed(7);
  auto model = find_entry(model_registry(), "resnet20")->make(Options(nlohmann::json{{"width", 2}}), {{1, 8, 8}, 3});
  auto optimizer = make_optimizer("dldr-psgd", *model, {{"sampling_epochs", 2}, {"snapshots_per_epoch", 2}, {"subspace_dim", 2}});
  const int64_t batches = 2;
  PhaseTimer timer;
  std::vector<torch::Tensor> at_first_snapshot;
  for (int64_t step = 0; step <= 2 * batches; ++step) {
    const int64_t epoch = step / batches, batch = step % batches;
    model->forward(torch::randn({4, 1, 8, 8})).sum().backward();  // moves the running statistics
    if (step == 0) at_first_snapshot = buffer_values(*model);
    optimizer->step({step, epoch, batch, batches, {}, {}}, timer);
    ASSERT_EQ(all_equal(buffer_values(*model), at_first_snapshot), step == 0 || step == 2 * batches) << "step " << step;
  }
}

TEST(Psgd, RunnerReportsTheSamplingAndSubspacePhases) {
  const auto dataset = testing::synthetic_fashion_mnist(512, 128);
  for (const std::string name : {"dldr-psgd", "dldr-pbfgs"}) {
    auto document = testing::tiny_spec();
    document.merge_patch({{"epochs", 4},
                          {"optimizers", {{{"name", name},
                                           {"hparams", {{"lr", name == "dldr-psgd" ? 0.1 : 1.0},
                                                        {"sampling_epochs", 2}, {"sampling_lr", 0.05},
                                                        {"snapshots_per_epoch", 8}, {"subspace_dim", 10}}}}}}});
    RunnerOptions options;
    options.progress = false;
    const auto result = train_run(parse_spec(document, "tiny").runs.at(0), dataset, options);
    ASSERT_EQ(result.status, "completed") << name << ": " << result.error;
    const auto& report = result.optimizer_report;
    ASSERT_EQ(report["phases"].size(), 2u) << report;
    const auto& sampling = report["phases"][0];
    const auto& subspace = report["phases"][1];
    EXPECT_EQ(sampling["first_epoch"], 1);
    EXPECT_EQ(sampling["last_epoch"], 2);
    EXPECT_EQ(subspace["first_epoch"], 3);
    EXPECT_EQ(subspace["last_epoch"], 4);
    EXPECT_EQ(sampling["steps"].get<int64_t>() + subspace["steps"].get<int64_t>(), 4 * 16);
    EXPECT_NEAR(sampling["train_time_s"].get<double>() + subspace["train_time_s"].get<double>(),
                result.epochs.back().cumulative_train_time_s, 1e-9);
    EXPECT_EQ(report["snapshots"], 17);
    EXPECT_EQ(report["subspace_dim"], 10);
    // Restarted from the initial parameters, 10 directions recover most of the sampled accuracy.
    // Kernel matrix (scripts/kernel-matrix.py: 5 OpenBLAS kernels x ATen default/avx2, 2026-12-07):
    // subspace-phase test accuracy 1.0 for P-SGD and P-BFGS in every combination (margin 0.2, spread 0).
    EXPECT_TRUE(testing::outcome_at_least(name + "_subspace_test_acc", subspace["final_test_acc"].get<double>(), 0.8));
    if (name == "dldr-pbfgs") {
      EXPECT_GT(report["line_search"]["mean_trials"].get<double>(), 0.99);
    }
  }
}

TEST(Pbfgs, LineSearchTrialsLeaveTheBuffersAsTheStepsForwardPassLeftThem) {
  // Each Armijo trial is a training-mode forward pass at trial parameters. Had it updated BatchNorm's
  // running statistics, evaluation would use statistics of parameters the run never takes (held-out
  // accuracy near chance at a fine training accuracy). The runner's batch_loss puts the buffers back, so
  // after a step with rejected trials they are, bit for bit, what the step's own forward pass left:
  // exact on every machine, unlike any accuracy this could be measured through.
  torch::manual_seed(8);
  auto model = find_entry(model_registry(), "resnet20")->make(Options(nlohmann::json{{"width", 2}}), {{1, 8, 8}, 3});
  ASSERT_FALSE(model->buffers().empty());
  // lr 1e4: the first trials of every subspace step are far too long and rejected, on any machine.
  auto optimizer = make_optimizer("dldr-pbfgs", *model, {{"lr", 1e4}, {"sampling_epochs", 2}, {"snapshots_per_epoch", 2},
                                                    {"subspace_dim", 2}});
  const auto images = torch::randn({8, 1, 8, 8});
  const auto labels = torch::randint(0, 3, {8});
  int64_t trials = 0;
  const auto batch_loss = loss_keeping_buffers(*model, [&] {
    ++trials;
    return torch::nn::functional::cross_entropy(model->forward(images), labels).item<double>();
  });
  const int64_t batches = 2, sampling_steps = 2 * batches;
  PhaseTimer timer;
  int64_t subspace_trials = 0;
  for (int64_t step = 0; step < sampling_steps + 3; ++step) {
    StepInfo info{step, step / batches, step % batches, batches, {}, batch_loss};
    const auto before_forward = buffer_values(*model);
    forward_backward(*model, *optimizer, info, images, labels, timer);
    const auto after_forward = buffer_values(*model);
    ASSERT_FALSE(all_equal(after_forward, before_forward)) << "a training-mode forward pass moves the statistics";
    trials = 0;
    optimizer->step(info, timer);
    if (step >= sampling_steps) subspace_trials += trials;
    if (step <= sampling_steps) continue;  // sampling, then the restart that loads the first snapshot's buffers
    ASSERT_GT(trials, 1) << "step " << step << ": the line search rejected no trial";
    EXPECT_TRUE(all_equal(buffer_values(*model), after_forward)) << "step " << step << " after " << trials << " trials";
  }
  const auto report = optimizer->report();
  const auto& line_search = report.at("line_search");
  EXPECT_EQ(line_search["mean_trials"].get<double>() * line_search["steps"].get<double>(), subspace_trials)
      << "every trial went through batch_loss";
}

}  // namespace
}  // namespace ngd
