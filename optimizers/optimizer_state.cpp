#include "optimizers/optimizer_state.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <type_traits>

namespace ngd {
namespace {

std::string describe(const torch::Tensor& tensor) {
  if (!tensor.defined()) return "an undefined tensor";
  std::ostringstream sizes;
  sizes << tensor.sizes();
  return fmt::format("shape {} and dtype {}", sizes.str(), c10::toString(tensor.scalar_type()));
}

std::string describe(const std::vector<int64_t>& sizes, torch::ScalarType dtype) {
  std::string extents;
  for (const auto extent : sizes) extents += (extents.empty() ? "" : ", ") + (extent < 0 ? "*" : std::to_string(extent));
  return fmt::format("shape [{}] and dtype {}", extents, c10::toString(dtype));
}

// LibTorch keys an optimizer's per-parameter state by its TensorImpl: a string of the pointer in 1.13
// (c10::guts::to_string, which streams it), the pointer itself in later versions.
using TorchStateKey = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;

template <typename Key>
Key torch_state_key(const torch::Tensor& parameter) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << parameter.unsafeGetTensorImpl();
    return key.str();
  } else {
    return parameter.unsafeGetTensorImpl();
  }
}

std::vector<torch::Tensor> all_parameters(const torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> parameters;
  for (const auto& group : optimizer.param_groups()) {
    parameters.insert(parameters.end(), group.params().begin(), group.params().end());
  }
  return parameters;
}

std::string parameter_prefix(const std::string& prefix, size_t index) { return fmt::format("{}/param{}/", prefix, index); }

}  // namespace

int64_t state_bytes(const OptimizerState& state) {
  int64_t bytes = 0;
  for (const auto& entry : state) {
    if (entry.value.defined()) bytes += entry.value.numel() * static_cast<int64_t>(entry.value.element_size());
  }
  return bytes;
}

torch::Tensor state_integer(int64_t value) { return torch::tensor(value, torch::kInt64); }

torch::Tensor state_real(double value) { return torch::tensor(value, torch::kFloat64); }

StateReader::StateReader(const OptimizerState& state) : state_(state), read_(state.size(), false) {
  for (size_t i = 0; i < state.size(); ++i) {
    if (!index_.emplace(state[i].name, i).second) {
      throw std::invalid_argument(fmt::format("optimizer state: entry '{}' appears twice", state[i].name));
    }
  }
}

bool StateReader::contains(const std::string& name) const { return index_.count(name) != 0; }

bool StateReader::contains_any(const std::vector<std::string>& names) const {
  return std::any_of(names.begin(), names.end(), [&](const std::string& name) { return contains(name); });
}

const torch::Tensor& StateReader::take(const std::string& name) {
  const auto found = index_.find(name);
  if (found == index_.end()) throw std::invalid_argument(fmt::format("optimizer state: entry '{}' is missing", name));
  read_[found->second] = true;
  const auto& value = state_[found->second].value;
  if (!value.defined()) throw std::invalid_argument(fmt::format("optimizer state: entry '{}' is an undefined tensor", name));
  return value;
}

torch::Tensor StateReader::tensor(const std::string& name, const std::vector<int64_t>& sizes,
                                  const torch::TensorOptions& options) {
  const auto& value = take(name);
  bool fits = value.scalar_type() == torch::typeMetaToScalarType(options.dtype()) &&
              value.dim() == static_cast<int64_t>(sizes.size());
  for (size_t d = 0; fits && d < sizes.size(); ++d) fits = sizes[d] < 0 || value.size(static_cast<int64_t>(d)) == sizes[d];
  if (!fits) {
    throw std::invalid_argument(fmt::format("optimizer state: entry '{}' has {}, expected {}", name, describe(value),
                                            describe(sizes, torch::typeMetaToScalarType(options.dtype()))));
  }
  // A copy of the caller's own: the plugin updates it in place from now on.
  return value.to(value.options().device(options.device()), /*non_blocking=*/false, /*copy=*/true);
}

torch::Tensor StateReader::tensor_like(const std::string& name, const torch::Tensor& like) {
  return tensor(name, like.sizes().vec(), like.options());
}

int64_t StateReader::integer(const std::string& name) {
  return tensor(name, {}, torch::TensorOptions().dtype(torch::kInt64)).item<int64_t>();
}

