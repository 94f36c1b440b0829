#include "harness/run/runner.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <utility>

#include <c10/util/Exception.h>

#include "base/atomic_file.h"
#include "base/device.h"
#include "base/phase_timer.h"
#include "harness/run/checkpoint.h"
#include "harness/run/compression_stage.h"
#include "harness/run/fidelity.h"
#include "harness/run/interrupt.h"
#include "harness/run/machine.h"
#include "harness/run/memory.h"
#include "harness/run/memory_estimate.h"
#include "harness/run/step_times.h"
#include "harness/run/training_step.h"
#include "harness/run/workload.h"
#include "harness/spec/schedule.h"
#include "harness/spec/workload_entry.h"
#include "optimizers/optimizer.h"
#include "optimizers/registry.h"

namespace ngd {
namespace {

// Steps between checks of the running loss for NaN/inf (each check reads a value back from the device).
constexpr int64_t kDivergenceCheckInterval = 20;
// Seconds between redraws of the in-epoch progress bar on a terminal.
constexpr double kProgressRedrawSeconds = 0.5;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

bool target_reached(const Target& target, const EpochRecord& epoch) {
  const auto value = epoch_metric(epoch, target.metric);
  return value && target.reached(*value);
}

void draw_progress(const RunConfig& config, int64_t epoch, int64_t batch, int64_t batches) {
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * batch / batches);
  std::cerr << fmt::format("\r  {} epoch {}/{} [{}{}] {}/{}", config.run_id(), epoch + 1, config.epochs,
                           std::string(filled, '#'), std::string(kWidth - filled, '.'), batch, batches)
            << std::flush;
}

// The per-epoch progress line's memory and step-time part: the peaks so far (tensors on the CPU, on a
// CUDA device when there are any, the resident set) and the epoch's median step.
std::string describe_memory(const MemoryMeter& memory, const nlohmann::json& step_time_s) {
  const auto resident = peak_resident_bytes();
  const auto cuda = memory.peak_cuda_bytes();
  return fmt::format("mem peak {} cpu tensors{}, {} rss | step p50 {}", format_bytes(memory.peak_allocated_bytes()),
                     cuda ? ", " + format_bytes(*cuda) + " cuda" : "", resident ? format_bytes(*resident) : "?",
                     step_time_s.is_null() ? "-" : fmt::format("{:.1f} ms", 1e3 * step_time_s["p50"].get<double>()));
}

// A train_loss target checked inside epochs (Target::check_every_steps): every N steps, the mean
// per-sample loss of the last epoch's worth of steps. Each check reads one value back from the device;
// its time and host read are kept out of the run's clock and host-sync count, like evaluation.
class InEpochTarget {
 public:
  InEpochTarget(const Target& target, int64_t window_steps) : target_(target), window_steps_(window_steps) {}

  // Adds a finished step's losses (`step` counts the steps taken, this one included); true when this
  // step is checked and reached the target. Epoch ends are left to the epoch's record.
  bool reached_after(int64_t step, bool epoch_end, const torch::Tensor& per_sample_loss) {
    if (stopped_) return false;
    window_.push_back({per_sample_loss.detach().sum().to(torch::kDouble), per_sample_loss.size(0)});
    if (static_cast<int64_t>(window_.size()) > window_steps_) window_.pop_front();
    if (epoch_end || static_cast<int64_t>(window_.size()) < window_steps_ || step % target_.check_every_steps != 0) {
      return false;
    }
    const TimingProbe clock;
    const int64_t syncs_before = host_sync_count();
    std::vector<torch::Tensor> sums;
    int64_t samples = 0;
    for (const auto& [sum, count] : window_) {
      sums.push_back(sum);
      samples += count;
    }
    const bool reached = target_.reached(host_value<double>(torch::stack(sums).sum()) / static_cast<double>(samples));
    const auto spent = clock.finish();
    wall_s_ += spent.wall_s;
    cpu_s_ += spent.cpu_s;
    host_syncs_ += host_sync_count() - syncs_before;
    if (reached) stop();
    return reached;
  }

