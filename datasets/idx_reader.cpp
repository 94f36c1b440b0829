#include "datasets/idx_reader.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace ngd {
namespace {

// IDX magic: two zero bytes, a type code, and the number of dimensions.
constexpr unsigned char kUnsignedByteType = 0x08;
// Largest dimension count a sane IDX file has (images: 3).
constexpr int kMaxDimensions = 4;

uint32_t read_big_endian(const std::string& bytes, size_t offset) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(bytes[offset + i]);
  return value;
}

// A gzip'd (or plain) file read piece by piece, so that a reader can stop at the size it expects
// instead of inflating whatever the file holds.
class GzipInput {
 public:
  explicit GzipInput(const std::string& path) : path_(path), file_(open(path), gzclose) {
    if (!file_) {
      throw std::runtime_error(fmt::format("{}: cannot open ({})", path, errno != 0 ? std::strerror(errno) : "out of memory"));
    }
  }

  // Reads up to `count` bytes into `buffer` (fewer at the end of the data); returns how many.
  size_t read(char* buffer, size_t count) {
    size_t done = 0;
    while (done < count) {
      const auto piece = static_cast<unsigned>(std::min(kChunkBytes, count - done));
      const int got = gzread(file_.get(), buffer + done, piece);
      if (got < 0) {
        int code = 0;
        throw std::runtime_error(fmt::format("{}: corrupt gzip stream ({})", path_, gzerror(file_.get(), &code)));
      }
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    // zlib reports a stream cut short only through gzerror after the last read.
    int code = Z_OK;
    const char* message = gzerror(file_.get(), &code);
    if (code != Z_OK && code != Z_STREAM_END) {
      throw std::runtime_error(fmt::format("{}: corrupt gzip stream ({})", path_, message));
    }
    return done;
  }

  // Appends up to `count` bytes to `out`, growing it a chunk at a time (never by `count` at once).
  size_t append(std::string& out, size_t count) {
    const size_t start = out.size();
    while (out.size() - start < count) {
      const size_t before = out.size();
      out.resize(before + std::min(kChunkBytes, count - (before - start)));
      const size_t got = read(out.data() + before, out.size() - before);
      out.resize(before + got);
      if (got == 0) break;
    }
    return out.size() - start;
  }

 private:
  static gzFile open(const std::string& path) {
    errno = 0;  // gzopen sets it only when the system refuses the file
    return gzopen(path.c_str(), "rb");
  }

  static constexpr size_t kChunkBytes = size_t{1} << 20;
  std::string path_;
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file_;
};

}  // namespace

std::string read_gzip_file(const std::string& path, size_t max_bytes) {
  GzipInput input(path);
  std::string content;
  if (input.append(content, max_bytes + 1) > max_bytes) {
    throw std::runtime_error(fmt::format("{}: decompresses to more than {} bytes (the limit; a gzip bomb or not "
                                         "a dataset file?)", path, max_bytes));
  }
  return content;
}

torch::Tensor read_idx_file(const std::string& path) {
  GzipInput input(path);
  std::string header;
  if (input.append(header, 4) < 4) throw std::runtime_error(fmt::format("{}: too short for an IDX header", path));
  if (header[0] != 0 || header[1] != 0) {
    throw std::runtime_error(fmt::format("{}: bad IDX magic number (not an IDX file)", path));
  }
  if (static_cast<unsigned char>(header[2]) != kUnsignedByteType) {
    throw std::runtime_error(fmt::format("{}: IDX type 0x{:02x} is not unsigned bytes (0x08)", path,
                                         static_cast<unsigned char>(header[2])));
  }
  const int dims = static_cast<unsigned char>(header[3]);
  if (dims < 1 || dims > kMaxDimensions) {
    throw std::runtime_error(fmt::format("{}: IDX header has {} dimensions (expected 1..{})", path, dims, kMaxDimensions));
  }
  const size_t extents = 4 * static_cast<size_t>(dims);
  if (input.append(header, extents) < extents) throw std::runtime_error(fmt::format("{}: truncated IDX header", path));
  std::vector<int64_t> shape;
  size_t expected = 1;
  for (int d = 0; d < dims; ++d) {
    const uint32_t extent = read_big_endian(header, 4 + 4 * d);
    if (extent == 0) throw std::runtime_error(fmt::format("{}: IDX dimension {} is zero", path, d));
    shape.push_back(extent);
    expected *= extent;
    if (expected > kMaxDecompressedBytes) {
      throw std::runtime_error(fmt::format("{}: IDX dimensions need more than {} bytes (the limit)", path,
                                           kMaxDecompressedBytes));
    }
  }
  // The header says how much follows: read that, straight into the tensor, and look for one byte
  // more, however much the file would inflate to.
  auto tensor = torch::empty(shape, torch::kUInt8);
  const size_t payload = input.read(reinterpret_cast<char*>(tensor.data_ptr<uint8_t>()), expected);
  char extra = 0;
  if (payload < expected || input.read(&extra, 1) > 0) {
    throw std::runtime_error(fmt::format("{}: IDX payload has {} bytes but the header's dimensions need {} ({})",
                                         path, payload < expected ? std::to_string(payload)
                                                                  : fmt::format("more than {}", expected),
                                         expected, payload < expected ? "truncated" : "trailing data"));
  }
  return tensor;
}

}  // namespace ngd
