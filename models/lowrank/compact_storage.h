#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "models/model.h"

namespace ngd {

// The integration framework's storage stages after low rank: magnitude pruning, b-bit quantization,
// entropy coding (Deep Compression's pipeline).

// `tensor` with the ⌊fraction × numel⌋ entries of smallest magnitude set to 0 (fraction in [0, 1]).
torch::Tensor magnitude_prune(const torch::Tensor& tensor, double fraction);

// Per-channel (dim 0) symmetric uniform quantization at `bits` (2…16): scale_c = max|x_c| / (2^{b−1} − 1),
// code = round(x / scale_c) ∈ [−(2^{b−1} − 1), 2^{b−1} − 1]; a channel of zeros gets scale 0 and codes 0.
// A tensor of dim < 2 is one channel.
struct QuantizedTensor {
  std::vector<int64_t> sizes;
  std::vector<int32_t> codes;   // row-major
  std::vector<double> scales;   // one per channel
  int bits = 0;
};
QuantizedTensor quantize(const torch::Tensor& tensor, int bits);
torch::Tensor dequantize(const QuantizedTensor& quantized);  // float64

// A lossless code of integer symbols: the distinct symbols (at most 256) as an alphabet, then each
// symbol's index Huffman-coded by zlib's deflate with Z_HUFFMAN_ONLY (no string matching, so the size
// is that of a zeroth-order Huffman code plus block headers). Throws std::invalid_argument beyond 256
// distinct symbols; entropy_decode throws std::runtime_error on a malformed code.
std::vector<uint8_t> entropy_code(const std::vector<int32_t>& symbols);
std::vector<int32_t> entropy_decode(const std::vector<uint8_t>& code);
// N·H of the symbols' empirical distribution, in bits: the zeroth-order bound for any symbol-wise code.
double empirical_entropy_bits(const std::vector<int32_t>& symbols);

// A model's stored size. Weights (parameters of dim ≥ 2) are pruned, quantized per output channel at
// `bits` and entropy-coded; other parameters (biases, BatchNorm) and the scales stay float32 (4 bytes).
//   dense_float32_bytes  4 × every parameter
//   quantized_bytes      ⌈numel·bits/8⌉ per weight + 4 per channel scale + 4 × the other parameters
//   coded_bytes          entropy_code's size per weight + the same scales and other parameters
//   entropy_bound_bytes  empirical_entropy_bits/8 per weight + the same scales and other parameters
struct StoredSize {
  int64_t dense_float32_bytes = 0;
  int64_t quantized_bytes = 0;
  int64_t coded_bytes = 0;
  double entropy_bound_bytes = 0.0;
};
StoredSize stored_size(CaptureModel& model, int bits, double prune_fraction);

}  // namespace ngd
