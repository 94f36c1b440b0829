// Checkpoints (harness/run/checkpoint.h, docs/checkpoints.md): a run resumed from a checkpoint ends with
// an uninterrupted run's numbers, bit for bit; a kill during a write leaves the previous checkpoint
// whole; a checkpoint of other settings or code is refused; SIGTERM writes one and exits 75.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "datasets/batch_loader.h"
#include "harness/run/checkpoint.h"
#include "harness/run/interrupt.h"
#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "optimizers/registry.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

RunnerOptions options_in(const std::string& out_dir, std::optional<CheckpointSettings> checkpoints = std::nullopt) {
  RunnerOptions options;
  options.out_dir = out_dir;
  options.progress = false;
  options.checkpoints = checkpoints;
  return options;
}

CheckpointSettings every(int64_t steps) {
  CheckpointSettings settings;
  settings.every_steps = steps;
  return settings;
}

// The run's checkpoint files under `out_dir`, by step.
std::map<int64_t, std::string> checkpoint_files(const std::string& out_dir, const RunConfig& run) {
  std::map<int64_t, std::string> files;
  const auto folder = fs::path(out_dir) / run.experiment;
  if (!fs::exists(folder)) return files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const auto name = entry.path().filename().string();
    const auto prefix = run.run_id() + ".step-";
    if (name.rfind(prefix, 0) == 0 && entry.path().extension() == ".ckpt") {
      files[std::stoll(name.substr(prefix.size(), 12))] = entry.path().string();
    }
  }
  return files;
}

// A checkpoint file's header (its second line).
json header_of(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::string magic, header;
  std::getline(file, magic);
  std::getline(file, header);
  return json::parse(header);
}

// Everything of a result file that does not depend on the clock, the machine's load or the allocator
// (the meta, times, step-time distributions, measured memory and the optimizer's report, which may hold
// times), for bitwise comparison; scripts/compare-results.py drops the same fields.
json numbers_of(json result) {
  for (auto& epoch : result["epochs"]) {
    for (const char* clock :
         {"train_time_s", "cumulative_train_time_s", "cpu_time_s", "load_average", "timing_suspect", "step_time_s"}) {
      epoch.erase(clock);
    }
  }
  for (const char* clock :
       {"meta", "phase_times_s", "time_to_target_s", "timing_suspect", "optimizer_report", "memory", "step_time_s"}) {
    result.erase(clock);
  }
  result["host_syncs"].erase("per_step");
  if (result.contains("model_cost")) result["model_cost"].erase("inference_s_per_eval_batch");
  return result;
}

json numbers_of(const RunResult& result) { return numbers_of(to_json(result)); }

// The tensors of two checkpoint files, equal bit for bit (names, shapes, values).
// Equal element by element, NaN equal to NaN (FNGD keeps NaN where a sample has no coefficients yet).
bool same_values(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  if (!a.is_floating_point()) return torch::equal(a, b);
  return ((a == b) | (a.isnan() & b.isnan())).all().item<bool>();
}

void expect_same_tensors(const RunConfig& run, const std::string& first_dir, const std::string& second_dir,
                         const nlohmann::json& producer) {
  RunCheckpoints first(run, first_dir, every(1), producer, true), second(run, second_dir, every(1), producer, true);
  const auto a = first.newest();
  const auto b = second.newest();
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->position.step, b->position.step);
  ASSERT_EQ(a->tensors.size(), b->tensors.size());
  for (const auto& [name, tensor] : a->tensors) {
    ASSERT_TRUE(b->tensors.count(name)) << name;
    EXPECT_TRUE(same_values(tensor, b->tensors.at(name))) << name;
  }
}

// Every registered optimizer on the tiny MLP: the CI suite's settings where it has an entry
// (experiments/ci/fmnist-3c1f.json), {"lr": 0.01} otherwise; 3 epochs of 8 steps, the subspace methods
// sampling for 2 of them so that their switch happens after the checkpoint.
RunConfig tiny_run_of(const std::string& optimizer) {
  std::ifstream file(testing::source_dir() + "/experiments/ci/fmnist-3c1f.json");
  const auto ci = json::parse(file);
  json entry = {{"name", optimizer}, {"hparams", {{"lr", 0.01}}}};
  for (const auto& listed : ci["optimizers"]) {
    if (listed["name"] == optimizer) entry = listed;
  }
  if (entry["hparams"].contains("sampling_epochs")) {
    entry["hparams"]["sampling_epochs"] = 2;
    entry["hparams"]["snapshots_per_epoch"] = 4;
    entry["hparams"]["subspace_dim"] = 6;
  }
  for (const char* grid_only : {"variant", "grid"}) entry.erase(grid_only);
  auto document = testing::tiny_spec();
  document["epochs"] = 3;
  document["optimizers"] = json::array({entry});
  return parse_spec(document, "tiny").runs.at(0);
}

