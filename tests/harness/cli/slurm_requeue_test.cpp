#include <gtest/gtest.h>

#include <stdexcept>

#include "harness/cli/slurm.h"

namespace ngd {
namespace {

// `ngdbench slurm --requeue`: requeueable tasks, SIGTERM ahead of the time limit passed on to ngdbench,
// checkpoints on, and a task that stopped for a checkpoint requeues itself.
TEST(SlurmRequeue, ScriptForwardsTheSignalAndRequeuesOnExit75) {
  SlurmJob job;
  job.binary = "/opt/ngdbench";
  job.workdir = "/work";
  job.spec_paths = {"a.json"};
  job.out_dir = "/shared/out";
  job.log_dir = "/shared/out/slurm-logs";
  job.shards = 4;
  job.time_limit = "01:00:00";
  job.requeue = true;
  job.signal_seconds = 120;
  const auto script = slurm_script(job);
  for (const char* line : {"#SBATCH --requeue\n", "#SBATCH --signal=B:TERM@120\n", "#SBATCH --time=01:00:00\n",
                           " --quiet &\n", "trap 'kill -TERM \"$child\" 2>/dev/null' TERM USR1\n",
                           "if [ \"$status\" -eq 75 ]; then\n",
                           "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\" || true"}) {
    EXPECT_NE(script.find(line), std::string::npos) << line << "\n" << script;
  }
  EXPECT_NE(script.find(" --checkpoints"), std::string::npos) << script;
  EXPECT_EQ(script.find("exec "), std::string::npos) << "the shell stays to pass the signal on\n" << script;
  job.requeue = false;
  EXPECT_THROW(slurm_script(job), std::invalid_argument);  // --signal-seconds without --requeue
  job.signal_seconds = 0;
  EXPECT_EQ(slurm_script(job).find("--requeue"), std::string::npos);
}

}  // namespace
}  // namespace ngd
