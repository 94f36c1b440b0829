// The optimizers' statistics on a Transformer's sequence inputs, against explicit per-sentence loops:
// each sentence run alone (no padding) with its own backward.
#include <gtest/gtest.h>

#include "datasets/translation.h"
#include "models/transformer.h"
#include "optimizers/curvature/layer_statistics.h"
#include "optimizers/curvature/woodbury.h"
#include "optimizers/fngd.h"
#include "optimizers/kfac.h"
#include "optimizers/ngd.h"
#include "optimizers/sngd.h"
#include "tests/optimizers/woodbury_test_support.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

using woodbury_testing::expect_close;

constexpr int64_t kVocab = 11;
// The Transformer and its per-sentence loops run in float64: they agree to rounding.
constexpr double kTolerance = testing::Tolerances<double>::kExact;

std::shared_ptr<TranslationModel> tiny_transformer(uint64_t seed) {
  torch::manual_seed(seed);
  TransformerSettings settings;
  settings.d_model = 8;
  settings.heads = 2;
  settings.encoder_layers = 1;
  settings.decoder_layers = 1;
  settings.d_ff = 12;
  settings.dropout = 0.0;
  auto model = std::make_shared<TranslationModel>(settings, kVocab, kVocab);
  model->to(torch::kDouble);
  return model;
}

// Four sentence pairs of different lengths, so that the batch pads every side.
TokenizedSplit sentence_pairs() {
  TokenizedSplit split;
  split.source = {{4, 5, 6, 7, kEosId}, {8, kEosId}, {9, 10, 4, kEosId}, {5, 5, 6, 7, 8, 9, kEosId}};
  split.target = {{6, 7}, {8, 9, 10, 4, 5}, {6}, {7, 8, 9}};
  split.references = {"", "", "", ""};
  return split;
}