  // No more checks: the run has reached its target (here or at an epoch's end).
  void stop() {
    stopped_ = true;
    window_.clear();
  }

  // The checks' wall and CPU seconds since the last call, which the epoch's clock leaves out.
  std::pair<double, double> take_seconds() {
    return {std::exchange(wall_s_, 0.0), std::exchange(cpu_s_, 0.0)};
  }
  // The same seconds, left to take.
  std::pair<double, double> seconds() const { return {wall_s_, cpu_s_}; }
  // The checks' host reads so far, which the run's host-sync count leaves out.
  int64_t host_syncs() const { return host_syncs_; }

  // For a checkpoint: the window's losses and whether the checks have stopped.
  NamedTensors state() const {
    std::vector<torch::Tensor> sums;
    std::vector<int64_t> counts;
    for (const auto& [sum, count] : window_) {
      sums.push_back(sum);
      counts.push_back(count);
    }
    return {{"sums", sums.empty() ? torch::empty({0}, torch::kDouble) : torch::stack(sums)},
            {"counts", torch::tensor(counts, torch::kInt64)},
            {"stopped", torch::tensor(stopped_)}};
  }
  void load_state(const NamedTensors& state, const torch::Device& device) {
    const auto sums = named_tensor(state, "sums").to(device);
    const auto counts = named_tensor(state, "counts");
    window_.clear();
    for (int64_t i = 0; i < counts.numel(); ++i) window_.push_back({sums[i], counts[i].item<int64_t>()});
    stopped_ = named_tensor(state, "stopped").item<bool>();
  }

