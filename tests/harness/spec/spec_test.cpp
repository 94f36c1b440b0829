#include <gtest/gtest.h>

#include <fstream>

#include "harness/spec/spec.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

// Parses `spec` and returns the error message ("" if it parsed).
std::string error_of(const json& spec) {
  try {
    parse_spec(spec, "spec.json");
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

// Expects the spec to be rejected with a message containing each of `parts`.
void expect_rejected(const json& spec, const std::vector<std::string>& parts) {
  const auto message = error_of(spec);
  ASSERT_FALSE(message.empty()) << "accepted: " << spec.dump();
  for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
}

json with(json spec, const json::json_pointer& pointer, const json& value) {
  spec[pointer] = value;
  return spec;
}

json without(json spec, const std::string& key) {
  spec.erase(key);
  return spec;
}

TEST(Spec, ExpandsGridSeedMajorWithDefaultsFilled) {
  auto document = testing::tiny_spec();
  document["seeds"] = {0, 1};
  document["optimizers"] = json::parse(R"([
    {"name": "sgd", "hparams": {"lr": [0.01, 0.05], "momentum": [0.0, 0.9]}},
    {"name": "adamw"}])");
  const auto spec = parse_spec(document, "spec.json");
  ASSERT_EQ(spec.runs.size(), 10u);  // (2×2 + 1) configurations × 2 seeds
  EXPECT_EQ(spec.runs[0].seed, 0);
  EXPECT_EQ(spec.runs[5].seed, 1);
  EXPECT_EQ(spec.runs[0].hparams["nesterov"], false);  // default filled in
  EXPECT_EQ(spec.runs[4].optimizer, "adamw");
  EXPECT_EQ(spec.runs[4].hparams["lr"], 1e-3);
  EXPECT_EQ(spec.runs[0].schedule["name"], "constant");
  std::set<std::string> ids;
  for (const auto& run : spec.runs) ids.insert(run.run_id());
  EXPECT_EQ(ids.size(), spec.runs.size());
  EXPECT_EQ(spec.runs[0].config_hash(), spec.runs[5].config_hash());  // same config, other seed
  EXPECT_EQ(spec.runs[1].label(), "sgd lr=0.01 momentum=0.9");
}

TEST(Spec, IdentityChangesWithAnySetting) {
  const auto base = parse_spec(testing::tiny_spec(), "s").runs[0];
  const auto other_lr = parse_spec(with(testing::tiny_spec(), "/optimizers/0/hparams/lr"_json_pointer, 0.1), "s").runs[0];
  const auto other_model = parse_spec(with(testing::tiny_spec(), "/model/hidden"_json_pointer, {16}), "s").runs[0];
  const auto other_subset = parse_spec(with(testing::tiny_spec(), "/dataset/train_subset"_json_pointer, 100), "s").runs[0];
  EXPECT_NE(base.config_hash(), other_lr.config_hash());
  EXPECT_NE(base.config_hash(), other_model.config_hash());
  EXPECT_NE(base.config_hash(), other_subset.config_hash());
}

TEST(Spec, DataOrderEntersTheIdentityOnlyWhenNotTheDefault) {
  const auto base = parse_spec(testing::tiny_spec(), "s").runs[0];
  const auto reshuffle = parse_spec(with(testing::tiny_spec(), "/data_order"_json_pointer, "reshuffle"), "s").runs[0];
  const auto fixed = parse_spec(with(testing::tiny_spec(), "/data_order"_json_pointer, "fixed"), "s").runs[0];
  const auto none = parse_spec(with(testing::tiny_spec(), "/data_order"_json_pointer, "none"), "s").runs[0];
  EXPECT_EQ(base.data_order, DataOrder::kReshuffle);
  EXPECT_EQ(base.config_hash(), reshuffle.config_hash());  // results from before the setting keep their names
  EXPECT_EQ(fixed.data_order, DataOrder::kFixed);
  EXPECT_EQ(fixed.identity()["data_order"], "fixed");
  EXPECT_NE(base.config_hash(), fixed.config_hash());
  EXPECT_NE(fixed.config_hash(), none.config_hash());
  expect_rejected(with(testing::tiny_spec(), "/data_order"_json_pointer, "sorted"), {"data_order", "reshuffle, fixed, none"});
  expect_rejected(with(testing::tiny_spec(), "/data_order"_json_pointer, 1), {"data_order"});
}

TEST(Spec, ListValuedModelOptionIsAValueNotAnAxis) {
  const auto spec = parse_spec(with(testing::tiny_spec(), "/model/hidden"_json_pointer, {64, 32}), "s");
  ASSERT_EQ(spec.runs.size(), 1u);
  EXPECT_EQ(spec.runs[0].model_options["hidden"], json({64, 32}));
}

TEST(Spec, RejectsUnknownKeysListingValidOnes) {
  expect_rejected(with(testing::tiny_spec(), "/epochz"_json_pointer, 3), {"spec.json", "epochz", "unknown key", "epochs"});
  expect_rejected(with(testing::tiny_spec(), "/dataset/subset"_json_pointer, 3), {"dataset.subset", "train_subset"});
  expect_rejected(with(testing::tiny_spec(), "/optimizers/0/hparam"_json_pointer, json::object()),
                  {"optimizers[0].hparam", "hparams"});
  expect_rejected(with(testing::tiny_spec(), "/target/metrik"_json_pointer, "x"), {"target.metrik"});
}

TEST(Spec, RejectsUnknownNamesListingChoices) {
  expect_rejected(with(testing::tiny_spec(), "/optimizers/0/name"_json_pointer, "sgdd"),
                  {"optimizers[0].name", "unknown optimizer \"sgdd\"", "sgd", "adamw"});
  expect_rejected(with(testing::tiny_spec(), "/model/name"_json_pointer, "resnet9000"), {"model.name", "mlp", "3c1f"});
  expect_rejected(with(testing::tiny_spec(), "/dataset/name"_json_pointer, "mnist"), {"dataset.name", "fashion-mnist"});
  expect_rejected(with(testing::tiny_spec(), "/optimizers/0/schedule"_json_pointer, {{"name", "exp"}}),
                  {"optimizers[0].schedule.name", "multistep", "cosine"});
  expect_rejected(with(testing::tiny_spec(), "/target/metric"_json_pointer, "acc"), {"target.metric", "test_acc"});
}

TEST(Spec, RejectsUnknownHyperparameterAndModelOption) {
  expect_rejected(with(testing::tiny_spec(), "/optimizers/0/hparams/lrr"_json_pointer, 0.1),
                  {"optimizers[0].hparams.lrr", "optimizer 'sgd'", "momentum"});
  expect_rejected(with(testing::tiny_spec(), "/model/width"_json_pointer, 3), {"model.width", "hidden"});
  expect_rejected(with(testing::tiny_spec(), "/optimizers/0/schedule"_json_pointer, {{"name", "step"}, {"gama", 0.1}}),
                  {"optimizers[0].schedule.gama", "gamma"});
}

TEST(Spec, RejectsWrongTypes) {
  expect_rejected(with(testing::tiny_spec(), "/optimizers/0/hparams/lr"_json_pointer, "0.1"),
                  {"optimizers[0].hparams.lr", "expected a number"});
  expect_rejected(with(testing::tiny_spec(), "/optimizers/0/hparams/lr"_json_pointer, {0.1, "x"}),
                  {"optimizers[0].hparams.lr[1]"});
  expect_rejected(with(testing::tiny_spec(), "/optimizers/0/hparams/nesterov"_json_pointer, 1), {"nesterov", "true or false"});
  expect_rejected(with(testing::tiny_spec(), "/model/hidden"_json_pointer, {32, 1.5}), {"model.hidden[1]", "integer"});
  expect_rejected(with(testing::tiny_spec(), "/model/hidden"_json_pointer, 32), {"model.hidden", "a list"});
  expect_rejected(with(testing::tiny_spec(), "/epochs"_json_pointer, 0), {"epochs", "positive integer"});
  expect_rejected(with(testing::tiny_spec(), "/batch_size"_json_pointer, 3.5), {"batch_size"});
  expect_rejected(with(testing::tiny_spec(), "/seeds"_json_pointer, json::array()), {"seeds"});
  expect_rejected(with(testing::tiny_spec(), "/seeds"_json_pointer, {0, -1}), {"seeds[1]"});
  expect_rejected(with(testing::tiny_spec(), "/dataset/train_subset"_json_pointer, -5), {"dataset.train_subset"});
  expect_rejected(with(testing::tiny_spec(), "/target/value"_json_pointer, "high"), {"target.value"});
  expect_rejected(with(testing::tiny_spec(), "/optimizers"_json_pointer, json::array()), {"optimizers", "non-empty"});
  expect_rejected(with(testing::tiny_spec(), "/optimizers/0/hparams/lr"_json_pointer, json::array()), {"empty list"});
  expect_rejected(with(testing::tiny_spec(), "/name"_json_pointer, "a/b"), {"name", "'/'"});
  expect_rejected(with(testing::tiny_spec(), "/model"_json_pointer, "mlp"), {"model", "expected an object"});
  expect_rejected(with(testing::tiny_spec(), "/notes"_json_pointer, {"a", 1}), {"notes", "list of strings"});
}

TEST(Spec, RejectsMissingRequiredKeys) {
  for (const auto* key : {"name", "dataset", "model", "epochs", "batch_size", "seeds", "optimizers"}) {
    expect_rejected(without(testing::tiny_spec(), key), {key, "missing required key"});
  }
  expect_rejected(with(testing::tiny_spec(), "/model"_json_pointer, {{"hidden", {1}}}), {"model.name"});
}

TEST(Spec, ScalesPatchTheSpecAndAreRecorded) {
  auto document = testing::tiny_spec();
  document["scales"] = {{"cpu", {{"epochs", 1}, {"dataset", {{"train_subset", 100}}}}}, {"paper", {{"epochs", 200}}}};
  const auto cpu = parse_spec(document, "s", "cpu");
  EXPECT_EQ(cpu.runs[0].epochs, 1);
  EXPECT_EQ(*cpu.runs[0].dataset.train_subset, 100);
  EXPECT_EQ(cpu.runs[0].dataset.name, "fashion-mnist");  // merge patch keeps the rest
  EXPECT_EQ(cpu.runs[0].scale, "cpu");
  EXPECT_EQ(parse_spec(document, "s", "paper").runs[0].epochs, 200);
  EXPECT_EQ(parse_spec(document, "s").runs[0].epochs, 2);  // as written
  EXPECT_NE(parse_spec(document, "s", "cpu").runs[0].config_hash(), parse_spec(document, "s", "paper").runs[0].config_hash());
  EXPECT_EQ(parse_spec(testing::tiny_spec(), "s", "cpu").runs[0].scale, "");  // no scales: ignored
  try {
    parse_spec(document, "s", "gpu");
    FAIL();
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("scales: no scale \"gpu\" (valid: cpu, paper)"), std::string::npos) << error.what();
  }
  document["scales"]["cpu"]["epochz"] = 1;
  expect_rejected(document, {"at scale 'cpu'", "epochz", "unknown key"});
}

