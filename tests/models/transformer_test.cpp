#include <gtest/gtest.h>

#include <numeric>

#include "datasets/tokenizer.h"
#include "datasets/translation.h"
#include "models/transformer.h"
#include "tests/support/tolerances.h"

namespace ngd {
namespace {

constexpr int64_t kVocab = 13;
// Invariance tests run the model in float64: a padded and an unpadded forward differ by rounding alone.
constexpr double kTolerance = testing::Tolerances<double>::kExact;

TransformerSettings tiny_settings() {
  TransformerSettings settings;
  settings.d_model = 16;
  settings.heads = 4;
  settings.encoder_layers = 2;
  settings.decoder_layers = 2;
  settings.d_ff = 24;
  settings.dropout = 0.0;
  return settings;
}

// Three sentence pairs of different lengths, ids of real words in [4, kVocab).
TokenizedSplit sentences() {
  TokenizedSplit split;
  split.source = {{4, 5, 6, 7, 8, kEosId}, {9, 10, kEosId}, {11, 12, 4, 5, kEosId}};
  split.target = {{5, 6, 7}, {8, 9, 10, 11, 12}, {4}};
  split.references = {"", "", ""};
  return split;
}

TEST(Transformer, LogitsHaveOneRowPerTargetPositionAndCaptureLayersSeeSequences) {
  torch::manual_seed(0);
  TranslationModel model(tiny_settings(), kVocab, kVocab);
  const auto batch = make_translation_batch(sentences(), {0, 1, 2});
  const auto logits = model.forward(batch.source, batch.target_input);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, batch.target_input.size(1), kVocab}));
  // 2 encoder layers × (4 attention + 2 FF) + 2 decoder layers × (8 attention + 2 FF); projection tied.
  EXPECT_EQ(model.capture_layers().size(), 2u * 6 + 2u * 10);
}

TEST(Transformer, PaddingNeverChangesTheRealPositions) {
  torch::manual_seed(1);
  TranslationModel model(tiny_settings(), kVocab, kVocab);
  model.to(torch::kDouble);
  model.eval();
  const auto split = sentences();
  const auto batch = make_translation_batch(split, {0, 1, 2});
  const auto together = model.forward(batch.source, batch.target_input);
  for (int64_t i = 0; i < 3; ++i) {
    const auto alone_batch = make_translation_batch(split, {i});
    const auto alone = model.forward(alone_batch.source, alone_batch.target_input)[0];
    const auto length = alone.size(0);
    EXPECT_TRUE(torch::allclose(together[i].slice(0, 0, length), alone, kTolerance, kTolerance)) << "sentence " << i;
  }
}

TEST(Transformer, OutputAtPositionTIgnoresLaterTargetTokens) {
  torch::manual_seed(2);
  TranslationModel model(tiny_settings(), kVocab, kVocab);
  model.to(torch::kDouble);
  model.eval();
  const auto batch = make_translation_batch(sentences(), {1});
  const auto logits = model.forward(batch.source, batch.target_input);
  auto changed = batch.target_input.clone();
  changed.slice(1, 3).fill_(7);
  const auto changed_logits = model.forward(batch.source, changed);
  EXPECT_TRUE(torch::allclose(logits.slice(1, 0, 3), changed_logits.slice(1, 0, 3), kTolerance, kTolerance));
  EXPECT_FALSE(torch::allclose(logits.slice(1, 3), changed_logits.slice(1, 3), 1e-3, 1e-3));
}

TEST(Transformer, UntiedProjectionCanBeCaptured) {
  auto settings = tiny_settings();
  settings.tie_embeddings = false;
  settings.capture_projection = true;
  TranslationModel model(settings, kVocab, kVocab);
  EXPECT_EQ(model.capture_layers().size(), 2u * 6 + 2u * 10 + 1);
  settings.tie_embeddings = true;
  EXPECT_THROW(TranslationModel(settings, kVocab, kVocab), std::invalid_argument);
}

int64_t parameter_count(TranslationModel& model) {
  int64_t count = 0;
  for (const auto& parameter : model.parameters()) count += parameter.numel();
  return count;
}

