#include "datasets/idx_reader.h"

#include <fmt/format.h>
#include <zlib.h>

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

}  // namespace

std::string read_gzip_file(const std::string& path) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file) throw std::runtime_error(fmt::format("{}: cannot open", path));
  std::string content;
  std::vector<char> chunk(1 << 20);
  while (true) {
    const int count = gzread(file.get(), chunk.data(), static_cast<unsigned>(chunk.size()));
    if (count < 0) {
      int code = 0;
      throw std::runtime_error(fmt::format("{}: corrupt gzip stream ({})", path, gzerror(file.get(), &code)));
    }
    if (count == 0) break;
    content.append(chunk.data(), static_cast<size_t>(count));
  }
  // zlib reports a stream cut short only through gzerror after the last read.
  int code = Z_OK;
  const char* message = gzerror(file.get(), &code);
  if (code != Z_OK && code != Z_STREAM_END) {
    throw std::runtime_error(fmt::format("{}: corrupt gzip stream ({})", path, message));
  }
  return content;
}

torch::Tensor read_idx_file(const std::string& path) {
  const std::string bytes = read_gzip_file(path);
  if (bytes.size() < 4) throw std::runtime_error(fmt::format("{}: too short for an IDX header", path));
  if (bytes[0] != 0 || bytes[1] != 0) {
    throw std::runtime_error(fmt::format("{}: bad IDX magic number (not an IDX file)", path));
  }
  if (static_cast<unsigned char>(bytes[2]) != kUnsignedByteType) {
    throw std::runtime_error(fmt::format("{}: IDX type 0x{:02x} is not unsigned bytes (0x08)", path,
                                         static_cast<unsigned char>(bytes[2])));
  }
  const int dims = static_cast<unsigned char>(bytes[3]);
  if (dims < 1 || dims > kMaxDimensions) {
    throw std::runtime_error(fmt::format("{}: IDX header has {} dimensions (expected 1..{})", path, dims, kMaxDimensions));
  }
  const size_t header = 4 + 4 * static_cast<size_t>(dims);
  if (bytes.size() < header) throw std::runtime_error(fmt::format("{}: truncated IDX header", path));
  std::vector<int64_t> shape;
  size_t expected = 1;
  for (int d = 0; d < dims; ++d) {
    const uint32_t extent = read_big_endian(bytes, 4 + 4 * d);
    if (extent == 0) throw std::runtime_error(fmt::format("{}: IDX dimension {} is zero", path, d));
    shape.push_back(extent);
    expected *= extent;
    if (expected > (size_t{1} << 40)) throw std::runtime_error(fmt::format("{}: IDX dimensions implausibly large", path));
  }
  const size_t payload = bytes.size() - header;
  if (payload != expected) {
    throw std::runtime_error(fmt::format("{}: IDX payload has {} bytes but the header's dimensions need {} ({})",
                                         path, payload, expected, payload < expected ? "truncated" : "trailing data"));
  }
  auto tensor = torch::empty(shape, torch::kUInt8);
  std::memcpy(tensor.data_ptr<uint8_t>(), bytes.data() + header, expected);
  return tensor;
}

}  // namespace ngd
