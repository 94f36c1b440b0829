// Spec input at and beyond the limits of harness/spec/spec_input.h, and values outside the ranges the
// registries declare: each is refused when the spec is parsed, with the file and JSON path, in
// bounded memory and without recursion.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "base/spec_error.h"
#include "harness/spec/spec.h"
#include "harness/spec/spec_input.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

// The message parse_spec_text throws for `text` ("" when it parses).
std::string text_error(const std::string& text) {
  try {
    parse_spec_text(text, "spec.json");
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

std::string document_error(const json& document) { return text_error(document.dump()); }

void expect_message_has(const std::string& message, const std::vector<std::string>& parts) {
  ASSERT_FALSE(message.empty()) << "accepted";
  for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message.substr(0, 2000);
}

// tiny_spec's text with `value` (JSON text) as its description.
std::string with_description(const std::string& value) {
  auto text = testing::tiny_spec().dump();
  return text.substr(0, text.size() - 1) + ",\"description\":" + value + "}";
}

TEST(SpecLimits, DeeplyNestedValueIsRefusedWithItsPathNotACrash) {
  // 10⁵ levels used to overflow the stack while the error message printed the value.
  const size_t depth = 100000;
  expect_message_has(text_error(with_description(std::string(depth, '[') + std::string(depth, ']'))),
                     {"spec.json: description", "nested deeper than 64 levels"});
  expect_message_has(text_error(with_description(std::string(depth, '[') + "{\"a\":" + std::string(depth, ']'))),
                     {"nested deeper than 64 levels"});  // unbalanced: stopped by the depth first
  // Within the limit, the value is an ordinary wrong type, echoed abbreviated.
  const size_t allowed = kMaxSpecDepth - 1;
  const auto message = text_error(with_description(std::string(allowed, '[') + std::string(allowed, ']')));
  expect_message_has(message, {"spec.json: description: expected a string"});
}

TEST(SpecLimits, OversizedSpecIsRefusedBeforeItIsRead) {
  expect_message_has(text_error(std::string(kMaxSpecBytes + 1, ' ')), {"spec.json: $:", "more than the 1024 KiB"});
  try {
    load_spec("/dev/zero");  // endless: read up to the limit only
    FAIL();
  } catch (const std::runtime_error& error) {
    expect_message_has(error.what(), {"/dev/zero: larger than the 1024 KiB"});
  }
}

TEST(SpecLimits, CannotOpenSaysWhy) {
  testing::TempDir dir;
  const auto loop = dir.file("loop.json");
  std::filesystem::create_symlink(loop, loop);
  const auto expect_reason = [](const std::string& path, const std::string& reason) {
    try {
      load_spec(path);
      FAIL() << path;
    } catch (const std::runtime_error& error) {
      expect_message_has(error.what(), {path + ": cannot", reason});
    }
  };
  expect_reason(dir.file("absent.json"), std::strerror(ENOENT));
  expect_reason(loop, std::strerror(ELOOP));
  expect_reason(dir.path(), std::strerror(EISDIR));
}

TEST(SpecLimits, RepeatedKeysAreRefusedWithTheirPath) {
  auto text = testing::tiny_spec().dump();
  expect_message_has(text_error("{\"name\": \"a\", " + text.substr(1)), {"spec.json: name: the same key twice"});
  expect_message_has(text_error(R"({"optimizers": [{"name": "sgd"}, {"hparams": {"lr": 0.1, "lr": 0.2}}]})"),
                     {"spec.json: optimizers[1].hparams.lr: the same key twice"});
  expect_message_has(text_error(R"([[1, {"a": 1}], {"b": {"c": [0, {"d": 1, "d": 2}]}}])"),
                     {"spec.json: [1].b.c[1].d: the same key twice"});
}

TEST(SpecLimits, GridBeyondTheRunLimitIsRefusedBeforeItIsExpanded) {
  auto document = testing::tiny_spec();
  json many = json::array();
  for (int i = 0; i < 1000; ++i) many.push_back(0.001 * (i + 1));
  document["optimizers"][0]["hparams"] = {{"lr", many}, {"weight_decay", many}};  // 10⁶ grid points
  expect_message_has(document_error(document),
                     {"spec.json: optimizers[0].hparams.weight_decay", "more than 10000 runs"});
  document["optimizers"][0]["hparams"] = {{"lr", many}};
  document["seeds"] = json::array();
  for (int seed = 0; seed < 11; ++seed) document["seeds"].push_back(seed);  // 11 000 runs
  expect_message_has(document_error(document), {"spec.json: optimizers[0]", "more than 10000 runs"});
  document["seeds"] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};  // 10 000: the limit itself is allowed
  EXPECT_EQ(parse_spec(document, "s").runs.size(), kMaxExpandedRuns);
}

TEST(SpecLimits, NamesThatAreNoFolderOfTheirOwnAreRefused) {
  const std::vector<std::string> names = {"..", ".", "a/b", "", "line\nbreak", std::string(kMaxNameBytes + 1, 'n')};
  for (const auto& name : names) {
    auto document = testing::tiny_spec();
    document["name"] = name;
    expect_message_has(document_error(document), {"spec.json: name:", "results folder"});
  }
  auto document = testing::tiny_spec();
  document["scales"] = {{"..", {{"epochs", 1}}}};
  expect_message_has(document_error(document), {"spec.json: scales...: a scale name is \".\" or \"..\""});
}

TEST(SpecLimits, TheSameRunTwiceIsRefused) {
  auto document = testing::tiny_spec();
  document["optimizers"] = json::parse(R"([{"name": "sgd", "hparams": {"lr": 0.05}},
                                           {"name": "adamw"},
                                           {"name": "sgd", "hparams": {"lr": 0.05, "momentum": 0.9}}])");
  expect_message_has(document_error(document), {"spec.json: optimizers[2]", "repeats the configuration of optimizers[0]"});
  document["optimizers"] = json::parse(R"([{"name": "sgd", "hparams": {"lr": [0.1, 0.1]}}])");
  expect_message_has(document_error(document), {"spec.json: optimizers[0]", "repeats the configuration of optimizers[0]"});
  document = testing::tiny_spec();
  document["seeds"] = {0, 1, 0};
  expect_message_has(document_error(document), {"spec.json: seeds[2]: seed 0 is listed twice"});
}

