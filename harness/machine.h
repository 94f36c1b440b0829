#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace ngd {

// Sets LibTorch's intra-op threads and OpenBLAS's threads (when OpenBLAS is the loaded BLAS) to
// `threads`; 0 means one per core. Returns the count in effect.
int configure_threads(int threads);

// Where a run was measured: recorded in every result's "meta" (AlgoPerf's meta_data and
// google/benchmark's context, minus the host name).
nlohmann::json machine_meta(const std::string& device);

}  // namespace ngd
