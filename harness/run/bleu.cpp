#include "harness/run/bleu.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <unordered_map>

namespace ngd {
namespace {

// BLEU's n-gram orders 1..kMaxOrder.
constexpr int kMaxOrder = 4;
// sacreBLEU's log of a zero precision: large enough to zero the score, finite so no NaN appears.
constexpr double kLogOfZero = -9999999999.0;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// 13a's punctuation class [{-~ [-` space-& (-+ :-@ /]: every ASCII symbol except '\'', '-', '.', ','.
bool is_13a_symbol(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') || (c >= '(' && c <= '+') ||
         (c >= ':' && c <= '@') || c == '/';
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// One left-to-right pass replacing non-overlapping two-character matches, as re.sub does for the
// 13a rules (each matches exactly two characters).
template <class Matches, class Rewrite>
std::string two_character_pass(const std::string& text, Matches matches, Rewrite rewrite) {
  std::string out;
  out.reserve(text.size() * 2);
  size_t i = 0;
  while (i < text.size()) {
    if (i + 1 < text.size() && matches(text[i], text[i + 1])) {
      rewrite(out, text[i], text[i + 1]);
      i += 2;
    } else {
      out += text[i++];
    }
  }
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::vector<std::string> split_whitespace(const std::string& text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) words.emplace_back(text, start, i - start);
  }
  return words;
}

std::string right_strip(const std::string& text) {
  size_t end = text.size();
  while (end > 0 && is_space(text[end - 1])) --end;
  return text.substr(0, end);
}

using NgramCounts = std::unordered_map<std::string, int64_t>;

NgramCounts count_ngrams(const std::vector<std::string>& words) {
  NgramCounts counts;
  for (size_t start = 0; start < words.size(); ++start) {
    std::string ngram;
    for (size_t n = 1; n <= static_cast<size_t>(kMaxOrder) && start + n <= words.size(); ++n) {
      if (n > 1) ngram += ' ';
      ngram += words[start + n - 1];
      ++counts[ngram];
    }
  }
  return counts;
}

int64_t order_of(const std::string& ngram) { return 1 + std::count(ngram.begin(), ngram.end(), ' '); }

}  // namespace

std::string tokenize_13a(const std::string& line) {
  std::string text = line;
  replace_all(text, "<skipped>", "");
  replace_all(text, "-\n", "");
  std::replace(text.begin(), text.end(), '\n', ' ');
  if (text.find('&') != std::string::npos) {
    replace_all(text, "&quot;", "\"");
    replace_all(text, "&amp;", "&");
    replace_all(text, "&lt;", "<");
    replace_all(text, "&gt;", ">");
  }
  std::string spaced = " ";
  for (char c : text) {
    if (is_13a_symbol(c)) {
      spaced += ' ';
      spaced += c;
      spaced += ' ';
    } else {
      spaced += c;
    }
  }
  spaced += ' ';
  auto is_period_or_comma = [](char c) { return c == '.' || c == ','; };
  // Period and comma split off unless preceded by a digit, then unless followed by one.
  spaced = two_character_pass(
      spaced, [&](char a, char b) { return !is_digit(a) && is_period_or_comma(b); },
      [](std::string& out, char a, char b) { out += {a, ' ', b, ' '}; });
  spaced = two_character_pass(
      spaced, [&](char a, char b) { return is_period_or_comma(a) && !is_digit(b); },
      [](std::string& out, char a, char b) { out += {' ', a, ' ', b}; });
  // A dash after a digit splits off.
  spaced = two_character_pass(
      spaced, [](char a, char b) { return is_digit(a) && b == '-'; },
      [](std::string& out, char a, char b) { out += {a, ' ', b, ' '}; });
  const auto words = split_whitespace(spaced);
  std::string joined;
  for (const auto& word : words) joined += (joined.empty() ? "" : " ") + word;
  return joined;
}

BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                      const std::vector<std::vector<std::string>>& reference_streams, BleuTokenize tokenize,
                      BleuSmoothing smoothing) {
  if (reference_streams.empty()) throw std::invalid_argument("BLEU needs at least one reference stream");
  for (size_t k = 0; k < reference_streams.size(); ++k) {
    if (reference_streams[k].size() != hypotheses.size()) {
      throw std::invalid_argument(fmt::format("BLEU: {} hypotheses but reference stream {} has {} lines",
                                              hypotheses.size(), k + 1, reference_streams[k].size()));
    }
  }
  auto words_of = [tokenize](const std::string& line) {
    const auto stripped = right_strip(line);
    return split_whitespace(tokenize == BleuTokenize::k13a ? tokenize_13a(stripped) : stripped);
  };
  BleuScore result;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const auto hypothesis = words_of(hypotheses[i]);
    const auto length = static_cast<int64_t>(hypothesis.size());
    NgramCounts reference_max;
    int64_t closest = -1;
    for (const auto& stream : reference_streams) {
      const auto reference = words_of(stream[i]);
      const auto reference_length = static_cast<int64_t>(reference.size());
      const auto distance = std::llabs(reference_length - length), best = std::llabs(closest - length);
      if (closest < 0 || distance < best || (distance == best && reference_length < closest)) closest = reference_length;
      for (const auto& [ngram, count] : count_ngrams(reference)) {
        auto& kept = reference_max[ngram];
        kept = std::max(kept, count);
      }
    }
    result.hypothesis_length += length;
    result.reference_length += closest;
    for (const auto& [ngram, count] : count_ngrams(hypothesis)) {
      const auto order = order_of(ngram) - 1;
      result.total[order] += count;
      auto match = reference_max.find(ngram);
      if (match != reference_max.end()) result.correct[order] += std::min(count, match->second);
    }
  }
  const double c = static_cast<double>(result.hypothesis_length), r = static_cast<double>(result.reference_length);
  result.brevity_penalty = c < r ? (c > 0 ? std::exp(1 - r / c) : 0.0) : 1.0;
  if (std::all_of(result.correct.begin(), result.correct.end(), [](int64_t n) { return n == 0; })) return result;
  double smoothing_divisor = 1;
  double log_sum = 0;
  for (int n = 0; n < kMaxOrder; ++n) {
    // An order the corpus has no n-grams of (all lines too short) keeps precision zero.
    if (result.total[n] > 0) {
      if (result.correct[n] > 0) {
        result.precisions[n] = 100.0 * static_cast<double>(result.correct[n]) / static_cast<double>(result.total[n]);
      } else if (smoothing == BleuSmoothing::kExp) {
        smoothing_divisor *= 2;
        result.precisions[n] = 100.0 / (smoothing_divisor * static_cast<double>(result.total[n]));
      }
    }
    log_sum += result.precisions[n] > 0 ? std::log(result.precisions[n]) : kLogOfZero;
  }
  result.score = result.brevity_penalty * std::exp(log_sum / kMaxOrder);
  return result;
}

BleuScore sacrebleu_score(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  return corpus_bleu(hypotheses, {references}, BleuTokenize::k13a, BleuSmoothing::kExp);
}

BleuScore tokenized_bleu_score(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  return corpus_bleu(hypotheses, {references}, BleuTokenize::k13a, BleuSmoothing::kNone);
}

std::string BleuScore::format() const {
  const double ratio = reference_length > 0 ? static_cast<double>(hypothesis_length) / static_cast<double>(reference_length) : 0.0;
  return fmt::format("BLEU = {:.2f} {:.1f}/{:.1f}/{:.1f}/{:.1f} (BP = {:.3f} ratio = {:.3f} hyp_len = {} ref_len = {})",
                     score, precisions[0], precisions[1], precisions[2], precisions[3], brevity_penalty, ratio,
                     hypothesis_length, reference_length);
}

}  // namespace ngd