class EveryOptimizerCheckpoint : public ::testing::TestWithParam<std::string> {};

// Train 10 steps (checkpoint at step 10, inside the second epoch; the prefetch worker holds batch 11),
// then a fresh train_run from that checkpoint alone, to the end: every epoch's metrics, the steps and
// host reads, and the whole state at the last checkpoint (weights, BatchNorm buffers, optimizer state,
// data order, generators) equal an uninterrupted run's; and checkpointing changes no number.
TEST_P(EveryOptimizerCheckpoint, ResumedRunEqualsTheUninterruptedRun) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  const auto run = tiny_run_of(GetParam());
  testing::TempDir plain_dir, whole_dir, resumed_dir;
  const auto plain = train_run(run, dataset, options_in(plain_dir.path()));
  ASSERT_NE(plain.status, "failed") << plain.error;
  const auto whole = train_run(run, dataset, options_in(whole_dir.path(), every(10)));
  ASSERT_EQ(whole.status, plain.status) << whole.error;
  EXPECT_EQ(numbers_of(whole), numbers_of(plain)) << "writing checkpoints changed the numbers";
  if (whole.epochs.empty() || whole.epochs.back().cumulative_steps < 20) GTEST_SKIP() << "diverged before step 20";
  // The whole run left its checkpoints at steps 10 and 20; the resumed one starts from step 10's.
  const auto written = checkpoint_files(whole_dir.path(), run);
  ASSERT_EQ(written.size(), 2u);
  ASSERT_EQ(written.begin()->first, 10);
  fs::create_directories(fs::path(resumed_dir.path()) / run.experiment);
  fs::copy_file(written.begin()->second,
                fs::path(resumed_dir.path()) / run.experiment / fs::path(written.begin()->second).filename());
  const auto resumed = train_run(run, dataset, options_in(resumed_dir.path(), every(10)));
  ASSERT_EQ(resumed.status, plain.status) << resumed.error;
  EXPECT_EQ(numbers_of(resumed), numbers_of(plain));
  EXPECT_EQ(resumed.meta["resumes"], 1);
  EXPECT_EQ(whole.meta["resumes"], 0);
  expect_same_tensors(run, whole_dir.path(), resumed_dir.path(), checkpoint_producer(whole.meta));
}

std::vector<std::string> optimizer_names() {
  std::vector<std::string> names;
  for (const auto& entry : optimizer_registry()) names.push_back(entry.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryOptimizerCheckpoint, ::testing::ValuesIn(optimizer_names()),
                         testing::registry_test_name);

// An epoch-end checkpoint (every 8 steps = one epoch) with a train-loss target checked inside epochs:
// the next epoch's reshuffle, the checks' window and the epoch records so far carry over.
TEST(Checkpoint, EpochEndCheckpointCarriesTheShuffleAndTheTargetWindow) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  auto document = testing::tiny_spec();
  document["epochs"] = 3;
  document["target"] = {{"metric", "train_loss"}, {"value", 0.01}, {"check_every_steps", 3}};
  const auto run = parse_spec(document, "tiny").runs.at(0);
  testing::TempDir plain_dir, whole_dir, resumed_dir;
  const auto plain = train_run(run, dataset, options_in(plain_dir.path()));
  ASSERT_EQ(plain.status, "completed") << plain.error;
  const auto whole = train_run(run, dataset, options_in(whole_dir.path(), every(8)));
  const auto written = checkpoint_files(whole_dir.path(), run);
  ASSERT_EQ(written.size(), 2u);  // after epochs 1 and 2
  EXPECT_EQ(header_of(written.begin()->second)["position"]["next_batch"], 0);
  EXPECT_EQ(header_of(written.begin()->second)["position"]["epoch"], 1);
  EXPECT_EQ(header_of(written.begin()->second)["epochs"].size(), 1u);
  fs::create_directories(fs::path(resumed_dir.path()) / run.experiment);
  fs::copy_file(written.begin()->second,
                fs::path(resumed_dir.path()) / run.experiment / fs::path(written.begin()->second).filename());
  const auto resumed = train_run(run, dataset, options_in(resumed_dir.path(), every(8)));
  ASSERT_EQ(resumed.status, "completed") << resumed.error;
  EXPECT_EQ(numbers_of(resumed), numbers_of(plain));
  // Times are the pieces' sums: the first epoch's time is the one the checkpoint recorded.
  EXPECT_EQ(resumed.epochs[0].train_time_s, header_of(written.begin()->second)["epochs"][0]["train_time_s"].get<double>());
}

