#pragma once

#include <torch/torch.h>

#include <vector>

#include "models/model.h"

namespace ngd {

// Encoder–decoder Transformer (Vaswani et al. 2017) in the pre-norm arrangement of the Annotated
// Transformer (x + Dropout(Sublayer(LayerNorm(x))), a final LayerNorm on each stack), with
// sinusoidal positions and embeddings scaled by √d_model. Every Linear of attention (Q, K, V,
// output) and of the feed-forward blocks is a compressible map (dense, or U·V at the model options'
// `rank` / `rank_ratio`) of capture layers that see sequence input with its token mask; embeddings and
// LayerNorms are plain parameters (stepped like the base optimizer). The vocabulary projection is
// captured only with `capture_embeddings_and_projection` (untied only) and is never factored.
struct TransformerSettings {
  int64_t d_model = 512;
  int64_t heads = 8;
  int64_t encoder_layers = 3;
  int64_t decoder_layers = 3;
  int64_t d_ff = 2048;
  double dropout = 0.1;
  bool tie_embeddings = true;                   // projection weight = target embedding
  bool share_source_target_embeddings = true;  // one embedding table (needs a joint vocabulary)
  bool capture_projection = false;
  LowRankSettings low_rank;  // a format that records a token mask (not tt); tucker2 is matrix on Linear maps
};

class TranslationModel : public CaptureModel {
 public:
  TranslationModel(const TransformerSettings& settings, int64_t source_vocab, int64_t target_vocab);

  // Encoder states (B, S, d) of source ids (B, S) padded with kPadId.
  torch::Tensor encode(const torch::Tensor& source);
  // Logits (B, T, target vocab) of the next token at each position of `target_input` (B, T), with
  // causal self-attention and cross-attention over the real source tokens.
  torch::Tensor decode(const torch::Tensor& memory, const torch::Tensor& source, const torch::Tensor& target_input);
  torch::Tensor forward(const torch::Tensor& source, const torch::Tensor& target_input) {
    return decode(encode(source), source, target_input);
  }

  const TransformerSettings& settings() const { return settings_; }
  int64_t target_vocab() const { return target_vocab_; }

 private:
  struct Attention {
    CompressibleLayer query{nullptr}, key{nullptr}, value{nullptr}, output{nullptr};
  };
  struct FeedForward {
    CompressibleLayer hidden{nullptr}, output{nullptr};
  };
  struct EncoderLayer {
    torch::nn::LayerNorm attention_norm{nullptr}, feed_forward_norm{nullptr};
    Attention attention;
    FeedForward feed_forward;
  };
  struct DecoderLayer {
    torch::nn::LayerNorm self_attention_norm{nullptr}, cross_attention_norm{nullptr}, feed_forward_norm{nullptr};
    Attention self_attention, cross_attention;
    FeedForward feed_forward;
  };

  // A sublayer's Linear map in the settings' low-rank format.
  CompressibleLayer make_linear(const std::string& name, int64_t in, int64_t out);
  // Xavier-uniform weights for every capture layer of `layers` (each factor of a factored map), after a
  // sublayer's maps are all built: the random draws of the dense Transformer before low-rank maps.
  static void xavier_initialise(const std::vector<CompressibleLayer*>& layers);
  Attention make_attention(const std::string& prefix);
  FeedForward make_feed_forward(const std::string& prefix);
  torch::nn::LayerNorm make_norm(const std::string& name);
  // Multi-head attention of `queries` (B, T, d) over `keys` (B, S, d); `blocked` (B or 1, 1, T or 1,
  // S) is true where a query may not look.
  torch::Tensor attend(Attention& attention, const torch::Tensor& queries, const torch::Tensor& query_mask,
                       const torch::Tensor& keys, const torch::Tensor& key_mask, const torch::Tensor& blocked);
  torch::Tensor feed_forward(FeedForward& block, const torch::Tensor& x, const torch::Tensor& mask);
  torch::Tensor embed(torch::nn::Embedding& table, const torch::Tensor& ids);

  TransformerSettings settings_;
  int64_t target_vocab_;
  torch::nn::Embedding source_embedding_{nullptr}, target_embedding_{nullptr};
  std::vector<EncoderLayer> encoder_;
  std::vector<DecoderLayer> decoder_;
  torch::nn::LayerNorm encoder_norm_{nullptr}, decoder_norm_{nullptr};
  CaptureLinear captured_projection_{nullptr};
  torch::nn::Linear projection_{nullptr};
  torch::Tensor projection_bias_;  // with tied embeddings
  torch::nn::Dropout dropout_{nullptr};
};

// The "transformer" model entry's options (defaults: the common Multi30K setting) and how they map
// to settings; "label_smoothing" is read by the translation workload's loss.
std::vector<OptionInfo> transformer_options();
TransformerSettings transformer_settings(const Options& options);

// The longest output decoding allows for each source: its real tokens + `offset`.
std::vector<int64_t> decoding_limits(const torch::Tensor& source, int64_t offset);

// Greedy decoding of a batch of sources (B, S): per sentence the argmax token at each step until
// eos or its limit; returns the ids without bos and eos.
std::vector<std::vector<int64_t>> greedy_decode(TranslationModel& model, const torch::Tensor& source,
                                                const std::vector<int64_t>& limits);

// Batched beam search: `beam` hypotheses per sentence, finished ones (eos) ranked by log-probability
// / lp(length), GNMT's lp(L) = ((5 + L)/6)^length_penalty with L counting eos; a sentence stops when
// it has `beam` finished hypotheses or reaches its limit (then its open ones count as finished).
// Beam 1 is greedy decoding.
std::vector<std::vector<int64_t>> beam_search(TranslationModel& model, const torch::Tensor& source, int64_t beam,
                                              double length_penalty, const std::vector<int64_t>& limits);

}  // namespace ngd
