#pragma once

// The limits a spec's text must keep before it is parsed into runs, and the checks that enforce
// them without unbounded memory or recursion: a spec is small, shallow and unambiguous.

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace ngd {

// Bytes a spec file may have: the shipped specs are a few KB; anything near this is a mistake (or
// /dev/zero), refused before it is read into memory.
constexpr size_t kMaxSpecBytes = size_t{1} << 20;
// Nesting levels of arrays and objects a spec may use (the shipped specs use at most 5); deeper
// input is refused while it is scanned, before any recursive step (dump, copy, comparison) sees it.
constexpr int kMaxSpecDepth = 64;
// Runs one spec may expand to (grid points × seeds, at any of its scales): each run costs a few KB
// while the sweep is planned, and the largest shipped sweep has a few hundred.
constexpr size_t kMaxExpandedRuns = 10000;
// Bytes of an experiment or scale name (a folder and file name under --out, and in the report's
// file names): well below the file systems' 255.
constexpr size_t kMaxNameBytes = 100;

// The content of a spec file, read with a bound of kMaxSpecBytes. Throws std::runtime_error
// "PATH: cannot open spec file (reason)" (or "cannot read") with the system's reason (missing,
// permission, a loop of symbolic links, a folder), or saying the file is larger than the limit.
std::string read_spec_file(const std::string& path);

// Parses a spec's text, refusing text over kMaxSpecBytes, nesting deeper than kMaxSpecDepth and an
// object with the same key twice (SpecError at the JSON path). Syntax errors throw
// nlohmann::json::parse_error.
nlohmann::json parse_spec_json(const std::string& text);

// Why `name` cannot name a folder under --out (empty, "." or "..", a '/', a control character, longer
// than kMaxNameBytes), or nullopt when it can. scripts/report.py applies the same rule.
std::optional<std::string> folder_name_problem(const std::string& name);

// `object[key]`; throws SpecError "PATH.key: missing required key" when it is absent.
const nlohmann::json& require(const nlohmann::json& object, const std::string& key, const std::string& path);

// `value` as a positive integer; throws SpecError at `path` for anything else.
int64_t positive_integer(const nlohmann::json& value, const std::string& path);

}  // namespace ngd