// The loader resumed from a position gives the batches the original goes on to give, with and without
// prefetch, mid-epoch and across the next epoch's reshuffle.
TEST(Checkpoint, LoaderResumesTheBatchesBitForBit) {
  auto dataset = testing::synthetic_fashion_mnist(200, 20);
  dataset.augmentation.crop_padding = 2;  // draws from the augmentation generator every batch
  dataset.augmentation.horizontal_flip = true;
  for (const bool prefetch : {false, true}) {
    BatchLoader original(dataset, 32, 5, torch::kCPU, prefetch);
    original.start_epoch();
    for (int b = 0; b < 3; ++b) original.next();
    const auto position = original.position();
    BatchLoader resumed(dataset, 32, 5, torch::kCPU, !prefetch);
    resumed.resume(position);
    for (int epoch = 0; epoch < 2; ++epoch) {
      for (int64_t b = epoch == 0 ? 3 : 0; b < original.batches_per_epoch(); ++b) {
        const auto expected = original.next();
        const auto batch = resumed.next();
        EXPECT_TRUE(torch::equal(batch.images, expected.images)) << "prefetch " << prefetch << " epoch " << epoch << " batch " << b;
        EXPECT_TRUE(torch::equal(batch.sample_ids, expected.sample_ids));
      }
      original.start_epoch();
      resumed.start_epoch();
    }
  }
}

// A checkpoint of another configuration under this run's name, and one written by other code, are
// refused with a message, not loaded: the run fails saying so.
TEST(Checkpoint, OfAnotherSpecOrOtherCodeIsRefused) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  auto document = testing::tiny_spec();
  const auto run = parse_spec(document, "tiny").runs.at(0);
  document["optimizers"][0]["hparams"]["lr"] = 0.07;
  const auto other = parse_spec(document, "tiny").runs.at(0);
  ASSERT_NE(other.config_hash(), run.config_hash());
  testing::TempDir dir;
  const auto whole = train_run(other, dataset, options_in(dir.path(), every(5)));
  const auto written = checkpoint_files(dir.path(), other);
  ASSERT_FALSE(written.empty());
  fs::rename(written.rbegin()->second, checkpoint_path(dir.path(), run, written.rbegin()->first));
  const auto refused = train_run(run, dataset, options_in(dir.path(), every(5)));
  EXPECT_EQ(refused.status, "failed");
  EXPECT_NE(refused.error.find("a checkpoint of other settings"), std::string::npos) << refused.error;
  EXPECT_NE(refused.error.find(run.config_hash()), std::string::npos) << refused.error;

  auto producer = checkpoint_producer(whole.meta);
  RunCheckpoints same(other, dir.path(), every(5), producer, true);
  EXPECT_TRUE(same.newest().has_value());
  producer["git_commit"] = "0123456789ab";
  RunCheckpoints newer_code(other, dir.path(), every(5), producer, true);
  try {
    newer_code.newest();
    ADD_FAILURE() << "loaded a checkpoint of other code";
  } catch (const CheckpointRefused& error) {
    EXPECT_NE(std::string(error.what()).find("written by other code"), std::string::npos) << error.what();
  }
}

