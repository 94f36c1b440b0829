#include <gtest/gtest.h>

#include "optimizers/curvature/layer_statistics.h"
#include "optimizers/curvature/woodbury.h"
#include "tests/optimizers/woodbury_test_support.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

using testing::Tolerances;
using woodbury_testing::ConvShape;
using woodbury_testing::expect_close;

// Samples per test batch: more than one block when blocks are forced small, yet a quick loop.
constexpr int64_t kSamples = 6;
// Seeds of the test model's initialisation and of its batch.
constexpr uint64_t kModelSeed = 1, kBatchSeed = 7;
// A pairwise block budget of 1: one pair of samples per block, so the blocking itself is tested.
constexpr int64_t kOnePairPerBlock = 1;

// Records every capture layer's input and output gradient for the mean loss over `batch`.
void record_mean_loss(Model& model, const woodbury_testing::Batch& batch) {
  for (const auto& layer : model.capture_layers()) {
    layer->set_record_input(true);
    layer->set_record_grad_output(true);
  }
  model.zero_grad();
  torch::nn::functional::cross_entropy(model.forward(batch.images), batch.labels).backward();
}

struct GramCase {
  const char* name;
  GramForm form;
  int64_t max_block_elements;
};

const GramCase kExactForms[] = {
    {"pairwise", GramForm::kPairwise, WoodburySettings{}.max_block_elements},
    {"pairwise, one pair per block", GramForm::kPairwise, kOnePairPerBlock},
    {"per-sample", GramForm::kPerSample, WoodburySettings{}.max_block_elements},
    {"auto", GramForm::kAuto, WoodburySettings{}.max_block_elements},
};

// The test network and batch in `dtype`: the same values in float32 and float64.
std::shared_ptr<Model> conv_net(const std::pair<ConvShape, ConvShape>& shapes, torch::Dtype dtype) {
  torch::manual_seed(kModelSeed);
  auto model = std::make_shared<woodbury_testing::SmallConvNet>(shapes.first, shapes.second);
  model->to(dtype);
  return model;
}

// Everything in float64: the code under test and the per-sample loop differ by rounding alone.
class WoodburyConvShapes : public ::testing::TestWithParam<std::pair<ConvShape, ConvShape>> {
 protected:
  void SetUp() override {
    model_ = conv_net(GetParam(), torch::kDouble);
    batch_ = woodbury_testing::random_batch(kSamples, {2, 8, 8}, kBatchSeed, torch::kDouble);
    loop_ = woodbury_testing::per_sample_gradient_loop(*model_, batch_);
    record_mean_loss(*model_, batch_);
  }

  std::shared_ptr<Model> model_;
  woodbury_testing::Batch batch_;
  std::vector<torch::Tensor> loop_;  // per layer: n × d rows of per-sample gradients
};

TEST_P(WoodburyConvShapes, GramOfEveryExactFormEqualsLoopGram) {
  const auto& layers = model_->capture_layers();
  for (const auto& gram_case : kExactForms) {
    for (size_t l = 0; l < layers.size(); ++l) {
      SCOPED_TRACE(::testing::Message() << gram_case.name << ", layer " << l);
      const auto gradients = SampleGradients::from_layer(*layers[l], kSamples, gram_case.form, gram_case.max_block_elements);
      if (gram_case.form != GramForm::kAuto) {
        EXPECT_EQ(gradients.dense(), gram_case.form == GramForm::kPerSample);
      }
      expect_close(gradients.gram(), loop_[l].mm(loop_[l].t()), Tolerances<double>::kExact);
    }
  }
}

TEST_P(WoodburyConvShapes, InverseEqualsDenseDampedSolvePerLayer) {
  const auto& layers = model_->capture_layers();
  for (const double damping : {1e-3, 0.1, 3.0}) {
    for (const auto& gram_case : kExactForms) {
      WoodburySolver solver({gram_case.form, torch::kFloat64, gram_case.max_block_elements});
      for (size_t l = 0; l < layers.size(); ++l) {
        SCOPED_TRACE(::testing::Message() << gram_case.name << ", λ " << damping << ", layer " << l);
        const auto gradients = solver.sample_gradients(*layers[l], kSamples);
        const auto factor = solver.factorize(solver.gram(gradients), damping, "test");
        const auto preconditioned = solver.apply_inverse(gradients, factor, gradient_matrix(*layers[l]));
        expect_close(preconditioned.reshape({-1}), woodbury_testing::dense_damped_natural_gradient(loop_[l], damping),
                     Tolerances<double>::kExact);
      }
    }
  }
}

// The production dtype: a float32 twin of the model (the same parameter and input values), a float32
// solve, against the float64 ground truth, within the derived bound C·κ·ε₃₂ (tests/support/tolerances.h).
TEST_P(WoodburyConvShapes, Float32SolveAgreesWithFloat64WithinTheDerivedBound) {
  auto model = conv_net(GetParam(), torch::kFloat);
  record_mean_loss(*model, woodbury_testing::random_batch(kSamples, {2, 8, 8}, kBatchSeed));
  const auto& layers = model->capture_layers();
  WoodburySolver solver({GramForm::kAuto, torch::kFloat32, WoodburySettings{}.max_block_elements});
  for (const double damping : {1e-3, 0.1}) {
    for (size_t l = 0; l < layers.size(); ++l) {
      const double tolerance =
          testing::derived_tolerance(Tolerances<float>::kSolveConstant,
                                     testing::damped_fisher_condition_number(loop_[l], damping), Tolerances<float>::kEpsilon);
      SCOPED_TRACE(::testing::Message() << "λ " << damping << ", layer " << l << ", tolerance " << tolerance);
      const auto gradients = solver.sample_gradients(*layers[l], kSamples);
      const auto factor = solver.factorize(solver.gram(gradients), damping, "test");
      EXPECT_EQ(factor.cholesky.scalar_type(), torch::kFloat32);
      expect_close(solver.apply_inverse(gradients, factor, gradient_matrix(*layers[l])).reshape({-1}),
                   woodbury_testing::dense_damped_natural_gradient(loop_[l], damping), tolerance);
    }
  }
}

