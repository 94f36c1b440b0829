#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace ngd {

// Reads an IDX file (the MNIST/Fashion-MNIST format), gzip-compressed or plain, holding unsigned
// bytes. Validates the magic number, the dimension count and that the payload is exactly as long as
// the dimensions say; throws std::runtime_error naming the file otherwise. Returns a uint8 tensor
// with the file's dimensions.
torch::Tensor read_idx_file(const std::string& path);

// The whole decompressed content of a gzip (or plain) file; throws naming the file on a corrupt stream.
std::string read_gzip_file(const std::string& path);

}  // namespace ngd
