// Faults found by an outside probe of the harness: planted links, odd files where results
// go, control characters in Slurm arguments, signals, a full disk found before training.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "base/atomic_file.h"
#include "harness/results/results.h"
#include "harness/run/runner.h"
#include "harness/spec/spec.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using testing::read_file;

std::string host_name() {
  std::array<char, 256> host{};
  ::gethostname(host.data(), host.size() - 1);
  return host.data();
}

// The pid of a process that has exited (and been reaped).
pid_t finished_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return child;
}

// Runs the CLI with `arguments`, stdout and stderr into files; returns the wait status.
int run_ngdbench(const std::vector<std::string>& arguments, const std::string& out_file, const std::string& err_file,
                 rlim_t file_size_limit = RLIM_INFINITY) {
  const pid_t child = ::fork();
  if (child == 0) {
    if (file_size_limit != RLIM_INFINITY) {
      ::signal(SIGXFSZ, SIG_IGN);
      const rlimit limit{file_size_limit, file_size_limit};
      ::setrlimit(RLIMIT_FSIZE, &limit);
    }
    ::dup2(::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), STDOUT_FILENO);
    ::dup2(::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), STDERR_FILENO);
    std::vector<char*> argv = {const_cast<char*>("ngdbench")};
    for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    ::execv(testing::ngdbench_binary().c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return status;
}

TEST(AtomicWrite, LinkPlantedWhereTheTemporaryGoesIsNeverWrittenThrough) {
  testing::TempDir dir;
  const auto victim = dir.file("victim");
  std::ofstream(victim) << "precious";
  const auto path = dir.file("result.json");
  // The name the temporary used to have, and the same with a suffix: neither may be opened.
  const auto predictable = fmt::format("{}.tmp.{}.{}", path, host_name(), ::getpid());
  fs::create_symlink(victim, predictable);
  write_file_atomically(path, "new");
  EXPECT_EQ(read_file(victim), "precious");
  EXPECT_EQ(read_file(path), "new");
  EXPECT_TRUE(fs::is_symlink(predictable));  // someone else's file: left alone
  // A link at the result path itself is replaced, not followed.
  fs::remove(path);
  fs::create_symlink(victim, path);
  write_file_atomically(path, "newer");
  EXPECT_EQ(read_file(victim), "precious");
  EXPECT_FALSE(fs::is_symlink(path));
  EXPECT_EQ(read_file(path), "newer");
}

TEST(AtomicWrite, StaleTemporariesOfThisHostsGoneProcessesAreRemoved) {
  testing::TempDir dir;
  const auto host = host_name();
  const pid_t gone = finished_pid();
  const auto stale = dir.file(fmt::format("r.json.tmp.{}.{}.0badf00d", host, gone));
  const std::vector<std::string> kept = {
      dir.file(fmt::format("r.json.tmp.{}.{}.0badf00d", host, ::getpid())),  // this process: maybe writing
      dir.file(fmt::format("r.json.tmp.{}.{}.0badf00d", host, ::getppid())),  // alive
      dir.file(fmt::format("r.json.tmp.other-{}.{}.0badf00d", host, gone)),   // another machine's
      dir.file("r.json"),
  };
  for (const auto& file : kept) std::ofstream(file) << "x";
  std::ofstream(stale) << "x";
  EXPECT_EQ(remove_stale_temporaries(dir.path()), 1u);
  EXPECT_FALSE(fs::exists(stale));
  for (const auto& file : kept) EXPECT_TRUE(fs::exists(file)) << file;
  EXPECT_EQ(remove_stale_temporaries(dir.file("absent")), 0u);
}

