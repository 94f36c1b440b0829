#include "harness/spec/shard.h"

#include <fmt/format.h>

#include <map>
#include <regex>
#include <stdexcept>

namespace ngd {

Shard parse_shard(const std::string& text) {
  // "K/N" with up to nine digits each (anything longer is a typo).
  static const std::regex kShardPattern(R"(\s*(\d{1,9})\s*/\s*(\d{1,9})\s*)");
  std::smatch match;
  if (!std::regex_match(text, match, kShardPattern)) {
    throw std::runtime_error(fmt::format("--shard {}: expected K/N, shard K of N workers with 1 ≤ K ≤ N (e.g. 2/4)", text));
  }
  const Shard shard{std::stoll(match[1]), std::stoll(match[2])};
  if (shard.count < 1) throw std::runtime_error(fmt::format("--shard {}: N (the number of shards) must be at least 1", text));
  if (shard.index < 1 || shard.index > shard.count) {
    throw std::runtime_error(fmt::format("--shard {}: K must be between 1 and N={} (shards are numbered from 1)", text,
                                         shard.count));
  }
  return shard;
}

std::vector<Spec> shard_specs(std::vector<Spec> specs, const Shard& shard) {
  int64_t position = 0;
  std::map<std::string, int64_t> shared_position;  // a shared training's group, by its id
  for (auto& spec : specs) {
    std::vector<RunConfig> kept;
    for (auto& run : spec.runs) {
      const auto shared = run.shared_training_id();
      int64_t group = position;
      if (shared.empty()) {
        ++position;
      } else {
        const auto [found, first] = shared_position.try_emplace(shared, position);
        if (first) ++position;
        group = found->second;
      }
      if (group % shard.count == shard.index - 1) kept.push_back(std::move(run));
    }
    spec.runs = std::move(kept);
  }
  return specs;
}

}  // namespace ngd