// A checkpoint cut short (a torn write on a file system without atomic rename) is skipped with a
// warning; the run resumes from the one before and still ends with the uninterrupted numbers.
TEST(Checkpoint, TornCheckpointIsSkippedForTheOneBefore) {
  const auto dataset = testing::synthetic_fashion_mnist(256, 64);
  const auto run = parse_spec(testing::tiny_spec(), "tiny").runs.at(0);
  testing::TempDir plain_dir, dir;
  const auto plain = train_run(run, dataset, options_in(plain_dir.path()));
  train_run(run, dataset, options_in(dir.path(), every(6)));
  const auto written = checkpoint_files(dir.path(), run);
  ASSERT_EQ(written.size(), 2u);  // steps 6 and 12
  fs::resize_file(written.rbegin()->second, fs::file_size(written.rbegin()->second) / 2);
  ::testing::internal::CaptureStderr();
  const auto resumed = train_run(run, dataset, options_in(dir.path(), every(6)));
  const auto warnings = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(warnings.find("skipped, not a whole checkpoint"), std::string::npos) << warnings;
  EXPECT_EQ(numbers_of(resumed), numbers_of(plain));
}

// Starts the CLI on `arguments`, stdout and stderr into `log`; returns its pid.
pid_t start_ngdbench(const std::vector<std::string>& arguments, const std::string& log) {
  const pid_t child = ::fork();
  if (child == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    std::vector<char*> argv = {const_cast<char*>("ngdbench")};
    for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    ::execv(testing::ngdbench_binary().c_str(), argv.data());
    ::_exit(127);
  }
  return child;
}

int exit_status_of(pid_t child) {
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A sweep of one run of a wide MLP (checkpoints of ~6 MB) on data written to a root, as the CLI runs it.
struct CliSweep {
  testing::TempDir root, work;
  std::string spec_path = work.file("wide.json");
  RunConfig run;
  explicit CliSweep(int64_t epochs, int64_t train_size) {
    testing::write_synthetic_fashion_mnist(root.path(), train_size, 64);
    auto document = testing::tiny_spec();
    document["name"] = "wide";
    document["model"]["hidden"] = {2048};
    document["epochs"] = epochs;
    std::ofstream(spec_path) << document.dump();
    run = load_spec(spec_path).runs.at(0);
  }
  std::vector<std::string> arguments(const std::string& out, std::vector<std::string> extra) const {
    std::vector<std::string> all = {"run", spec_path, "--out", out, "--data-root", root.path(), "--threads", "1", "--quiet"};
    all.insert(all.end(), extra.begin(), extra.end());
    return all;
  }
  json result(const std::string& out) const {
    std::ifstream file(result_path(out, run));
    return json::parse(file);
  }
};

// kill -9 while a checkpoint is being written, three times over: every checkpoint file left under its
// own name reads back whole (the newest one included), and the run finished from them equals an
// uninterrupted one.
TEST(Checkpoint, KillDuringCheckpointWriteLeavesThePreviousCheckpointWhole) {
  CliSweep sweep(2, 512);
  const auto out = sweep.work.file("out"), plain_out = sweep.work.file("plain"), log = sweep.work.file("log");
  ASSERT_EQ(exit_status_of(start_ngdbench(sweep.arguments(plain_out, {}), log)), 0) << testing::read_file(log);
  for (int kill = 0; kill < 3; ++kill) {
    // Once this try has written a checkpoint, writes (each a few MB, flushed) fill most of its time.
    const auto newest_step = [&] {
      const auto files = checkpoint_files(out, sweep.run);
      return files.empty() ? int64_t{0} : files.rbegin()->first;
    };
    const int64_t previous = newest_step();
    const pid_t child = start_ngdbench(sweep.arguments(out, {"--checkpoint-every-steps", "1"}), log);
    const auto started = std::chrono::steady_clock::now();
    while (newest_step() <= previous && std::chrono::steady_clock::now() - started < std::chrono::seconds(60)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + 17 * kill));
    ::kill(child, SIGKILL);
    ASSERT_EQ(exit_status_of(child), 128 + SIGKILL) << "the run ended before the kill: " << testing::read_file(log);
    const auto files = checkpoint_files(out, sweep.run);
    ASSERT_FALSE(files.empty());
    RunCheckpoints checkpoints(sweep.run, out, every(1), header_of(files.rbegin()->second)["producer"], true);
    ::testing::internal::CaptureStderr();
    const auto newest = checkpoints.newest();
    const auto warnings = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(newest.has_value());
    EXPECT_EQ(newest->position.step, files.rbegin()->first) << "the newest checkpoint file is torn: " << warnings;
    EXPECT_TRUE(warnings.empty()) << warnings;
  }
  ASSERT_EQ(exit_status_of(start_ngdbench(sweep.arguments(out, {"--checkpoints"}), log)), 0) << testing::read_file(log);
  EXPECT_EQ(numbers_of(sweep.result(out)), numbers_of(sweep.result(plain_out)));
  EXPECT_GE(sweep.result(out)["meta"]["resumes"].get<int>(), 1);
  EXPECT_TRUE(checkpoint_files(out, sweep.run).empty()) << "a finished run's checkpoints are removed";
}

