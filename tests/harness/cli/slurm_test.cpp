#include <gtest/gtest.h>

#include <cstdio>

#include "harness/cli/slurm.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

// What /bin/sh makes of `word`: printf '%s' WORD, read back.
std::string through_shell(const std::string& word) {
  std::FILE* pipe = ::popen(("printf '%s' " + word).c_str(), "r");
  std::string output;
  char buffer[256];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  ::pclose(pipe);
  return output;
}

// The fewest settings a script needs.
SlurmJob minimal_job() {
  SlurmJob job;
  job.binary = "/b/ngdbench";
  job.workdir = "/w";
  job.spec_paths = {"a.json"};
  job.out_dir = "out";
  job.log_dir = "out/slurm-logs";
  return job;
}

TEST(Slurm, ScriptMatchesTheGoldenFile) {
  SlurmJob job;
  job.binary = "/home/me/ngdbench/build/ngdbench";
  job.workdir = "/home/me/ngdbench";
  job.spec_paths = {"experiments/kfac/step-time-mlp.json", "experiments/my specs/b.json"};
  job.out_dir = "/shared/results";
  job.log_dir = "/shared/results/slurm-logs";
  job.shards = 4;
  job.partition = "gpu";
  job.time_limit = "12:00:00";
  job.gpus_per_task = 1;
  job.cpus_per_task = 8;
  job.scale = "paper";
  job.filter = "kfac|sgd lr=0.1$";
  job.data_root = "/shared/data";
  const auto golden = testing::read_file(testing::source_dir() + "/tests/harness/cli/golden/slurm.sh");
  ASSERT_FALSE(golden.empty());
  EXPECT_EQ(slurm_script(job), golden);  // byte for byte
}

TEST(Slurm, CpuTasksAskForNoGpuAndRunOnTheCpu) {
  auto job = minimal_job();
  job.shards = 2;
  job.cpus_per_task = 3;
  const auto script = slurm_script(job);
  EXPECT_EQ(script.find("--gpus-per-task"), std::string::npos) << script;
  EXPECT_EQ(script.find("--partition"), std::string::npos) << script;
  EXPECT_NE(script.find("--device cpu --threads 3 --quiet"), std::string::npos) << script;
  EXPECT_NE(script.find("#SBATCH --array=1-2\n"), std::string::npos) << script;
}

TEST(Slurm, ShellQuotingGivesBackTheWordThroughTheShell) {
  for (const std::string word : {"plain/path.json", "with space", "it's", "$HOME", "a|b$", "`x`", "*", "\"q\"", ""}) {
    EXPECT_EQ(through_shell(shell_quote(word)), word) << shell_quote(word);
  }
  EXPECT_EQ(shell_quote("experiments/a-b_c.json"), "experiments/a-b_c.json");  // safe words stay readable
}

TEST(Slurm, ControlCharactersInArgumentsAreRefusedNamingTheArgument) {
  const auto job = minimal_job();
  EXPECT_NO_THROW(slurm_script(job));
  const auto expect_refused = [](SlurmJob bad, const std::string& argument) {
    try {
      (void)slurm_script(bad);
      FAIL() << argument;
    } catch (const std::invalid_argument& error) {
      EXPECT_EQ(std::string(error.what()).rfind(argument + ": contains a control character", 0), 0u) << error.what();
    }
  };
  auto bad = job;
  bad.job_name = "x\nrm -rf ~";
  expect_refused(bad, "--job-name");
  bad = job;
  bad.partition = "gpu\r";
  expect_refused(bad, "--partition");
  bad = job;
  bad.out_dir = "out\n#SBATCH --x";
  expect_refused(bad, "--out");
}

}  // namespace
}  // namespace ngd
