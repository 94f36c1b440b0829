#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "harness/spec/shard.h"
#include "harness/spec/spec.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;

std::string parse_error(const std::string& text) {
  try {
    parse_shard(text);
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

TEST(Shard, ParsesKOfN) {
  const auto shard = parse_shard("3/7");
  EXPECT_EQ(shard.index, 3);
  EXPECT_EQ(shard.count, 7);
  EXPECT_EQ(parse_shard("1/1").count, 1);
}

TEST(Shard, RejectsBadShardsWithTheReason) {
  EXPECT_NE(parse_error("3/2").find("--shard 3/2: K must be between 1 and N=2"), std::string::npos) << parse_error("3/2");
  EXPECT_NE(parse_error("0/4").find("shards are numbered from 1"), std::string::npos) << parse_error("0/4");
  EXPECT_NE(parse_error("1/0").find("N (the number of shards) must be at least 1"), std::string::npos);
  for (const auto* text : {"", "2", "2/", "/4", "a/4", "-1/4", "1/4/2", "1.5/4", "99999999999/1"}) {
    EXPECT_NE(parse_error(text).find("expected K/N"), std::string::npos) << text << ": " << parse_error(text);
  }
}

// A random valid spec: 1-4 seeds, 1-3 optimizer entries, each with a learning-rate axis of 1-4 values.
json random_spec(std::mt19937& random, int number) {
  auto document = testing::tiny_spec();
  document["name"] = "spec" + std::to_string(number);
  document["seeds"] = json::array();
  const int seeds = std::uniform_int_distribution<int>(1, 4)(random);
  for (int s = 0; s < seeds; ++s) document["seeds"].push_back(s * 7 + number);
  document["optimizers"] = json::array();
  const int optimizers = std::uniform_int_distribution<int>(1, 3)(random);
  for (int o = 0; o < optimizers; ++o) {
    json rates = json::array();
    const int points = std::uniform_int_distribution<int>(1, 4)(random);
    for (int p = 0; p < points; ++p) rates.push_back(0.001 * (p + 1) + 0.1 * o);  // distinct over all entries
    document["optimizers"].push_back({{"name", o % 2 == 0 ? "sgd" : "adamw"}, {"hparams", {{"lr", rates}}}});
  }
  return document;
}

std::string key(const RunConfig& run) { return run.experiment + "/" + run.run_id(); }

// Property: for any specs and any N, the N shards are disjoint, together hold every run exactly once,
// keep each spec's order, and differ in size by at most one run.
TEST(Shard, ShardsPartitionEveryRunExactlyOnce) {
  std::mt19937 random(12345);
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<Spec> specs;
    const int spec_count = std::uniform_int_distribution<int>(1, 3)(random);
    std::multiset<std::string> all;
    for (int s = 0; s < spec_count; ++s) {
      specs.push_back(parse_spec(random_spec(random, s), "spec" + std::to_string(s)));
      for (const auto& run : specs.back().runs) all.insert(key(run));
    }
    ASSERT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size()) << "run ids must be unique";
    const int64_t count = std::uniform_int_distribution<int64_t>(1, static_cast<int64_t>(all.size()) + 3)(random);
    std::multiset<std::string> covered;
    size_t smallest = all.size(), largest = 0;
    for (int64_t index = 1; index <= count; ++index) {
      const auto shard = shard_specs(specs, {index, count});
      ASSERT_EQ(shard.size(), specs.size());
      size_t size = 0;
      for (size_t s = 0; s < shard.size(); ++s) {
        EXPECT_EQ(shard[s].name, specs[s].name);
        // In spec order: each kept run appears later in the spec than the one before it.
        size_t position = 0;
        for (const auto& run : shard[s].runs) {
          while (position < specs[s].runs.size() && key(specs[s].runs[position]) != key(run)) ++position;
          ASSERT_LT(position, specs[s].runs.size()) << key(run) << " out of order or not in its spec";
          covered.insert(key(run));
          ++size;
        }
      }
      smallest = std::min(smallest, size);
      largest = std::max(largest, size);
    }
    EXPECT_EQ(covered, all) << "trial " << trial << ", " << count << " shards";  // union = all, each once
    EXPECT_LE(largest - smallest, 1u) << "trial " << trial;
  }
}

TEST(Shard, OneShardIsTheWholeSweep) {
  std::mt19937 random(7);
  const auto spec = parse_spec(random_spec(random, 0), "spec0");
  const auto shard = shard_specs({spec}, {1, 1});
  ASSERT_EQ(shard[0].runs.size(), spec.runs.size());
  for (size_t i = 0; i < spec.runs.size(); ++i) EXPECT_EQ(key(shard[0].runs[i]), key(spec.runs[i]));
}

