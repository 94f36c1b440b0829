// libFuzzer target: arbitrary bytes as an experiment spec. Every input must either parse or be
// rejected with std::runtime_error (a located message of bounded length); anything else (crash,
// hang, other exception, a message echoing the input at length) is a finding.
//
// An input starting with byte 0x01 is a compact way to reach the nesting limit: the second byte
// times 1000 is a depth, and the rest is wrapped in that many '[' ... ']' (and, for odd depths, in
// {"description": ...} first), so the fuzzer explores depths up to 255 000 from a few bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/spec_error.h"
#include "harness/spec/spec.h"

namespace {

// A message is the path and the value, each abbreviated, plus lists of valid names.
constexpr size_t kMaxMessageBytes = 8 * ngd::kMaxShownChars + 2048;

std::string spec_text(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (size < 2 || data[0] != 0x01) return text;
  const size_t depth = size_t{data[1]} * 1000;
  text = std::string(depth, '[') + text.substr(2) + std::string(depth, ']');
  return depth % 2 == 1 ? R"({"name": "n", "description": )" + text + "}" : text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto text = spec_text(data, size);
  try {
    const auto spec = ngd::parse_spec_text(text, "fuzz.json", size % 2 == 0 ? "" : "cpu");
    for (const auto& run : spec.runs) (void)run.run_id();
  } catch (const std::runtime_error& error) {
    if (std::string(error.what()).size() > kMaxMessageBytes) std::abort();
  }
  return 0;
}
