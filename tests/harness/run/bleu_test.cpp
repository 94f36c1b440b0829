#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "harness/run/bleu.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

// The README example of sacreBLEU's own tests (test/test_bleu.py): three hypotheses, two reference streams.
const std::vector<std::string> kHypotheses = {"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."};
const std::vector<std::vector<std::string>> kReferences = {
    {"The dog bit the man.", "It was not unexpected.", "The man bit him first."},
    {"The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."}};

// sacreBLEU's published test values are given to 1e-8 relative to their digits.
constexpr double kPublishedTolerance = 1e-6;

TEST(Bleu, MatchesSacrebleuPublishedCorpusScores) {
  // test_corpus_bleu_cases: default (13a, exp) 48.530827; tokenize none 49.1919566.
  EXPECT_NEAR(corpus_bleu(kHypotheses, kReferences, BleuTokenize::k13a, BleuSmoothing::kExp).score, 48.530827,
              kPublishedTolerance);
  EXPECT_NEAR(corpus_bleu(kHypotheses, kReferences, BleuTokenize::kNone, BleuSmoothing::kExp).score, 49.1919566,
              kPublishedTolerance);
  // smooth_method none gives the same here (every order has a match).
  EXPECT_NEAR(corpus_bleu(kHypotheses, kReferences, BleuTokenize::k13a, BleuSmoothing::kNone).score, 48.530827,
              kPublishedTolerance);
}

TEST(Bleu, EmptyHypothesesScoreZeroAndAreNotDropped) {
  const auto score = corpus_bleu({"", "", ""}, kReferences, BleuTokenize::k13a, BleuSmoothing::kExp);
  EXPECT_EQ(score.score, 0.0);
  EXPECT_EQ(score.hypothesis_length, 0);
  EXPECT_GT(score.reference_length, 0);  // the empty lines still count their references
  EXPECT_EQ(score.brevity_penalty, 0.0);
}

TEST(Bleu, CountsMatchSacrebleuStatisticsAndExpSmoothingFollowsTheDefinition) {
  // test_case_statistics: counts [4, 2, 1, 0], totals [6, 5, 4, 3].
  const auto score = corpus_bleu({"am I am a character sequence"}, {{"I am a symbol string sequence a a"}},
                                 BleuTokenize::k13a, BleuSmoothing::kExp);
  EXPECT_EQ(score.correct, (std::array<int64_t, 4>{4, 2, 1, 0}));
  EXPECT_EQ(score.total, (std::array<int64_t, 4>{6, 5, 4, 3}));
  EXPECT_EQ(score.hypothesis_length, 6);
  EXPECT_EQ(score.reference_length, 8);
  // exp smoothing: the first order without matches counts 1/(2·total); brevity penalty exp(1 − 8/6).
  const double smoothed_fourgram = 1.0 / (2 * 3);
  const double geometric = std::pow((4.0 / 6) * (2.0 / 5) * (1.0 / 4) * smoothed_fourgram, 0.25);
  EXPECT_NEAR(score.score, 100 * std::exp(1 - 8.0 / 6) * geometric, 1e-9);
  EXPECT_NEAR(score.precisions[3], 100 * smoothed_fourgram, 1e-12);
  // Without smoothing a zero precision zeroes BLEU.
  EXPECT_EQ(corpus_bleu({"am I am a character sequence"}, {{"I am a symbol string sequence a a"}}, BleuTokenize::k13a,
                        BleuSmoothing::kNone)
                .score,
            0.0);
}

TEST(Bleu, NoMatchingNgramsScoreZeroAndPerfectOutputScoresHundred) {
  EXPECT_EQ(sacrebleu_score({"x y z w"}, {"a b c d"}).score, 0.0);
  EXPECT_NEAR(sacrebleu_score({"A man rides a horse."}, {"A man rides a horse."}).score, 100.0, 1e-9);
}

TEST(Bleu, BrevityPenaltyOnlyForShortOutput) {
  // Hypothesis of 4 tokens, reference of 8 whose first 4 match: precisions 1, BP = exp(1 − 8/4).
  const auto short_output = sacrebleu_score({"a b c d"}, {"a b c d e f g h"});
  EXPECT_NEAR(short_output.brevity_penalty, std::exp(1 - 8.0 / 4), 1e-12);
  EXPECT_NEAR(short_output.score, 100 * std::exp(1 - 8.0 / 4), 1e-9);
  // Longer output: no penalty, only lower precisions.
  EXPECT_EQ(sacrebleu_score({"a b c d e f g h i j"}, {"a b c d e f g h"}).brevity_penalty, 1.0);
}

TEST(Bleu, Tokenization13aSplitsPunctuationButNotNumbers) {
  EXPECT_EQ(tokenize_13a("Hello, world. It's 3.5 km (2-3 min)!"), "Hello , world . It's 3.5 km ( 2 - 3 min ) !");
  EXPECT_EQ(tokenize_13a("a &amp; b &quot;c&quot;"), "a & b \" c \"");
  EXPECT_EQ(tokenize_13a("1,000 people"), "1,000 people");
  EXPECT_EQ(tokenize_13a("  spaced   out  "), "spaced out");
}

TEST(Bleu, ReferenceStreamOfOtherLengthIsAnError) {
  EXPECT_THROW(corpus_bleu({"a", "b"}, {{"a"}}, BleuTokenize::k13a, BleuSmoothing::kExp), std::invalid_argument);
}

TEST(BleuCommand, PrintsBothScoresAndRejectsUnalignedFiles) {
  testing::TempDir dir;
  std::ofstream(dir.file("hyp.txt")) << "A man rides a horse.\nTwo dogs play.\n";
  std::ofstream(dir.file("ref.txt")) << "A man rides a horse.\nTwo dogs play.\n";
  std::ofstream(dir.file("short.txt")) << "A man rides a horse.\n";
  const auto out = dir.file("out.txt");
  const auto run = [&](const std::string& hyp, const std::string& ref) {
    return WEXITSTATUS(std::system((testing::ngdbench_binary() + " bleu " + hyp + " " + ref + " > " + out + " 2>&1").c_str()));
  };
  ASSERT_EQ(run(dir.file("hyp.txt"), dir.file("ref.txt")), 0);
  std::stringstream text;
  text << std::ifstream(out).rdbuf();
  EXPECT_NE(text.str().find("BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 10 ref_len = 10)"
                            "  [sacreBLEU-compatible"),
            std::string::npos)
      << text.str();
  EXPECT_NE(text.str().find("\ntokenized BLEU = 100.00"), std::string::npos) << text.str();
  EXPECT_EQ(run(dir.file("hyp.txt"), dir.file("short.txt")), 2);
  std::stringstream error;
  error << std::ifstream(out).rdbuf();
  EXPECT_NE(error.str().find("hyp.txt has 2 lines but " + dir.file("short.txt") + " has 1"), std::string::npos)
      << error.str();
}

}  // namespace
}  // namespace ngd
