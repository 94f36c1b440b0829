#include "models/transformer.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "base/special_tokens.h"
#include "models/lowrank/tensorized_layers.h"

namespace ngd {
namespace {

constexpr double kNegativeInfinity = -std::numeric_limits<double>::infinity();

// Sinusoidal positions (Vaswani et al. §3.5), (length, d).
torch::Tensor positional_encoding(int64_t length, int64_t d_model) {
  const auto positions = torch::arange(length, torch::kFloat).unsqueeze(1);
  const auto frequencies = torch::exp(torch::arange(0, d_model, 2, torch::kFloat) * (-std::log(10000.0) / static_cast<double>(d_model)));
  auto encoding = torch::zeros({length, d_model});
  encoding.slice(1, 0, d_model, 2).copy_(torch::sin(positions * frequencies));
  encoding.slice(1, 1, d_model, 2).copy_(torch::cos(positions * frequencies).slice(1, 0, d_model / 2));
  return encoding;
}

// True above the diagonal: position t may not attend to positions > t.
torch::Tensor causal_block(int64_t length, const torch::Device& device) {
  return torch::ones({length, length}, torch::TensorOptions().dtype(torch::kBool).device(device)).triu(1);
}

}  // namespace

TranslationModel::TranslationModel(const TransformerSettings& settings, int64_t source_vocab, int64_t target_vocab)
    : settings_(settings), target_vocab_(target_vocab) {
  if (settings.d_model % settings.heads != 0 || settings.d_model % 2 != 0) {
    throw std::invalid_argument(fmt::format("transformer: d_model {} must be even and divisible by heads {}",
                                            settings.d_model, settings.heads));
  }
  if (settings.share_source_target_embeddings && source_vocab != target_vocab) {
    throw std::invalid_argument("transformer: share_source_target_embeddings needs a joint vocabulary");
  }
  if (!low_rank_format(settings.low_rank.format).records_token_mask) {
    throw std::invalid_argument(fmt::format(
        "transformer: low_rank_format '{}' cannot record the token mask its capture layers need; use matrix",
        settings.low_rank.format));
  }
  if (settings.tie_embeddings && settings.capture_projection) {
    throw std::invalid_argument("transformer: capture_embeddings_and_projection needs tie_embeddings false");
  }
  const auto embedding = [&](const std::string& name, int64_t vocab) {
    auto table = register_module(name, torch::nn::Embedding(torch::nn::EmbeddingOptions(vocab, settings.d_model)));
    torch::nn::init::normal_(table->weight, 0, std::pow(static_cast<double>(settings.d_model), -0.5));
    return table;
  };
  source_embedding_ = embedding("source_embedding", source_vocab);
  target_embedding_ = settings.share_source_target_embeddings ? source_embedding_ : embedding("target_embedding", target_vocab);
  for (int64_t l = 0; l < settings.encoder_layers; ++l) {
    const auto prefix = fmt::format("encoder{}_", l);
    EncoderLayer layer;
    layer.attention_norm = make_norm(prefix + "attention_norm");
    layer.attention = make_attention(prefix + "self_");
    layer.feed_forward_norm = make_norm(prefix + "feed_forward_norm");
    layer.feed_forward = make_feed_forward(prefix + "feed_forward_");
    encoder_.push_back(std::move(layer));
  }
  encoder_norm_ = make_norm("encoder_norm");
  for (int64_t l = 0; l < settings.decoder_layers; ++l) {
    const auto prefix = fmt::format("decoder{}_", l);
    DecoderLayer layer;
    layer.self_attention_norm = make_norm(prefix + "self_attention_norm");
    layer.self_attention = make_attention(prefix + "self_");
    layer.cross_attention_norm = make_norm(prefix + "cross_attention_norm");
    layer.cross_attention = make_attention(prefix + "cross_");
    layer.feed_forward_norm = make_norm(prefix + "feed_forward_norm");
    layer.feed_forward = make_feed_forward(prefix + "feed_forward_");
    decoder_.push_back(std::move(layer));
  }
  decoder_norm_ = make_norm("decoder_norm");
  if (settings.tie_embeddings) {
    projection_bias_ = register_parameter("projection_bias", torch::zeros({target_vocab}));
  } else if (settings.capture_projection) {
    captured_projection_ = add_capture_layer("projection", CaptureLinear(settings.d_model, target_vocab));
    torch::nn::init::xavier_uniform_(captured_projection_->weight());
  } else {
    projection_ = register_module("projection", torch::nn::Linear(settings.d_model, target_vocab));
    torch::nn::init::xavier_uniform_(projection_->weight);
  }
  dropout_ = register_module("dropout", torch::nn::Dropout(settings.dropout));
}

torch::nn::LayerNorm TranslationModel::make_norm(const std::string& name) {
  return register_module(name, torch::nn::LayerNorm(torch::nn::LayerNormOptions({settings_.d_model})));
}

CompressibleLayer TranslationModel::make_linear(const std::string& name, int64_t in, int64_t out) {
  return add_compressible_layer(name, LayerShape::linear(in, out, /*bias=*/true), settings_.low_rank);
}

void TranslationModel::xavier_initialise(const std::vector<CompressibleLayer*>& layers) {
  for (auto* layer : layers) {
    for (const auto& part : (*layer)->layer().capture_layers()) torch::nn::init::xavier_uniform_(part->weight());
  }
}

TranslationModel::Attention TranslationModel::make_attention(const std::string& prefix) {
  Attention attention;
  const int64_t d = settings_.d_model;
  attention.query = make_linear(prefix + "query", d, d);
  attention.key = make_linear(prefix + "key", d, d);
  attention.value = make_linear(prefix + "value", d, d);
  attention.output = make_linear(prefix + "output", d, d);
  xavier_initialise({&attention.query, &attention.key, &attention.value, &attention.output});
  return attention;
}

TranslationModel::FeedForward TranslationModel::make_feed_forward(const std::string& prefix) {
  FeedForward block;
  block.hidden = make_linear(prefix + "hidden", settings_.d_model, settings_.d_ff);
  block.output = make_linear(prefix + "output", settings_.d_ff, settings_.d_model);
  xavier_initialise({&block.hidden, &block.output});
  return block;
}

torch::Tensor TranslationModel::attend(Attention& attention, const torch::Tensor& queries, const torch::Tensor& query_mask,
                                       const torch::Tensor& keys, const torch::Tensor& key_mask,
                                       const torch::Tensor& blocked) {
  const int64_t batch = queries.size(0), heads = settings_.heads, head_size = settings_.d_model / heads;
  const auto split = [&](const torch::Tensor& x) { return x.view({batch, x.size(1), heads, head_size}).transpose(1, 2); };
  const auto q = split(attention.query->forward_tokens(queries, query_mask));
  const auto k = split(attention.key->forward_tokens(keys, key_mask));
  const auto v = split(attention.value->forward_tokens(keys, key_mask));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(head_size));
  scores = scores.masked_fill(blocked, kNegativeInfinity);
  const auto weights = dropout_(torch::softmax(scores, -1));
  const auto context = torch::matmul(weights, v).transpose(1, 2).reshape({batch, queries.size(1), settings_.d_model});
  return attention.output->forward_tokens(context, query_mask);
}

