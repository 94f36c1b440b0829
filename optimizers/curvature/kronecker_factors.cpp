#include "optimizers/curvature/kronecker_factors.h"

#include <fmt/format.h>

#include <stdexcept>

namespace ngd {
namespace {

// (begin, length) of the pieces a side of `size` is cut into: pieces of `max_dim`, the last shorter.
std::vector<std::pair<int64_t, int64_t>> cut(int64_t size, int64_t max_dim) {
  std::vector<std::pair<int64_t, int64_t>> pieces;
  for (int64_t begin = 0; begin < size; begin += max_dim) pieces.emplace_back(begin, std::min(max_dim, size - begin));
  return pieces;
}

}  // namespace

KroneckerFactors::KroneckerFactors(const torch::Tensor& parameter, int64_t max_dim, Blocking blocking, bool vectors)
    : shape_(parameter.sizes().vec()) {
  if (max_dim < 1) throw std::invalid_argument(fmt::format("max_preconditioner_dim must be ≥ 1, got {}", max_dim));
  is_matrix_ = parameter.dim() >= 2;
  rows_ = parameter.dim() == 0 ? 1 : parameter.size(0);
  columns_ = parameter.numel() / std::max<int64_t>(rows_, 1);
  const bool split = blocking == Blocking::kSplit;
  const auto row_pieces = split ? cut(rows_, max_dim) : cut(rows_, std::max<int64_t>(rows_, 1));
  const auto column_pieces = split ? cut(columns_, max_dim) : cut(columns_, std::max<int64_t>(columns_, 1));
  blocks_per_row_ = static_cast<int64_t>(column_pieces.size());
  const auto options = parameter.options();
  const bool rows_preconditioned = is_matrix_ || vectors;
  for (const auto& [row_begin, rows] : row_pieces) {
    for (const auto& [column_begin, columns] : column_pieces) {
      Block block{row_begin, rows, column_begin, columns, {}, {}};
      if (rows_preconditioned && rows <= max_dim) block.left = torch::zeros({rows, rows}, options);
      if (is_matrix_ && columns <= max_dim) block.right = torch::zeros({columns, columns}, options);
      blocks_.push_back(std::move(block));
    }
  }
}

std::vector<torch::Tensor> KroneckerFactors::split(const torch::Tensor& matrix) const {
  std::vector<torch::Tensor> pieces;
  pieces.reserve(blocks_.size());
  for (const auto& block : blocks_) {
    pieces.push_back(matrix.narrow(0, block.row_begin, block.rows).narrow(1, block.column_begin, block.columns));
  }
  return pieces;
}

torch::Tensor KroneckerFactors::merge(const std::vector<torch::Tensor>& pieces) const {
  if (pieces.size() == 1) return pieces.front();
  std::vector<torch::Tensor> block_rows;
  for (size_t begin = 0; begin < pieces.size(); begin += static_cast<size_t>(blocks_per_row_)) {
    block_rows.push_back(torch::cat(std::vector<torch::Tensor>(pieces.begin() + static_cast<std::ptrdiff_t>(begin),
                                                               pieces.begin() + static_cast<std::ptrdiff_t>(begin) + blocks_per_row_),
                                    1));
  }
  return torch::cat(block_rows, 0);
}

void KroneckerFactors::append_state(OptimizerState& state, const std::string& prefix) const {
  for (size_t i = 0; i < blocks_.size(); ++i) {
    if (blocks_[i].left.defined()) state.push_back({fmt::format("{}block{}/left", prefix, i), blocks_[i].left});
    if (blocks_[i].right.defined()) state.push_back({fmt::format("{}block{}/right", prefix, i), blocks_[i].right});
  }
}

void KroneckerFactors::load_state(StateReader& reader, const std::string& prefix) {
  for (size_t i = 0; i < blocks_.size(); ++i) {
    auto& block = blocks_[i];
    if (block.left.defined()) block.left = reader.tensor_like(fmt::format("{}block{}/left", prefix, i), block.left);
    if (block.right.defined()) block.right = reader.tensor_like(fmt::format("{}block{}/right", prefix, i), block.right);
  }
}

void KroneckerFactors::accumulate(const torch::Tensor& gradient_matrix, double decay, double weight) {
  const auto pieces = split(gradient_matrix);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    auto& block = blocks_[i];
    if (block.left.defined()) block.left.mul_(decay).addmm_(pieces[i], pieces[i].t(), 1.0, weight);
    if (block.right.defined()) block.right.mul_(decay).addmm_(pieces[i].t(), pieces[i], 1.0, weight);
  }
}

}  // namespace ngd
