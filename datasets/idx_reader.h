#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace ngd {

// Reads an IDX file (the MNIST/Fashion-MNIST format), gzip-compressed or plain, holding unsigned
// bytes. Validates the magic number, the dimension count and that the payload is exactly as long as
// the dimensions say (at most kMaxDecompressedBytes), reading no more than one byte past what the
// header announces; throws std::runtime_error naming the file otherwise. Returns a uint8 tensor with
// the file's dimensions.
torch::Tensor read_idx_file(const std::string& path);

// Bytes a dataset file may decompress to: Fashion-MNIST's largest file has 47 MB, Multi30K's a few
// MB. Reading stops one byte past it, so a small gzip bomb costs this much memory at most.
constexpr size_t kMaxDecompressedBytes = size_t{1} << 30;

// The whole decompressed content of a gzip (or plain) file; throws naming the file on a corrupt
// stream or when it decompresses to more than `max_bytes`.
std::string read_gzip_file(const std::string& path, size_t max_bytes = kMaxDecompressedBytes);

}  // namespace ngd