torch::Tensor TranslationModel::feed_forward(FeedForward& block, const torch::Tensor& x, const torch::Tensor& mask) {
  return block.output->forward_tokens(dropout_(torch::relu(block.hidden->forward_tokens(x, mask))), mask);
}

torch::Tensor TranslationModel::embed(torch::nn::Embedding& table, const torch::Tensor& ids) {
  const auto positions = positional_encoding(ids.size(1), settings_.d_model).to(ids.device());
  return dropout_(table(ids) * std::sqrt(static_cast<double>(settings_.d_model)) + positions);
}

torch::Tensor TranslationModel::encode(const torch::Tensor& source) {
  const auto mask = source.ne(kPadId);
  const auto blocked = source.eq(kPadId).view({source.size(0), 1, 1, source.size(1)});
  auto x = embed(source_embedding_, source);
  for (auto& layer : encoder_) {
    const auto normed = layer.attention_norm(x);
    x = x + dropout_(attend(layer.attention, normed, mask, normed, mask, blocked));
    x = x + dropout_(feed_forward(layer.feed_forward, layer.feed_forward_norm(x), mask));
  }
  return encoder_norm_(x);
}

torch::Tensor TranslationModel::decode(const torch::Tensor& memory, const torch::Tensor& source,
                                       const torch::Tensor& target_input) {
  const int64_t batch = target_input.size(0), length = target_input.size(1);
  const auto source_mask = source.ne(kPadId);
  const auto target_mask = target_input.ne(kPadId);
  const auto source_blocked = source.eq(kPadId).view({batch, 1, 1, source.size(1)});
  const auto self_blocked = causal_block(length, target_input.device()).view({1, 1, length, length}) |
                            target_input.eq(kPadId).view({batch, 1, 1, length});
  auto y = embed(target_embedding_, target_input);
  for (auto& layer : decoder_) {
    const auto normed = layer.self_attention_norm(y);
    y = y + dropout_(attend(layer.self_attention, normed, target_mask, normed, target_mask, self_blocked));
    y = y + dropout_(attend(layer.cross_attention, layer.cross_attention_norm(y), target_mask, memory, source_mask,
                            source_blocked));
    y = y + dropout_(feed_forward(layer.feed_forward, layer.feed_forward_norm(y), target_mask));
  }
  y = decoder_norm_(y);
  if (settings_.tie_embeddings) return torch::linear(y, target_embedding_->weight, projection_bias_);
  if (settings_.capture_projection) return captured_projection_->forward_tokens(y, target_mask);
  return projection_(y);
}