TEST(Resume, ResultFilesOfAnotherShapeAreRerunWithAWarningNamingThem) {
  testing::TempDir out;
  const auto run = parse_spec(testing::tiny_spec(), "tiny").runs[0];
  const auto path = result_path(out.path(), run);
  const auto good = json{{"schema_version", kResultSchemaVersion}, {"experiment", run.experiment}, {"workload", "image"},
                         {"status", "completed"}, {"identity", run.identity()}, {"seed", run.seed},
                         {"config_hash", run.config_hash()}, {"label", run.label()}, {"time_to_target_s", nullptr},
                         {"epochs", json::array({{{"train_loss", 0.5}, {"train_time_s", 1.0}, {"test_acc", 0.9}}})}};
  write_file_atomically(path, good.dump());
  EXPECT_TRUE(load_finished_result(out.path(), run).has_value());  // the shape the checks accept
  auto epochs_not_a_list = good;
  epochs_not_a_list["epochs"] = 5;
  auto accuracy_a_string = good;
  accuracy_a_string["epochs"][0]["test_acc"] = "high";
  auto no_workload = good;
  no_workload.erase("workload");
  auto translation_without_bleu = good;
  translation_without_bleu["workload"] = "translation";
  for (const auto& odd : {json::array(), json{{"status", 5}}, json(5), epochs_not_a_list, accuracy_a_string, no_workload,
                          translation_without_bleu}) {
    write_file_atomically(path, odd.dump());
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(load_finished_result(out.path(), run).has_value()) << odd.dump();
    const auto warning = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(warning.find("warning: " + path + ": not a result file"), std::string::npos) << warning;
  }
}

TEST(Resume, SomethingOtherThanAFileAtAResultPathStopsTheSweepNamingIt) {
  testing::TempDir root, out;
  testing::write_synthetic_fashion_mnist(root.path(), 64, 32);
  const auto spec = parse_spec(testing::tiny_spec(), "tiny");
  const auto path = result_path(out.path(), spec.runs[0]);
  fs::create_directories(path);
  RunnerOptions options;
  options.out_dir = out.path();
  options.data_roots = {root.path()};
  options.progress = false;
  for (const bool force : {false, true}) {
    options.force = force;
    try {
      run_spec(spec, options);
      FAIL() << "the sweep went on";
    } catch (const std::runtime_error& error) {
      EXPECT_EQ(std::string(error.what()), path + ": is a folder, not a result file; move it away and rerun");
    }
  }
}

TEST(Cli, SlurmRefusesAControlCharacterInOut) {
  testing::TempDir work;
  const auto spec_path = work.file("tiny.json");
  std::ofstream(spec_path) << testing::tiny_spec().dump();
  const auto status = run_ngdbench({"slurm", spec_path, "--out", work.file("o\nid"), "--shards", "2"},
                                   work.file("stdout"), work.file("stderr"));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(read_file(work.file("stderr")).find("error: --out: contains a control character"), std::string::npos)
      << read_file(work.file("stderr"));
  EXPECT_FALSE(fs::exists(work.file("o\nid")));
}

TEST(Cli, OutOfRangeSettingFailsTheDryRunWithItsPath) {
  testing::TempDir work;
  auto document = testing::tiny_spec();
  document["optimizers"][0] = {{"name", "kfac"}, {"hparams", {{"damping", -1}}}};
  const auto spec_path = work.file("bad.json");
  std::ofstream(spec_path) << document.dump();
  const auto status = run_ngdbench({"run", spec_path, "--dry-run"}, work.file("stdout"), work.file("stderr"));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(read_file(work.file("stderr")).find("bad.json: optimizers[0].hparams.damping: expected a value > 0"),
            std::string::npos)
      << read_file(work.file("stderr"));
}

// The CLI with a file size limit below the room check's probe: the sweep stops before training.
TEST(Cli, FullDiskIsFoundBeforeTheFirstRunTrains) {
  testing::TempDir root, work;
  testing::write_synthetic_fashion_mnist(root.path(), 64, 32);
  const auto spec_path = work.file("tiny.json");
  std::ofstream(spec_path) << testing::tiny_spec().dump();
  const auto out = work.file("out");
  const auto status = run_ngdbench({"run", spec_path, "--out", out, "--data-root", root.path(), "--threads", "1"},
                                   work.file("stdout"), work.file("stderr"), 64 * 1024);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(read_file(work.file("stderr")).find("error: tiny: " + out + "/tiny/"), std::string::npos)
      << read_file(work.file("stderr"));
  EXPECT_EQ(read_file(work.file("stdout")).find("[1/1]"), std::string::npos) << "a run trained first";
}

