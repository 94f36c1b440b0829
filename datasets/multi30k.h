#pragma once

#include <string>
#include <vector>

namespace ngd {

// Line-aligned sentences of one split: source[i] translates to target[i].
struct ParallelText {
  std::vector<std::string> source;
  std::vector<std::string> target;
  int64_t size() const { return static_cast<int64_t>(source.size()); }
};

// Multi30K (task 1) as the official repository ships it (data/task1/raw): train, val and
// test_2016_flickr, each as <split>.<language>.gz, one raw (untokenized) sentence a line.
struct Multi30k {
  std::string source_language;  // "de" or "en"
  std::string target_language;
  ParallelText train;
  ParallelText val;
  ParallelText test;
};

// The lines of a text file, gzip-compressed or plain: split at '\n', a '\r' before it dropped, no
// empty line for a final '\n'. Throws std::runtime_error naming the file when it cannot be read or
// is not UTF-8 text (a NUL byte).
std::vector<std::string> read_text_lines(const std::string& path);

// The same for text already in memory; `source` names it in messages.
std::vector<std::string> split_text_lines(const std::string& text, const std::string& source);

// Reads a pair of line-aligned files; throws naming both files and their line counts when the
// counts differ.
ParallelText read_parallel_text(const std::string& source_path, const std::string& target_path);

// The three splits from a multi30k folder, in the direction source → target.
Multi30k load_multi30k(const std::string& folder, const std::string& source_language,
                       const std::string& target_language);

// The official split names, in order: train, val, test_2016_flickr.
const std::vector<std::string>& multi30k_splits();

}  // namespace ngd
