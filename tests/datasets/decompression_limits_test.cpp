// Dataset files that inflate far beyond what they announce (gzip bombs) are refused after reading
// at most what the format's own header promises, or kMaxDecompressedBytes.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <functional>
#include <string>

#include "datasets/idx_reader.h"
#include "tests/support/test_support.h"

namespace ngd {
namespace {

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

// Peak resident memory of this process so far, in bytes.
long peak_resident_bytes() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss * 1024L;
}

TEST(DecompressionLimits, GzipFileBeyondTheLimitIsRefused) {
  testing::TempDir dir;
  testing::write_gzip(dir.file("zeros.gz"), std::string(4 << 20, '\0'));
  const auto message = error_of([&] { read_gzip_file(dir.file("zeros.gz"), 1 << 20); });
  EXPECT_NE(message.find("zeros.gz: decompresses to more than 1048576 bytes"), std::string::npos) << message;
  EXPECT_EQ(read_gzip_file(dir.file("zeros.gz"), 4 << 20).size(), size_t{4} << 20);  // exactly the limit is fine
}

TEST(DecompressionLimits, IdxBombIsReadOnlyAsFarAsItsHeaderPromises) {
  testing::TempDir dir;
  // A header announcing 2×2 bytes, followed by 128 MiB of zeros (128 KB compressed), written a MiB
  // at a time so that this process's peak memory stays below what the read would add.
  const size_t inflated = size_t{128} << 20;
  {
    gzFile bomb = gzopen(dir.file("bomb.gz").c_str(), "wb1");
    ASSERT_NE(bomb, nullptr);
    const unsigned char header[] = {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 2};
    gzwrite(bomb, header, sizeof header);
    const std::string zeros(size_t{1} << 20, '\0');
    for (size_t written = 0; written < inflated; written += zeros.size()) {
      gzwrite(bomb, zeros.data(), static_cast<unsigned>(zeros.size()));
    }
    gzclose(bomb);
  }
  // In a child, whose peak memory starts at this process's (small) peak: the read's growth shows.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const long before = peak_resident_bytes();
    const auto message = error_of([&] { read_idx_file(dir.file("bomb.gz")); });
    const long grown = peak_resident_bytes() - before;
    const bool refused = message.find("more than 4 bytes but the header's dimensions need 4 (trailing data)") !=
                         std::string::npos;
    ::_exit((refused ? 0 : 1) | (grown < static_cast<long>(inflated / 4) ? 0 : 2));
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status) & 1, 0) << "not refused as trailing data";
  EXPECT_EQ(WEXITSTATUS(status) & 2, 0) << "the whole file was inflated into memory";
}

}  // namespace
}  // namespace ngd