TEST(Transformer, RankFactorsEverySublayerMapAndItsFactorsRecordTheTokenMask) {
  auto settings = tiny_settings();
  TranslationModel dense(settings, kVocab, kVocab);
  settings.low_rank = {"matrix", 4, 0.0};
  TranslationModel factored(settings, kVocab, kVocab);
  // d = 16, d_ff = 24, r = 4: a d×d map keeps 4·(16 + 16) of its 256 weights, each FF map 4·(16 + 24) of 384;
  // 2 encoder layers × (4 + 2 maps), 2 decoder layers × (8 + 2), biases unchanged.
  const int64_t saved_attention = 256 - 128, saved_feed_forward = 384 - 160;
  EXPECT_EQ(parameter_count(dense) - parameter_count(factored),
            2 * (4 * saved_attention + 2 * saved_feed_forward) + 2 * (8 * saved_attention + 2 * saved_feed_forward));
  EXPECT_EQ(factored.capture_layers().size(), 2 * (2u * 6 + 2u * 10));

  factored.to(torch::kDouble);
  factored.eval();
  for (const auto& layer : factored.capture_layers()) layer->set_record_input(true);
  const auto split = sentences();
  const auto batch = make_translation_batch(split, {0, 1, 2});
  const auto together = factored.forward(batch.source, batch.target_input);
  for (const auto& layer : factored.capture_layers()) {
    ASSERT_TRUE(layer->token_mask().defined());
    EXPECT_EQ(layer->token_mask().sizes(), layer->input().sizes().slice(0, 2));
  }
  for (const auto& layer : factored.capture_layers()) layer->set_record_input(false);
  for (int64_t i = 0; i < 3; ++i) {
    const auto alone_batch = make_translation_batch(split, {i});
    const auto alone = factored.forward(alone_batch.source, alone_batch.target_input)[0];
    EXPECT_TRUE(torch::allclose(together[i].slice(0, 0, alone.size(0)), alone, kTolerance, kTolerance)) << i;
  }

  settings.low_rank = {"tt", 4, 0.0};
  EXPECT_THROW(TranslationModel(settings, kVocab, kVocab), std::invalid_argument);
}

TEST(Decoding, BeamOfOneIsGreedyAndOutputsRespectLimits) {
  torch::manual_seed(3);
  TranslationModel model(tiny_settings(), kVocab, kVocab);
  model.eval();
  TokenizedSplit split;
  auto generator = at::detail::createCPUGenerator(11);
  for (int i = 0; i < 12; ++i) {
    const auto length = 1 + torch::randint(0, 8, {1}, generator, torch::kInt64).item<int64_t>();
    const auto words = torch::randint(4, kVocab, {length}, generator, torch::kInt64);
    std::vector<int64_t> source(words.data_ptr<int64_t>(), words.data_ptr<int64_t>() + length);
    source.push_back(kEosId);
    split.source.push_back(source);
    split.target.push_back({4});
    split.references.push_back("");
  }
  std::vector<int64_t> all(12);
  std::iota(all.begin(), all.end(), 0);
  const auto source = make_translation_batch(split, all).source;
  const auto limits = decoding_limits(source, 6);
  const auto greedy = greedy_decode(model, source, limits);
  EXPECT_EQ(beam_search(model, source, 1, 0.6, limits), greedy);
  const auto beam = beam_search(model, source, 4, 0.6, limits);
  for (size_t b = 0; b < beam.size(); ++b) {
    EXPECT_LE(static_cast<int64_t>(beam[b].size()), limits[b]);
    EXPECT_LE(static_cast<int64_t>(greedy[b].size()), limits[b]);
    for (auto id : beam[b]) EXPECT_NE(id, kEosId);
  }
  // A sentence decoded alone gives what it gives in the batch (padding is invisible).
  EXPECT_EQ(greedy_decode(model, make_translation_batch(split, {5}).source, {limits[5]})[0], greedy[5]);
  EXPECT_EQ(beam_search(model, make_translation_batch(split, {5}).source, 4, 0.6, {limits[5]})[0], beam[5]);
}

}  // namespace
}  // namespace ngd
