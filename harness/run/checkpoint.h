#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/results/results.h"
#include "harness/run/workload.h"
#include "harness/spec/checkpoint_settings.h"
#include "models/model.h"
#include "optimizers/optimizer.h"

namespace ngd {

// Checkpoints of a run (docs/checkpoints.md): everything a run carries from one step to the next, so
// that a run stopped (a signal, a time limit, a killed node) and resumed from its newest checkpoint
// ends with the same numbers, bit for bit, as if it had never stopped.
//
// A checkpoint is OUT/<experiment>/<run-id>.step-<steps taken, 12 digits>.ckpt: the line
// "ngdbench-checkpoint 1", a JSON header on one line (the run's identity and the code that wrote it,
// the run's position and records so far, the payload's size and hash), then the payload: the tensors,
// pickled (torch::pickle_save). It is written to a temporary file, flushed, renamed into place and the
// folder flushed, so a kill at any moment leaves the previous checkpoint whole; the two newest are kept.

// Where a run stands at a checkpoint, and the costs of its pieces so far.
struct RunPosition {
  int64_t epoch = 0;            // the epoch in progress, from 0 (or, with next_batch 0, the next to start)
  int64_t next_batch = 0;       // that epoch's next batch; 0: it has not started
  int64_t steps_per_epoch = 0;  // that epoch's batches (when started)
  int64_t step = 0;             // steps taken
  double learning_rate = 0;     // the epoch's last step's (when started)
  std::optional<int64_t> target_step;  // the step an in-epoch check reached the target, in this epoch
  double epoch_wall_s = 0;      // the epoch's training so far (when started), untimed parts left out
  double epoch_cpu_s = 0;
  double cumulative_time_s = 0;  // the finished epochs' train_time_s summed
  int64_t host_syncs = 0;        // host reads counted in the result's host_syncs so far
  nlohmann::json phase_times_s = nlohmann::json::object();  // phase -> seconds so far
  int64_t resumes = 0;           // how often the run resumed before this checkpoint was written
};

// A checkpoint's content.
struct Checkpoint {
  RunPosition position;
  // The result so far: the finished epochs' records and where the target was reached.
  std::vector<EpochRecord> epochs;
  std::optional<double> time_to_target_s;
  std::optional<int64_t> epochs_to_target;
  std::optional<int64_t> steps_to_target;
  // "model.parameter/NAME", "model.buffer/NAME", "optimizer/NAME", "workload/NAME", "generator/cpu",
  // "generator/cuda" and what the runner adds ("in_epoch_target/NAME").
  NamedTensors tensors;
  // The optimizer's entries in state()'s order.
  std::vector<std::string> optimizer_order;
  // The tensors that lived on the run's device (written from host copies; restored onto the device).
  std::set<std::string> device_tensors;
  // The run id of the run that wrote it (read back; "" in checkpoints from before it was recorded).
  std::string written_by;
};

// A checkpoint of the run that does not fit it: written for other settings (another config hash or
// seed) or by other code (commit, uncommitted changes, LibTorch, BLAS, device, threads). Not loaded.
class CheckpointRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The parts of a run a checkpoint saves and restores besides the runner's own.
struct CheckpointedParts {
  CaptureModel& model;
  Optimizer& optimizer;
  Workload& workload;
  const torch::Device& device;
};

// The tensors of `parts` and of LibTorch's default generators (CPU; the device's on a GPU), by the
// names of Checkpoint::tensors, with the optimizer's order.
void capture_parts(const CheckpointedParts& parts, Checkpoint& checkpoint);
// Restores what capture_parts took into freshly built parts of the same run; throws std::runtime_error
// naming a missing or mis-shaped tensor.
void restore_parts(const Checkpoint& checkpoint, const CheckpointedParts& parts);

// The tensors under `prefix` ("in_epoch_target/"), without it.
NamedTensors tensors_under(const NamedTensors& tensors, const std::string& prefix);

// OUT/<experiment>/<run-id>.step-<step>.ckpt.
std::string checkpoint_path(const std::string& out_dir, const RunConfig& config, int64_t step);

// The checkpoints of one run: when the next is due, writing them, and finding the newest to resume.
class RunCheckpoints {
 public:
  // `producer`: the code and machine settings a checkpoint must match to be loaded
  // (checkpoint_producer). `mid_epoch`: whether checkpoints may fall inside epochs (the fidelity
  // probes keep per-epoch measurements that checkpoints do not hold: with probes, epoch ends only).
  RunCheckpoints(const RunConfig& config, std::string out_dir, CheckpointSettings settings, nlohmann::json producer,
                 bool mid_epoch);

  // The newest checkpoint of the run that reads back whole; a torn or corrupt one is skipped with a
  // warning on stderr naming it. Throws CheckpointRefused when the newest whole one is of other
  // settings or code.
  std::optional<Checkpoint> newest();

  // Whether a checkpoint is due after `step` steps inside an epoch (by steps, by minutes, or asked
  // for by SIGTERM/SIGUSR1), or after an epoch's record (also at_epoch_end).
  bool due_mid_epoch(int64_t step) const;
  bool due_at_epoch_end(int64_t step) const;

  // Writes `checkpoint` atomically (its device_tensors are found here, not read) and removes all but
  // the two newest; returns its path.
  std::string write(const Checkpoint& checkpoint);

 private:
  bool due(int64_t step) const;

  const RunConfig& config_;
  std::string out_dir_;
  CheckpointSettings settings_;
  nlohmann::json producer_;
  bool mid_epoch_;
  std::chrono::steady_clock::time_point last_written_ = std::chrono::steady_clock::now();
  int64_t last_step_written_ = 0;  // the steps of the newest checkpoint written or resumed from
};

// What must be equal for a checkpoint to be loaded, from a result's "meta" (machine_meta): the commit
// and the hash of uncommitted changes, LibTorch's version, the BLAS, the device and the thread count.
nlohmann::json checkpoint_producer(const nlohmann::json& meta);

// Removes the run's checkpoints (after its result is written, or before a forced rerun); returns how many.
size_t remove_checkpoints(const std::string& out_dir, const RunConfig& config);

// A shared training (docs/compression.md): the state of a compression run after its training epochs,
// before its compression, which every run of the same RunConfig::shared_training_id resumes from
// instead of training again (same code and settings: the same numbers). In the checkpoint format, at
// OUT/<experiment>/<shared training id>.ckpt.
std::string shared_training_path(const std::string& out_dir, const RunConfig& config);
// Writes it atomically; throws std::runtime_error when it cannot.
void write_shared_training(const std::string& out_dir, const RunConfig& config, const nlohmann::json& producer,
                           const Checkpoint& checkpoint);
// The shared training of `config` written by the same code and settings (`producer`); none when there
// is none, and, with a warning on stderr naming the file, when it is torn or of other code or settings.
std::optional<Checkpoint> read_shared_training(const std::string& out_dir, const RunConfig& config,
                                               const nlohmann::json& producer);
// Removes it (when no run left in the sweep needs it); returns how many files (0 or 1).
size_t remove_shared_training(const std::string& out_dir, const RunConfig& config);

// Adds the earlier pieces' phase times to a resumed run's result and records how often it resumed
// (meta.resumes).
void add_earlier_pieces(RunResult& result, const RunPosition& resumed_from);

}  // namespace ngd
