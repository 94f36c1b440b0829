#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "optimizers/optimizer_state.h"

namespace ngd {

// Shampoo's Kronecker factors of one parameter, the piece `shampoo` and `soap` share.
//
// The parameter is seen as a matrix: rows = its first dimension, columns = the others flattened (a
// conv weight out × in·kh·kw), and a vector (bias, norm gain) as one column whose column side is
// never preconditioned (it has a single dimension). The matrix is cut into blocks; each block G_b
// keeps, from zero,
//   L_b ← β·L_b + w·G_b G_bᵀ   (row side)   and   R_b ← β·R_b + w·G_bᵀ G_b   (column side),
// and a side without a factor (undefined tensor) is left unpreconditioned.
class KroneckerFactors {
 public:
  // How sides longer than `max_dim` are handled.
  enum class Blocking {
    kSplit,           // cut the matrix into blocks of at most max_dim rows and columns (distributed_shampoo)
    kSkipLongSides,   // one block; a side longer than max_dim gets no factor (nikhilvyas/SOAP)
  };

  struct Block {
    int64_t row_begin = 0, rows = 0, column_begin = 0, columns = 0;
    torch::Tensor left;   // L_b, rows × rows; undefined: row side not preconditioned
    torch::Tensor right;  // R_b, columns × columns; undefined: column side not preconditioned
  };

  // Factors for `parameter` (shape, dtype and device), blocks in row-major order. `vectors`: whether a
  // vector's single side is preconditioned (Shampoo) or not (SOAP's default).
  KroneckerFactors(const torch::Tensor& parameter, int64_t max_dim, Blocking blocking, bool vectors);

  // A parameter-shaped tensor (the parameter, its gradient) as the matrix view, and back.
  torch::Tensor matrix(const torch::Tensor& tensor) const { return tensor.reshape({rows_, columns_}); }
  torch::Tensor unmatrix(const torch::Tensor& matrix) const { return matrix.reshape(shape_); }

  // The blocks of a matrix-view tensor (views, in blocks() order), and the matrix assembled from
  // tensors shaped like them.
  std::vector<torch::Tensor> split(const torch::Tensor& matrix) const;
  torch::Tensor merge(const std::vector<torch::Tensor>& pieces) const;

  // Adds one gradient (matrix view) to every factor: F ← decay·F + weight·(its Gram).
  void accumulate(const torch::Tensor& gradient_matrix, double decay, double weight);

  const std::vector<Block>& blocks() const { return blocks_; }

  // The factors as state entries "<prefix>block<b>/left" and ".../right" (sides with a factor), and back.
  void append_state(OptimizerState& state, const std::string& prefix) const;
  void load_state(StateReader& reader, const std::string& prefix);
  // Whether the column side counts as a dimension of the parameter (false for vectors).
  bool is_matrix() const { return is_matrix_; }

 private:
  std::vector<int64_t> shape_;
  int64_t rows_ = 0, columns_ = 0;
  bool is_matrix_ = true;
  int64_t blocks_per_row_ = 1;
  std::vector<Block> blocks_;
};

}  // namespace ngd
