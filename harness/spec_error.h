#pragma once

#include <stdexcept>
#include <string>

namespace ngd {

// A problem in an experiment spec, located by its JSON path (e.g. "optimizers[0].hparams.lr").
// The spec loader prefixes the file name, so every message reads "FILE: PATH: what is wrong".
class SpecError : public std::runtime_error {
 public:
  SpecError(const std::string& json_path, const std::string& message)
      : std::runtime_error(json_path + ": " + message), json_path_(json_path) {}
  const std::string& json_path() const { return json_path_; }

 private:
  std::string json_path_;
};

}  // namespace ngd