std::vector<OptionInfo> transformer_options() {
  std::vector<OptionInfo> options = {{"d_model", 512, "width of embeddings and attention", {}, at_least(1)},
          {"heads", 8, "attention heads (divide d_model)", {}, at_least(1)},
          {"encoder_layers", 3, "encoder layers", {}, at_least(1)},
          {"decoder_layers", 3, "decoder layers", {}, at_least(1)},
          {"d_ff", 2048, "feed-forward hidden width", {}, at_least(1)},
          {"dropout", 0.1, "dropout on embeddings, sublayer outputs, attention weights and FF hidden units", {},
           below_one()},
          {"label_smoothing", 0.1, "label smoothing of the training (and validation) cross-entropy", {}, below_one()},
          {"tie_embeddings", true, "the vocabulary projection reuses the target embedding"},
          {"share_source_target_embeddings", true, "one embedding table for both languages (needs joint_vocab)"},
          {"capture_embeddings_and_projection", false,
           "capture the vocabulary projection for the NGD optimizers (needs tie_embeddings false); embeddings are "
           "lookup tables and are never captured"}};
  for (auto& option : low_rank_options()) options.push_back(std::move(option));
  return options;
}

TransformerSettings transformer_settings(const Options& options) {
  TransformerSettings settings;
  settings.d_model = options.integer("d_model");
  settings.heads = options.integer("heads");
  settings.encoder_layers = options.integer("encoder_layers");
  settings.decoder_layers = options.integer("decoder_layers");
  settings.d_ff = options.integer("d_ff");
  settings.dropout = options.number("dropout");
  settings.tie_embeddings = options.flag("tie_embeddings");
  settings.share_source_target_embeddings = options.flag("share_source_target_embeddings");
  settings.capture_projection = options.flag("capture_embeddings_and_projection");
  settings.low_rank = low_rank_settings(options);
  return settings;
}

std::vector<int64_t> decoding_limits(const torch::Tensor& source, int64_t offset) {
  const auto lengths = source.ne(kPadId).sum(1).to(torch::kCPU);
  std::vector<int64_t> limits;
  for (int64_t b = 0; b < lengths.size(0); ++b) limits.push_back(lengths[b].item<int64_t>() + offset);
  return limits;
}

