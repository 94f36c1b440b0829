#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <numeric>
#include <set>

#include "datasets/dataset.h"
#include "datasets/translation.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using testing::TempDir;

const std::vector<std::string> kGerman = {"Ein Hund läuft im Park.", "Zwei Katzen spielen.", "Ein Mann fährt Rad.",
                                          "Eine Frau liest ein Buch.", "Kinder spielen im Sand."};
const std::vector<std::string> kEnglish = {"A dog runs in the park.", "Two cats play.", "A man rides a bike.",
                                           "A woman reads a book.", "Children play in the sand."};

TEST(Tokenizer, TrainingIsDeterministicAndRoundTripsText) {
  if (!subword_tokenizers_available()) GTEST_SKIP() << "no SentencePiece in sanitizer builds";
  const auto first = SubwordTokenizer::train(kEnglish, 64, "unigram");
  const auto second = SubwordTokenizer::train(kEnglish, 64, "unigram");
  EXPECT_EQ(first.serialized(), second.serialized());
  for (const auto& sentence : kEnglish) {
    const auto ids = first.encode(sentence);
    EXPECT_FALSE(ids.empty());
    for (auto id : ids) {
      EXPECT_GT(id, kEosId);  // never a special id
      EXPECT_LT(id, first.vocab_size());
    }
    EXPECT_EQ(first.decode(ids), sentence);
  }
  auto with_specials = first.encode(kEnglish[0]);
  with_specials.insert(with_specials.begin(), kBosId);
  with_specials.push_back(kEosId);
  EXPECT_EQ(first.decode(with_specials), kEnglish[0]);
  EXPECT_THROW(SubwordTokenizer::from_serialized("not a model", "bytes"), std::runtime_error);
}

TEST(Tokenizer, CachesUnderTheDataRootAndReusesTheModel) {
  if (!subword_tokenizers_available()) GTEST_SKIP() << "no SentencePiece in sanitizer builds";
  TempDir root;
  std::stringstream log;
  const TokenizerSettings settings{64, true, "unigram"};
  const auto trained = load_or_train_tokenizers(kGerman, kEnglish, "de", "en", settings, "corpus", "sizes", root.path(), log);
  EXPECT_TRUE(trained.trained);
  EXPECT_EQ(trained.source, trained.target);  // joint
  EXPECT_EQ(trained.cache_folder.rfind(root.path() + "/ngdbench-cache/corpus-spm-", 0), 0u) << trained.cache_folder;
  const auto reused = load_or_train_tokenizers(kGerman, kEnglish, "de", "en", settings, "corpus", "sizes", root.path(), log);
  EXPECT_FALSE(reused.trained);
  EXPECT_EQ(reused.cache_folder, trained.cache_folder);
  EXPECT_EQ(reused.source->serialized(), trained.source->serialized());
  // Other settings or another corpus: another folder, trained anew.
  const auto per_language =
      load_or_train_tokenizers(kGerman, kEnglish, "de", "en", {64, false, "unigram"}, "corpus", "sizes", root.path(), log);
  EXPECT_TRUE(per_language.trained);
  EXPECT_NE(per_language.cache_folder, trained.cache_folder);
  EXPECT_NE(per_language.source, per_language.target);
  EXPECT_NE(load_or_train_tokenizers(kGerman, kEnglish, "de", "en", settings, "corpus", "other sizes", root.path(), log)
                .cache_folder,
            trained.cache_folder);
  EXPECT_TRUE(log.str().empty()) << log.str();
}

TEST(Tokenizer, UnwritableDataRootFallsBackToTheUserCacheAndSaysSo) {
  if (!subword_tokenizers_available()) GTEST_SKIP() << "no SentencePiece in sanitizer builds";
  TempDir dir;
  std::ofstream(dir.file("a-file")) << "not a folder";
  const char* previous = std::getenv("XDG_CACHE_HOME");
  const std::string saved = previous != nullptr ? previous : "";
  ::setenv("XDG_CACHE_HOME", dir.file("cache").c_str(), 1);
  std::stringstream log;
  const auto tokenizers =
      load_or_train_tokenizers(kGerman, kEnglish, "de", "en", {64, true, "unigram"}, "corpus", "sizes", dir.file("a-file"), log);
  if (previous != nullptr) {
    ::setenv("XDG_CACHE_HOME", saved.c_str(), 1);
  } else {
    ::unsetenv("XDG_CACHE_HOME");
  }
  EXPECT_EQ(tokenizers.cache_folder.rfind(dir.file("cache") + "/ngdbench/corpus-spm-", 0), 0u) << tokenizers.cache_folder;
  EXPECT_NE(log.str().find("not writable"), std::string::npos) << log.str();
}

TokenizedSplit split_of_lengths(const std::vector<std::pair<int64_t, int64_t>>& lengths) {
  TokenizedSplit split;
  for (const auto& [source, target] : lengths) {
    split.source.emplace_back(source, 5);
    split.source.back().back() = kEosId;
    split.target.emplace_back(target, 6);
    split.references.emplace_back("");
  }
  return split;
}

TokenizedSplit random_lengths(int64_t count, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  const auto lengths = torch::randint(1, 40, {count, 2}, generator, torch::kInt64);
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (int64_t i = 0; i < count; ++i) pairs.emplace_back(lengths[i][0].item<int64_t>(), lengths[i][1].item<int64_t>());
  return split_of_lengths(pairs);
}