TEST(Spec, TargetIsOptional) {
  EXPECT_FALSE(parse_spec(without(testing::tiny_spec(), "target"), "s").runs[0].target.has_value());
  EXPECT_FALSE(parse_spec(with(testing::tiny_spec(), "/target"_json_pointer, nullptr), "s").runs[0].target.has_value());
}

TEST(Spec, LoadSpecNamesTheFileForIoAndSyntaxErrors) {
  testing::TempDir dir;
  try {
    load_spec(dir.file("absent.json"));
    FAIL();
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("absent.json: cannot open"), std::string::npos) << error.what();
  }
  std::ofstream(dir.file("bad.json")) << "{\n  \"name\": \"x\",\n  \"epochs\": ,\n}";
  try {
    load_spec(dir.file("bad.json"));
    FAIL();
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("bad.json: invalid JSON"), std::string::npos) << message;
    EXPECT_NE(message.find("line 3"), std::string::npos) << message;
  }
}

TEST(Spec, NumberOutOfRangeIsAnInvalidJsonErrorNotACrash) {
  // Found by the spec fuzzer: nlohmann reports this as out_of_range, not as a parse error.
  try {
    parse_spec_text(R"({"epochs": 444444444444444444444e44444444})", "big.json");
    FAIL();
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("big.json: invalid JSON"), std::string::npos) << error.what();
  }
}