std::vector<std::vector<int64_t>> greedy_decode(TranslationModel& model, const torch::Tensor& source,
                                                const std::vector<int64_t>& limits) {
  torch::NoGradGuard no_grad;
  const int64_t batch = source.size(0);
  const auto memory = model.encode(source);
  auto tokens = torch::full({batch, 1}, kBosId, source.options());
  std::vector<std::vector<int64_t>> outputs(static_cast<size_t>(batch));
  std::vector<bool> finished(static_cast<size_t>(batch), false);
  const int64_t longest = *std::max_element(limits.begin(), limits.end());
  for (int64_t step = 0; step < longest; ++step) {
    const auto next = model.decode(memory, source, tokens).select(1, -1).argmax(-1);
    const auto chosen_tensor = next.to(torch::kCPU);
    const auto chosen = chosen_tensor.accessor<int64_t, 1>();
    bool all_finished = true;
    for (int64_t b = 0; b < batch; ++b) {
      if (finished[b]) continue;
      const auto token = chosen[b];
      if (token == kEosId) {
        finished[b] = true;
      } else {
        outputs[b].push_back(token);
        finished[b] = step + 1 >= limits[b];
      }
      all_finished = all_finished && finished[b];
    }
    if (all_finished) break;
    tokens = torch::cat({tokens, next.unsqueeze(1)}, 1);
  }
  return outputs;
}

namespace {

// The hypotheses of one beam_search batch: per sentence b, `beam` open ones in rows b·beam … b·beam +
// beam − 1 of tokens() (BOS first) with their summed log-probabilities, the finished ones with their
// length-normalised scores (Wu et al. 2016's penalty), and whether the sentence is done.
class BeamHypotheses {
 public:
  BeamHypotheses(const torch::Tensor& source, int64_t beam, int64_t vocab, double length_penalty,
                 const std::vector<int64_t>& limits)
      : batch_(source.size(0)),
        beam_(beam),
        vocab_(vocab),
        length_penalty_(length_penalty),
        limits_(limits),
        tokens_(torch::full({batch_ * beam, 1}, kBosId, source.options())),
        scores_(static_cast<size_t>(batch_ * beam), kNegativeInfinity),
        finished_(static_cast<size_t>(batch_)),
        done_(static_cast<size_t>(batch_), false) {
    // Only the first beam of each sentence is open at the start (the others would duplicate it).
    for (int64_t b = 0; b < batch_; ++b) scores_[b * beam_] = 0;
  }

  const torch::Tensor& tokens() const { return tokens_; }

  // Extends the open hypotheses by the best of their continuations, given the last position's
  // log-probabilities (batch·beam, vocab) at `step`: per sentence, of the 2·beam best totals, EOS
  // ones finish and the first `beam` others stay open.
  void extend(const torch::Tensor& log_probs, int64_t step) {
    const auto totals = (torch::tensor(scores_, torch::kDouble).to(log_probs.device()).unsqueeze(1) + log_probs)
                            .view({batch_, beam_ * vocab_});
    const auto [top_scores, top_indices] = totals.topk(std::min(2 * beam_, beam_ * vocab_), 1);
    const auto top_scores_cpu = top_scores.to(torch::kCPU), top_indices_cpu = top_indices.to(torch::kCPU);
    const auto values = top_scores_cpu.accessor<double, 2>();
    const auto indices = top_indices_cpu.accessor<int64_t, 2>();
    const auto rows = static_cast<size_t>(batch_ * beam_);
    std::vector<int64_t> parents(rows), next(rows, kPadId);
    std::vector<double> next_scores(rows, kNegativeInfinity);
    for (int64_t b = 0; b < batch_; ++b) {
      int64_t open = 0;
      for (int64_t j = 0; j < values.size(1) && !done_[b] && open < beam_; ++j) {
        const double score = values[b][j];
        if (score == kNegativeInfinity) break;
        const int64_t index = indices[b][j];
        const int64_t row = b * beam_ + index / vocab_, token = index % vocab_;
        if (token == kEosId) {
          finished_[b].push_back({score / penalty(step + 1), ids_of(row)});
        } else {
          parents[b * beam_ + open] = row;
          next[b * beam_ + open] = token;
          next_scores[b * beam_ + open] = score;
          ++open;
        }
      }
      for (int64_t k = open; k < beam_; ++k) parents[b * beam_ + k] = b * beam_;  // closed slots
    }
    tokens_ = torch::cat({tokens_.index_select(0, torch::tensor(parents, torch::kInt64).to(tokens_.device())),
                          torch::tensor(next, torch::kInt64).to(tokens_.device()).unsqueeze(1)},
                         1);
    scores_ = next_scores;
  }

