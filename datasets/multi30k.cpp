#include "datasets/multi30k.h"

#include <fmt/format.h>

#include <filesystem>

#include "datasets/idx_reader.h"

namespace ngd {

std::vector<std::string> split_text_lines(const std::string& text, const std::string& source) {
  if (text.find('\0') != std::string::npos) {
    throw std::runtime_error(fmt::format("{}: not a text file (contains a NUL byte)", source));
  }
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    size_t stop = end;
    if (stop > start && text[stop - 1] == '\r') --stop;
    lines.emplace_back(text, start, stop - start);
    start = end + 1;
  }
  return lines;
}

std::vector<std::string> read_text_lines(const std::string& path) { return split_text_lines(read_gzip_file(path), path); }

ParallelText read_parallel_text(const std::string& source_path, const std::string& target_path) {
  ParallelText text{read_text_lines(source_path), read_text_lines(target_path)};
  if (text.source.size() != text.target.size()) {
    throw std::runtime_error(fmt::format("{} has {} lines but {} has {}: the files must be line-aligned", source_path,
                                         text.source.size(), target_path, text.target.size()));
  }
  return text;
}

const std::vector<std::string>& multi30k_splits() {
  static const std::vector<std::string> splits = {"train", "val", "test_2016_flickr"};
  return splits;
}

Multi30k load_multi30k(const std::string& folder, const std::string& source_language,
                       const std::string& target_language) {
  if (source_language == target_language) {
    throw std::runtime_error(fmt::format("multi30k: source and target are both '{}'", source_language));
  }
  Multi30k data{source_language, target_language, {}, {}, {}};
  std::vector<ParallelText*> parts = {&data.train, &data.val, &data.test};
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto base = std::filesystem::path(folder) / multi30k_splits()[i];
    *parts[i] = read_parallel_text(base.string() + "." + source_language + ".gz",
                                   base.string() + "." + target_language + ".gz");
    if (parts[i]->size() == 0) throw std::runtime_error(fmt::format("{}.*.gz: no sentences", base.string()));
  }
  return data;
}

}  // namespace ngd
