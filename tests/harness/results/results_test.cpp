#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "base/atomic_file.h"
#include "harness/results/results.h"
#include "harness/spec/spec.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

using testing::read_file;

std::vector<std::string> result_files(const std::string& folder) {
  std::vector<std::string> files;
  if (!fs::exists(folder)) return files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(AtomicWrite, ReplacesContentAndLeavesNoTemporary) {
  testing::TempDir dir;
  const auto path = dir.file("sub/result.json");
  write_file_atomically(path, "first");
  write_file_atomically(path, "second");
  EXPECT_EQ(read_file(path), "second");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.file("sub")), fs::directory_iterator()), 1);
}

TEST(AtomicWrite, KilledWriterLeavesOldOrNewContentNeverAPart) {
  testing::TempDir dir;
  const auto path = dir.file("result.json");
  const std::string old_content = R"({"version": "old"})";
  const std::string new_content = json{{"version", std::string(8 << 20, 'x')}}.dump();
  write_file_atomically(path, old_content);
  for (int attempt = 0; attempt < 4; ++attempt) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      while (true) write_file_atomically(path, new_content);  // killed mid-write by the parent
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(15 + 20 * attempt));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    const auto content = read_file(path);
    EXPECT_TRUE(content == old_content || content == new_content) << "partial file of " << content.size() << " bytes";
  }
}

// Files in `folder` left by an interrupted or failed atomic write.
std::vector<std::string> temporaries(const std::string& folder) {
  std::vector<std::string> found;
  if (!fs::exists(folder)) return found;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().filename().string().find(".tmp.") != std::string::npos) found.push_back(entry.path().string());
  }
  return found;
}

