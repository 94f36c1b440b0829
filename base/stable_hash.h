#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>

namespace ngd {

// 8 hex digits of FNV-1a over `text`: stable across runs, platforms and versions, for names of
// result files and cache folders.
inline std::string stable_hash(const std::string& text) {
  uint64_t hash = 14695981039346656037ULL;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ULL;
  return fmt::format("{:08x}", static_cast<uint32_t>(hash ^ (hash >> 32)));
}

}  // namespace ngd
