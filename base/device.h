#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace ngd {

// Checks a device name as specs and --device give it: "cpu", "cuda" or "cuda:N". Throws
// std::runtime_error "unknown device \"x\" (valid: cpu, cuda, cuda:N)" otherwise.
void check_device_name(const std::string& name);

// Throws std::runtime_error when `name` (checked) is a CUDA device this process cannot use: no CUDA in
// this LibTorch build or no GPU visible, or an index past the visible devices.
void require_device(const std::string& name);

// Waits until the work queued on `device` has finished (nothing to wait for on the CPU): timers call
// it before reading the clock, or they would time kernel launches instead of kernels.
void synchronize(const torch::Device& device);

// Device→host read-backs inside training steps (each waits for the device to finish its queue).
// Everything in a step that needs a number on the host reads it through host_value, so the count in a
// result ("host_syncs") is complete for explicit reads.
int64_t host_sync_count();
void count_host_sync();

// The value of a one-element tensor on the host, counted as one host sync.
template <class T>
T host_value(const torch::Tensor& scalar) {
  count_host_sync();
  return scalar.item<T>();
}

}  // namespace ngd