TEST(Spec, ShippedExperimentSpecsParse) {
  for (const auto& entry : std::filesystem::recursive_directory_iterator(testing::source_dir() + "/experiments")) {
    if (entry.path().extension() != ".json") continue;
    EXPECT_NO_THROW(load_spec(entry.path().string())) << entry.path();
  }
}

// Settings renamed by the unified vocabulary (docs/optimizers.md#one-vocabulary) still parse, as the
// new names and values, with one warning each; setting both names is an error.
TEST(SettingVocabulary, OldNamesAreReadAsTheNewOnesWithAWarning) {
  auto document = testing::tiny_spec();
  document["optimizers"] = json::parse(R"([
    {"name": "kfac", "hparams": {"t_cov": 3, "t_inv": [20, 40], "fisher": "true"}},
    {"name": "sngd", "hparams": {"ema_decay": 0.5, "stats_interval": 2}},
    {"name": "tengrad", "hparams": {"freq": 7}},
    {"name": "soap", "hparams": {"shampoo_beta": 0.9, "precondition_frequency": 4}},
    {"name": "kfac", "tuning": {"space": {"t_cov": [1, 2]}, "trials": 2}}])");
  ::testing::internal::CaptureStderr();
  const auto spec = parse_spec(document, "spec.json");
  const auto warnings = ::testing::internal::GetCapturedStderr();
  const auto& kfac = spec.runs[0].hparams;
  EXPECT_EQ(kfac["stat_interval"], 3);
  EXPECT_EQ(kfac["inverse_interval"], 20);
  EXPECT_EQ(kfac["fisher"], "sampled");
  EXPECT_FALSE(kfac.contains("t_cov"));
  EXPECT_EQ(spec.runs[1].hparams["inverse_interval"], 40);
  EXPECT_EQ(spec.runs[1].label(), "kfac inverse_interval=40");
  EXPECT_EQ(spec.runs[2].hparams["stat_decay"], 0.5);
  EXPECT_EQ(spec.runs[2].hparams["stat_interval"], 2);
  EXPECT_EQ(spec.runs[3].hparams["inverse_interval"], 7);
  EXPECT_EQ(spec.runs[4].hparams["stat_decay"], 0.9);
  EXPECT_EQ(spec.runs[4].hparams["inverse_interval"], 4);
  std::set<json> tuned;
  for (size_t i = 5; i < spec.runs.size(); ++i) tuned.insert(spec.runs[i].hparams["stat_interval"]);
  EXPECT_FALSE(tuned.empty());
  for (const auto& value : tuned) EXPECT_TRUE(value == 1 || value == 2) << value;
  for (const auto* old_name : {"\"t_cov\" is the old name of \"stat_interval\"", "\"t_inv\" is the old name",
                               "\"true\" is the old name of \"sampled\"", "\"ema_decay\" is the old name",
                               "\"freq\" is the old name", "\"shampoo_beta\" is the old name",
                               "\"precondition_frequency\" is the old name"}) {
    EXPECT_NE(warnings.find(old_name), std::string::npos) << old_name << " not in:\n" << warnings;
  }
  EXPECT_NE(warnings.find("optimizers[0].hparams.t_cov"), std::string::npos) << warnings;

  document["optimizers"] = json::parse(R"([{"name": "kfac", "hparams": {"t_cov": 3, "stat_interval": 4}}])");
  expect_rejected(document, {"optimizers[0].hparams.t_cov", "both \"stat_interval\" and its old name \"t_cov\""});
  // A setting fixed under its old name and searched under its new one is given in two places.
  document["optimizers"] = json::parse(
      R"([{"name": "kfac", "hparams": {"t_cov": 3}, "tuning": {"space": {"stat_interval": [1, 2]}, "trials": 2}}])");
  expect_rejected(document, {"also searched in tuning.space"});
  // Another plugin's setting of the same old name is not translated.
  document["optimizers"] = json::parse(R"([{"name": "sgd", "hparams": {"t_cov": 3}}])");
  expect_rejected(document, {"optimizers[0].hparams.t_cov", "unknown hyperparameter"});

}

