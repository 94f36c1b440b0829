#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/translation.h"
#include "harness/results/results.h"
#include "harness/spec/checkpoint_settings.h"
#include "harness/run/memory_estimate.h"
#include "harness/spec/spec.h"
#include "harness/spec/workload_entry.h"

namespace ngd {

struct RunnerOptions {
  std::string out_dir = "results/runs";
  std::vector<std::string> data_roots;  // search order, see data_roots()
  std::string device = "cpu";
  std::optional<std::regex> filter;      // runs whose "<experiment>/<run-id> <label>" matches
  bool force = false;                    // rerun finished runs instead of resuming
  bool progress = true;                  // per-epoch lines (and a bar on a terminal)
  bool prefetch = true;                  // prepare the next training batch on a worker thread
  bool phase_timing = true;              // per-phase times (on a GPU: a device sync at every phase boundary)
  std::optional<int64_t> fidelity_every;  // --fidelity-every: probe interval for every run (0: no probes)
  // --max-trials: tuned entries train only their first N trials per study. Halton draws are a
  // sequence, so these are the full budget's first trials: a later run without the cap resumes them.
  std::optional<int64_t> max_trials;
  // Checkpoints (harness/run/checkpoint.h): when set, a run resumes from its newest checkpoint in
  // out_dir and writes them as these settings say and on SIGTERM/SIGUSR1; nullopt: none.
  std::optional<CheckpointSettings> checkpoints;
  // --memory-limit: an image run whose memory estimate exceeds it is "failed" before training.
  MemoryLimit memory_limit;
};

// Trains one run on a loaded dataset and returns its record; writes nothing but checkpoints (with
// options.checkpoints: it resumes from the run's newest one, and a run stopped for a checkpoint
// returns status "checkpointed"). A non-finite training loss ends the run as "diverged", an exception
// (a refused checkpoint too) as "failed"; neither throws. Every workload shares one training loop (see
// harness/run/workload.h). `data` is what the run's workload entry loads (an ImageDataset, a
// TranslationDataset); a config.workload outside the registry throws std::runtime_error naming the
// registered ones.
RunResult train_run(const RunConfig& config, const WorkloadData& data, const RunnerOptions& options);
// The same for a workload given by its entry instead of config.workload (one outside the registry).
RunResult train_run(const RunConfig& config, const WorkloadEntry& workload, const WorkloadData& data,
                    const RunnerOptions& options);

// The runs of `spec` that `options.filter` and `options.max_trials` select.
std::vector<RunConfig> selected_runs(const Spec& spec, const RunnerOptions& options);

// Runs every selected run of `spec` that has no finished result yet (all with `force`), writing each
// result atomically as it ends; returns the results of all selected runs, old and new, in spec order.
// With checkpoints, a run's checkpoints are removed once its result is written (unless kept) and before
// a forced rerun, and a run stopped for a checkpoint ends the process (exit_checkpointed).
std::vector<nlohmann::json> run_spec(const Spec& spec, const RunnerOptions& options);

}  // namespace ngd
