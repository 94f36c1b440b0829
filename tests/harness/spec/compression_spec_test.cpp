#include <gtest/gtest.h>

#include "base/stable_hash.h"
#include "harness/spec/compression_settings.h"
#include "harness/spec/spec.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

// The tiny spec's first entry with `fields` added (a "compression" block, a "model" override).
json tiny_with_entry(const json& fields) {
  auto spec = testing::tiny_spec();
  spec["optimizers"][0].update(fields);
  return spec;
}

RunConfig first_run(const json& spec) { return parse_spec(spec, "spec.json").runs.at(0); }

TEST(CompressionSpec, NoBlockLeavesTheIdentityAsBefore) {
  const auto plain = first_run(testing::tiny_spec());
  EXPECT_FALSE(plain.identity().contains("compression"));
  EXPECT_TRUE(plain.compression.is_null());
  // An entry's model override that restates the spec's options is the same run.
  const auto restated = first_run(tiny_with_entry({{"model", {{"hidden", {32}}}}}));
  EXPECT_EQ(restated.config_hash(), plain.config_hash());
  const auto other = first_run(tiny_with_entry({{"model", {{"hidden", {16}}}}}));
  EXPECT_NE(other.config_hash(), plain.config_hash());
  EXPECT_EQ(other.model_options["hidden"], json({16}));
}

TEST(CompressionSpec, LowRankModelOptionsAtTheirDefaultsStayOutOfTheIdentity) {
  // The tiny spec's MLP: `rank` predates the other two and stays; the other two are resolved for the
  // model but left out of the identity while they hold their defaults, so older results keep their hashes.
  const auto plain = first_run(testing::tiny_spec());
  const auto identity = plain.identity();
  const auto& options = identity.at("model").at("options");
  EXPECT_EQ(options.at("rank"), 0);
  EXPECT_FALSE(options.contains("low_rank_format"));
  EXPECT_FALSE(options.contains("rank_ratio"));
  EXPECT_EQ(plain.model_options.at("low_rank_format"), "matrix");
  // Stating a default is the same run; a format with a rank is another.
  EXPECT_EQ(first_run(tiny_with_entry({{"model", {{"low_rank_format", "matrix"}, {"rank_ratio", 0.0}}}})).config_hash(),
            plain.config_hash());
  const auto tt = first_run(tiny_with_entry({{"model", {{"low_rank_format", "tt"}, {"rank", 4}}}}));
  EXPECT_EQ(tt.identity().at("model").at("options").at("low_rank_format"), "tt");
  EXPECT_NE(tt.config_hash(), plain.config_hash());
  // A model that gained all three at once (the small CNN) records none of them at their defaults.
  auto cnn_spec = testing::tiny_spec();
  cnn_spec["model"] = {{"name", "cnn"}, {"channels", 4}, {"hidden", 8}};
  const auto cnn = first_run(cnn_spec);
  EXPECT_EQ(cnn.identity().at("model").at("options"), json({{"channels", 4}, {"hidden", 8}}));
  cnn_spec["model"]["rank"] = 2;
  EXPECT_EQ(first_run(cnn_spec).identity().at("model").at("options").at("rank"), 2);
}

TEST(CompressionSpec, BlockIsResolvedWithDefaultsIntoTheIdentity) {
  const auto plain = first_run(testing::tiny_spec());
  const auto run = first_run(tiny_with_entry(
      {{"compression", {{"mode", "pre_train"}, {"rank_rule", {{"kind", "budget"}, {"value", 0.25}}},
                        {"fine_tune", {{"epochs", 1}, {"hparams", {{"lr", 0.01}}}}}}}}));
  EXPECT_NE(run.config_hash(), plain.config_hash());
  const auto identity = run.identity();  // a temporary would leave `block` dangling
  const auto& block = identity.at("compression");
  EXPECT_EQ(block, run.compression);
  EXPECT_EQ(block["format"], "matrix");
  EXPECT_EQ(block["rank_rule"], json({{"kind", "budget"}, {"value", 0.25}}));
  EXPECT_TRUE(block["regularizer"].is_null());
  EXPECT_EQ(block["fine_tune"]["optimizer"], "sgd");
  EXPECT_EQ(block["fine_tune"]["hparams"]["lr"], 0.01);
  EXPECT_TRUE(block["fine_tune"]["hparams"].contains("momentum"));  // the optimizer's defaults filled in
  EXPECT_EQ(block["pipeline"], json({{"prune_fraction", 0.0}, {"quantize_bits", 0}, {"entropy_coding", false}}));

  const auto settings = compression_settings(run.compression);
  EXPECT_EQ(settings.mode, "pre_train");
  EXPECT_EQ(settings.rank_rule_kind, "budget");
  EXPECT_EQ(settings.rank_rule_value, 0.25);
  EXPECT_EQ(settings.fine_tune_epochs, 1);
  EXPECT_EQ(settings.quantize_bits, 0);
}

TEST(CompressionSpec, CompressionAwareBlockCarriesItsMeasureAndWeight) {
  const auto aware = [](double weight) {
    const json regularizer = {{"measure", "hoyer_square"}, {"weight", weight}};
    const json block = {{"mode", "compression_aware"}, {"regularizer", regularizer}};
    return first_run(tiny_with_entry({{"compression", block}}));
  };
  const auto run = aware(0.003);
  const auto settings = compression_settings(run.compression);
  EXPECT_EQ(settings.measure, "hoyer_square");
  EXPECT_EQ(settings.regularizer_weight, 0.003);
  EXPECT_FALSE(settings.penalty_during_fine_tune);  // SVD training fine-tunes without it
  // A different weight is a different configuration, and a different training.
  const auto heavier = aware(0.03);
  EXPECT_NE(heavier.config_hash(), run.config_hash());
  EXPECT_NE(heavier.shared_training_id(), run.shared_training_id());
}