// One spelling per idea: `eps`, snake_case choices, null for "absent", DLDR's methods named apart from
// Xi-Lin Li's PSGD. The old spellings still parse to the current ones, with a warning each.
TEST(Spec, OldSpellingsOfSettingsValuesAndOptimizersParseToTheCurrentOnes) {
  auto document = testing::tiny_spec();
  document["optimizers"] = json::parse(R"([
    {"name": "shampoo", "hparams": {"epsilon": 1e-10, "grafting_epsilon": 1e-6, "start_preconditioning_step": -1}},
    {"name": "sngd", "hparams": {"root_method": "newton-schulz"}},
    {"name": "soap", "hparams": {"stat_decay": -1}},
    {"name": "psgd", "hparams": {"subspace_dim": 2}},
    {"name": "pbfgs", "hparams": {"subspace_dim": 2}}])");
  ::testing::internal::CaptureStderr();
  const auto spec = parse_spec(document, "spec.json");
  const auto warnings = ::testing::internal::GetCapturedStderr();
  const auto& shampoo = spec.runs[0].hparams;
  EXPECT_EQ(shampoo["eps"], 1e-10);
  EXPECT_EQ(shampoo["grafting_eps"], 1e-6);
  EXPECT_TRUE(shampoo["start_preconditioning_step"].is_null());
  EXPECT_FALSE(shampoo.contains("epsilon"));
  EXPECT_EQ(spec.runs[1].hparams["root_method"], "newton_schulz");
  EXPECT_TRUE(spec.runs[2].hparams["stat_decay"].is_null());
  EXPECT_EQ(spec.runs[3].optimizer, "dldr-psgd");
  EXPECT_EQ(spec.runs[4].optimizer, "dldr-pbfgs");
  for (const auto* old_name :
       {"\"epsilon\" is the old name of \"eps\"", "\"grafting_epsilon\" is the old name of \"grafting_eps\"",
        "-1 is the old name of null", "\"newton-schulz\" is the old name of \"newton_schulz\"",
        "optimizers[3].name: \"psgd\" is the old name of \"dldr-psgd\"", "\"pbfgs\" is the old name of \"dldr-pbfgs\""}) {
    EXPECT_NE(warnings.find(old_name), std::string::npos) << old_name << " not in:\n" << warnings;
  }
  // The current spellings are the only ones the settings accept besides: null or an integer.
  document["optimizers"] = json::parse(R"([{"name": "shampoo", "hparams": {"start_preconditioning_step": "soon"}}])");
  expect_rejected(document, {"optimizers[0].hparams.start_preconditioning_step", "expected null or an integer"});
  document["optimizers"] = json::parse(R"([{"name": "shampoo", "hparams": {"start_preconditioning_step": 0}}])");
  expect_rejected(document, {"optimizers[0].hparams.start_preconditioning_step", "expected a value ≥ 1"});
  // A tuning range over a null-default setting draws values of its declared type.
  document["optimizers"] = json::parse(
      R"([{"name": "soap", "tuning": {"space": {"stat_decay": {"uniform": [0.9, 0.99]}}, "trials": 2}},
          {"name": "shampoo", "tuning": {"space": {"start_preconditioning_step": {"uniform": [100, 200]}}, "trials": 2}}])");
  const auto tuned = parse_spec(document, "spec.json");
  ASSERT_EQ(tuned.runs.size(), 4u);
  EXPECT_TRUE(tuned.runs[0].hparams["stat_decay"].is_number_float()) << tuned.runs[0].hparams;
  EXPECT_TRUE(tuned.runs[2].hparams["start_preconditioning_step"].is_number_integer()) << tuned.runs[2].hparams;
  // -1 means "absent" only where the setting's default is null: kfac's stat_decay stays a number.
  document["optimizers"] = json::parse(R"([{"name": "kfac", "hparams": {"stat_decay": -1}}])");
  expect_rejected(document, {"optimizers[0].hparams.stat_decay", "expected a value"});
}

}  // namespace
}  // namespace ngd