 private:
  struct StepLoss {
    torch::Tensor sum;  // the step's summed per-sample losses, a float64 device scalar
    int64_t count;
  };
  Target target_;
  int64_t window_steps_;
  std::deque<StepLoss> window_;
  bool stopped_ = false;
  double wall_s_ = 0, cpu_s_ = 0;
  int64_t host_syncs_ = 0;
};

// What one run trains with, shared by its epochs.
struct TrainingContext {
  const RunConfig& config;
  const torch::Device& device;
  Workload& workload;
  Optimizer& optimizer;
  const LearningRateSchedule& schedule;
  double base_lr;
  PhaseTimer& timer;
  FidelityProbe& probe;
  StepTimes& step_times;
  InEpochTarget* in_epoch_target;  // null: targets are checked at epoch ends only
  RunCheckpoints* checkpoints;     // null: no checkpoints
  bool draw_bar;
};

// How an epoch's steps ended: all taken, or stopped by a divergence.
struct EpochSteps {
  bool diverged = false;
  std::string divergence;  // what an optimizer said when its curvature turned non-finite (Diverged)
  double lr = 0;           // the last step's learning rate
  std::optional<int64_t> target_step;  // the steps taken when an in-epoch check first reached the target
};

// Takes the steps of `epoch` from batch `batch` on, advancing `batch` and `step` (the run's step count,
// the diverging step included), until the epoch's steps are done, a divergence, or a checkpoint due
// inside the epoch (`batch` is then the next one). `outcome` is the epoch's outcome so far.
EpochSteps train_epoch_steps(const TrainingContext& context, int64_t epoch, int64_t steps_per_epoch, int64_t& batch,
                             int64_t& step, EpochSteps outcome) {
  auto& workload = context.workload;
  auto& optimizer = context.optimizer;
  auto last_draw = Clock::now();
  const auto stop = [&outcome, &step] {
    outcome.diverged = true;
    ++step;
    return outcome;
  };
  for (; batch < steps_per_epoch; ++batch, ++step) {
    const auto step_start = Clock::now();
    StepInfo info{step, epoch, batch, steps_per_epoch, {}, {}};
    {
      auto scope = context.timer.scope(Phase::kData);
      info.sample_ids = workload.next_batch();
    }
    info.batch_loss = loss_keeping_buffers(workload.model(), [&workload] { return workload.batch_loss(); });
    const auto probe_start = Clock::now();
    context.probe.before_step(info, [&workload] { return workload.forward(); });
    const auto probe_end = Clock::now();
    const auto passes = forward_backward(
        workload.model(), optimizer, info, [&workload] { return workload.forward(); },
        [&workload](const torch::Tensor& logits) { return workload.sampled_target_loss(logits); }, context.timer);
    if (!passes.back_propagated) return stop();  // non-finite logits: nothing to sample the true Fisher from
    {
      auto scope = context.timer.scope(Phase::kStep);
      outcome.lr = context.base_lr * context.schedule(step);
      optimizer.set_learning_rate(outcome.lr);
      try {
        optimizer.step(info, context.timer);
      } catch (const Diverged& error) {
        outcome.diverged = true;
        outcome.divergence = error.what();
      }
    }
    if (outcome.diverged) return stop();
    context.step_times.add(std::chrono::duration<double>(Clock::now() - step_start - (probe_end - probe_start)).count(),
                           optimizer.refreshed_curvature());
    context.probe.after_step(info);
    workload.accumulate(passes.logits, passes.per_sample_loss);
    if (context.in_epoch_target &&
        context.in_epoch_target->reached_after(step + 1, batch + 1 == steps_per_epoch, passes.per_sample_loss)) {
      outcome.target_step = step + 1;
    }
    if ((batch + 1) % kDivergenceCheckInterval == 0 || batch + 1 == steps_per_epoch) {
      if (!std::isfinite(host_value<double>(workload.training_loss_sum()))) return stop();
    }
    if (context.draw_bar && seconds_since(last_draw) > kProgressRedrawSeconds) {
      draw_progress(context.config, epoch, batch + 1, steps_per_epoch);
      last_draw = Clock::now();
    }
    if (context.checkpoints && batch + 1 < steps_per_epoch && context.checkpoints->due_mid_epoch(step + 1)) {
      ++batch;
      ++step;
      return outcome;
    }
  }
  return outcome;
}

// The optimizer's report, phase times, host reads, memory and step times of a finished run (diverged or not).
// `optimizer`: the one the run ends with (a compression run's fine-tuning optimizer), whose state is counted.
void record_run_costs(RunResult& result, nlohmann::json optimizer_report, CaptureModel& model, const Optimizer& optimizer,
                      const PhaseTimer& timer, int64_t steps, int64_t host_syncs, MemoryMeter& memory,
                      const std::optional<MemoryEstimate>& estimate, const StepTimes& step_times) {
  result.optimizer_report = complete_phases(std::move(optimizer_report), result.epochs);
  memory.note_optimizer_state(optimizer);
  result.memory = memory.to_json(parameter_bytes(model));
  result.memory["estimate"] = estimate ? estimate->to_json() : nlohmann::json();
  result.step_time_s = step_times.run_json();
  for (size_t p = 0; p < static_cast<size_t>(Phase::kCount) && timer.enabled(); ++p) {
    result.phase_times_s[phase_name(static_cast<Phase>(p))] = timer.seconds(static_cast<Phase>(p));
  }
  result.host_syncs = {{"total", host_syncs},
                       {"per_step", steps > 0 ? static_cast<double>(host_syncs) / static_cast<double>(steps) : 0.0}};
}

// Whether a LibTorch error is a failed allocation: its allocators' messages (CPU, CUDA) and the
// overflow of a tensor's size in bytes.
bool is_allocation_message(const std::string& message) {
  for (const char* sign : {"can't allocate memory", "out of memory", "Storage size calculation overflowed"}) {
    if (message.find(sign) != std::string::npos) return true;
  }
  return false;
}

// An allocation failure as a message that names the run, what it was doing, the settings that size its
// memory (model, batch size) and the allocator's own message (which holds the bytes it asked for).
std::string allocation_failure(const RunConfig& config, const std::string& phase, const std::string& detail) {
  return fmt::format("run {}: out of memory {} (model {} {}, batch size {}, optimizer {}): {}", config.run_id(),
                     phase, config.model, config.model_options.dump(), config.batch_size, config.optimizer, detail);
}

// The training loop of every workload. A non-finite training loss (or an optimizer's Diverged) ends the
// run as "diverged", any other exception as "failed"; neither throws. A run whose memory estimate
// exceeds options.memory_limit is "failed" before training, with the estimate in its "memory" block.
// `workload_entry` builds the run's Workload on `data` and says whether it has a memory estimate and a
// model cost.
RunResult train_workload(const RunConfig& config, const WorkloadEntry& workload_entry, const WorkloadData& data,
                         const RunnerOptions& options) {
  RunResult result;
  result.config = config;
  result.meta = machine_meta(options.device);
  std::string phase = "estimating memory";  // for allocation failures
  try {
    const torch::Device device(options.device);
    const auto estimate = workload_entry.estimate_memory
                              ? std::optional<MemoryEstimate>(workload_entry.estimate_memory(config, data))
                              : std::nullopt;
    if (const auto refusal = estimate ? memory_refusal(*estimate, options.memory_limit, options.device) : std::nullopt) {
      result.status = "failed";
      result.error = fmt::format("run {}: {}", config.run_id(), *refusal);
      result.memory = {{"estimate", estimate->to_json()}};
      return result;
    }
    phase = "building the model";
    MemoryMeter memory;  // before the model and the batch loader, whose tensors it counts
    torch::manual_seed(static_cast<uint64_t>(config.seed));
    auto workload = workload_entry.make(config, data, options, result.meta);
    std::optional<CompressionStage> compression;
    if (!config.compression.is_null()) {
      workload = regularized_workload(std::move(workload), compression_settings(config.compression));
      compression.emplace(config, *workload, device);
    }
    auto& model = workload->model();
    phase = "building the optimizer";
    auto optimizer = make_optimizer(config.optimizer, model, config.hparams);
    phase = "training";
    const auto schedule = make_schedule(config.schedule, config.epochs, workload->nominal_batches_per_epoch());
    PhaseTimer timer(options.phase_timing, [&device] { synchronize(device); });
    timer.observe_phases([&memory](Phase next) { memory.enter_phase(next); });
    StepTimes step_times;
    // Probes follow one optimizer on one model: none in a compression run, whose layers are replaced.
    const auto fidelity = compression ? FidelitySettings{} : fidelity_settings(config.fidelity, options.fidelity_every);
    FidelityProbe probe(fidelity, model, *optimizer, device);
    std::optional<InEpochTarget> in_epoch_target;
    if (config.target && config.target->check_every_steps > 0) {
      in_epoch_target.emplace(*config.target, workload->nominal_batches_per_epoch());
    }
    const CheckpointedParts parts{model, *optimizer, *workload, device};
    std::optional<RunCheckpoints> checkpoints;
    RunPosition resumed;  // where this piece of the run starts: a checkpoint's position, or the start
    std::optional<Checkpoint> checkpoint;
    // A compression run replaces layers midway, which a checkpoint does not record: it runs through,
    // but shares its training with the sweep's runs that differ from it only after training.
    const bool shares_training = compression && !options.out_dir.empty();
    if (options.checkpoints && !compression) {
      // The probes' per-epoch measurements are not checkpointed: with probes, at epoch ends only.
      checkpoints.emplace(config, options.out_dir, *options.checkpoints, checkpoint_producer(result.meta),
                          fidelity.every_steps == 0);
      phase = "resuming from a checkpoint";
      checkpoint = checkpoints->newest();
      if (checkpoint) ++checkpoint->position.resumes;
    } else if (shares_training) {
      phase = "reading a shared training";
      checkpoint = read_shared_training(options.out_dir, config, checkpoint_producer(result.meta));
      if (checkpoint) result.meta["training_from"] = checkpoint->written_by;
    }
    const bool trains_from_start = !checkpoint;
    if (checkpoint) {
      restore_parts(*checkpoint, parts);
      if (in_epoch_target) in_epoch_target->load_state(tensors_under(checkpoint->tensors, "in_epoch_target/"), device);
      resumed = checkpoint->position;
      result.epochs = std::move(checkpoint->epochs);
      result.time_to_target_s = checkpoint->time_to_target_s;
      result.epochs_to_target = checkpoint->epochs_to_target;
      result.steps_to_target = checkpoint->steps_to_target;
      checkpoint.reset();
    }
    phase = "training";
    const TrainingContext context{config,
                                  device,
                                  *workload,
                                  *optimizer,
                                  schedule,
                                  config.hparams.at("lr").get<double>(),
                                  timer,
                                  probe,
                                  step_times,
                                  in_epoch_target ? &*in_epoch_target : nullptr,
                                  checkpoints ? &*checkpoints : nullptr,
                                  options.progress && ::isatty(STDERR_FILENO)};
    // The settings the probes ran with (the CLI may override the spec's, or turn them off).
    result.config.fidelity = fidelity.every_steps > 0
                                 ? nlohmann::json{{"every_steps", fidelity.every_steps}, {"damping", fidelity.damping}}
                                 : nlohmann::json();
    int64_t probe_host_syncs = 0;
    const int64_t host_syncs_before = host_sync_count();
    // Host reads inside this piece's training steps (the probes' and the in-epoch checks' left out).
    const auto counted_host_syncs = [&] {
      return host_sync_count() - host_syncs_before - probe_host_syncs -
             (in_epoch_target ? in_epoch_target->host_syncs() : 0);
    };
    int64_t step = resumed.step;
    double cumulative_time = resumed.cumulative_time_s;
    // The run's state at `position` (epoch and batch set), completed with its progress so far.
    const auto capture_checkpoint = [&](RunPosition position) {
      position.step = step;
      position.cumulative_time_s = cumulative_time;
      position.host_syncs = resumed.host_syncs + counted_host_syncs();
      position.resumes = resumed.resumes;
      for (size_t p = 0; p < static_cast<size_t>(Phase::kCount) && timer.enabled(); ++p) {
        const auto name = phase_name(static_cast<Phase>(p));
        position.phase_times_s[name] = timer.seconds(static_cast<Phase>(p)) + resumed.phase_times_s.value(name, 0.0);
      }
      Checkpoint written{position, result.epochs, result.time_to_target_s, result.epochs_to_target,
                         result.steps_to_target, {}, {}, {}};
      capture_parts(parts, written);
      if (in_epoch_target) {
        for (const auto& [name, tensor] : in_epoch_target->state()) written.tensors["in_epoch_target/" + name] = tensor;
      }
      return written;
    };
    // Writes a checkpoint at `position`; returns its path, or "" when it could not be written (said on
    // stderr: training goes on).
    const auto write_checkpoint = [&](const RunPosition& position) {
      try {
        return checkpoints->write(capture_checkpoint(position));
      } catch (const std::runtime_error& error) {
        std::cerr << fmt::format("warning: run {}: no checkpoint written: {}\n", config.run_id(), error.what());
        return std::string();
      }
    };
    // After the training epochs (untimed): the state the runs sharing this training resume from, unless
    // this run resumed from it; then the model is compressed and the fine-tuning optimizer returned.
    const auto compress = [&] {
      if (shares_training && trains_from_start) {
        RunPosition after_training;
        after_training.epoch = config.epochs;
        try {
          write_shared_training(options.out_dir, config, checkpoint_producer(result.meta), capture_checkpoint(after_training));
        } catch (const std::runtime_error& error) {
          std::cerr << fmt::format("warning: run {}: its training not shared: {}\n", config.run_id(), error.what());
        }
      }
      return compression->compress(result.epochs.back());
    };
    std::optional<std::string> stopped_at;  // the checkpoint a signal stopped the run at ("": none could be written)
    const int64_t total_epochs = config.epochs + (compression ? compression->fine_tune_epochs() : 0);
    std::unique_ptr<Optimizer> fine_tune_optimizer;
    std::optional<LearningRateSchedule> fine_tune_schedule;
    std::optional<TrainingContext> fine_tune_context;
    for (int64_t epoch = resumed.epoch; epoch < total_epochs && !stopped_at; ++epoch) {
      if (compression && epoch == config.epochs) {
        fine_tune_optimizer = compress();
        fine_tune_schedule = make_schedule(resolve_schedule({{"name", "constant"}}, "compression.fine_tune"),
                                           compression->fine_tune_epochs(), workload->nominal_batches_per_epoch());
        fine_tune_context.emplace(TrainingContext{config, device, *workload, *fine_tune_optimizer, *fine_tune_schedule,
                                                  compression->settings().fine_tune_hparams.at("lr").get<double>(),
                                                  timer, probe, step_times, in_epoch_target ? &*in_epoch_target : nullptr,
                                                  nullptr, context.draw_bar});
      }
      const auto& active = fine_tune_context ? *fine_tune_context : context;
      model.train();
      // Resumed inside this epoch: its batches go on where the checkpoint was, and its clock adds the
      // earlier piece's.
      const bool continuing = epoch == resumed.epoch && resumed.next_batch > 0;
      const int64_t steps_per_epoch = continuing ? resumed.steps_per_epoch : workload->start_epoch(epoch);
      synchronize(device);  // epoch times always wait for the device: queued kernels are not finished work
      const TimingProbe epoch_clock;
      if (!continuing) step_times.start_epoch();  // a resumed epoch's series holds this piece's steps only
      TimingSample earlier_and_untimed;  // the earlier piece's seconds, less the checkpoints' written in this one
      if (continuing) earlier_and_untimed = {resumed.epoch_wall_s, resumed.epoch_cpu_s, 0};
      int64_t batch = continuing ? resumed.next_batch : 0;
      EpochSteps steps;
      steps.lr = continuing ? resumed.learning_rate : active.base_lr;
      if (continuing) steps.target_step = resumed.target_step;
      while (true) {
        steps = train_epoch_steps(active, epoch, steps_per_epoch, batch, step, steps);
        if (steps.diverged || batch == steps_per_epoch) break;
        synchronize(device);  // a checkpoint is due inside the epoch
        const auto so_far = epoch_clock.finish();
        const TimingProbe writing;
        const auto [check_wall_s, check_cpu_s] =
            in_epoch_target ? in_epoch_target->seconds() : std::pair<double, double>{0, 0};
        RunPosition position;
        position.epoch = epoch;
        position.next_batch = batch;
        position.steps_per_epoch = steps_per_epoch;
        position.learning_rate = steps.lr;
        position.target_step = steps.target_step;
        position.epoch_wall_s = so_far.wall_s - check_wall_s + earlier_and_untimed.wall_s;
        position.epoch_cpu_s = so_far.cpu_s - check_cpu_s + earlier_and_untimed.cpu_s;
        const auto path = write_checkpoint(position);
        const auto spent = writing.finish();
        earlier_and_untimed.wall_s -= spent.wall_s;
        earlier_and_untimed.cpu_s -= spent.cpu_s;
        if (checkpoint_requested()) {
          stopped_at = path;
          break;
        }
      }
      if (stopped_at) break;
      synchronize(device);
      const auto probes = probe.end_epoch();  // untimed, like evaluation
      probe_host_syncs += probes.host_syncs;
      auto epoch_timing = epoch_clock.finish();
      epoch_timing.wall_s -= probes.seconds;
      epoch_timing.cpu_s -= probes.cpu_seconds;
      if (in_epoch_target) {
        const auto [check_wall_s, check_cpu_s] = in_epoch_target->take_seconds();
        epoch_timing.wall_s -= check_wall_s;
        epoch_timing.cpu_s -= check_cpu_s;
      }
      epoch_timing.wall_s += earlier_and_untimed.wall_s;
      epoch_timing.cpu_s += earlier_and_untimed.cpu_s;
      const double epoch_time = epoch_timing.wall_s;
      if (context.draw_bar) std::cerr << "\r" << std::string(80, ' ') << "\r";
      cumulative_time += epoch_time;
      if (steps.diverged) {
        result.status = "diverged";
        result.error = steps.divergence.empty()
                           ? fmt::format("non-finite training loss in epoch {} (by step {})", epoch + 1, step)
                           : fmt::format("{} in epoch {} (step {})", steps.divergence, epoch + 1, step);
        break;
      }
      EpochRecord record;
      record.epoch = epoch + 1;
      record.train_time_s = epoch_time;
      record.cumulative_train_time_s = cumulative_time;
      record.cumulative_steps = step;
      record.learning_rate = steps.lr;
      record.fidelity = probes.summary;
      record.cpu_time_s = epoch_timing.cpu_s;
      record.load_average = epoch_timing.load_average;
      record.timing_suspect = epoch_timing.suspect_reason(result.meta["cpu_count"].get<unsigned>(), device.is_cpu());
      record.step_time_s = step_times.epoch_json();
      memory.note_optimizer_state(*optimizer);
      workload->finish_epoch(record);
      result.epochs.push_back(record);
      // Reached inside the epoch: steps count to that check; the clock is read at epoch ends only.
      if (config.target && !result.time_to_target_s && (steps.target_step || target_reached(*config.target, record))) {
        result.time_to_target_s = cumulative_time;
        result.epochs_to_target = record.epoch;
        result.steps_to_target = steps.target_step.value_or(step);
        if (in_epoch_target) in_epoch_target->stop();
      }
      if (options.progress) {
        std::cout << fmt::format("  {} [{}] epoch {}/{}: {} | {:.2f} s | {}{}\n", config.run_id(), config.label(),
                                 record.epoch, total_epochs, workload->describe(record), epoch_time,
                                 describe_memory(memory, record.step_time_s),
                                 record.timing_suspect.empty() ? "" : " (timing suspect: " + record.timing_suspect + ")")
                  << std::flush;
      }
      const auto [held_out, held_out_name] = workload->held_out_loss(record);
      if (!std::isfinite(held_out)) {
        result.status = "diverged";
        result.error = fmt::format("non-finite {} after epoch {}", held_out_name, epoch + 1);
        break;
      }
      if (checkpoints && epoch + 1 < config.epochs && checkpoints->due_at_epoch_end(step)) {
        RunPosition position;
        position.epoch = epoch + 1;
        const auto path = write_checkpoint(position);
        if (checkpoint_requested()) stopped_at = path;
      }
    }
    if (stopped_at) {
      result.status = "checkpointed";
      result.error = stopped_at->empty() ? fmt::format("run {}: no checkpoint could be written at step {}", config.run_id(), step)
                                         : fmt::format("the checkpoint {} (step {})", *stopped_at, step);
    } else if (result.status.empty()) {
      result.status = "completed";
      result.final_evaluation = workload->final_evaluation();
      if (compression) {
        if (!fine_tune_optimizer) fine_tune_optimizer = compress();  // 0 epochs
        const bool fine_tuned = compression->fine_tune_epochs() > 0;
        result.compression = compression->finish(fine_tuned ? &result.epochs.back() : nullptr,
                                                 fine_tune_optimizer->report());
      }
      if (workload_entry.model_cost) result.model_cost = workload_entry.model_cost(model, config, data, device);
    }
    record_run_costs(result, compression ? with_fine_tune_phase(optimizer->report(), config.epochs) : optimizer->report(),
                     model, fine_tune_optimizer ? *fine_tune_optimizer : *optimizer, timer, step,
                     resumed.host_syncs + counted_host_syncs(), memory, estimate, step_times);
    if (checkpoints || !trains_from_start) add_earlier_pieces(result, resumed);
  } catch (const std::bad_alloc& error) {
    result.status = "failed";
    result.error = allocation_failure(config, phase, error.what());
  } catch (const c10::Error& error) {
    result.status = "failed";
    const std::string message = error.what_without_backtrace();
    result.error = is_allocation_message(message) ? allocation_failure(config, phase, message) : error.what();
  } catch (const std::exception& error) {
    result.status = "failed";
    result.error = error.what();
  }
  return result;
}

}  // namespace

