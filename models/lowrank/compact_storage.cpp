#include "models/lowrank/compact_storage.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>
#include <unordered_map>

namespace ngd {
namespace {

// entropy_code's header: symbol count (8 bytes), alphabet size (2 bytes), the alphabet (4 bytes each),
// little-endian; then the deflate stream of the symbols' alphabet indices.
constexpr size_t kMaxAlphabet = 256;

void put(std::vector<uint8_t>& bytes, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

uint64_t get(const std::vector<uint8_t>& bytes, size_t& at, int width) {
  if (at + static_cast<size_t>(width) > bytes.size()) throw std::runtime_error("entropy_decode: truncated header");
  uint64_t value = 0;
  for (int i = 0; i < width; ++i) value |= static_cast<uint64_t>(bytes[at + i]) << (8 * i);
  at += static_cast<size_t>(width);
  return value;
}

}  // namespace

torch::Tensor magnitude_prune(const torch::Tensor& tensor, double fraction) {
  if (!(fraction >= 0.0 && fraction <= 1.0)) {
    throw std::invalid_argument(fmt::format("magnitude_prune: fraction {} outside [0, 1]", fraction));
  }
  const auto flat = tensor.detach().flatten().clone();
  const auto count = static_cast<int64_t>(std::floor(fraction * static_cast<double>(flat.numel())));
  if (count > 0) {
    const auto order = std::get<1>(torch::sort(flat.abs(), /*stable=*/true, /*dim=*/0, /*descending=*/false));
    flat.index_fill_(0, order.slice(0, 0, count), 0);
  }
  return flat.reshape(tensor.sizes());
}

QuantizedTensor quantize(const torch::Tensor& tensor, int bits) {
  if (bits < 2 || bits > 16) throw std::invalid_argument(fmt::format("quantize: {} bits outside 2…16", bits));
  const int64_t channels = tensor.dim() >= 2 ? tensor.size(0) : 1;
  const auto rows = tensor.detach().to(torch::kCPU, torch::kDouble).reshape({channels, -1});
  const double levels = std::ldexp(1.0, bits - 1) - 1;
  const auto scales = std::get<0>(rows.abs().max(1)) / levels;
  const auto safe = torch::where(scales > 0, scales, torch::ones_like(scales));
  const auto codes = torch::round(rows / safe.unsqueeze(1)).clamp(-levels, levels).to(torch::kInt).contiguous();
  QuantizedTensor quantized;
  quantized.sizes = tensor.sizes().vec();
  quantized.codes.assign(codes.data_ptr<int32_t>(), codes.data_ptr<int32_t>() + codes.numel());
  const auto scale_values = scales.contiguous();
  quantized.scales.assign(scale_values.data_ptr<double>(), scale_values.data_ptr<double>() + channels);
  quantized.bits = bits;
  return quantized;
}

torch::Tensor dequantize(const QuantizedTensor& quantized) {
  const auto channels = static_cast<int64_t>(quantized.scales.size());
  const auto codes = torch::tensor(quantized.codes, torch::kInt).to(torch::kDouble).reshape({channels, -1});
  const auto scales = torch::tensor(quantized.scales, torch::kDouble).unsqueeze(1);
  return (codes * scales).reshape(quantized.sizes);
}

std::vector<uint8_t> entropy_code(const std::vector<int32_t>& symbols) {
  std::map<int32_t, uint8_t> index;
  for (const int32_t symbol : symbols) {
    if (index.count(symbol) == 0) {
      if (index.size() == kMaxAlphabet) {
        throw std::invalid_argument(fmt::format("entropy_code: more than {} distinct symbols", kMaxAlphabet));
      }
      index.emplace(symbol, 0);
    }
  }
  std::vector<uint8_t> code;
  put(code, symbols.size(), 8);
  put(code, index.size(), 2);
  uint8_t next = 0;
  for (auto& [symbol, position] : index) {
    position = next++;
    put(code, static_cast<uint32_t>(symbol), 4);
  }
  std::vector<uint8_t> indices;
  indices.reserve(symbols.size());
  for (const int32_t symbol : symbols) indices.push_back(index.at(symbol));

  z_stream stream{};
  // Z_HUFFMAN_ONLY: literals only, each block with its own Huffman code (no LZ77 matching).
  if (deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 15, 9, Z_HUFFMAN_ONLY) != Z_OK) {
    throw std::runtime_error("entropy_code: deflateInit2 failed");
  }
  std::vector<uint8_t> packed(deflateBound(&stream, static_cast<uLong>(indices.size())));
  stream.next_in = indices.data();
  stream.avail_in = static_cast<uInt>(indices.size());
  stream.next_out = packed.data();
  stream.avail_out = static_cast<uInt>(packed.size());
  const int status = deflate(&stream, Z_FINISH);
  const auto written = packed.size() - stream.avail_out;
  deflateEnd(&stream);
  if (status != Z_STREAM_END) throw std::runtime_error("entropy_code: deflate did not finish");
  code.insert(code.end(), packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(written));
  return code;
}

std::vector<int32_t> entropy_decode(const std::vector<uint8_t>& code) {
  size_t at = 0;
  const uint64_t count = get(code, at, 8);
  const uint64_t alphabet_size = get(code, at, 2);
  if (alphabet_size > kMaxAlphabet || (alphabet_size == 0 && count > 0)) {
    throw std::runtime_error(fmt::format("entropy_decode: alphabet of {} symbols for {} symbols", alphabet_size, count));
  }
  // Every Huffman-coded symbol takes at least one bit: a larger count is a corrupt header, not a size to allocate.
  if (count > 8 * (code.size() - at) + 8) {
    throw std::runtime_error(fmt::format("entropy_decode: {} symbols announced in {} bytes", count, code.size()));
  }
  std::vector<int32_t> alphabet;
  for (uint64_t i = 0; i < alphabet_size; ++i) alphabet.push_back(static_cast<int32_t>(static_cast<uint32_t>(get(code, at, 4))));
  std::vector<uint8_t> indices(count);
  z_stream stream{};
  if (inflateInit(&stream) != Z_OK) throw std::runtime_error("entropy_decode: inflateInit failed");
  stream.next_in = const_cast<uint8_t*>(code.data() + at);
  stream.avail_in = static_cast<uInt>(code.size() - at);
  uint8_t no_symbols = 0;  // zlib refuses a null output buffer, which an empty vector's data() may be
  stream.next_out = indices.empty() ? &no_symbols : indices.data();
  stream.avail_out = static_cast<uInt>(indices.size());
  const int status = inflate(&stream, Z_FINISH);
  const bool complete = status == Z_STREAM_END && stream.avail_out == 0;
  inflateEnd(&stream);
  if (!complete) throw std::runtime_error("entropy_decode: the deflate stream does not hold the announced symbols");
  std::vector<int32_t> symbols;
  symbols.reserve(count);
  for (const uint8_t i : indices) {
    if (i >= alphabet.size()) throw std::runtime_error("entropy_decode: a symbol index beyond the alphabet");
    symbols.push_back(alphabet[i]);
  }
  return symbols;
}

double empirical_entropy_bits(const std::vector<int32_t>& symbols) {
  std::unordered_map<int32_t, int64_t> counts;
  for (const int32_t symbol : symbols) ++counts[symbol];
  const double n = static_cast<double>(symbols.size());
  double bits = 0.0;
  for (const auto& [symbol, c] : counts) bits -= static_cast<double>(c) * std::log2(static_cast<double>(c) / n);
  return bits;
}

StoredSize stored_size(CaptureModel& model, int bits, double prune_fraction) {
  if (bits < 2 || bits > 8) {
    throw std::invalid_argument(fmt::format("stored_size: {} bits outside 2…8 (the coder's alphabet holds 256 symbols)", bits));
  }
  StoredSize size;
  double float32_rest = 0.0;
  for (const auto& parameter : model.parameters()) {
    size.dense_float32_bytes += 4 * parameter.numel();
    if (parameter.dim() < 2) {
      float32_rest += 4.0 * static_cast<double>(parameter.numel());
      continue;
    }
    const auto quantized = quantize(magnitude_prune(parameter, prune_fraction), bits);
    const auto scale_bytes = 4 * static_cast<int64_t>(quantized.scales.size());
    size.quantized_bytes += (parameter.numel() * bits + 7) / 8 + scale_bytes;
    size.coded_bytes += static_cast<int64_t>(entropy_code(quantized.codes).size()) + scale_bytes;
    size.entropy_bound_bytes += empirical_entropy_bits(quantized.codes) / 8.0 + static_cast<double>(scale_bytes);
  }
  size.quantized_bytes += static_cast<int64_t>(float32_rest);
  size.coded_bytes += static_cast<int64_t>(float32_rest);
  size.entropy_bound_bytes += float32_rest;
  return size;
}

}  // namespace ngd