  // Closes the sentences that reached their length limit after `step` (their open hypotheses finish
  // as they are) or hold `beam` finished ones. True when every sentence is done.
  bool close_done(int64_t step) {
    bool all_done = true;
    for (int64_t b = 0; b < batch_; ++b) {
      if (!done_[b] && static_cast<int64_t>(finished_[b].size()) < beam_ && step + 1 >= limits_[b]) {
        for (int64_t k = 0; k < beam_; ++k) {
          if (scores_[b * beam_ + k] != kNegativeInfinity) {
            finished_[b].push_back({scores_[b * beam_ + k] / penalty(step + 1), ids_of(b * beam_ + k)});
          }
        }
        done_[b] = true;
      }
      if (static_cast<int64_t>(finished_[b].size()) >= beam_) done_[b] = true;
      if (done_[b]) {
        for (int64_t k = 0; k < beam_; ++k) scores_[b * beam_ + k] = kNegativeInfinity;
      }
      all_done = all_done && done_[b];
    }
    return all_done;
  }

  // Each sentence's finished hypothesis with the best normalised score (empty if none finished).
  std::vector<std::vector<int64_t>> best() const {
    std::vector<std::vector<int64_t>> outputs;
    for (const auto& hypotheses : finished_) {
      const auto best = std::max_element(hypotheses.begin(), hypotheses.end(), [](const Hypothesis& x, const Hypothesis& y) {
        return x.normalized_score < y.normalized_score;
      });
      outputs.push_back(best == hypotheses.end() ? std::vector<int64_t>{} : best->ids);
    }
    return outputs;
  }

 private:
  struct Hypothesis {
    double normalized_score;
    std::vector<int64_t> ids;
  };

  double penalty(int64_t length) const { return std::pow((5.0 + static_cast<double>(length)) / 6.0, length_penalty_); }

  // The ids of row `row` without its BOS.
  std::vector<int64_t> ids_of(int64_t row) const {
    const auto sequence = tokens_[row].to(torch::kCPU);
    return std::vector<int64_t>(sequence.data_ptr<int64_t>() + 1, sequence.data_ptr<int64_t>() + sequence.size(0));
  }

  int64_t batch_, beam_, vocab_;
  double length_penalty_;
  const std::vector<int64_t>& limits_;
  torch::Tensor tokens_;
  std::vector<double> scores_;
  std::vector<std::vector<Hypothesis>> finished_;
  std::vector<bool> done_;
};

}  // namespace

std::vector<std::vector<int64_t>> beam_search(TranslationModel& model, const torch::Tensor& source, int64_t beam,
                                              double length_penalty, const std::vector<int64_t>& limits) {
  TORCH_CHECK(beam >= 1, "beam_search: beam must be ≥ 1");
  torch::NoGradGuard no_grad;
  const auto sources = source.repeat_interleave(beam, 0);
  const auto memory = model.encode(sources);
  BeamHypotheses hypotheses(source, beam, model.target_vocab(), length_penalty, limits);
  const int64_t longest = *std::max_element(limits.begin(), limits.end());
  for (int64_t step = 0; step < longest; ++step) {
    const auto log_probs =
        torch::log_softmax(model.decode(memory, sources, hypotheses.tokens()).select(1, -1).to(torch::kDouble), -1);
    hypotheses.extend(log_probs, step);
    if (hypotheses.close_done(step)) break;
  }
  return hypotheses.best();
}

}  // namespace ngd
