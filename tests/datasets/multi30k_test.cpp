#include <gtest/gtest.h>

#include <fstream>

#include "datasets/dataset.h"
#include "datasets/multi30k.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

using testing::TempDir;

void write_split(const TempDir& dir, const std::string& split, const std::string& de, const std::string& en) {
  testing::write_gzip(dir.file(split + ".de.gz"), de);
  testing::write_gzip(dir.file(split + ".en.gz"), en);
}

TEST(Multi30k, ReadsGzipSplitsInTheRequestedDirection) {
  TempDir dir;
  write_split(dir, "train", "Ein Hund.\nZwei Katzen.\r\n", "A dog.\nTwo cats.\n");
  write_split(dir, "val", "Ein Mann.\n", "A man.\n");
  write_split(dir, "test_2016_flickr", "Eine Frau.", "A woman.");  // no final newline
  const auto de_en = load_multi30k(dir.path(), "de", "en");
  EXPECT_EQ(de_en.train.source, (std::vector<std::string>{"Ein Hund.", "Zwei Katzen."}));
  EXPECT_EQ(de_en.train.target, (std::vector<std::string>{"A dog.", "Two cats."}));
  EXPECT_EQ(de_en.test.target, (std::vector<std::string>{"A woman."}));
  const auto en_de = load_multi30k(dir.path(), "en", "de");
  EXPECT_EQ(en_de.val.source, (std::vector<std::string>{"A man."}));
  EXPECT_EQ(en_de.val.target, (std::vector<std::string>{"Ein Mann."}));
}

TEST(Multi30k, SharedCopyLoadsAsIs) {
  const auto folder = find_dataset_folder(dataset_entry("multi30k"), data_roots(""));
  if (!folder) GTEST_SKIP() << "no multi30k in the data roots";
  const auto data = load_multi30k(*folder, "de", "en");
  // The official task-1 split sizes.
  EXPECT_EQ(data.train.size(), 29000);
  EXPECT_EQ(data.val.size(), 1014);
  EXPECT_EQ(data.test.size(), 1000);
  EXPECT_FALSE(data.train.source.front().empty());
}

TEST(Multi30k, LineCountMismatchNamesBothFilesAndCounts) {
  TempDir dir;
  write_split(dir, "train", "a\nb\nc\n", "x\ny\n");
  try {
    read_parallel_text(dir.file("train.de.gz"), dir.file("train.en.gz"));
    FAIL() << "expected a line-count error";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(dir.file("train.de.gz") + " has 3 lines but " + dir.file("train.en.gz") + " has 2"),
              std::string::npos)
        << message;
  }
}

TEST(Multi30k, MissingOrBinaryFilesAreClearErrors) {
  TempDir dir;
  EXPECT_THROW(load_multi30k(dir.path(), "de", "en"), std::runtime_error);
  testing::write_gzip(dir.file("bin.gz"), std::string("a\0b", 3));
  EXPECT_THROW(read_text_lines(dir.file("bin.gz")), std::runtime_error);
  EXPECT_THROW(load_multi30k(dir.path(), "de", "de"), std::runtime_error);
}

TEST(Multi30k, EmptyLinesInsideAFileAreKept) {
  EXPECT_EQ(split_text_lines("a\n\nb\n", "text"), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_TRUE(split_text_lines("", "text").empty());
}

}  // namespace
}  // namespace ngd
