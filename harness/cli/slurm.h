#pragma once

#include <string>
#include <vector>

namespace ngd {

// With `requeue`: seconds before the time limit that Slurm sends SIGTERM, when not given; enough for a
// step and a checkpoint of the largest runs (a ResNet-18 step and its KFAC factors, written to a shared disk).
constexpr int64_t kDefaultSignalSeconds = 300;

// What `ngdbench slurm` writes into a job-array script: one array task per shard of the sweep.
struct SlurmJob {
  std::string binary;                   // the ngdbench the tasks run (absolute path)
  std::string workdir;                  // the tasks' working directory: relative paths resolve there
  std::vector<std::string> spec_paths;
  std::string out_dir;                  // the shared results folder
  std::string log_dir;                  // Slurm's per-task output files (%x-%A_%a.out)
  std::string job_name = "ngdbench";
  int64_t shards = 1;
  std::string partition;                // "" = the cluster's default
  std::string time_limit;               // "" = the partition's default
  int64_t gpus_per_task = 0;            // 0: CPU tasks (--device cpu); 1: --device cuda
  int64_t cpus_per_task = 1;
  int64_t threads = 0;                  // ngdbench --threads; 0 = cpus_per_task
  std::string scale;                    // passed as --scale; "" = none
  std::string filter;                   // passed as --filter; "" = none
  std::string data_root;                // passed as --data-root; "" = none
  // Preemptible clusters (docs/checkpoints.md#clusters): the tasks run with --checkpoints, Slurm may
  // requeue them, and SIGTERM reaches ngdbench `signal_seconds` before the time limit; a task that
  // stopped for a checkpoint (exit 75) requeues itself and resumes.
  bool requeue = false;
  int64_t signal_seconds = 0;           // 0: kDefaultSignalSeconds
  double checkpoint_every_minutes = 0;  // passed as --checkpoint-every-minutes; 0 = none
};

// Throws std::invalid_argument "--job-name: contains a control character ..." naming the argument
// when any text of `job` holds a line break or another control character, or naming a setting given
// without --requeue that only --requeue uses.
void check_slurm_job(const SlurmJob& job);

// The sbatch script: #SBATCH --array=1-N, and each task runs `ngdbench run ... --shard
// ${SLURM_ARRAY_TASK_ID}/N` into the shared folder (with `requeue`: under a shell that passes SIGTERM
// and SIGUSR1 on to it and requeues the task when it exits with kExitCheckpointed). Throws
// check_slurm_job's error first.
std::string slurm_script(const SlurmJob& job);

// `text` as one shell word: unchanged when it holds only safe characters, else in single quotes.
std::string shell_quote(const std::string& text);

}  // namespace ngd
