#include "harness/cli/slurm.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string_view>

namespace ngd {

std::string shell_quote(const std::string& text) {
  const bool safe = !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isalnum(c) || std::string_view("_-./:=@%+,").find(static_cast<char>(c)) != std::string_view::npos;
  });
  if (safe) return text;
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

void check_slurm_job(const SlurmJob& job) {
  // Quoting keeps a word one word, but a line break would still end an #SBATCH line (and one
  // starting with the shell's next command); no argument needs one.
  const auto check = [](const std::string& text, const std::string& argument) {
    const auto bad = std::find_if(text.begin(), text.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
    if (bad != text.end()) {
      throw std::invalid_argument(fmt::format("{}: contains a control character (code {}); the script would break "
                                              "there", argument, static_cast<int>(static_cast<unsigned char>(*bad))));
    }
  };
  for (const auto& path : job.spec_paths) check(path, "a spec path");
  check(job.out_dir, "--out");
  check(job.log_dir, "--out");
  check(job.job_name, "--job-name");
  check(job.partition, "--partition");
  check(job.time_limit, "--time");
  check(job.scale, "--scale");
  check(job.filter, "--filter");
  check(job.data_root, "--data-root");
  check(job.binary, "the ngdbench binary's path");
  check(job.workdir, "the working directory");
  if (!job.requeue && (job.signal_seconds > 0 || job.checkpoint_every_minutes > 0)) {
    throw std::invalid_argument(fmt::format("{}: only with --requeue (the tasks checkpoint only then)",
                                            job.signal_seconds > 0 ? "--signal-seconds" : "--checkpoint-every-minutes"));
  }
}

std::string slurm_script(const SlurmJob& job) {
  check_slurm_job(job);
  std::string script = "#!/bin/bash\n";
  script += "# Written by `ngdbench slurm`: one array task per shard of the sweep. Task K trains the runs of\n";
  script += fmt::format("# shard K/{} and writes one result file per run into {}; finished runs are\n", job.shards,
                        job.out_dir);
  script += "# skipped, so resubmitting the script (or one task) completes an interrupted sweep.\n";
  script += fmt::format("#SBATCH --job-name={}\n", shell_quote(job.job_name));
  script += fmt::format("#SBATCH --array=1-{}\n", job.shards);
  if (!job.partition.empty()) script += fmt::format("#SBATCH --partition={}\n", shell_quote(job.partition));
  script += "#SBATCH --ntasks=1\n";
  script += fmt::format("#SBATCH --cpus-per-task={}\n", job.cpus_per_task);
  if (job.gpus_per_task > 0) script += fmt::format("#SBATCH --gpus-per-task={}\n", job.gpus_per_task);
  if (!job.time_limit.empty()) script += fmt::format("#SBATCH --time={}\n", shell_quote(job.time_limit));
  if (job.requeue) {
    script += "#SBATCH --requeue\n";
    script += fmt::format("#SBATCH --signal=B:TERM@{}\n", job.signal_seconds > 0 ? job.signal_seconds : kDefaultSignalSeconds);
  }
  script += fmt::format("#SBATCH --chdir={}\n", shell_quote(job.workdir));
  script += fmt::format("#SBATCH --output={}/%x-%A_%a.out\n", shell_quote(job.log_dir));
  script += "set -euo pipefail\n";
  std::string command = fmt::format("{} run", shell_quote(job.binary));
  for (const auto& path : job.spec_paths) command += " " + shell_quote(path);
  command += fmt::format(" \\\n  --out {}", shell_quote(job.out_dir));
  command += fmt::format(" --shard \"${{SLURM_ARRAY_TASK_ID}}/{}\"", job.shards);
  command += fmt::format(" --device {}", job.gpus_per_task > 0 ? "cuda" : "cpu");
  command += fmt::format(" --threads {}", job.threads > 0 ? job.threads : job.cpus_per_task);
  if (!job.scale.empty()) command += " --scale " + shell_quote(job.scale);
  if (!job.filter.empty()) command += " --filter " + shell_quote(job.filter);
  if (!job.data_root.empty()) command += " --data-root " + shell_quote(job.data_root);
  if (!job.requeue) return script + "exec " + command + " --quiet\n";
  command += " --checkpoints";
  if (job.checkpoint_every_minutes > 0) command += fmt::format(" --checkpoint-every-minutes {}", job.checkpoint_every_minutes);
  // --signal=B: sends SIGTERM to this shell, which passes it on and waits for the checkpoint; exit
  // status 75 (a checkpoint written) requeues this task, which then resumes from it. A preemption
  // requeues it by itself.
  script += "set +e\n";
  script += command + " --quiet &\n";
  script += "child=$!\n";
  script += "trap 'kill -TERM \"$child\" 2>/dev/null' TERM USR1\n";
  script += "while true; do wait \"$child\"; status=$?; kill -0 \"$child\" 2>/dev/null || break; done\n";
  script += "if [ \"$status\" -eq 75 ]; then\n";
  script += "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\" || true  # already requeued: a preemption\n";
  script += "fi\n";
  script += "exit \"$status\"\n";
  return script;
}

}  // namespace ngd