// What follows training (format, rank rule, fine-tuning, pipeline, the penalty while fine-tuning) does
// not change the training: such runs share one (RunConfig::shared_training_id).
TEST(CompressionSpec, RunsThatDifferOnlyAfterTrainingShareTheirTrainingIdentity) {
  const json aware = {{"mode", "compression_aware"}, {"regularizer", {{"measure", "l1"}, {"weight", 0.01}}}};
  const auto base = first_run(tiny_with_entry({{"compression", aware}}));
  EXPECT_EQ(base.training_identity()["compression"], json({{"mode", "compression_aware"},
                                                           {"regularizer", {{"measure", "l1"}, {"weight", 0.01}}}}));
  EXPECT_EQ(base.shared_training_id(), "sgd-" + stable_hash(base.training_identity().dump()) + "-s0.trained");
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{
           {"format", "tt"},
           {"rank_rule", {{"kind", "budget"}, {"value", 0.125}}},
           {"fine_tune", {{"epochs", 3}}},
           {"pipeline", {{"quantize_bits", 8}}},
           {"regularizer", {{"measure", "l1"}, {"weight", 0.01}, {"during_fine_tune", true}}}}) {
    auto block = aware;
    block[key] = value;
    const auto other = first_run(tiny_with_entry({{"compression", block}}));
    EXPECT_NE(other.config_hash(), base.config_hash()) << key;
    EXPECT_EQ(other.shared_training_id(), base.shared_training_id()) << key;
  }
  auto pre_train = aware;
  pre_train["mode"] = "pre_train";
  pre_train.erase("regularizer");
  EXPECT_NE(first_run(tiny_with_entry({{"compression", pre_train}})).shared_training_id(), base.shared_training_id());
  EXPECT_EQ(first_run(tiny_with_entry(json::object())).shared_training_id(), "");  // no block: nothing shared
}

TEST(CompressionSpec, BadBlocksNameTheirPath) {
  const std::vector<std::pair<json, std::vector<std::string>>> cases = {
      {{{"compression", {{"mode", "prune"}}}}, {"optimizers[0].compression.mode", "pre_train, compression_aware"}},
      {{{"compression", {{"mode", "compression_aware"}}}}, {"optimizers[0].compression.regularizer", "needs a regularizer"}},
      {{{"compression", {{"mode", "compression_aware"}, {"regularizer", {{"measure", "l1"}}}}}},
       {"optimizers[0].compression.regularizer.weight", "no default"}},
      {{{"compression", {{"mode", "compression_aware"}, {"regularizer", {{"measure", "rank"}, {"weight", 1.0}}}}}},
       {"optimizers[0].compression.regularizer.measure", "effective_rank"}},
      {{{"compression", {{"regularizer", {{"measure", "l1"}, {"weight", 1.0}}}}}},
       {"optimizers[0].compression.regularizer", "only compression_aware"}},
      {{{"compression", {{"rank_rule", {{"kind", "energy"}, {"value", 1.5}}}}}},
       {"optimizers[0].compression.rank_rule.value", "fraction in (0, 1]"}},
      {{{"compression", {{"rank_rule", {{"kind", "vbmf"}}}}}}, {"optimizers[0].compression.rank_rule.kind", "budget"}},
      {{{"compression", {{"format", "cp"}}}}, {"optimizers[0].compression.format", "tucker2"}},
      {{{"compression", {{"fine_tune", {{"optimizer", "lbfgs"}}}}}}, {"optimizers[0].compression.fine_tune.optimizer"}},
      {{{"compression", {{"fine_tune", {{"hparams", {{"lr", 0.1}, {"beta", 2}}}}}}}},
       {"optimizers[0].compression.fine_tune.hparams.beta", "optimizer 'sgd'"}},
      {{{"compression", {{"pipeline", {{"quantize_bits", 5}}}}}},
       {"optimizers[0].compression.pipeline.quantize_bits", "0, 4, 6 or 8"}},
      {{{"compression", {{"pipeline", {{"entropy_coding", true}}}}}},
       {"optimizers[0].compression.pipeline.entropy_coding", "quantize_bits"}},
      {{{"compression", {{"pipeline", {{"prune_fraction", 1.0}}}}}}, {"optimizers[0].compression.pipeline.prune_fraction"}},
      {{{"compression", "yes"}}, {"optimizers[0].compression", "expected an object"}},
      {{{"model", {{"name", "cnn"}}}}, {"optimizers[0].model.name", "not the model"}},
      {{{"model", {{"depth", 3}}}}, {"optimizers[0].model.depth"}},
  };
  for (const auto& [fields, parts] : cases) {
    const auto message = testing::spec_error(tiny_with_entry(fields));
    ASSERT_FALSE(message.empty()) << "accepted: " << fields.dump();
    for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

TEST(CompressionSpec, FidelityProbesAndTranslationRunsRefuseABlock) {
  auto probed = tiny_with_entry({{"compression", {{"mode", "pre_train"}}}});
  probed["fidelity"] = {{"every_steps", 10}};
  EXPECT_NE(testing::spec_error(probed).find("optimizers[0].compression: fidelity probes"), std::string::npos)
      << testing::spec_error(probed);
  auto translation = testing::tiny_translation_spec();
  translation["optimizers"][0]["compression"] = {{"mode", "pre_train"}};
  EXPECT_NE(testing::spec_error(translation).find("compression runs are image runs"), std::string::npos)
      << testing::spec_error(translation);
}

}  // namespace
}  // namespace ngd