// The translation workload's per-sentence losses: Σ_t ℓ_it / T̄ (plain cross-entropy here).
torch::Tensor sentence_losses(TranslationModel& model, const TranslationBatch& batch, double mean_tokens) {
  const auto logits = model.forward(batch.source, batch.target_input);
  const auto mask = batch.target_output.ne(kPadId);
  const auto losses = torch::nn::functional::cross_entropy(
      logits.reshape({-1, kVocab}), batch.target_output.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  return (losses.view_as(batch.target_output) * mask).sum(1) / mean_tokens;
}

void set_recording(TranslationModel& model, bool on) {
  for (const auto& layer : model.capture_layers()) {
    layer->set_record_input(on);
    layer->set_record_grad_output(on);
  }
}

struct Batched {
  TranslationBatch batch;
  int64_t sentences = 0;
  int64_t tokens = 0;  // real target tokens
  double mean_tokens = 0;
};

Batched whole_batch() {
  Batched batched;
  batched.batch = make_translation_batch(sentence_pairs(), {0, 1, 2, 3});
  batched.sentences = 4;
  batched.tokens = batched.batch.target_output.ne(kPadId).sum().item<int64_t>();
  batched.mean_tokens = static_cast<double>(batched.tokens) / 4.0;
  return batched;
}

// Per capture layer, from each sentence alone: its gradient rows (n × out·in[+1], float64), and its
// tokens' input rows [a, 1] and output gradients stacked over all sentences.
struct Loop {
  std::vector<torch::Tensor> gradients;
  std::vector<torch::Tensor> inputs;
  std::vector<torch::Tensor> grad_outputs;
};

Loop per_sentence_loop(TranslationModel& model, double mean_tokens) {
  const auto split = sentence_pairs();
  const auto layers = model.capture_layers();
  std::vector<std::vector<torch::Tensor>> gradients(layers.size()), inputs(layers.size()), grads(layers.size());
  for (int64_t i = 0; i < split.size(); ++i) {
    set_recording(model, true);
    model.zero_grad();
    sentence_losses(model, make_translation_batch(split, {i}), mean_tokens)[0].backward();
    for (size_t l = 0; l < layers.size(); ++l) {
      auto& layer = *layers[l];
      // A copy: the gradient's storage is zeroed in place by the next zero_grad().
      gradients[l].push_back(gradient_matrix(layer).flatten().to(torch::kDouble, false, /*copy=*/true));
      const auto input = layer.input()[0].to(torch::kDouble);
      inputs[l].push_back(torch::cat({input, torch::ones({input.size(0), 1}, input.options())}, 1));
      grads[l].push_back(layer.grad_output()[0].to(torch::kDouble));
      layer.clear_captures();
    }
  }
  set_recording(model, false);
  Loop loop;
  for (size_t l = 0; l < layers.size(); ++l) {
    loop.gradients.push_back(torch::stack(gradients[l]));
    loop.inputs.push_back(torch::cat(inputs[l]));
    loop.grad_outputs.push_back(torch::cat(grads[l]));
  }
  return loop;
}

void record_batch(TranslationModel& model, const Batched& batched) {
  set_recording(model, true);
  model.zero_grad();
  sentence_losses(model, batched.batch, batched.mean_tokens).mean().backward();
}

TEST(SequenceStatistics, PerSentenceGradientsAndGramsEqualTheLoopOverUnpaddedSentences) {
  auto model = tiny_transformer(0);
  const auto batched = whole_batch();
  const auto loop = per_sentence_loop(*model, batched.mean_tokens);
  record_batch(*model, batched);
  const auto layers = model->capture_layers();
  ASSERT_EQ(layers.size(), 6u + 10u);
  for (size_t l = 0; l < layers.size(); ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    auto& layer = *layers[l];
    EXPECT_TRUE(has_positions(layer));
    // The loss is the mean over sentences: per-sentence gradients are n times the recorded ones.
    const auto per_sentence = per_sample_gradients(layer).reshape({4, -1}) * 4.0;
    expect_close(per_sentence, loop.gradients[l], kTolerance);
    expect_close(per_sentence.sum(0) / 4.0, gradient_matrix(layer).flatten(), kTolerance);
    const auto expected_gram = loop.gradients[l].mm(loop.gradients[l].t());
    for (const auto form : {GramForm::kPairwise, GramForm::kPerSample, GramForm::kAuto}) {
      expect_close(SampleGradients::from_layer(layer, 4.0, form, int64_t{1} << 24).gram(), expected_gram, kTolerance);
    }
    // Combining with coefficients c gives Σ c_i u_i.
    const auto coefficients = torch::tensor({0.5, -1.0, 2.0, 0.25}, torch::kDouble);
    expect_close(SampleGradients::from_layer(layer, 4.0, GramForm::kPairwise, int64_t{1} << 24)
                     .combine(coefficients)
                     .flatten(),
                 coefficients.unsqueeze(0).mm(loop.gradients[l]).squeeze(0), kTolerance);
  }
}

TEST(SequenceStatistics, PaddedTokensGiveZeroRowsAndAreNotCounted) {
  auto model = tiny_transformer(1);
  const auto batched = whole_batch();
  record_batch(*model, batched);
  const auto source_mask = batched.batch.source.ne(kPadId);
  const auto target_mask = batched.batch.target_input.ne(kPadId);
  for (const auto& layer : model->capture_layers()) {
    const auto inputs = input_rows(*layer);
    const auto grads = grad_output_rows(*layer);
    const auto mask = layer->token_mask();
    ASSERT_TRUE(mask.defined());
    EXPECT_TRUE(mask.equal(source_mask) || mask.equal(target_mask));
    EXPECT_EQ(real_token_count(*layer), mask.sum().item<int64_t>());
    EXPECT_EQ(inputs.index({~mask}).abs().sum().item<double>(), 0.0);  // the ones column too
    EXPECT_EQ(grads.index({~mask}).abs().sum().item<double>(), 0.0);
    EXPECT_TRUE(inputs.index({mask}).select(1, -1).eq(1).all().item<bool>());
  }
}

TEST(SequenceStatistics, KfacFactorsAreOverRealTokens) {
  auto model = tiny_transformer(2);
  const auto batched = whole_batch();
  const auto loop = per_sentence_loop(*model, batched.mean_tokens);
  Kfac kfac(*model, optimizer_options("kfac", {{"lr", 0.0}, {"momentum", 0.0}, {"stat_decay", 0.0},
                                               {"fisher", "empirical"}, {"stat_interval", 1}, {"inverse_interval", 1},
                                               {"kl_clip", 0.0}}));
  const auto info = woodbury_testing::step_info(0, 0, 1, torch::arange(4));
  ASSERT_EQ(kfac.capture(info), Capture::kEmpirical);
  record_batch(*model, batched);
  PhaseTimer timer;
  kfac.step(info, timer);
  for (size_t l = 0; l < model->capture_layers().size(); ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    // Tokens are KFAC's samples: A = Σ ā āᵀ / N over the N real tokens of the layer's input; the
    // batch loss Σ ℓ / N_target has per-token output gradients g = g_alone / n (n sentences), and
    // G = N·Σ (N_target·g)(N_target·g)ᵀ / N² = N·Σ g gᵀ with N the layer's token count.
    const auto& inputs = loop.inputs[l];
    const double tokens = static_cast<double>(inputs.size(0));
    expect_close(kfac.curvature().input_factor(l), inputs.t().mm(inputs) / tokens, kTolerance);
    const auto grads = loop.grad_outputs[l] / 4.0;
    expect_close(kfac.curvature().grad_factor(l), grads.t().mm(grads) * tokens, kTolerance);
  }
}

// SNGD shares KFAC's statistics: tokens are the samples, padding excluded (an earlier copy
// averaged over padded positions and scaled G by the sentence count).
TEST(SequenceStatistics, SngdStepIsTheKroneckerSolveOfFactorsOverRealTokens) {
  auto model = tiny_transformer(5);
  const auto batched = whole_batch();
  const auto loop = per_sentence_loop(*model, batched.mean_tokens);
  constexpr double kDamping = 0.1;
  auto sngd = sngd_entry().make(
      *model, optimizer_options(
                  "sngd", {{"lr", 0.0}, {"momentum", 0.0}, {"fisher", "empirical"}, {"damping", kDamping},
                           {"stat_decay", 0.0}, {"kl_clip", 0.0}, {"stat_interval", 1}, {"inverse_interval", 1},
                           {"root_method", "eigh"}}));
  const auto info = woodbury_testing::step_info(0, 0, 1, torch::arange(4));
  ASSERT_EQ(sngd->capture(info), Capture::kEmpirical);
  record_batch(*model, batched);
  // SNGD's damping is relative to the factor's mean eigenvalue.
  const auto damped = [](const torch::Tensor& factor) {
    const auto dim = factor.size(0);
    return factor + kDamping * factor.trace() / static_cast<double>(dim) * torch::eye(dim, factor.options());
  };
  std::vector<torch::Tensor> expected;
  for (size_t l = 0; l < model->capture_layers().size(); ++l) {
    const auto& inputs = loop.inputs[l];
    const double tokens = static_cast<double>(inputs.size(0));
    const auto grads = loop.grad_outputs[l] / 4.0;
    const auto a = damped(inputs.t().mm(inputs) / tokens);
    const auto g = damped(grads.t().mm(grads) * tokens);
    // G⁻¹ ∇W̄ A⁻¹ (A and G symmetric).
    const auto left = torch::linalg_solve(g, gradient_matrix(*model->capture_layers()[l]), true);
    expected.push_back(torch::linalg_solve(a, left.t(), true).t());
  }
  PhaseTimer timer;
  sngd->step(info, timer);
  for (size_t l = 0; l < expected.size(); ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    expect_close(gradient_matrix(*model->capture_layers()[l]), expected[l], kTolerance);
  }
}

TEST(SequenceStatistics, FngdCoefficientsComeFromTheGramOfPerSentenceGradients) {
  auto model = tiny_transformer(3);
  const auto batched = whole_batch();
  const auto loop = per_sentence_loop(*model, batched.mean_tokens);
  constexpr double kDamping = 0.05;
  Fngd fngd(*model,
            optimizer_options("fngd", {{"lr", 0.0}, {"momentum", 0.0}, {"damping", kDamping}, {"coefficients", "shared"}}));
  const auto info = woodbury_testing::step_info(0, 0, 1, torch::arange(4));
  ASSERT_EQ(fngd.capture(info), Capture::kEmpirical);
  set_recording(*model, true);
  model->zero_grad();
  fngd.reduce_loss(sentence_losses(*model, batched.batch, batched.mean_tokens), info).backward();
  PhaseTimer timer;
  fngd.step(info, timer);
  const auto rows = torch::cat(loop.gradients, 1);
  const auto expected = torch::linalg_solve(rows.mm(rows.t()) + 4 * kDamping * torch::eye(4, torch::kDouble),
                                             torch::ones({4, 1}, torch::kDouble), true);
  expect_close(fngd.curvature().coefficients(info)[0], expected.squeeze(1), kTolerance);
  std::vector<torch::Tensor> gradients;
  for (const auto& layer : model->capture_layers()) gradients.push_back(gradient_matrix(*layer).flatten());
  expect_close(torch::cat(gradients), woodbury_testing::dense_damped_natural_gradient(rows, kDamping), kTolerance);
}

// iEF's right-hand side is the logits' per-sample gradient norm: with the tied vocabulary projection
// uncaptured, the last capture layer is a hidden one, and FNGD says so instead of using its gradients.
TEST(SequenceStatistics, FngdRefusesIefWhenTheLogitsLayerIsNotCaptured) {
  auto model = tiny_transformer(6);
  const auto batched = whole_batch();
  Fngd fngd(*model, optimizer_options("fngd", {{"lr", 0.0}, {"momentum", 0.0}, {"rhs", "logit_gradient_norms"}}));
  const auto info = woodbury_testing::step_info(0, 0, 1, torch::arange(4));
  set_recording(*model, true);
  model->zero_grad();
  fngd.reduce_loss(sentence_losses(*model, batched.batch, batched.mean_tokens), info).backward();
  PhaseTimer timer;
  try {
    fngd.step(info, timer);
    FAIL() << "iEF on an uncaptured logits layer was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("logits layer"), std::string::npos) << error.what();
  }
}

TEST(SequenceStatistics, NgdStepIsTheDampedNaturalGradientOfPerSentenceGradients) {
  auto model = tiny_transformer(4);
  const auto batched = whole_batch();
  const auto loop = per_sentence_loop(*model, batched.mean_tokens);
  constexpr double kDamping = 0.05;
  Ngd optimizer(*model, optimizer_options("ngd", {{"lr", 0.0}, {"momentum", 0.0}, {"damping", kDamping}}));
  const auto info = woodbury_testing::step_info(0, 0, 1, torch::arange(4));
  ASSERT_EQ(optimizer.capture(info), Capture::kEmpirical);
  record_batch(*model, batched);
  PhaseTimer timer;
  optimizer.step(info, timer);
  std::vector<torch::Tensor> gradients;
  for (const auto& layer : model->capture_layers()) gradients.push_back(gradient_matrix(*layer).flatten());
  expect_close(torch::cat(gradients),
               woodbury_testing::dense_damped_natural_gradient(torch::cat(loop.gradients, 1), kDamping), kTolerance);
}

}  // namespace
}  // namespace ngd