// Waits until the sweep `child` writes into `out` has made the experiment's folder, just before its run
// trains (check_writable_folder); fails the test if it exits first.
void wait_for_training(pid_t child, const std::string& out) {
  while (!fs::exists(fs::path(out) / "wide")) {
    ASSERT_NE(::waitpid(child, nullptr, WNOHANG), child) << "the sweep ended before training";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// SIGTERM while the run trains (one long epoch): the step ends, a checkpoint inside the epoch is
// written, the process exits with 75 and no result; the same command then finishes the run with the
// uninterrupted numbers. Without checkpoints SIGTERM keeps ending the process at once (143).
TEST(Checkpoint, SigtermMidEpochWritesACheckpointAndExits75) {
  CliSweep sweep(1, 4096);
  const auto out = sweep.work.file("out"), plain_out = sweep.work.file("plain"), log = sweep.work.file("log");
  const pid_t child = start_ngdbench(sweep.arguments(out, {"--checkpoints"}), log);
  wait_for_training(child, out);
  ::kill(child, SIGTERM);
  ASSERT_EQ(exit_status_of(child), kExitCheckpointed) << testing::read_file(log);
  const auto message = testing::read_file(log);
  EXPECT_NE(message.find("SIGTERM: writing a checkpoint after the current step"), std::string::npos) << message;
  EXPECT_NE(message.find("run the same command again to resume"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(result_path(out, sweep.run)));
  const auto files = checkpoint_files(out, sweep.run);
  ASSERT_EQ(files.size(), 1u);
  const auto position = header_of(files.begin()->second)["position"];
  EXPECT_EQ(position["epoch"], 0);
  EXPECT_GT(position["next_batch"].get<int64_t>(), 0) << "inside the epoch";
  EXPECT_LT(position["next_batch"].get<int64_t>(), position["steps_per_epoch"].get<int64_t>());

  ASSERT_EQ(exit_status_of(start_ngdbench(sweep.arguments(out, {"--checkpoints"}), log)), 0) << testing::read_file(log);
  ASSERT_EQ(exit_status_of(start_ngdbench(sweep.arguments(plain_out, {}), log)), 0) << testing::read_file(log);
  EXPECT_EQ(numbers_of(sweep.result(out)), numbers_of(sweep.result(plain_out)));
  EXPECT_EQ(sweep.result(out)["meta"]["resumes"], 1);

  const pid_t unchecked = start_ngdbench(sweep.arguments(sweep.work.file("unchecked"), {}), log);
  wait_for_training(unchecked, sweep.work.file("unchecked"));
  ::kill(unchecked, SIGTERM);
  EXPECT_EQ(exit_status_of(unchecked), 128 + SIGTERM);
}

// The "checkpoint" block is read, checked, and no part of a run's identity.
TEST(Checkpoint, SpecBlockIsParsedCheckedAndOutsideTheIdentity) {
  auto document = testing::tiny_spec();
  const auto plain = parse_spec(document, "tiny");
  EXPECT_FALSE(plain.checkpoint.has_value());
  document["checkpoint"] = {{"every_steps", 100}, {"keep", true}};
  const auto spec = parse_spec(document, "tiny");
  ASSERT_TRUE(spec.checkpoint.has_value());
  EXPECT_EQ(spec.checkpoint->every_steps, 100);
  EXPECT_TRUE(spec.checkpoint->keep);
  EXPECT_FALSE(spec.checkpoint->at_epoch_end);
  EXPECT_EQ(spec.runs.at(0).config_hash(), plain.runs.at(0).config_hash());
  document["checkpoint"] = {{"every_steps", -1}};
  EXPECT_NE(testing::spec_error(document).find("checkpoint.every_steps"), std::string::npos) << testing::spec_error(document);
  document["checkpoint"] = {{"every_step", 5}};
  EXPECT_NE(testing::spec_error(document).find("checkpoint.every_step"), std::string::npos) << testing::spec_error(document);
}

}  // namespace
}  // namespace ngd