TEST_P(WoodburyConvShapes, SpatialSumApproximationDiffersFromExactConvGram) {
  const auto& layers = model_->capture_layers();
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto gradients = SampleGradients::from_layer(*layers[l], kSamples, GramForm::kSpatialSumApprox,
                                                       WoodburySettings{}.max_block_elements);
    const auto exact = loop_[l].mm(loop_[l].t());
    const double difference = ((gradients.gram().to(torch::kDouble) - exact).abs().max() / exact.abs().max()).item<double>();
    if (layers[l]->kind() == CaptureLayer::Kind::kLinear) {
      EXPECT_LT(difference, Tolerances<double>::kExact) << "a Linear layer has one position: nothing to approximate";
    } else {
      EXPECT_GT(difference, 0.05) << "conv layer " << l;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(StridePadding, WoodburyConvShapes,
                         ::testing::Values(std::pair{ConvShape{1, 1, true}, ConvShape{1, 0, true}},
                                           std::pair{ConvShape{2, 1, true}, ConvShape{1, 0, false}},
                                           std::pair{ConvShape{2, 0, false}, ConvShape{2, 1, true}}));

TEST(WoodburyGram, ApproximationIsLabelledInTheSettings) {
  const auto settings = woodbury_hyperparameters();
  const auto* form = find_entry(settings, "gram_form");
  ASSERT_NE(form, nullptr);
  EXPECT_NE(std::find(form->choices.begin(), form->choices.end(), "spatial_sum_approx"), form->choices.end());
  EXPECT_NE(form->help.find("APPROXIMATION"), std::string::npos);
  EXPECT_EQ(form->default_value, "auto");
}

TEST(WoodburyGram, AutoPicksTheCheaperExactForm) {
  // A Linear layer (one position): the Hadamard form.
  EXPECT_EQ(cheaper_exact_form(128, 1, 785, 256), GramForm::kPairwise);
  // 3C1F's 128→128 conv on 28×28 maps: S² dwarfs out·in.
  EXPECT_EQ(cheaper_exact_form(128, 784, 1153, 128), GramForm::kPerSample);
  // A 512-channel conv on 4×4 maps: J would be 32× the recorded rows and costs more.
  EXPECT_EQ(cheaper_exact_form(128, 16, 4609, 512), GramForm::kPairwise);
}

// K + nλI for K = `gram`, as float64.
torch::Tensor damped(const torch::Tensor& gram, double damping) {
  return gram + static_cast<double>(gram.size(0)) * damping * torch::eye(gram.size(0), torch::kDouble);
}

TEST(WoodburyCholesky, IndefiniteGramRaisesDampingAndSaysSo) {
  WoodburySolver solver({});
  const auto gram = torch::diag(torch::tensor({1.0, 2.0, -2.0}, torch::kDouble));
  ::testing::internal::CaptureStderr();
  const auto factor = solver.factorize(gram, 0.1, "block under test");
  const auto log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("block under test"), std::string::npos) << log;
  EXPECT_NE(log.find("not positive definite"), std::string::npos) << log;
  EXPECT_GT(factor.damping, 2.0 / 3.0) << "nλ must exceed the negative eigenvalue's magnitude";
  EXPECT_GE(solver.counters().damping_raises, 1);
  const auto rhs = torch::tensor({1.0, -1.0, 2.0}, torch::kDouble);
  const auto solution = solver.solve(factor, rhs);
  EXPECT_TRUE(torch::isfinite(solution).all().item<bool>());
  expect_close(damped(gram, factor.damping).mv(solution), rhs, 1e-12);
}

TEST(WoodburyCholesky, SingularGramWithoutDampingIsRaisedFromAFloor) {
  WoodburySolver solver({});
  const auto gram = 3.0 * torch::ones({4, 4}, torch::kDouble);  // rank one
  ::testing::internal::CaptureStderr();
  const auto factor = solver.factorize(gram, 0.0, "singular");
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("raising λ"), std::string::npos);
  EXPECT_GT(factor.damping, 0.0);
  const auto ones = torch::ones({4}, torch::kDouble);
  const auto solution = solver.solve(factor, ones);
  EXPECT_TRUE(torch::isfinite(solution).all().item<bool>());
  expect_close(damped(gram, factor.damping).mv(solution), ones, 1e-9);
}

TEST(WoodburyCholesky, PositiveDefiniteGramKeepsItsDampingSilently) {
  WoodburySolver solver({});
  ::testing::internal::CaptureStderr();
  const auto factor = solver.factorize(torch::eye(3, torch::kDouble), 0.5, "fine");
  EXPECT_TRUE(::testing::internal::GetCapturedStderr().empty());
  EXPECT_EQ(factor.damping, 0.5);
  EXPECT_EQ(solver.counters().damping_raises, 0);
}

TEST(WoodburyCholesky, NonFiniteGramIsAnError) {
  WoodburySolver solver({});
  auto gram = torch::eye(3, torch::kDouble);
  gram[1][2] = std::numeric_limits<double>::quiet_NaN();
  try {
    solver.factorize(gram, 0.1, "diverged block");
    FAIL() << "expected an error";
  } catch (const Diverged& error) {  // the runner records the run as diverged
    EXPECT_NE(std::string(error.what()).find("diverged block"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("not finite"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace ngd
