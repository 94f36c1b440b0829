#pragma once

#include <string>
#include <vector>

namespace ngd {

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
};

// Throws std::invalid_argument "--job-name: contains a control character ..." naming the argument
// when any text of `job` holds a line break or another control character.
void check_slurm_job(const SlurmJob& job);

// The sbatch script: #SBATCH --array=1-N, and each task runs `ngdbench run ... --shard
// ${SLURM_ARRAY_TASK_ID}/N` into the shared folder. Throws check_slurm_job's error first.
std::string slurm_script(const SlurmJob& job);

// `text` as one shell word: unchanged when it holds only safe characters, else in single quotes.
std::string shell_quote(const std::string& text);

}  // namespace ngd
