#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

#include "base/options.h"

namespace ngd {

// When a run writes checkpoints (harness/run/checkpoint.h; docs/checkpoints.md). A spec's "checkpoint"
// block or the CLI's --checkpoint flags turn them on: the run then resumes from its newest valid
// checkpoint and writes one on SIGTERM / SIGUSR1 before it exits. None of this changes a run's numbers,
// so it is no part of a run's identity (RunConfig::identity).
struct CheckpointSettings {
  int64_t every_steps = 0;    // 0: not by step count
  double every_minutes = 0;   // 0: not by time
  bool at_epoch_end = false;  // also after every epoch's record
  bool keep = false;          // keep the last checkpoint when the run has finished (default: removed)
};

// The settings of a spec's "checkpoint" block, with defaults.
std::vector<OptionInfo> checkpoint_options();
// The settings of a resolved "checkpoint" block (resolve_options over checkpoint_options()).
CheckpointSettings checkpoint_settings(const nlohmann::json& block);

}  // namespace ngd