TEST(LengthBatching, EverySentenceOnceAndTheTokenBudgetHolds) {
  const auto split = random_lengths(500, 1);
  auto generator = at::detail::createCPUGenerator(7);
  const LengthBatching batching{256, 0};
  const auto batches = length_batches(split, batching, generator);
  std::multiset<int64_t> seen;
  for (const auto& batch : batches) {
    ASSERT_FALSE(batch.empty());
    const auto padded = make_translation_batch(split, batch);
    const int64_t length = std::max(padded.source.size(1), padded.target_input.size(1));
    EXPECT_LE(static_cast<int64_t>(batch.size()) * length, batching.tokens) << batch.size() << " × " << length;
    seen.insert(batch.begin(), batch.end());
  }
  EXPECT_EQ(seen.size(), 500u);
  for (int64_t i = 0; i < 500; ++i) EXPECT_EQ(seen.count(i), 1u) << i;
}

TEST(LengthBatching, SentenceLimitHoldsAndSortingLimitsPadding) {
  const auto split = random_lengths(300, 2);
  auto generator = at::detail::createCPUGenerator(3);
  const auto batches = length_batches(split, {0, 32}, generator);
  int64_t real = 0, padded = 0;
  for (const auto& batch : batches) {
    EXPECT_LE(batch.size(), 32u);
    const auto tensors = make_translation_batch(split, batch);
    real += tensors.target_output.ne(kPadId).sum().item<int64_t>();
    padded += tensors.target_output.numel();
  }
  EXPECT_EQ(batches.size(), 10u);                              // ⌈300/32⌉
  EXPECT_GT(static_cast<double>(real) / static_cast<double>(padded), 0.8);  // unsorted batches: about 0.5
}

TEST(LengthBatching, SameSeedSameBatchesOtherSeedOtherOrder) {
  const auto split = random_lengths(200, 4);
  auto first = at::detail::createCPUGenerator(5), second = at::detail::createCPUGenerator(5),
       other = at::detail::createCPUGenerator(6);
  const auto a = length_batches(split, {200, 0}, first);
  EXPECT_EQ(a, length_batches(split, {200, 0}, second));
  EXPECT_NE(a, length_batches(split, {200, 0}, other));
}

TEST(LengthBatching, UnshuffledBatchesAreTheSortedFileOrderWhateverTheSeed) {
  const auto split = random_lengths(200, 4);
  auto first = at::detail::createCPUGenerator(5), other = at::detail::createCPUGenerator(6);
  const auto batches = length_batches(split, {200, 0}, first, /*shuffle=*/false);
  EXPECT_EQ(batches, length_batches(split, {200, 0}, other, /*shuffle=*/false));
  std::vector<int64_t> order;
  for (const auto& batch : batches) order.insert(order.end(), batch.begin(), batch.end());
  std::vector<int64_t> expected(200);
  std::iota(expected.begin(), expected.end(), 0);
  std::stable_sort(expected.begin(), expected.end(), [&split](int64_t a, int64_t b) {
    return std::make_pair(split.target[a].size(), split.source[a].size()) <
           std::make_pair(split.target[b].size(), split.source[b].size());
  });
  EXPECT_EQ(order, expected);
}

TEST(LengthBatching, OverlongSentenceFormsItsOwnBatch) {
  const auto split = split_of_lengths({{3, 3}, {50, 60}, {4, 2}});
  auto generator = at::detail::createCPUGenerator(0);
  const auto batches = length_batches(split, {20, 0}, generator);
  bool alone = false;
  for (const auto& batch : batches) alone = alone || (batch == std::vector<int64_t>{1});
  EXPECT_TRUE(alone);
}

TEST(TranslationBatch, AddsBosAndEosAndPads) {
  const auto split = split_of_lengths({{2, 1}, {3, 3}});
  const auto batch = make_translation_batch(split, {0, 1});
  EXPECT_EQ(batch.source.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(batch.target_input.sizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_TRUE(batch.target_input.select(1, 0).eq(kBosId).all().item<bool>());
  EXPECT_EQ(batch.target_output[0][1].item<int64_t>(), kEosId);
  EXPECT_EQ(batch.target_output[0][2].item<int64_t>(), kPadId);
  EXPECT_EQ(batch.target_input[0][2].item<int64_t>(), kPadId);
  EXPECT_EQ(batch.source[0][2].item<int64_t>(), kPadId);
  EXPECT_EQ(batch.target_output[1][3].item<int64_t>(), kEosId);
}

TEST(Multi30kDataset, LoadsTokenizesAndSubsetsFromADataRoot) {
  if (!subword_tokenizers_available()) GTEST_SKIP() << "no SentencePiece in sanitizer builds";
  TempDir root;
  testing::write_synthetic_multi30k(root.path(), 60, 20, 10);
  DatasetRequest request{"multi30k", 25, std::nullopt, {{"vocab_size", 64}, {"val_subset", 8}}};
  const auto dataset = load_translation_dataset(request, {root.path()});
  EXPECT_EQ(dataset.train.size(), 25);
  EXPECT_EQ(dataset.val.size(), 8);
  EXPECT_EQ(dataset.test.size(), 10);
  EXPECT_EQ(dataset.source_tokenizer, dataset.target_tokenizer);
  EXPECT_EQ(dataset.target_tokenizer->decode(dataset.test.target[0]), dataset.test.references[0]);
  for (const auto& source : dataset.train.source) EXPECT_EQ(source.back(), kEosId);
  EXPECT_THROW(load_dataset(request, {root.path()}), std::runtime_error);  // not an image dataset
}

}  // namespace
}  // namespace ngd