double StateReader::real(const std::string& name) {
  return tensor(name, {}, torch::TensorOptions().dtype(torch::kFloat64)).item<double>();
}

std::vector<std::pair<int64_t, std::string>> StateReader::numbered_names(const std::string& prefix) const {
  std::vector<std::pair<int64_t, std::string>> names;
  for (size_t i = 0; i < state_.size(); ++i) {
    const auto& name = state_[i].name;
    if (read_[i] || name.compare(0, prefix.size(), prefix) != 0) continue;
    const auto number = name.substr(prefix.size());
    // Anything else under the prefix is left unread, for finish() to name.
    const bool canonical = !number.empty() && number.size() <= 18 &&
                           number.find_first_not_of("0123456789") == std::string::npos &&
                           (number.size() == 1 || number[0] != '0');
    if (!canonical) continue;
    names.emplace_back(std::stoll(number), name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

void StateReader::finish() const {
  for (size_t i = 0; i < state_.size(); ++i) {
    if (!read_[i]) {
      throw std::invalid_argument(
          fmt::format("optimizer state: unexpected entry '{}' (not part of this optimizer's state)", state_[i].name));
    }
  }
}

void append_torch_state(OptimizerState& state, const torch::optim::Optimizer& optimizer, const std::string& prefix) {
  const auto parameters = all_parameters(optimizer);
  const auto& states = optimizer.state();
  const bool sgd = dynamic_cast<const torch::optim::SGD*>(&optimizer) != nullptr;
  if (!sgd && dynamic_cast<const torch::optim::AdamW*>(&optimizer) == nullptr) {
    throw std::logic_error("append_torch_state: only torch::optim::SGD and AdamW are supported");
  }
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto found = states.find(torch_state_key<TorchStateKey>(parameters[i]));
    if (found == states.end()) continue;
    const auto name = parameter_prefix(prefix, i);
    if (sgd) {
      const auto& param_state = static_cast<const torch::optim::SGDParamState&>(*found->second);
      state.push_back({name + "momentum_buffer", param_state.momentum_buffer()});
      continue;
    }
    const auto& param_state = static_cast<const torch::optim::AdamWParamState&>(*found->second);
    state.push_back({name + "step", state_integer(param_state.step())});
    state.push_back({name + "exp_avg", param_state.exp_avg()});
    state.push_back({name + "exp_avg_sq", param_state.exp_avg_sq()});
    if (param_state.max_exp_avg_sq().defined()) state.push_back({name + "max_exp_avg_sq", param_state.max_exp_avg_sq()});
  }
}

void load_torch_state(StateReader& reader, torch::optim::Optimizer& optimizer, const std::string& prefix) {
  const bool sgd = dynamic_cast<const torch::optim::SGD*>(&optimizer) != nullptr;
  if (!sgd && dynamic_cast<const torch::optim::AdamW*>(&optimizer) == nullptr) {
    throw std::logic_error("load_torch_state: only torch::optim::SGD and AdamW are supported");
  }
  auto& states = optimizer.state();
  size_t index = 0;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& parameter : group.params()) {
      const auto name = parameter_prefix(prefix, index++);
      const auto key = torch_state_key<TorchStateKey>(parameter);
      // LibTorch creates a parameter's state whole, on its first step.
      const std::vector<std::string> fields =
          sgd ? std::vector<std::string>{"momentum_buffer"}
              : std::vector<std::string>{"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
      std::vector<std::string> names;
      for (const auto& field : fields) names.push_back(name + field);
      if (!reader.contains_any(names)) {
        states.erase(key);
        continue;
      }
      if (sgd) {
        auto param_state = std::make_unique<torch::optim::SGDParamState>();
        param_state->momentum_buffer(reader.tensor_like(name + "momentum_buffer", parameter));
        states[key] = std::move(param_state);
        continue;
      }
      auto param_state = std::make_unique<torch::optim::AdamWParamState>();
      param_state->step(reader.integer(name + "step"));
      param_state->exp_avg(reader.tensor_like(name + "exp_avg", parameter));
      param_state->exp_avg_sq(reader.tensor_like(name + "exp_avg_sq", parameter));
      if (static_cast<const torch::optim::AdamWOptions&>(group.options()).amsgrad()) {
        param_state->max_exp_avg_sq(reader.tensor_like(name + "max_exp_avg_sq", parameter));
      }
      states[key] = std::move(param_state);
    }
  }
}

}  // namespace ngd
