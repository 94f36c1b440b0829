// ngdbench: trains every model × dataset × optimizer × seed of JSON experiment specs and writes one
// result file per run. `ngdbench --help` lists the commands.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <regex>

#include "base/atomic_file.h"
#include "base/device.h"
#include "datasets/dataset.h"
#include "datasets/multi30k.h"
#include "harness/cli/slurm.h"
#include "harness/results/regress.h"
#include "harness/results/results.h"
#include "harness/results/summary.h"
#include "harness/run/bleu.h"
#include "harness/run/interrupt.h"
#include "harness/run/machine.h"
#include "harness/run/memory_estimate.h"
#include "harness/run/runner.h"
#include "harness/spec/schedule.h"
#include "harness/spec/shard.h"
#include "harness/spec/spec.h"
#include "optimizers/optimizer.h"

namespace {

// Exit status for bad input (spec errors, unknown names).
constexpr int kExitBadInput = 2;

void print_options(const std::vector<ngd::OptionInfo>& options) {
  for (const auto& option : options) {
    const auto range = option.range.bounded() ? " (" + option.range.describe() + ")" : std::string();
    std::cout << fmt::format("    {:<16} {:<12} {}{}\n", option.name, option.default_value.dump(), option.help, range);
  }
}

// `ngdbench list`'s command line.
struct ListCommand {
  std::string what;
  bool verbose = false;
  bool json = false;
};

// A registry entry's settings as JSON: name, default, help, and choices or range where declared.
nlohmann::json options_json(const std::vector<ngd::OptionInfo>& options) {
  auto settings = nlohmann::json::array();
  for (const auto& option : options) {
    nlohmann::json setting = {{"name", option.name}, {"default", option.default_value}, {"help", option.help}};
    if (!option.choices.empty()) setting["choices"] = option.choices;
    if (option.range.bounded()) setting["range"] = option.range.describe();
    settings.push_back(std::move(setting));
  }
  return settings;
}

// A registry table as JSON (`list X --json`): what docs/optimizers.md's settings tables are made from.
template <class Entry, class Settings>
nlohmann::json table_json(const std::vector<Entry>& table, Settings settings_of) {
  auto entries = nlohmann::json::array();
  for (const auto& entry : table) {
    entries.push_back({{"name", entry.name}, {"summary", entry.summary}, {"settings", options_json(settings_of(entry))}});
  }
  return entries;
}

CLI::App* add_list_command(CLI::App& app, ListCommand& command) {
  auto* list_command =
      app.add_subcommand("list", "list the registered optimizers, models, datasets, workloads or schedules");
  list_command->add_option("what", command.what, "optimizers | models | datasets | workloads | schedules")
      ->required()
      ->check(CLI::IsMember({"optimizers", "models", "datasets", "workloads", "schedules"}));
  list_command->add_flag("-v,--verbose", command.verbose, "with summaries and settings (name, default, meaning)");
  list_command->add_flag("--json", command.json, "the entries with their settings (name, default, help, range), as JSON");
  return list_command;
}

int list(const ListCommand& command) {
  const auto& what = command.what;
  const bool verbose = command.verbose;
  if (command.json) {
    if (what == "optimizers") {
      std::cout << table_json(ngd::optimizer_registry(), [](const auto& entry) { return entry.hyperparameters; }).dump(2);
    } else if (what == "models") {
      std::cout << table_json(ngd::model_registry(), [](const auto& entry) { return entry.options; }).dump(2);
    } else if (what == "schedules") {
      std::cout << table_json(ngd::schedule_registry(), [](const auto& entry) { return entry.options; }).dump(2);
    } else if (what == "workloads") {
      auto entries = nlohmann::json::array();
      for (const auto& entry : ngd::workload_registry()) {
        entries.push_back({{"name", entry.name}, {"summary", entry.summary}, {"target_metrics", entry.target_metrics}});
      }
      std::cout << entries.dump(2);
    } else {
      std::cout << table_json(ngd::dataset_registry(), [](const auto& entry) { return entry.options; }).dump(2);
    }
    std::cout << "\n";
    return 0;
  }
  if (what == "optimizers") {
    for (const auto& entry : ngd::optimizer_registry()) {
      std::cout << entry.name << (verbose ? "  — " + entry.summary : "") << "\n";
      if (verbose) print_options(entry.hyperparameters);
    }
  } else if (what == "models") {
    for (const auto& entry : ngd::model_registry()) {
      std::cout << entry.name << (verbose ? "  — " + entry.summary + " (" + entry.workload + ")" : "") << "\n";
      if (verbose) print_options(entry.options);
    }
  } else if (what == "datasets") {
    for (const auto& entry : ngd::dataset_registry()) {
      std::cout << entry.name
                << (verbose ? "  — " + entry.summary + " (" + entry.workload + "; folder " + entry.folder + ")" : "")
                << "\n";
    }
  } else if (what == "workloads") {
    for (const auto& entry : ngd::workload_registry()) {
      std::cout << entry.name << (verbose ? "  — " + entry.summary : "") << "\n";
      if (verbose) std::cout << fmt::format("    targets: {}\n", fmt::join(entry.target_metrics, ", "));
    }
  } else if (what == "schedules") {
    for (const auto& entry : ngd::schedule_registry()) {
      std::cout << entry.name << (verbose ? "  — " + entry.summary : "") << "\n";
      if (verbose) print_options(entry.options);
    }
  }
  return 0;
}

// The device a spec's runs use: --device when given, else the spec's "device", else the CPU.
std::string device_for(const ngd::Spec& spec, const std::string& device_flag) {
  if (!device_flag.empty()) return device_flag;
  return spec.device.empty() ? "cpu" : spec.device;
}

// A --filter regex; nullopt (said on stderr) when it does not compile.
std::optional<std::regex> compile_filter(const std::string& text) {
  try {
    return std::regex(text);
  } catch (const std::regex_error& error) {
    std::cerr << "error: --filter: invalid regex '" << text << "': " << error.what() << "\n";
    return std::nullopt;
  }
}

// `ngdbench run`'s command line.
struct RunCommand {
  std::vector<std::string> spec_paths;
  ngd::RunnerOptions options;
  std::string data_root;
  std::string filter;
  std::string device_flag;
  std::string shard_text;
  std::string scale;
  std::string memory_limit = "available";
  int threads = 0;
  int64_t fidelity_every = -1;  // -1: the specs' own fidelity blocks
  int64_t max_trials = 0;       // 0: every entry's whole tuning budget
  bool dry_run = false;
  bool quiet = false;
  bool no_phase_timing = false;
  bool no_prefetch = false;
  // Checkpoints: any of these turns them on, over the specs' "checkpoint" blocks (-1: the spec's value).
  bool checkpoints = false;
  int64_t checkpoint_every_steps = -1;
  double checkpoint_every_minutes = -1;
  bool checkpoint_at_epoch_end = false;
  bool keep_checkpoints = false;
};

CLI::App* add_run_command(CLI::App& app, RunCommand& command) {
  auto* run_command = app.add_subcommand("run", "train the runs of experiment specs, resuming finished ones");
  run_command->add_option("specs", command.spec_paths, "experiment spec files (JSON)")->required()->check(CLI::ExistingFile);
  run_command->add_option("--out", command.options.out_dir, "results folder (OUT/<experiment>/<run-id>.json)")->capture_default_str();
  run_command->add_option("--data-root", command.data_root, "data root searched first (then $NGDBENCH_DATA, ./data, /usr/share/datasets)");
  run_command->add_option("--threads", command.threads, "intra-op and BLAS threads (0 = one per core)")->check(CLI::NonNegativeNumber);
  const CLI::Validator device_name(
      [](std::string& name) {
        try {
          ngd::check_device_name(name);
          return std::string();
        } catch (const std::runtime_error& error) {
          return std::string(error.what());
        }
      },
      "DEVICE");
  run_command->add_option("--device", command.device_flag, "cpu, cuda or cuda:N (default: the spec's \"device\", else cpu)")
      ->check(device_name);
  run_command->add_option("--shard", command.shard_text,
                          "K/N: train only shard K (1..N) of the sweep's runs, for N workers sharing --out");
  run_command->add_flag("--no-phase-timing", command.no_phase_timing,
                        "no per-phase times (on a GPU they synchronise the device at every phase boundary)");
  run_command->add_option("--filter", command.filter, "only runs whose '<experiment>/<run-id> <label>' matches this regex");
  run_command->add_option("--scale", command.scale,
                          "a scale the specs define (e.g. cpu, paper), or auto: paper with CUDA, else cpu");
  run_command->add_option("--max-trials", command.max_trials,
                          "tuned entries train only their first N trials per study (a later run without it adds the rest)")
      ->check(CLI::PositiveNumber);
  run_command->add_option("--memory-limit", command.memory_limit,
                          "refuse image runs whose memory estimate exceeds this before training: a size (8G, 512M), "
                          "available (MemAvailable, CPU runs) or none")
      ->capture_default_str();
  run_command->add_flag("--dry-run", command.dry_run, "print the expanded runs with their memory estimates and exit");
  run_command->add_flag("--force", command.options.force, "rerun runs that already have a finished result");
  run_command->add_flag("--quiet", command.quiet, "no per-epoch lines");
  run_command->add_flag("--no-prefetch", command.no_prefetch, "prepare training batches on the training thread");
  run_command->add_option("--fidelity-every", command.fidelity_every,
                          "fidelity probes every N steps in every run, overriding specs' \"fidelity\" blocks (0: none)")
      ->check(CLI::NonNegativeNumber);
  run_command->add_flag("--checkpoints", command.checkpoints,
                        "resume runs from their checkpoints and write one on SIGTERM/SIGUSR1, then exit 75 (docs/checkpoints.md)");
  run_command->add_option("--checkpoint-every-steps", command.checkpoint_every_steps,
                          "a checkpoint every N steps (implies --checkpoints)")->check(CLI::PositiveNumber);
  run_command->add_option("--checkpoint-every-minutes", command.checkpoint_every_minutes,
                          "a checkpoint every M minutes of training (implies --checkpoints)")->check(CLI::PositiveNumber);
  run_command->add_flag("--checkpoint-at-epoch-end", command.checkpoint_at_epoch_end,
                        "a checkpoint after every epoch (implies --checkpoints)");
  run_command->add_flag("--keep-checkpoints", command.keep_checkpoints,
                        "keep a run's last checkpoint once its result is written (implies --checkpoints)");
  return run_command;
}

// A spec's checkpoint settings: its "checkpoint" block with the command line's flags over it; none when
// neither asks for checkpoints.
std::optional<ngd::CheckpointSettings> checkpoints_for(const ngd::Spec& spec, const RunCommand& command) {
  const bool asked = command.checkpoints || command.checkpoint_every_steps > 0 || command.checkpoint_every_minutes > 0 ||
                     command.checkpoint_at_epoch_end || command.keep_checkpoints;
  if (!asked && !spec.checkpoint) return std::nullopt;
  auto settings = spec.checkpoint.value_or(ngd::CheckpointSettings{});
  if (command.checkpoint_every_steps > 0) settings.every_steps = command.checkpoint_every_steps;
  if (command.checkpoint_every_minutes > 0) settings.every_minutes = command.checkpoint_every_minutes;
  settings.at_epoch_end = settings.at_epoch_end || command.checkpoint_at_epoch_end;
  settings.keep = settings.keep || command.keep_checkpoints;
  return settings;
}

// The runner options and the shard the command line's flags ask for; false (said on stderr) on bad input.
bool apply_flags(RunCommand& command, std::optional<ngd::Shard>& shard) {
  auto& options = command.options;
  options.progress = !command.quiet;
  options.prefetch = !command.no_prefetch;
  options.phase_timing = !command.no_phase_timing;
  if (command.fidelity_every >= 0) options.fidelity_every = command.fidelity_every;
  if (command.max_trials > 0) options.max_trials = command.max_trials;
  try {
    options.memory_limit = ngd::parse_memory_limit(command.memory_limit);
  } catch (const std::invalid_argument& error) {
    std::cerr << "error: " << error.what() << "\n";
    return false;
  }
  if (!command.filter.empty()) {
    const auto filter = compile_filter(command.filter);
    if (!filter) return false;
    options.filter = *filter;
  }
  if (!command.shard_text.empty()) {
    try {
      shard = ngd::parse_shard(command.shard_text);
    } catch (const std::runtime_error& error) {
      std::cerr << "error: " << error.what() << "\n";
      return false;
    }
  }
  return true;
}

// --dry-run: each spec's expanded runs, one line each, and under each its memory estimate.
void print_runs(const std::vector<ngd::Spec>& specs, const std::string& device_flag, const ngd::RunnerOptions& options) {
  ngd::DryRunEstimates estimates(options.data_roots, options.memory_limit);
  for (const auto& spec : specs) {
    const auto& runs = spec.runs;
    std::cout << fmt::format("{} ({}): {} runs on {}\n", spec.name, spec.path, runs.size(),
                             device_for(spec, device_flag));
    for (const auto& run : runs) {
      const auto trial = run.tuning.is_null() ? std::string()
                                              : fmt::format(" study={} trial={}", run.study, run.trial);
      std::cout << fmt::format("  {}/{}  {} seed={}{} hparams={} schedule={}\n", run.experiment, run.run_id(),
                               run.label(), run.seed, trial, run.hparams.dump(), run.schedule.dump());
      std::cout << "    " << estimates.describe(run, device_for(spec, device_flag)) << "\n";
    }
  }
}

int run(RunCommand command) {
  ngd::stop_cleanly_on_interrupt(command.options.out_dir);  // before LibTorch starts its threads
  std::optional<ngd::Shard> shard;
  if (!apply_flags(command, shard)) return kExitBadInput;
  auto& options = command.options;
  const auto& device_flag = command.device_flag;
  auto& scale = command.scale;
  if (scale == "auto") {
    scale = torch::cuda::is_available() ? "paper" : "cpu";
    std::cout << fmt::format("ngdbench: scale '{}' ({})\n", scale,
                             scale == "paper" ? "a CUDA device is present" : "no CUDA device: the scaled-down protocol");
  }
  std::vector<ngd::Spec> specs;
  for (const auto& path : command.spec_paths) {
    try {
      specs.push_back(ngd::load_spec(path, scale));
      ngd::require_device(device_for(specs.back(), device_flag));  // before any run starts
    } catch (const std::exception& error) {
      std::cerr << "error: " << error.what() << "\n";
      return kExitBadInput;
    }
  }
  size_t sweep_runs = 0;
  for (auto& spec : specs) {
    spec.runs = ngd::selected_runs(spec, options);
    sweep_runs += spec.runs.size();
  }
  if (shard) {
    specs = ngd::shard_specs(std::move(specs), *shard);
    size_t shard_runs = 0;
    for (const auto& spec : specs) shard_runs += spec.runs.size();
    std::cout << fmt::format("ngdbench: shard {}/{}: {} of the sweep's {} runs\n", shard->index, shard->count,
                             shard_runs, sweep_runs);
  }
  options.data_roots = ngd::data_roots(command.data_root);
  if (command.dry_run) {
    print_runs(specs, device_flag, options);
    return 0;
  }
  const int threads_in_use = ngd::configure_threads(command.threads);
  std::cout << fmt::format("ngdbench: {} thread(s), results in {}\n", threads_in_use, options.out_dir);
  int failures = 0;
  for (const auto& spec : specs) {
    if (spec.runs.empty()) continue;  // nothing of this spec in the filter or the shard
    options.device = device_for(spec, device_flag);
    options.checkpoints = checkpoints_for(spec, command);
    ngd::checkpoint_on_signal(options.checkpoints.has_value());
    std::cout << fmt::format("ngdbench: {}: {} runs on device {}\n", spec.name, spec.runs.size(), options.device);
    try {
      const long found_before = ngd::found_finished_runs();
      const auto results = ngd::run_spec(spec, options);
      ngd::print_summary(spec, results, static_cast<size_t>(ngd::found_finished_runs() - found_before),
                         options.out_dir, std::cout);
      for (const auto& result : results) failures += result["status"] == "failed" ? 1 : 0;
    } catch (const ngd::DatasetNotFound& error) {
      std::cout << fmt::format("skipped {}: {}\n", spec.name, error.what());
    } catch (const std::exception& error) {  // e.g. an unwritable results folder: stop, nothing half-written
      std::cerr << fmt::format("error: {}: {}\n", spec.name, error.what());
      return 1;
    }
  }
  return failures == 0 ? 0 : 1;
}

// `ngdbench slurm`'s command line.
struct SlurmCommand {
  ngd::SlurmJob job;
  std::string script_path;
};

CLI::App* add_slurm_command(CLI::App& app, SlurmCommand& command) {
  auto* slurm_command = app.add_subcommand(
      "slurm", "write a Slurm job-array script: one array task per shard of the specs' runs, all into --out");
  auto& job = command.job;
  job.scale = "auto";
  slurm_command->add_option("specs", job.spec_paths, "experiment spec files (JSON)")->required()->check(CLI::ExistingFile);
  slurm_command->add_option("--out", job.out_dir, "the shared results folder (on a filesystem every node sees)")->required();
  slurm_command->add_option("--shards", job.shards, "array tasks (shards)")->required()->check(CLI::PositiveNumber);
  slurm_command->add_option("--partition", job.partition, "Slurm partition (default: the cluster's)");
  slurm_command->add_option("--gpus-per-task", job.gpus_per_task, "0: CPU tasks; 1: one GPU per task, --device cuda")
      ->capture_default_str()
      ->check(CLI::Range(0, 1));
  slurm_command->add_option("--cpus-per-task", job.cpus_per_task, "CPU cores per task")->capture_default_str()->check(CLI::PositiveNumber);
  slurm_command->add_option("--threads", job.threads, "ngdbench --threads (0 = --cpus-per-task)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  slurm_command->add_option("--time", job.time_limit, "time limit per task, e.g. 12:00:00 (default: the partition's)");
  slurm_command->add_option("--job-name", job.job_name, "Slurm job name")->capture_default_str();
  slurm_command->add_option("--scale", job.scale, "the specs' scale; auto: paper with --gpus-per-task 1, else cpu")
      ->capture_default_str();
  slurm_command->add_option("--filter", job.filter, "only runs matching this regex (as run --filter)");
  slurm_command->add_option("--data-root", job.data_root, "data root searched first, as the nodes see it");
  slurm_command->add_option("--script", command.script_path, "where to write the script (default: OUT/ngdbench.sbatch)");
  slurm_command->add_flag("--requeue", job.requeue,
                          "preemptible: tasks checkpoint on SIGTERM, are requeued and resume (docs/checkpoints.md#clusters)");
  slurm_command->add_option("--signal-seconds", job.signal_seconds,
                            "with --requeue: SIGTERM this many seconds before the time limit (--signal=B:TERM@S; default 300)")
      ->check(CLI::PositiveNumber);
  slurm_command->add_option("--checkpoint-every-minutes", job.checkpoint_every_minutes,
                            "with --requeue: also a checkpoint every M minutes (for node failures)")
      ->check(CLI::PositiveNumber);
  return slurm_command;
}

int slurm(SlurmCommand command) {
  auto& job = command.job;
  auto& script_path = command.script_path;
  if (job.scale == "auto") job.scale = job.gpus_per_task > 0 ? "paper" : "cpu";  // what `run --scale auto` picks there
  try {
    ngd::check_slurm_job(job);  // the user's arguments, before anything is written
  } catch (const std::invalid_argument& error) {
    std::cerr << "error: " << error.what() << "\n";
    return kExitBadInput;
  }
  // The specs are checked here, at the tasks' scale, so that a typo fails now rather than in N queued tasks.
  ngd::RunnerOptions options;
  if (!job.filter.empty()) {
    const auto filter = compile_filter(job.filter);
    if (!filter) return kExitBadInput;
    options.filter = *filter;
  }
  size_t runs = 0;
  try {
    for (const auto& path : job.spec_paths) runs += ngd::selected_runs(ngd::load_spec(path, job.scale), options).size();
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return kExitBadInput;
  }
  if (script_path.empty()) script_path = (std::filesystem::path(job.out_dir) / "ngdbench.sbatch").string();
  job.log_dir = (std::filesystem::path(job.out_dir) / "slurm-logs").string();
  job.binary = std::filesystem::canonical("/proc/self/exe").string();
  job.workdir = std::filesystem::current_path().string();
  try {
    const auto script = ngd::slurm_script(job);  // checks the paths found here too
    std::filesystem::create_directories(job.log_dir);  // Slurm does not create the folder of --output
    ngd::write_file_atomically(script_path, script);
    std::filesystem::permissions(script_path, std::filesystem::perms::owner_exec, std::filesystem::perm_options::add);
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
  std::cout << fmt::format("ngdbench: {} runs (scale '{}') in {} shards of about {} runs; script {}\n", runs,
                           job.scale, job.shards, (runs + job.shards - 1) / job.shards, script_path);
  if (static_cast<int64_t>(runs) < job.shards) {
    std::cout << fmt::format("warning: more shards than runs: {} tasks will find nothing to do\n",
                             job.shards - static_cast<int64_t>(runs));
  }
  std::cout << fmt::format("submit:\n  sbatch {}\nwhen every task has finished, make the tables:\n  make tables OUT={}\n",
                           ngd::shell_quote(script_path), ngd::shell_quote(job.out_dir));
  return 0;
}

// The baseline file's JSON; nullopt (said on stderr) when it is missing or not JSON.
std::optional<nlohmann::json> read_baseline(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    std::cerr << "error: " << path << ": no baseline (create it with `ngdbench regress --update`)\n";
    return std::nullopt;
  }
  try {
    return nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    std::cerr << "error: " << path << ": " << error.what() << "\n";
    return std::nullopt;
  }
}

// `ngdbench regress`'s settings.
struct RegressCommand {
  std::string suite = "experiments/ci";
  std::string baseline_path = "results/baselines/ci.json";
  std::string out = "build/regress-runs";
  int threads = 1;
  bool update = false;
  // Optimizers (or entry variants) to run alone; with --update only their baseline entries change.
  std::vector<std::string> only;
  ngd::RegressTolerance tolerance;
  std::string data_root;
};

CLI::App* add_regress_command(CLI::App& app, RegressCommand& command) {
  auto* regress_command =
      app.add_subcommand("regress", "run the convergence regression suite and compare it with the committed baseline");
  regress_command->add_option("--suite", command.suite, "folder of suite specs")->capture_default_str();
  regress_command->add_option("--baseline", command.baseline_path, "baseline file")->capture_default_str();
  regress_command->add_option("--out", command.out, "where the suite's result files go")->capture_default_str();
  regress_command->add_option("--data-root", command.data_root, "data root searched first");
  regress_command->add_option("--threads", command.threads, "threads (the baseline's count keeps step counts exact)")
      ->capture_default_str();
  regress_command
      ->add_option("--steps-tolerance", command.tolerance.steps_ratio,
                   "least steps ratio a derived tolerance may have, and the limit of rows without one")
      ->capture_default_str();
  regress_command
      ->add_option("--accuracy-tolerance", command.tolerance.accuracy_drop,
                   "accuracy drop allowed in rows of the baseline without a derived tolerance")
      ->capture_default_str();
  regress_command->add_flag("--update", command.update, "rewrite the baseline from this run");
  regress_command->add_option("--only", command.only,
                              "run only these optimizers or entry variants (repeatable); with --update, rewrite only "
                              "their baseline entries");
  return regress_command;
}

// The runs of `spec` that `only` selects (all when it is empty).
std::vector<ngd::RunConfig> selected_runs(const ngd::Spec& spec, const std::vector<std::string>& only) {
  if (only.empty()) return spec.runs;
  std::vector<ngd::RunConfig> runs;
  for (const auto& run : spec.runs) {
    if (std::find(only.begin(), only.end(), run.variant_name()) != only.end()) runs.push_back(run);
  }
  return runs;
}

int regress(const RegressCommand& command) {
  if (!std::filesystem::is_directory(command.suite)) {
    std::cerr << "error: " << command.suite
              << ": no such folder of suite specs (run from the repository root, or pass --suite)\n";
    return kExitBadInput;
  }
  std::vector<std::string> spec_paths;
  for (const auto& entry : std::filesystem::directory_iterator(command.suite)) {
    if (entry.path().extension() == ".json") spec_paths.push_back(entry.path().string());
  }
  std::sort(spec_paths.begin(), spec_paths.end());
  if (spec_paths.empty()) {
    std::cerr << "error: " << command.suite << ": no spec files\n";
    return kExitBadInput;
  }
  ngd::RunnerOptions options;
  options.out_dir = command.out;
  options.progress = false;
  const int threads = command.threads;
  const auto& baseline_path = command.baseline_path;
  const auto& tolerance = command.tolerance;
  options.data_roots = ngd::data_roots(command.data_root);
  options.force = true;  // measure the code as it is now
  ngd::configure_threads(threads);
  nlohmann::json measured = nlohmann::json::object();
  for (const auto& path : spec_paths) {
    try {
      auto spec = ngd::load_spec(path);
      spec.runs = selected_runs(spec, command.only);
      if (spec.runs.empty()) continue;
      std::cout << fmt::format("regress: {} ({} runs)\n", spec.name, spec.runs.size()) << std::flush;
      measured[spec.name] = ngd::measure_configurations(ngd::run_spec(spec, options));
    } catch (const ngd::DatasetNotFound& error) {
      std::cout << fmt::format("regress: skipped {}: {}\n", path, error.what());
    } catch (const std::runtime_error& error) {
      std::cerr << "error: " << error.what() << "\n";
      return kExitBadInput;
    }
  }
  if (measured.empty() && !command.only.empty()) {
    std::cerr << "error: --only: no configuration of " << command.suite << " is named "
              << fmt::format("{}", fmt::join(command.only, ", ")) << "\n";
    return kExitBadInput;
  }
  if (command.update) {
    // --only: the other entries stay as the baseline has them.
    auto baseline = command.only.empty() ? measured : read_baseline(baseline_path).value_or(nlohmann::json::object());
    for (const auto& [suite_name, entries] : measured.items()) {
      for (const auto& [label, entry] : entries.items()) {
        baseline[suite_name][label] = entry;
        baseline[suite_name][label]["tolerance"] = ngd::derive_tolerance(entry, tolerance);
      }
    }
    baseline["_about"] = "ngdbench regress baseline: median steps to the spec's target and final test accuracy per "
                         "configuration, " + std::to_string(ngd::configure_threads(threads)) + " thread(s), each "
                         "with the tolerances derived from its seeds' spread and its test split (docs/testing.md). "
                         "Rewrite with `ngdbench regress --update` when a change is meant to alter convergence.";
    ngd::write_file_atomically(baseline_path, baseline.dump(2) + "\n");
    std::cout << "regress: baseline written to " << baseline_path << "\n";
    return 0;
  }
  const auto baseline = read_baseline(baseline_path);
  if (!baseline) return kExitBadInput;
  // A full run must cover every registered optimizer; --only runs what it names.
  std::vector<std::string> required;
  if (command.only.empty()) {
    for (const auto& entry : ngd::optimizer_registry()) required.push_back(entry.name);
  }
  const auto outcome = ngd::compare_with_baseline(measured, *baseline, required, tolerance, std::cout);
  for (const auto& problem : outcome.problems) std::cout << "regress: " << problem << "\n";
  std::cout << (outcome.passed ? "regress: passed\n" : "regress: FAILED\n");
  return outcome.passed ? 0 : 1;
}

// `ngdbench bleu`'s command line.
struct BleuCommand {
  std::string hypothesis_path;
  std::string reference_path;
};

CLI::App* add_bleu_command(CLI::App& app, BleuCommand& command) {
  auto* bleu_command = app.add_subcommand("bleu", "corpus BLEU of two line-aligned text files (gzip or plain)");
  bleu_command->add_option("hypotheses", command.hypothesis_path, "system output, one detokenized sentence a line")
      ->required()
      ->check(CLI::ExistingFile);
  bleu_command->add_option("references", command.reference_path, "references, line-aligned with the hypotheses")
      ->required()
      ->check(CLI::ExistingFile);
  return bleu_command;
}

int bleu(const BleuCommand& command) {
  const auto& hypothesis_path = command.hypothesis_path;
  const auto& reference_path = command.reference_path;
  std::vector<std::string> hypotheses, references;
  try {
    hypotheses = ngd::read_text_lines(hypothesis_path);
    references = ngd::read_text_lines(reference_path);
  } catch (const std::runtime_error& error) {
    std::cerr << "error: " << error.what() << "\n";
    return kExitBadInput;
  }
  if (hypotheses.size() != references.size()) {
    std::cerr << fmt::format("error: {} has {} lines but {} has {}: the files must be line-aligned\n", hypothesis_path,
                             hypotheses.size(), reference_path, references.size());
    return kExitBadInput;
  }
  std::cout << ngd::sacrebleu_score(hypotheses, references).format()
            << "  [sacreBLEU-compatible: 13a, exp smoothing, case-sensitive]\n";
  std::cout << "tokenized " << ngd::tokenized_bleu_score(hypotheses, references).format()
            << "  [13a-tokenized, no smoothing, case-sensitive: multi-bleu.perl on tokenized text]\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ngd::configure_process_for_timing(argv);
  CLI::App app{"ngdbench: benchmark harness for natural-gradient and other second-order optimizers"};
  app.require_subcommand(1);
  RunCommand run_settings;
  ListCommand list_settings;
  RegressCommand regress_settings;
  BleuCommand bleu_settings;
  SlurmCommand slurm_settings;
  add_run_command(app, run_settings);
  auto* list_command = add_list_command(app, list_settings);
  auto* regress_command = add_regress_command(app, regress_settings);
  auto* bleu_command = add_bleu_command(app, bleu_settings);
  auto* slurm_command = add_slurm_command(app, slurm_settings);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {  // bad arguments exit with 2, like bad specs; --help with 0
    return app.exit(error) == 0 ? 0 : kExitBadInput;
  }
  if (slurm_command->parsed()) return slurm(std::move(slurm_settings));
  if (bleu_command->parsed()) return bleu(bleu_settings);
  if (regress_command->parsed()) return regress(regress_settings);
  if (list_command->parsed()) return list(list_settings);
  return run(std::move(run_settings));
}