// Runs that share one training (their compression blocks differ only after training) go to one shard,
// so that it trains once; a run without a block is a group of its own.
TEST(Shard, RunsSharingATrainingGoToOneShard) {
  auto document = testing::tiny_spec();
  document["seeds"] = {0, 1, 2};
  const json aware = {{"mode", "compression_aware"}, {"regularizer", {{"measure", "l1"}, {"weight", 0.001}}}};
  document["optimizers"] = json::array({{{"name", "sgd"}, {"hparams", {{"lr", 0.05}}}}});
  for (const double budget : {0.5, 0.25, 0.125}) {
    auto block = aware;
    block["rank_rule"] = {{"kind", "budget"}, {"value", budget}};
    document["optimizers"].push_back(
        {{"name", "sgd"}, {"variant", fmt::format("b{}", budget)}, {"hparams", {{"lr", 0.05}}}, {"compression", block}});
  }
  const auto spec = parse_spec(document, "tiny");
  ASSERT_EQ(spec.runs.size(), 12u);
  EXPECT_EQ(spec.runs[1].shared_training_id(), spec.runs[3].shared_training_id());
  EXPECT_NE(spec.runs[1].shared_training_id(), spec.runs[5].shared_training_id());  // another seed
  EXPECT_EQ(spec.runs[0].shared_training_id(), "");
  std::multiset<std::string> covered;
  for (int64_t index = 1; index <= 2; ++index) {
    std::set<std::string> trainings;
    const auto shard = shard_specs({spec}, {index, 2});
    for (const auto& run : shard[0].runs) {
      covered.insert(key(run));
      if (!run.shared_training_id().empty()) trainings.insert(run.shared_training_id());
    }
    // 3 seeds × (1 plain run + 1 group) = 6 groups, 3 to a shard, in order: plain, group, plain, ...
    EXPECT_EQ(trainings.size(), index == 1 ? 0u : 3u) << "shard " << index;
  }
  std::multiset<std::string> all;
  for (const auto& run : spec.runs) all.insert(key(run));
  EXPECT_EQ(covered, all);
}

int run_command(const std::string& arguments, const std::string& output) {
  return WEXITSTATUS(std::system((testing::ngdbench_binary() + " " + arguments + " > " + output + " 2>&1").c_str()));
}

TEST(ShardCli, WorkersSharingAFolderCoverTwoSpecsExactlyOnce) {
  testing::TempDir root, work;
  testing::write_synthetic_fashion_mnist(root.path(), 64, 32);
  std::string specs;
  for (const auto* name : {"first", "second"}) {
    auto document = testing::tiny_spec();
    document["name"] = name;
    document["epochs"] = 1;
    document["seeds"] = {0, 1};
    std::ofstream(work.file(std::string(name) + ".json")) << document.dump();
    specs += " " + work.file(std::string(name) + ".json");
  }
  const auto out = work.file("out");
  for (int k = 1; k <= 3; ++k) {
    const auto log = work.file("log" + std::to_string(k));
    ASSERT_EQ(run_command("run" + specs + " --quiet --threads 1 --out " + out + " --data-root " + root.path() +
                              " --shard " + std::to_string(k) + "/3",
                          log),
              0)
        << testing::read_file(log);
    const auto expected = fmt::format("shard {}/3: {} of the sweep's 4 runs", k, k == 1 ? 2 : 1);
    EXPECT_NE(testing::read_file(log).find(expected), std::string::npos) << testing::read_file(log);
  }
  size_t files = 0;
  for (const auto* name : {"first", "second"}) {
    for (const auto& entry : std::filesystem::directory_iterator(out + "/" + name)) {
      EXPECT_EQ(entry.path().extension(), ".json") << entry.path();  // no temporaries left behind
      ++files;
    }
  }
  EXPECT_EQ(files, 4u);
}

TEST(ShardCli, BadShardExitsWithTwoAndSaysWhy) {
  testing::TempDir work;
  std::ofstream(work.file("tiny.json")) << testing::tiny_spec().dump();
  const auto log = work.file("log");
  EXPECT_EQ(run_command("run " + work.file("tiny.json") + " --dry-run --shard 3/2", log), 2);
  EXPECT_NE(testing::read_file(log).find("error: --shard 3/2: K must be between 1 and N=2"), std::string::npos)
      << testing::read_file(log);
}

TEST(SlurmCli, WritesTheScriptAndSaysHowToSubmitAndReport) {
  testing::TempDir work;
  std::ofstream(work.file("tiny.json")) << testing::tiny_spec().dump();
  const auto out = work.file("results");
  const auto log = work.file("log");
  ASSERT_EQ(run_command("slurm " + work.file("tiny.json") + " --out " + out +
                            " --shards 3 --gpus-per-task 1 --cpus-per-task 4 --partition gpu --time 1:00:00",
                        log),
            0)
      << testing::read_file(log);
  const auto printed = testing::read_file(log);
  EXPECT_NE(printed.find("sbatch " + out + "/ngdbench.sbatch\n"), std::string::npos) << printed;
  EXPECT_NE(printed.find("make tables OUT=" + out + "\n"), std::string::npos) << printed;
  const auto script = testing::read_file(out + "/ngdbench.sbatch");
  for (const auto* line : {"#SBATCH --array=1-3\n", "#SBATCH --partition=gpu\n", "#SBATCH --gpus-per-task=1\n",
                           "#SBATCH --time=1:00:00\n", "--shard \"${SLURM_ARRAY_TASK_ID}/3\"",
                           "--device cuda --threads 4 --scale paper --quiet\n"}) {
    EXPECT_NE(script.find(line), std::string::npos) << line << " missing from\n" << script;
  }
  EXPECT_TRUE(std::filesystem::is_directory(out + "/slurm-logs"));
  // A bad spec fails now, not in every queued task.
  auto document = testing::tiny_spec();
  document["epochs"] = 0;
  std::ofstream(work.file("bad.json")) << document.dump();
  EXPECT_EQ(run_command("slurm " + work.file("bad.json") + " --out " + out + " --shards 2", log), 2);
  EXPECT_NE(testing::read_file(log).find("bad.json: epochs"), std::string::npos) << testing::read_file(log);
}

}  // namespace
}  // namespace ngd
