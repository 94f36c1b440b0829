#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace ngd {

// Characters of a value, name or JSON path that an error message echoes; longer ones are cut (with
// "…") so that a pasted megabyte comes back as one readable line.
constexpr size_t kMaxShownChars = 200;

// `text` cut to `limit` bytes at a UTF-8 character boundary, with "…" appended when cut.
inline std::string abbreviated(const std::string& text, size_t limit = kMaxShownChars) {
  if (text.size() <= limit) return text;
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;  // not inside a character
  return text.substr(0, end) + "…";
}

// A spec value as it appears in an error message: its JSON text, abbreviated. Values reaching here
// passed the spec's nesting limit (kMaxSpecDepth), so dump() recurses boundedly.
inline std::string shown(const nlohmann::json& value) {
  return abbreviated(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// A problem in an experiment spec, located by its JSON path (e.g. "optimizers[0].hparams.lr").
// The spec loader prefixes the file name, so every message reads "FILE: PATH: what is wrong".
class SpecError : public std::runtime_error {
 public:
  SpecError(const std::string& json_path, const std::string& message)
      : std::runtime_error(abbreviated(json_path) + ": " + message), json_path_(abbreviated(json_path)) {}
  const std::string& json_path() const { return json_path_; }

 private:
  std::string json_path_;
};

}  // namespace ngd
