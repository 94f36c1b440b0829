#include "harness/spec/checkpoint_settings.h"

namespace ngd {

std::vector<OptionInfo> checkpoint_options() {
  return {{"every_steps", 0, "steps between checkpoints (0: not by steps)", {}, at_least(0)},
          {"every_minutes", 0.0, "minutes of training between checkpoints (0: not by time)", {}, at_least(0)},
          {"at_epoch_end", false, "also write one after every epoch"},
          {"keep", false, "keep the last checkpoint when the run has finished"}};
}

CheckpointSettings checkpoint_settings(const nlohmann::json& block) {
  CheckpointSettings settings;
  settings.every_steps = block.at("every_steps").get<int64_t>();
  settings.every_minutes = block.at("every_minutes").get<double>();
  settings.at_epoch_end = block.at("at_epoch_end").get<bool>();
  settings.keep = block.at("keep").get<bool>();
  return settings;
}

}  // namespace ngd
