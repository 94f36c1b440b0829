// ngdbench: trains every model × dataset × optimizer × seed of JSON experiment specs and writes one
// result file per run. `ngdbench --help` lists the commands.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "datasets/dataset.h"
#include "datasets/multi30k.h"
#include "harness/bleu.h"
#include "harness/machine.h"
#include "harness/regress.h"
#include "harness/results.h"
#include "harness/runner.h"
#include "harness/schedule.h"
#include "harness/spec.h"
#include "optimizers/optimizer.h"

namespace {

// Exit status for bad input (spec errors, unknown names).
constexpr int kExitBadInput = 2;

void print_options(const std::vector<ngd::OptionInfo>& options) {
  for (const auto& option : options) {
    std::cout << fmt::format("    {:<16} {:<12} {}\n", option.name, option.default_value.dump(), option.help);
  }
}

int list(const std::string& what, bool verbose) {
  if (what == "optimizers") {
    for (const auto& entry : ngd::optimizer_registry()) {
      std::cout << entry.name << (verbose ? "  — " + entry.summary : "") << "\n";
      if (verbose) print_options(entry.hyperparameters);
    }
  } else if (what == "models") {
    for (const auto& entry : ngd::model_registry()) {
      std::cout << entry.name << (verbose ? "  — " + entry.summary : "") << "\n";
      if (verbose) print_options(entry.options);
    }
  } else if (what == "datasets") {
    for (const auto& entry : ngd::dataset_registry()) {
      std::cout << entry.name << (verbose ? "  — " + entry.summary + " (folder " + entry.folder + ")" : "") << "\n";
    }
  } else if (what == "schedules") {
    for (const auto& entry : ngd::schedule_registry()) {
      std::cout << entry.name << (verbose ? "  — " + entry.summary : "") << "\n";
      if (verbose) print_options(entry.options);
    }
  }
  return 0;
}

int run(const std::vector<std::string>& spec_paths, ngd::RunnerOptions options, const std::string& data_root,
        int threads, std::string scale, bool dry_run) {
  if (scale == "auto") {
    scale = torch::cuda::is_available() ? "paper" : "cpu";
    std::cout << fmt::format("ngdbench: scale '{}' ({})\n", scale,
                             scale == "paper" ? "a CUDA device is present" : "no CUDA device: the scaled-down protocol");
  }
  std::vector<ngd::Spec> specs;
  for (const auto& path : spec_paths) {
    try {
      specs.push_back(ngd::load_spec(path, scale));
    } catch (const std::exception& error) {
      std::cerr << "error: " << error.what() << "\n";
      return kExitBadInput;
    }
  }
  options.data_roots = ngd::data_roots(data_root);
  if (dry_run) {
    for (const auto& spec : specs) {
      const auto runs = ngd::selected_runs(spec, options);
      std::cout << fmt::format("{} ({}): {} runs\n", spec.name, spec.path, runs.size());
      for (const auto& run : runs) {
        std::cout << fmt::format("  {}/{}  {} seed={} hparams={} schedule={}\n", run.experiment, run.run_id(),
                                 run.label(), run.seed, run.hparams.dump(), run.schedule.dump());
      }
    }
    return 0;
  }
  const int threads_in_use = ngd::configure_threads(threads);
  std::cout << fmt::format("ngdbench: {} thread(s), device {}, results in {}\n", threads_in_use, options.device,
                           options.out_dir);
  int failures = 0;
  for (const auto& spec : specs) {
    try {
      const auto results = ngd::run_spec(spec, options);
      ngd::print_summary(spec, results, std::cout);
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

int regress(const std::string& suite, const std::string& baseline_path, ngd::RunnerOptions options,
            const std::string& data_root, int threads, bool update, const ngd::RegressTolerance& tolerance) {
  std::vector<std::string> spec_paths;
  for (const auto& entry : std::filesystem::directory_iterator(suite)) {
    if (entry.path().extension() == ".json") spec_paths.push_back(entry.path().string());
  }
  std::sort(spec_paths.begin(), spec_paths.end());
  if (spec_paths.empty()) {
    std::cerr << "error: " << suite << ": no spec files\n";
    return kExitBadInput;
  }
  options.data_roots = ngd::data_roots(data_root);
  options.force = true;  // measure the code as it is now
  ngd::configure_threads(threads);
  nlohmann::json measured = nlohmann::json::object();
  for (const auto& path : spec_paths) {
    try {
      const auto spec = ngd::load_spec(path);
      std::cout << fmt::format("regress: {} ({} runs)\n", spec.name, spec.runs.size()) << std::flush;
      measured[spec.name] = ngd::measure_configurations(ngd::run_spec(spec, options));
    } catch (const ngd::DatasetNotFound& error) {
      std::cout << fmt::format("regress: skipped {}: {}\n", path, error.what());
    } catch (const std::runtime_error& error) {
      std::cerr << "error: " << error.what() << "\n";
      return kExitBadInput;
    }
  }
  if (update) {
    auto baseline = measured;
    baseline["_about"] = "ngdbench regress baseline: median steps to the spec's target and final test accuracy per "
                         "configuration, " + std::to_string(ngd::configure_threads(threads)) + " thread(s). "
                         "Rewrite with `ngdbench regress --update` when a change is meant to alter convergence.";
    ngd::write_file_atomically(baseline_path, baseline.dump(2) + "\n");
    std::cout << "regress: baseline written to " << baseline_path << "\n";
    return 0;
  }
  std::ifstream file(baseline_path);
  if (!file) {
    std::cerr << "error: " << baseline_path << ": no baseline (create it with `ngdbench regress --update`)\n";
    return kExitBadInput;
  }
  nlohmann::json baseline;
  try {
    baseline = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    std::cerr << "error: " << baseline_path << ": " << error.what() << "\n";
    return kExitBadInput;
  }
  std::vector<std::string> required;
  for (const auto& entry : ngd::optimizer_registry()) required.push_back(entry.name);
  const auto outcome = ngd::compare_with_baseline(measured, baseline, required, tolerance, std::cout);
  for (const auto& problem : outcome.problems) std::cout << "regress: " << problem << "\n";
  std::cout << (outcome.passed ? "regress: passed\n" : "regress: FAILED\n");
  return outcome.passed ? 0 : 1;
}

int bleu(const std::string& hypothesis_path, const std::string& reference_path) {
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
  CLI::App app{"ngdbench: benchmark harness for natural-gradient and other second-order optimizers"};
  app.require_subcommand(1);

  auto* run_command = app.add_subcommand("run", "train the runs of experiment specs, resuming finished ones");
  std::vector<std::string> spec_paths;
  ngd::RunnerOptions options;
  std::string data_root;
  std::string filter;
  int threads = 0;
  bool dry_run = false;
  bool quiet = false;
  run_command->add_option("specs", spec_paths, "experiment spec files (JSON)")->required()->check(CLI::ExistingFile);
  run_command->add_option("--out", options.out_dir, "results folder (OUT/<experiment>/<run-id>.json)")->capture_default_str();
  run_command->add_option("--data-root", data_root, "data root searched first (then $NGDBENCH_DATA, ./data, /usr/share/datasets)");
  run_command->add_option("--threads", threads, "intra-op and BLAS threads (0 = one per core)")->check(CLI::NonNegativeNumber);
  run_command->add_option("--device", options.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  run_command->add_option("--filter", filter, "only runs whose '<experiment>/<run-id> <label>' matches this regex");
  std::string scale;
  run_command->add_option("--scale", scale,
                          "a scale the specs define (e.g. cpu, paper), or auto: paper with CUDA, else cpu");
  run_command->add_flag("--dry-run", dry_run, "print the expanded runs and exit");
  run_command->add_flag("--force", options.force, "rerun runs that already have a finished result");
  run_command->add_flag("--quiet", quiet, "no per-epoch lines");
  bool no_prefetch = false;
  run_command->add_flag("--no-prefetch", no_prefetch, "prepare training batches on the training thread");

  auto* list_command = app.add_subcommand("list", "list the registered optimizers, models, datasets or schedules");
  std::string what;
  bool verbose = false;
  list_command->add_option("what", what, "optimizers | models | datasets | schedules")
      ->required()
      ->check(CLI::IsMember({"optimizers", "models", "datasets", "schedules"}));
  list_command->add_flag("-v,--verbose", verbose, "with summaries and settings (name, default, meaning)");

  auto* regress_command =
      app.add_subcommand("regress", "run the convergence regression suite and compare it with the committed baseline");
  std::string suite = "experiments/ci";
  std::string baseline_path = "results/baselines/ci.json";
  std::string regress_out = "build/regress-runs";
  bool update = false;
  int regress_threads = 1;
  ngd::RegressTolerance tolerance;
  regress_command->add_option("--suite", suite, "folder of suite specs")->capture_default_str();
  regress_command->add_option("--baseline", baseline_path, "baseline file")->capture_default_str();
  regress_command->add_option("--out", regress_out, "where the suite's result files go")->capture_default_str();
  regress_command->add_option("--data-root", data_root, "data root searched first");
  regress_command->add_option("--threads", regress_threads, "threads (the baseline's count keeps step counts exact)")
      ->capture_default_str();
  regress_command->add_option("--steps-tolerance", tolerance.steps_ratio, "fail when steps to target grow beyond ×this")
      ->capture_default_str();
  regress_command->add_option("--accuracy-tolerance", tolerance.accuracy_drop, "fail when final test accuracy drops by more")
      ->capture_default_str();
  regress_command->add_flag("--update", update, "rewrite the baseline from this run");

  auto* bleu_command = app.add_subcommand("bleu", "corpus BLEU of two line-aligned text files (gzip or plain)");
  std::string hypothesis_path, reference_path;
  bleu_command->add_option("hypotheses", hypothesis_path, "system output, one detokenized sentence a line")
      ->required()
      ->check(CLI::ExistingFile);
  bleu_command->add_option("references", reference_path, "references, line-aligned with the hypotheses")
      ->required()
      ->check(CLI::ExistingFile);

  CLI11_PARSE(app, argc, argv);
  if (bleu_command->parsed()) return bleu(hypothesis_path, reference_path);
  if (regress_command->parsed()) {
    ngd::RunnerOptions regress_options;
    regress_options.out_dir = regress_out;
    regress_options.progress = false;
    return regress(suite, baseline_path, regress_options, data_root, regress_threads, update, tolerance);
  }
  if (list_command->parsed()) return list(what, verbose);
  options.progress = !quiet;
  options.prefetch = !no_prefetch;
  if (!filter.empty()) {
    try {
      options.filter = std::regex(filter);
    } catch (const std::regex_error& error) {
      std::cerr << "error: --filter: invalid regex '" << filter << "': " << error.what() << "\n";
      return kExitBadInput;
    }
  }
  if (options.device == "cuda" && !torch::cuda::is_available()) {
    std::cerr << "error: --device cuda: this LibTorch build sees no CUDA device\n";
    return kExitBadInput;
  }
  return run(spec_paths, options, data_root, threads, scale, dry_run);
}