RunResult train_run(const RunConfig& config, const WorkloadData& data, const RunnerOptions& options) {
  return train_workload(config, workload_entry(config.workload), data, options);
}

RunResult train_run(const RunConfig& config, const WorkloadEntry& workload, const WorkloadData& data,
                    const RunnerOptions& options) {
  return train_workload(config, workload, data, options);
}

std::vector<RunConfig> selected_runs(const Spec& spec, const RunnerOptions& options) {
  std::vector<RunConfig> runs;
  for (const auto& run : spec.runs) {
    const auto name = fmt::format("{}/{} {}", run.experiment, run.run_id(), run.label());
    if (options.filter && !std::regex_search(name, *options.filter)) continue;
    if (options.max_trials && !run.tuning.is_null() && run.trial >= *options.max_trials) continue;
    runs.push_back(run);
  }
  return runs;
}

std::vector<nlohmann::json> run_spec(const Spec& spec, const RunnerOptions& options) {
  const auto runs = selected_runs(spec, options);
  if (!runs.empty()) {
    const auto folder = (std::filesystem::path(options.out_dir) / spec.name).string();
    if (const size_t removed = remove_stale_temporaries(folder)) {
      std::cerr << fmt::format("note: {}: removed {} temporary file(s) of killed runs on this host\n", folder, removed);
    }
  }
  // The first and the last of these runs to share each training: a forced rerun trains it afresh, and
  // its file goes once the last is done.
  std::map<std::string, std::pair<size_t, size_t>> sharing;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (const auto shared = runs[i].shared_training_id(); !shared.empty()) sharing.try_emplace(shared, i, i).first->second.second = i;
  }
  const auto sharing_ends = [&](size_t i) {
    const auto found = sharing.find(runs[i].shared_training_id());
    if (found != sharing.end() && found->second.second == i) remove_shared_training(options.out_dir, runs[i]);
  };
  std::map<std::string, std::shared_ptr<const WorkloadData>> loaded;  // by workload: a spec has one dataset
  std::vector<nlohmann::json> results;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (options.checkpoints && checkpoint_requested()) exit_checkpointed("the runs before this one");
    const auto& run = runs[i];
    const auto progress = fmt::format("[{}/{}] {}/{} ({}, seed {})", i + 1, runs.size(), run.experiment,
                                      run.run_id(), run.label(), run.seed);
    check_result_location(result_path(options.out_dir, run));
    if (!options.force) {
      if (auto finished = load_finished_result(options.out_dir, run)) {
        if (options.progress) std::cout << progress << ": already " << (*finished)["status"].get<std::string>() << "\n";
        results.push_back(std::move(*finished));
        count_saved_run(false);
        sharing_ends(i);
        continue;
      }
    }
    const auto& workload = workload_entry(run.workload);
    auto& data = loaded[workload.name];
    if (!data) {
      data = workload.load(run.dataset, options.data_roots);
      // Before the spec's first training (and after a missing dataset has skipped it): an unwritable
      // folder stops the sweep, not a finished run.
      check_writable_folder((std::filesystem::path(options.out_dir) / run.experiment).string());
    }
    if (options.force) {  // a forced rerun starts afresh
      remove_checkpoints(options.out_dir, run);
      const auto found = sharing.find(run.shared_training_id());
      if (found != sharing.end() && found->second.first == i) remove_shared_training(options.out_dir, run);
    }
    if (options.progress) std::cout << progress << "\n" << std::flush;
    const auto trained = train_workload(run, workload, *data, options);
    if (trained.status == "checkpointed") exit_checkpointed(trained.error);
    auto result = to_json(trained);
    write_file_atomically(result_path(options.out_dir, run), result.dump(2) + "\n");
    if (options.checkpoints && !options.checkpoints->keep) remove_checkpoints(options.out_dir, run);
    sharing_ends(i);
    count_saved_run(true);
    if (result["status"] != "completed") {
      std::cout << fmt::format("  {}: {}: {}\n", run.run_id(), result["status"].get<std::string>(),
                               result["error"].get<std::string>());
    }
    results.push_back(std::move(result));
  }
  return results;
}

}  // namespace ngd
