#include "harness/spec/spec_input.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "base/spec_error.h"

namespace ngd {
namespace {

// Scans a spec's text event by event (nlohmann's SAX parser keeps its own state on the heap, not on
// the stack) and stops at the first nesting level over kMaxSpecDepth or repeated key, remembering
// where it was.
class SpecTextChecker : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }
  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& name) override {
    auto& level = levels_.back();
    if (!level.keys.insert(name).second) {
      problem_.emplace(path_with(name), "the same key twice in one object (JSON would silently keep the last)");
      return false;
    }
    level.key = name;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

  const std::optional<SpecError>& problem() const { return problem_; }

 private:
  struct Level {
    bool object = false;
    std::set<std::string> keys;  // objects: the keys seen so far
    std::string key;             // objects: the current key
    size_t index = 0;            // arrays: the current element
  };

  // The JSON path of the current position in each of the outermost `count` levels ("" at the top).
  std::string path_of_levels(size_t count) const {
    std::string path;
    for (size_t i = 0; i < count; ++i) {
      const auto& level = levels_[i];
      path += level.object ? (path.empty() ? "" : ".") + level.key : fmt::format("[{}]", level.index);
    }
    return path;
  }
  // The path of key `name` of the innermost object.
  std::string path_with(const std::string& name) const {
    const auto prefix = path_of_levels(levels_.size() - 1);
    return prefix.empty() ? name : prefix + "." + name;
  }
  bool open(bool object) {
    if (static_cast<int>(levels_.size()) >= kMaxSpecDepth) {
      const auto path = path_of_levels(levels_.size());
      problem_.emplace(path.empty() ? "$" : path,
                       fmt::format("nested deeper than {} levels (a spec needs a handful)", kMaxSpecDepth));
      return false;
    }
    levels_.push_back({object, {}, {}, 0});
    return true;
  }
  bool close() {
    levels_.pop_back();
    return value();
  }
  bool value() {
    if (!levels_.empty() && !levels_.back().object) ++levels_.back().index;
    return true;
  }

  std::vector<Level> levels_;
  std::optional<SpecError> problem_;
};

}  // namespace

std::string read_spec_file(const std::string& path) {
  const auto fail = [&path](const char* what, int error) {
    return std::runtime_error(fmt::format("{}: cannot {} spec file ({})", path, what, std::strerror(error)));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw fail("open", errno);
  std::string content;
  std::vector<char> chunk(64 * 1024);
  while (content.size() <= kMaxSpecBytes) {
    const ssize_t count = ::read(fd, chunk.data(), chunk.size());
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      const int error = errno;
      ::close(fd);
      throw fail("read", error);
    }
    if (count == 0) break;
    content.append(chunk.data(), static_cast<size_t>(count));
  }
  ::close(fd);
  if (content.size() > kMaxSpecBytes) {
    throw std::runtime_error(fmt::format("{}: larger than the {} KiB a spec may have (kMaxSpecBytes); not a spec?",
                                         path, kMaxSpecBytes / 1024));
  }
  return content;
}

nlohmann::json parse_spec_json(const std::string& text) {
  if (text.size() > kMaxSpecBytes) {
    throw SpecError("$", fmt::format("{} bytes, more than the {} KiB a spec may have (kMaxSpecBytes)", text.size(),
                                     kMaxSpecBytes / 1024));
  }
  SpecTextChecker checker;
  nlohmann::json::sax_parse(text, &checker);  // false on a syntax error: parse() below throws it, located
  if (checker.problem()) throw *checker.problem();
  return nlohmann::json::parse(text);
}

std::optional<std::string> folder_name_problem(const std::string& name) {
  if (name.empty()) return "is empty";
  if (name == "." || name == "..") return "is \".\" or \"..\", which name no folder of its own";
  if (name.find('/') != std::string::npos) return "contains '/'";
  if (std::any_of(name.begin(), name.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
    return "contains a control character";
  }
  if (name.size() > kMaxNameBytes) return fmt::format("is longer than {} bytes", kMaxNameBytes);
  return std::nullopt;
}

const nlohmann::json& require(const nlohmann::json& object, const std::string& key, const std::string& path) {
  auto it = object.find(key);
  if (it == object.end()) throw SpecError(path.empty() ? key : path + "." + key, "missing required key");
  return *it;
}

int64_t positive_integer(const nlohmann::json& value, const std::string& path) {
  if (!value.is_number_integer() || value.get<int64_t>() < 1) {
    throw SpecError(path, "expected a positive integer, got " + shown(value));
  }
  return value.get<int64_t>();
}

}  // namespace ngd