TEST(SpecLimits, HugeNamesAreEchoedAbbreviated) {
  const std::string huge(1000000, 'x');
  std::vector<json> documents;
  for (const auto& pointer : {"/optimizers/0/name", "/dataset/name", "/model/name", "/optimizers/0/schedule"}) {
    auto document = testing::tiny_spec();
    document[json::json_pointer(pointer)] = std::string(pointer) == "/optimizers/0/schedule" ? json{{"name", huge}}
                                                                                              : json(huge);
    documents.push_back(document);
  }
  auto unknown_key = testing::tiny_spec();
  unknown_key["optimizers"][0]["hparams"][huge] = 1;
  documents.push_back(unknown_key);
  auto wrong_type = testing::tiny_spec();
  wrong_type["epochs"] = huge;
  documents.push_back(wrong_type);
  auto scale = testing::tiny_spec();
  scale["scales"] = {{"cpu", {{"epochs", 1}}}, {"x" + huge, {{"epochs", 1}}}};
  documents.push_back(scale);
  for (const auto& document : documents) {
    const auto message = document_error(document);
    ASSERT_FALSE(message.empty());
    EXPECT_LT(message.size(), 3 * kMaxShownChars + 300) << message.substr(0, 500);
  }
  EXPECT_LT(text_error(huge).size(), 3 * kMaxShownChars + 300);  // a syntax error echoes what it read
}

TEST(SpecLimits, ValuesOutsideTheirDeclaredRangeAreRefusedAtParseTime) {
  struct Case {
    const char* optimizer;
    const char* pointer;
    json value;
    const char* path;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"kfac", "/optimizers/0/hparams/damping", -1, "optimizers[0].hparams.damping", "expected a value > 0, got -1"},
      {"sgd", "/optimizers/0/hparams/lr", -0.1, "optimizers[0].hparams.lr", "≥ 0, got -0.1"},
      {"sgd", "/optimizers/0/hparams/weight_decay", -1e-4, "optimizers[0].hparams.weight_decay", "≥ 0"},
      {"sgd", "/optimizers/0/hparams/momentum", 1.0, "optimizers[0].hparams.momentum", "in [0, 1), got 1.0"},
      {"adamw", "/optimizers/0/hparams/beta2", 1.0, "optimizers[0].hparams.beta2", "in [0, 1)"},
      {"kfac", "/optimizers/0/hparams/inverse_interval", 0, "optimizers[0].hparams.inverse_interval", "≥ 1, got 0"},
      {"sgd", "/model/hidden", json::array({16, 0}), "model.hidden[1]", "≥ 1, got 0"},
      {"sgd", "/model/rank", -2, "model.rank", "in [0, 1048576], got -2"},
      // A rank whose weight count overflowed int64 ("Storage size calculation overflowed" mid-run).
      {"sgd", "/model/rank", int64_t{4600000000000000000}, "model.rank", "in [0, 1048576], got 4600000000000000000"},
      // Decay factors are applied in float32: one beyond FLT_MAX failed mid-run ("cannot be converted
      // to type float without overflow").
      {"sgd", "/optimizers/0/schedule", json{{"name", "step"}, {"gamma", 1e308}}, "optimizers[0].schedule.gamma",
       "in [0, 3.40282"},
      {"sgd", "/optimizers/0/schedule", json{{"name", "multistep"}, {"gamma", 1e39}}, "optimizers[0].schedule.gamma",
       "in [0, 3.40282"},
      {"sgd", "/optimizers/0/schedule", json{{"name", "step"}, {"gamma", -0.5}}, "optimizers[0].schedule.gamma",
       "in [0, 3.40282"},
      {"sgd", "/optimizers/0/schedule", json{{"name", "step"}, {"step_size", 0}}, "optimizers[0].schedule.step_size",
       "≥ 1, got 0"},
      {"sgd", "/optimizers/0/schedule", json{{"name", "multistep"}, {"milestones", {3, -1}}},
       "optimizers[0].schedule.milestones[1]", "≥ 0"},
      {"sgd", "/dataset/std", json::array({0.0}), "dataset.std[0]", "> 0, got 0.0"},
      {"sgd", "/optimizers/0/hparams/lr", json::array({0.1, -1}), "optimizers[0].hparams.lr[1]", "≥ 0, got -1"},
  };
  for (const auto& test : cases) {
    auto document = testing::tiny_spec();
    document["optimizers"][0] = {{"name", test.optimizer}};
    document[json::json_pointer(test.pointer)] = test.value;
    expect_message_has(document_error(document), {std::string("spec.json: ") + test.path + ": ", test.expected});
  }
  auto document = testing::tiny_spec();  // the ends of a half-open range
  document["optimizers"][0]["hparams"] = {{"momentum", 0.0}, {"weight_decay", 0.0}, {"lr", 0.0}};
  EXPECT_EQ(document_error(document), "");
  auto largest = testing::tiny_spec();  // the closed upper ends: the largest rank and decay factor
  largest["model"]["rank"] = 1048576;
  largest["optimizers"][0]["schedule"] = {{"name", "step"}, {"gamma", 3.4028234663852886e+38}};
  EXPECT_EQ(document_error(largest), "");
}

}  // namespace
}  // namespace ngd