TEST(Cli, RegressOnlyRewritesTheNamedBaselineEntriesAndKeepsTheOthers) {
  testing::TempDir root, work;
  testing::write_synthetic_fashion_mnist(root.path(), 64, 32);
  fs::create_directories(work.file("suite"));
  auto spec = testing::tiny_spec();
  spec["optimizers"] = nlohmann::json::parse(R"([{"name": "sgd", "hparams": {"lr": 0.05}}, {"name": "adamw"}])");
  std::ofstream(work.file("suite/tiny.json")) << spec.dump();
  const nlohmann::json kept = {{"optimizer", "adamw"}, {"seeds", 1}, {"steps_to_target", 7}, {"final_test_acc", 0.5}};
  std::ofstream(work.file("baseline.json")) << nlohmann::json{{"tiny", {{"adamw", kept}}}}.dump();
  const auto status = run_ngdbench({"regress", "--suite", work.file("suite"), "--baseline", work.file("baseline.json"),
                                    "--out", work.file("out"), "--data-root", root.path(), "--only", "sgd", "--update"},
                                   work.file("stdout"), work.file("stderr"));
  ASSERT_EQ(WEXITSTATUS(status), 0) << read_file(work.file("stderr"));
  EXPECT_NE(read_file(work.file("stdout")).find("(1 runs)"), std::string::npos) << read_file(work.file("stdout"));
  const auto baseline = nlohmann::json::parse(read_file(work.file("baseline.json")));
  EXPECT_EQ(baseline["tiny"]["adamw"], kept);
  EXPECT_EQ(baseline["tiny"]["sgd"]["optimizer"], "sgd");
  EXPECT_EQ(baseline["tiny"]["sgd"]["seeds"], 1);

  const auto unknown = run_ngdbench({"regress", "--suite", work.file("suite"), "--baseline", work.file("baseline.json"),
                                     "--out", work.file("out"), "--data-root", root.path(), "--only", "kfac"},
                                    work.file("stdout"), work.file("stderr"));
  EXPECT_EQ(WEXITSTATUS(unknown), 2);
  EXPECT_NE(read_file(work.file("stderr")).find("--only: no configuration"), std::string::npos)
      << read_file(work.file("stderr"));
}

TEST(Cli, RegressOutsideTheRepositoryNamesTheMissingSuiteFolder) {
  testing::TempDir work;
  const auto status = run_ngdbench({"regress", "--suite", work.file("nowhere")}, work.file("stdout"), work.file("stderr"));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(read_file(work.file("stderr")).find(work.file("nowhere") + ": no such folder of suite specs"),
            std::string::npos)
      << read_file(work.file("stderr"));
}

class InterruptedSweep : public ::testing::TestWithParam<int> {};

TEST_P(InterruptedSweep, SaysWhatFinishedAndExitsWith128PlusTheSignal) {
  const int signal = GetParam();
  testing::TempDir root, work;
  testing::write_synthetic_fashion_mnist(root.path(), 2000, 200);
  auto document = testing::tiny_spec();
  document["optimizers"][0]["hparams"]["lr"] = {0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08};
  const auto spec_path = work.file("tiny.json");
  std::ofstream(spec_path) << document.dump();
  const auto out = work.file("out");
  const auto log = work.file("stderr");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::dup2(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), STDERR_FILENO);
    ::dup2(::open("/dev/null", O_WRONLY), STDOUT_FILENO);
    ::execl(testing::ngdbench_binary().c_str(), "ngdbench", "run", spec_path.c_str(), "--out", out.c_str(),
            "--data-root", root.path().c_str(), "--threads", "1", "--quiet", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto first = [&] {
    for (const auto& entry : fs::directory_iterator(out + "/tiny")) {
      if (entry.path().extension() == ".json") return true;
    }
    return false;
  };
  bool exited = false;
  while (!exited && !(fs::exists(out + "/tiny") && first())) {
    exited = ::waitpid(child, nullptr, WNOHANG) == child;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_FALSE(exited) << read_file(log);
  ::kill(child, signal);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 128 + signal);
  const auto message = read_file(log);
  EXPECT_NE(message.find(fmt::format("ngdbench: stopped by {}: ", signal == SIGINT ? "SIGINT" : "SIGTERM")),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(" run(s) trained and saved in " + out), std::string::npos) << message;
  EXPECT_NE(message.find("run the same command again to resume"), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(Signals, InterruptedSweep, ::testing::Values(SIGINT, SIGTERM),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGINT ? "Sigint" : "Sigterm");
                         });

}  // namespace
}  // namespace ngd