// The message of the std::runtime_error `action` throws ("" if it throws none).
template <class Action>
std::string error_of(Action action) {
  try {
    action();
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

TEST(AtomicWrite, FolderBelowARegularFileNamesPathAndReason) {
  testing::TempDir dir;
  std::ofstream(dir.file("plain")) << "x";
  const auto path = dir.file("plain/experiment/result.json");
  const auto message = error_of([&] { write_file_atomically(path, "{}"); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find(std::strerror(ENOTDIR)), std::string::npos) << message;
  EXPECT_EQ(read_file(dir.file("plain")), "x");
  const auto check = error_of([&] { check_writable_folder(dir.file("plain/experiment")); });
  EXPECT_NE(check.find(std::strerror(ENOTDIR)), std::string::npos) << check;
}

TEST(AtomicWrite, WritableFolderCheckLeavesTheFolderEmpty) {
  testing::TempDir dir;
  check_writable_folder(dir.file("new/experiment"));
  EXPECT_TRUE(fs::is_empty(dir.file("new/experiment")));
}

// A full disk, simulated by a file size limit (write fails with EFBIG as it would with ENOSPC) in a
// child process: the child reports the error message through a pipe.
TEST(AtomicWrite, FullDiskKeepsTheOldFileAndLeavesNoTemporary) {
  testing::TempDir dir;
  const auto path = dir.file("result.json");
  const std::string old_content = R"({"version": "old"})";
  write_file_atomically(path, old_content);
  int pipe_ends[2];
  ASSERT_EQ(::pipe(pipe_ends), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_ends[0]);
    ::signal(SIGXFSZ, SIG_IGN);  // over the limit, write() fails instead of killing the process
    const rlimit limit{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    const auto message = error_of([&] { write_file_atomically(path, std::string(1 << 16, 'x')); });
    const bool written = ::write(pipe_ends[1], message.data(), message.size()) == static_cast<ssize_t>(message.size());
    ::_exit(written && !message.empty() ? 0 : 1);
  }
  ::close(pipe_ends[1]);
  std::string message;
  char buffer[512];
  for (ssize_t count; (count = ::read(pipe_ends[0], buffer, sizeof buffer)) > 0;) message.append(buffer, count);
  ::close(pipe_ends[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the write did not fail: " << message;
  EXPECT_NE(message.find(path + ": write failed"), std::string::npos) << message;
  EXPECT_NE(message.find(std::strerror(EFBIG)), std::string::npos) << message;
  EXPECT_EQ(read_file(path), old_content);
  EXPECT_TRUE(temporaries(dir.path()).empty());
}

TEST(Resume, UnreadableOrForeignResultIsRerun) {
  testing::TempDir out;
  const auto run = parse_spec(testing::tiny_spec(), "tiny").runs[0];
  const auto path = result_path(out.path(), run);
  write_file_atomically(path, "{\"status\": \"compl");  // a file cut short by hand
  EXPECT_FALSE(load_finished_result(out.path(), run).has_value());
  write_file_atomically(path, json{{"status", "completed"}, {"identity", {{"other", 1}}}, {"seed", 0}}.dump());
  EXPECT_FALSE(load_finished_result(out.path(), run).has_value());
  // A result of the shape the runner writes (results.cpp checks it), with the status under test.
  const auto result_with_status = [&](const char* status) {
    return json{{"schema_version", kResultSchemaVersion}, {"experiment", run.experiment}, {"workload", "image"},
                {"status", status},          {"identity", run.identity()}, {"seed", run.seed},
                {"config_hash", run.config_hash()}, {"label", run.label()}, {"time_to_target_s", nullptr},
                {"epochs", json::array()}}
        .dump();
  };
  write_file_atomically(path, result_with_status("failed"));
  EXPECT_FALSE(load_finished_result(out.path(), run).has_value());  // failed runs are retried
  write_file_atomically(path, result_with_status("diverged"));
  EXPECT_TRUE(load_finished_result(out.path(), run).has_value());
}

TEST(Resume, AnOlderSchemaVersionStopsTheSweepNamingTheFileAndTheMigration) {
  testing::TempDir out;
  const auto run = parse_spec(testing::tiny_spec(), "tiny").runs[0];
  const auto path = result_path(out.path(), run);
  write_file_atomically(path, json{{"schema_version", 1}, {"status", "completed"}, {"identity", run.identity()},
                                   {"seed", run.seed}, {"config_hash", run.config_hash()}, {"label", run.label()},
                                   {"time_to_target_s", nullptr}, {"epochs", json::array()}}
                                  .dump());
  try {
    load_finished_result(out.path(), run);
    ADD_FAILURE() << "a schema_version 1 file was read";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(path + ": a schema_version 1 result file"), std::string::npos) << message;
    EXPECT_NE(message.find("scripts/migrate-results-v2.py " + out.path()), std::string::npos) << message;
  }
}

TEST(Resume, AChangedTargetIsMeasuredAgainOnTheStoredEpochsAndTheFileRewritten) {
  testing::TempDir out;
  auto document = testing::tiny_spec();
  document["target"] = {{"metric", "test_acc"}, {"value", 0.5}};
  const auto trained = parse_spec(document, "tiny").runs[0];
  const auto path = result_path(out.path(), trained);
  const auto epoch = [](int number, double test_acc) {
    return json{{"epoch", number}, {"train_loss", 1.0}, {"train_time_s", 1.5}, {"test_acc", test_acc},
                {"cumulative_train_time_s", 1.5 * number}, {"cumulative_steps", 10 * number}};
  };
  write_file_atomically(path, json{{"schema_version", kResultSchemaVersion}, {"experiment", trained.experiment},
                                   {"workload", "image"},
                                   {"status", "completed"}, {"identity", trained.identity()}, {"seed", trained.seed},
                                   {"config_hash", trained.config_hash()}, {"label", trained.label()},
                                   {"target", {{"metric", "test_acc"}, {"value", 0.5}}},
                                   {"time_to_target_s", 1.5}, {"epochs_to_target", 1}, {"steps_to_target", 10},
                                   {"epochs", {epoch(1, 0.6), epoch(2, 0.8), epoch(3, 0.7)}}}
                                  .dump());
  const auto loaded_with = [&](double value) {
    document["target"]["value"] = value;
    return load_finished_result(out.path(), parse_spec(document, "tiny").runs[0]).value();
  };
  EXPECT_EQ(loaded_with(0.5)["time_to_target_s"], 1.5);  // unchanged target: read back as it is
  const auto higher = loaded_with(0.75);
  EXPECT_EQ(higher["target"]["value"], 0.75);
  EXPECT_EQ(higher["time_to_target_s"], 3.0);
  EXPECT_EQ(higher["epochs_to_target"], 2);
  EXPECT_EQ(higher["steps_to_target"], 20);
  EXPECT_EQ(json::parse(read_file(path)), higher) << "rewritten for the report";
  const auto unreached = loaded_with(0.9);
  EXPECT_TRUE(unreached["time_to_target_s"].is_null());
  EXPECT_TRUE(unreached["steps_to_target"].is_null());
  EXPECT_EQ(unreached["epochs"].size(), 3u) << "nothing lost";
}

// Runs the CLI on `spec` into `out`; returns its exit status.
int run_cli(const std::string& spec, const std::string& out, const std::string& data_root) {
  const auto command = testing::ngdbench_binary() + " run " + spec + " --out " + out + " --data-root " + data_root +
                       " --threads 1 --quiet > /dev/null";
  return std::system(command.c_str());
}

// Starts the CLI on `spec` into `out` in a child process; returns its pid.
pid_t start_sweep(const std::string& spec, const std::string& out, const std::string& data_root) {
  const pid_t child = ::fork();
  if (child == 0) {
    ::execl(testing::ngdbench_binary().c_str(), "ngdbench", "run", spec.c_str(), "--out", out.c_str(), "--data-root",
            data_root.c_str(), "--threads", "1", "--quiet", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return child;
}

void kill_sweep(pid_t child) {
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

// Expects `resumed` to hold exactly the files of `complete`, each with identical metrics.
void expect_same_results(const std::string& complete, const std::string& resumed) {
  const auto expected_files = result_files(complete);
  EXPECT_EQ(result_files(resumed), expected_files);  // every run present, once
  for (const auto& name : expected_files) {
    const auto expected = json::parse(read_file(complete + "/" + name));
    const auto actual = json::parse(read_file(resumed + "/" + name));
    EXPECT_EQ(actual["status"], "completed");
    ASSERT_EQ(actual["epochs"].size(), expected["epochs"].size());
    for (size_t e = 0; e < expected["epochs"].size(); ++e) {
      for (const auto* metric : {"train_loss", "train_acc", "test_loss", "test_acc"}) {
        EXPECT_EQ(actual["epochs"][e][metric], expected["epochs"][e][metric]) << name << " " << metric;
      }
    }
  }
}

class KilledSweep : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_synthetic_fashion_mnist(root_.path(), 2000, 200);
    auto document = testing::tiny_spec();
    document["optimizers"][0]["hparams"]["lr"] = {0.01, 0.02, 0.03, 0.04, 0.05};
    std::ofstream(spec_) << document.dump();
    startup_ms_ = milliseconds_taken([&] {
      ASSERT_EQ(std::system((testing::ngdbench_binary() + " run " + spec_ + " --dry-run > /dev/null").c_str()), 0);
    });
    sweep_ms_ = milliseconds_taken([&] { ASSERT_EQ(run_cli(spec_, complete_, root_.path()), 0); });
    ASSERT_EQ(result_files(complete_ + "/tiny").size(), 5u);
  }
  template <class Action>
  static int milliseconds_taken(Action action) {
    const auto start = std::chrono::steady_clock::now();
    action();
    return static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
  }
  int startup_ms_ = 0;  // the CLI's start-up and exit (LibTorch loading, spec parsing), from a dry run
  int sweep_ms_ = 0;    // the uninterrupted sweep, start-up included
  testing::TempDir root_, work_;
  const std::string spec_ = work_.file("tiny.json");
  const std::string complete_ = work_.file("complete");
  const std::string resumed_ = work_.file("resumed");
};

TEST_F(KilledSweep, ResumesToTheUninterruptedResult) {
  // Kill the sweep once its first result is on disk.
  const pid_t child = start_sweep(spec_, resumed_, root_.path());
  while (result_files(resumed_ + "/tiny").empty()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill_sweep(child);
  const auto before = result_files(resumed_ + "/tiny");
  ASSERT_LT(before.size(), 5u) << "the sweep finished before it could be killed; the test needs longer runs";
  const auto first_written = json::parse(read_file(resumed_ + "/tiny/" + before[0]));

  ASSERT_EQ(run_cli(spec_, resumed_, root_.path()), 0);
  expect_same_results(complete_ + "/tiny", resumed_ + "/tiny");
  // The run finished before the kill was kept, not rerun.
  EXPECT_EQ(json::parse(read_file(resumed_ + "/tiny/" + before[0]))["meta"]["started_at"], first_written["meta"]["started_at"]);
}

TEST_F(KilledSweep, SurvivesKillsAtRandomPoints) {
  std::mt19937 random(12345);  // fixed: the kill points are random but the test is repeatable
  // Start-up and exit (loading and unloading LibTorch) take most of a sweep this small, so a delay
  // from the start would rarely land in training. Each kill instead waits until this attempt has
  // finished a random number of runs (at least one, at most three, so two remain), then a random
  // part of half a run's time.
  const int run_ms = std::max(2, (sweep_ms_ - startup_ms_) / 5);
  std::uniform_int_distribution<int> extra_ms(0, run_ms / 2);
  int mid_sweep_kills = 0;  // kills that left some results but not all
  std::string counts;       // results after each kill, for the failure message
  for (int kill = 0; kill < 4; ++kill) {
    const size_t finished = result_files(resumed_ + "/tiny").size();
    if (finished >= 3) break;
    const size_t wait_for = std::uniform_int_distribution<size_t>(finished + 1, 3)(random);
    const pid_t child = start_sweep(spec_, resumed_, root_.path());
    bool exited = false;  // on its own (it should not before the last result): nothing to kill
    while (!exited && result_files(resumed_ + "/tiny").size() < wait_for) {
      exited = ::waitpid(child, nullptr, WNOHANG) == child;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_FALSE(exited) << "the sweep ended before writing " << wait_for << " results";
    std::this_thread::sleep_for(std::chrono::milliseconds(extra_ms(random)));
    kill_sweep(child);
    const auto files = result_files(resumed_ + "/tiny");
    mid_sweep_kills += !files.empty() && files.size() < 5 ? 1 : 0;
    counts += " " + std::to_string(files.size());
    for (const auto& name : files) {
      EXPECT_NO_THROW(json::parse(read_file(resumed_ + "/tiny/" + name))) << name << " is corrupt after kill " << kill;
    }
  }
  EXPECT_GT(mid_sweep_kills, 0) << "no kill landed between the first result and the last; results after each kill:"
                                << counts << ", run_ms " << run_ms;
  ASSERT_EQ(run_cli(spec_, resumed_, root_.path()), 0);
  expect_same_results(complete_ + "/tiny", resumed_ + "/tiny");
}

TEST(Cli, BadSpecExitsWithTwoAndNamesFileAndPath) {
  testing::TempDir work;
  auto document = testing::tiny_spec();
  document["optimizers"][0]["hparams"]["lrr"] = 0.1;
  const auto spec_path = work.file("bad.json");
  std::ofstream(spec_path) << document.dump();
  const auto log = work.file("log");
  const auto command = testing::ngdbench_binary() + " run " + spec_path + " --dry-run 2> " + log;
  EXPECT_EQ(WEXITSTATUS(std::system(command.c_str())), 2);
  const auto message = read_file(log);
  EXPECT_NE(message.find("bad.json: optimizers[0].hparams.lrr"), std::string::npos) << message;
}

TEST(Cli, UnwritableResultsFolderIsAClearErrorAndWritesNothing) {
  testing::TempDir root, work;
  testing::write_synthetic_fashion_mnist(root.path(), 64, 32);
  const auto spec_path = work.file("tiny.json");
  std::ofstream(spec_path) << testing::tiny_spec().dump();
  std::ofstream(work.file("not-a-folder")) << "x";  // results would have to go below a regular file
  const auto log = work.file("log");
  const auto command = testing::ngdbench_binary() + " run " + spec_path + " --quiet --out " + work.file("not-a-folder") +
                       " --data-root " + root.path() + " 2> " + log + " > /dev/null";
  EXPECT_EQ(WEXITSTATUS(std::system(command.c_str())), 1);
  const auto message = read_file(log);
  EXPECT_NE(message.find("error: tiny:"), std::string::npos) << message;
  EXPECT_NE(message.find("not-a-folder"), std::string::npos) << message;
  EXPECT_EQ(read_file(work.file("not-a-folder")), "x");
}

TEST(Cli, MissingDatasetSkipsTheSpecWithOneLineSayingWhereItLookedAndHowToFetch) {
  testing::TempDir empty, work;
  const auto spec_path = work.file("tiny.json");
  auto document = testing::tiny_spec();
  document["dataset"] = {{"name", "cifar10"}};  // in none of the roots once NGDBENCH_DATA is unset
  document["model"] = {{"name", "cnn"}};
  std::ofstream(spec_path) << document.dump();
  const auto out = work.file("stdout");
  ::unsetenv("NGDBENCH_DATA");
  const auto command = testing::ngdbench_binary() + " run " + spec_path + " --out " + work.file("out") +
                       " --data-root " + empty.path() + " > " + out;
  EXPECT_EQ(std::system(command.c_str()), 0);  // a skipped spec is not a failure (README: exit status)
  const auto output = read_file(out);
  const auto line_start = output.find("skipped tiny: dataset 'cifar10' not found");
  ASSERT_NE(line_start, std::string::npos) << output;
  const auto line = output.substr(line_start, output.find('\n', line_start) - line_start);
  EXPECT_NE(line.find("cifar-10-batches-bin"), std::string::npos) << line;
  EXPECT_NE(line.find(empty.path() + ", ./data, /usr/share/datasets"), std::string::npos) << line;
  EXPECT_NE(line.find("scripts/fetch-datasets.sh cifar10"), std::string::npos) << line;
  EXPECT_FALSE(fs::exists(work.file("out/tiny")));
}

// The CLI with the disk full (a file size limit, as in AtomicWrite.FullDisk...) when the first result is written.
TEST(Cli, FullDiskIsAClearErrorAndLeavesNoPartialResult) {
  testing::TempDir root, work;
  testing::write_synthetic_fashion_mnist(root.path(), 64, 32);
  const auto spec_path = work.file("tiny.json");
  std::ofstream(spec_path) << testing::tiny_spec().dump();
  const auto out = work.file("out");
  const auto log = work.file("log");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{2048, 2048};  // below one result file, above the one-line error in the log
    ::setrlimit(RLIMIT_FSIZE, &limit);
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(log_fd, STDERR_FILENO);
    const int null_fd = ::open("/dev/null", O_WRONLY);
    ::dup2(null_fd, STDOUT_FILENO);
    ::execl(testing::ngdbench_binary().c_str(), "ngdbench", "run", spec_path.c_str(), "--out", out.c_str(), "--data-root",
            root.path().c_str(), "--threads", "1", "--quiet", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const auto message = read_file(log);
  EXPECT_NE(message.find("error: tiny: " + out + "/tiny/"), std::string::npos) << message;
  EXPECT_NE(message.find(std::strerror(EFBIG)), std::string::npos) << message;
  EXPECT_TRUE(result_files(out + "/tiny").empty());
  EXPECT_TRUE(temporaries(out + "/tiny").empty());
}

TEST(Cli, DryRunListsExpandedRuns) {
  testing::TempDir work;
  auto document = testing::tiny_spec();
  document["seeds"] = {0, 1, 2};
  const auto spec_path = work.file("s.json");
  std::ofstream(spec_path) << document.dump();
  const auto out = work.file("out");
  const auto command = testing::ngdbench_binary() + " run " + spec_path + " --dry-run --filter s1 > " + out;
  ASSERT_EQ(std::system(command.c_str()), 0);
  const auto listing = read_file(out);
  EXPECT_NE(listing.find("1 runs"), std::string::npos) << listing;
  EXPECT_NE(listing.find("-s1"), std::string::npos) << listing;
}

}  // namespace
}  // namespace ngd
