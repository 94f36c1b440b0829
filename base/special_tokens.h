#pragma once

#include <cstdint>

namespace ngd {

// The special token ids every tokenizer here uses (fixed at training, so batches and models can rely
// on them): padding, unknown, beginning and end of sentence.
constexpr int64_t kPadId = 0;
constexpr int64_t kUnkId = 1;
constexpr int64_t kBosId = 2;
constexpr int64_t kEosId = 3;

}  // namespace ngd
