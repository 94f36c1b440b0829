#pragma once

#include <string>
#include <vector>

#include "harness/spec/spec.h"

namespace ngd {

// Shard `index` of `count` (1 ≤ index ≤ count), as `--shard K/N` names it: 1-based, so the N workers
// of a sweep are shards 1/N … N/N (a Slurm array --array=1-N passes its task id as K).
struct Shard {
  int64_t index = 1;
  int64_t count = 1;
};

// Parses "K/N"; throws std::runtime_error saying what is wrong ("--shard 3/2: ...").
Shard parse_shard(const std::string& text);

// The runs of `specs` (each spec's runs, specs in the given order) that belong to `shard`: group p of
// the concatenated list belongs to shard (p mod N) + 1, where a group is a run, or the runs that share
// one training (RunConfig::shared_training_id), at the position of the first of them, so that one
// worker trains it once. Round-robin keeps shards within one group of each other and spreads seeds,
// optimizers and grid points over the workers; every worker must expand the same list (same specs,
// scale and filter). Each spec keeps its order and name; specs left without runs stay, empty.
std::vector<Spec> shard_specs(std::vector<Spec> specs, const Shard& shard);

}  // namespace ngd
