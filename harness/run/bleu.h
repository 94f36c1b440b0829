#pragma once

#include <array>
#include <string>
#include <vector>

namespace ngd {

// Corpus BLEU as sacreBLEU computes it (Papineni et al. 2002; sacreBLEU 2.x's BLEU): clipped n-gram
// counts up to 4-grams summed over the corpus, the closest reference length (the shorter on ties),
// the brevity penalty exp(1 − r/c), and a geometric mean of the precisions. Scores are 0–100.
struct BleuScore {
  double score = 0;
  std::array<int64_t, 4> correct{};  // clipped matches of 1..4-grams
  std::array<int64_t, 4> total{};    // hypothesis 1..4-grams
  std::array<double, 4> precisions{};  // percent, after smoothing
  double brevity_penalty = 0;
  int64_t hypothesis_length = 0;
  int64_t reference_length = 0;

  // "BLEU = 34.12 65.0/41.2/28.1/19.5 (BP = 1.000 ratio = 1.012 hyp_len = 9 ref_len = 9)", sacreBLEU's layout.
  std::string format() const;
};

enum class BleuTokenize {
  k13a,   // mteval-v13a's tokenization, sacreBLEU's default
  kNone,  // split on whitespace only
};

enum class BleuSmoothing {
  kExp,   // sacreBLEU's default ("exp", NIST's geometric smoothing): the k-th order without matches counts 1/2^k
  kNone,  // a precision of zero makes BLEU zero (multi-bleu.perl)
};

// sacreBLEU's "13a" tokenization of one line (case kept).
std::string tokenize_13a(const std::string& line);

// Corpus BLEU of `hypotheses` against one or more reference streams, each line-aligned with the
// hypotheses (streams[k][i] is the k-th reference of hypothesis i). Case-sensitive; lines are
// right-stripped before tokenization as sacreBLEU does. Throws std::invalid_argument when a stream's
// length differs from the hypotheses'.
BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                      const std::vector<std::vector<std::string>>& reference_streams, BleuTokenize tokenize,
                      BleuSmoothing smoothing);

// sacreBLEU's default signature: 13a tokenization, exp smoothing, case-sensitive, on detokenized text.
BleuScore sacrebleu_score(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references);

// "Tokenized BLEU" as this project reports it: the same 13a-tokenized text scored without
// smoothing, i.e. what multi-bleu.perl gives on 13a-tokenized, case-kept files.
BleuScore tokenized_bleu_score(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references);

}  // namespace ngd
