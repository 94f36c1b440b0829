// libFuzzer target: arbitrary bytes as an experiment spec. Every input must either parse or be
// rejected with std::runtime_error (a located message); anything else (crash, hang, other exception)
// is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "harness/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto spec = ngd::parse_spec_text(text, "fuzz.json", size % 2 == 0 ? "" : "cpu");
    for (const auto& run : spec.runs) (void)run.run_id();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
