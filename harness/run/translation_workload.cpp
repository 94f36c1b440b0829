#include "harness/run/translation_workload.h"

#include <fmt/format.h>

#include <cmath>

#include "base/device.h"
#include "datasets/dataset.h"
#include "harness/run/bleu.h"
#include "harness/run/runner.h"
#include "harness/run/workload.h"
#include "harness/spec/spec.h"
#include "models/transformer.h"

namespace ngd {
namespace {

namespace F = torch::nn::functional;

// Label-smoothed cross-entropy of every target token (B, T), zero where `mask` is false (padding).
torch::Tensor token_losses(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& mask,
                           double smoothing) {
  const auto losses = F::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
                                       F::CrossEntropyFuncOptions().reduction(torch::kNone).label_smoothing(smoothing));
  return losses.view_as(targets) * mask;
}

struct TokenEvaluation {
  double loss = 0;      // mean per token, as optimised
  double accuracy = 0;  // argmax = target, per token
};

TokenEvaluation evaluate_tokens(TranslationModel& model, const TokenizedSplit& split, double smoothing,
                                int64_t batch_size, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  model.eval();
  double loss = 0;
  int64_t correct = 0, tokens = 0;
  for (const auto& indices : evaluation_batches(split, batch_size)) {
    const auto batch = make_translation_batch(split, indices);
    const auto targets = batch.target_output.to(device);
    const auto logits = model.forward(batch.source.to(device), batch.target_input.to(device));
    const auto mask = targets.ne(kPadId);
    loss += token_losses(logits, targets, mask, smoothing).sum().item<double>();
    correct += (logits.argmax(-1).eq(targets) & mask).sum().item<int64_t>();
    tokens += mask.sum().item<int64_t>();
  }
  return {loss / static_cast<double>(tokens), static_cast<double>(correct) / static_cast<double>(tokens)};
}

class TranslationWorkload : public Workload {
 public:
  TranslationWorkload(const RunConfig& config, const TranslationDataset& dataset, const std::string& device,
                      nlohmann::json& meta)
      : config_(config), dataset_(dataset), device_(device),
        generator_(at::detail::createCPUGenerator(static_cast<uint64_t>(config.seed))) {
    const auto* entry = find_entry(model_registry(), config.model);
    const Options options(config.model_options);
    model_ = entry->make_translation(options, dataset.source_tokenizer->vocab_size(), dataset.target_tokenizer->vocab_size());
    label_smoothing_ = options.number("label_smoothing");
    meta["model_parameters"] = trainable_parameter_count(*model_);
    meta["source_vocab"] = dataset.source_tokenizer->vocab_size();
    meta["target_vocab"] = dataset.target_tokenizer->vocab_size();
    meta["train_sentences"] = dataset.train.size();
    // Real tokens per epoch, for throughput: sources with eos, targets + eos (the predicted tokens).
    int64_t source_tokens = 0, target_tokens = 0;
    for (int64_t i = 0; i < dataset.train.size(); ++i) {
      source_tokens += static_cast<int64_t>(dataset.train.source[i].size());
      target_tokens += static_cast<int64_t>(dataset.train.target[i].size()) + 1;
    }
    meta["train_source_tokens"] = source_tokens;
    meta["train_target_tokens"] = target_tokens;
    meta["tokenizer_cache"] = dataset.tokenizer_cache;
    model_->to(device_);
    first_epoch_batches_ = length_batches(dataset.train, dataset.batching, generator_, config.data_order != DataOrder::kNone);
  }

  CaptureModel& model() override { return *model_; }
  int64_t nominal_batches_per_epoch() const override { return static_cast<int64_t>(first_epoch_batches_.size()); }

  int64_t start_epoch(int64_t epoch) override {
    // Only a reshuffle draws new batches; fixed and unshuffled orders repeat the first epoch's.
    batches_ = epoch == 0 || config_.data_order != DataOrder::kReshuffle
                   ? first_epoch_batches_
                   : length_batches(dataset_.train, dataset_.batching, generator_);
    next_ = 0;
    loss_sum_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
    correct_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device_));
    tokens_ = 0;
    return static_cast<int64_t>(batches_.size());
  }

  torch::Tensor next_batch() override {
    auto batch = make_translation_batch(dataset_.train, batches_[next_++]);
    source_ = batch.source.to(device_);
    target_input_ = batch.target_input.to(device_);
    target_output_ = batch.target_output.to(device_);
    mask_ = target_output_.ne(kPadId);
    batch_tokens_ = host_value<int64_t>(mask_.sum());
    return batch.sample_ids.to(device_);
  }

  std::pair<torch::Tensor, torch::Tensor> forward() override {
    auto logits = model_->forward(source_, target_input_);
    // Σ_t ℓ_it / T̄ with T̄ = tokens / sentences: the mean over sentences is the per-token mean.
    const double mean_tokens = static_cast<double>(batch_tokens_) / static_cast<double>(source_.size(0));
    auto per_sample_loss = token_losses(logits, target_output_, mask_, label_smoothing_).sum(1) / mean_tokens;
    return {std::move(logits), std::move(per_sample_loss)};
  }

  double batch_loss() override {
    torch::NoGradGuard no_grad;
    const auto logits = model_->forward(source_, target_input_);
    return host_value<double>(token_losses(logits, target_output_, mask_, label_smoothing_).sum()) /
           static_cast<double>(batch_tokens_);
  }

  torch::Tensor sampled_target_loss(const torch::Tensor& logits) override {
    const auto flat = logits.reshape({-1, logits.size(-1)});
    // Tokens drawn at every position; the mask keeps padding without gradient.
    const auto sampled = torch::multinomial(torch::softmax(flat.detach(), 1), 1).view_as(target_output_);
    return token_losses(logits, sampled, mask_, 0.0).sum() / static_cast<double>(batch_tokens_);
  }

  void accumulate(const torch::Tensor& logits, const torch::Tensor& per_sample_loss) override {
    const double mean_tokens = static_cast<double>(batch_tokens_) / static_cast<double>(source_.size(0));
    loss_sum_ += per_sample_loss.detach().sum().to(torch::kDouble) * mean_tokens;
    correct_ += (logits.detach().argmax(-1).eq(target_output_) & mask_).sum();
    tokens_ += batch_tokens_;
  }

  torch::Tensor training_loss_sum() const override { return loss_sum_; }

  void finish_epoch(EpochRecord& record) override {
    record.train_loss = loss_sum_.item<double>() / static_cast<double>(tokens_);
    record.train_acc = static_cast<double>(correct_.item<int64_t>()) / static_cast<double>(tokens_);
    const auto val = evaluate_tokens(*model_, dataset_.val, label_smoothing_, config_.eval_batch_size, device_);
    record.validation = {{"val_loss", val.loss}, {"val_acc", val.accuracy}, {"val_bleu", nullptr}};
    record.per_epoch_test = false;
    const bool last = record.epoch == config_.epochs;
    if (std::isfinite(val.loss) && (last || record.epoch % config_.decoding["bleu_every"].get<int64_t>() == 0)) {
      const auto hypotheses = translate(*model_, dataset_.val, *dataset_.target_tokenizer, config_.decoding,
                                        config_.eval_batch_size, device_);
      const double bleu = sacrebleu_score(hypotheses, dataset_.val.references).score;
      record.validation["val_bleu"] = bleu;
      if (best_epoch_ == 0 || bleu > best_bleu_) {
        best_bleu_ = bleu;
        best_epoch_ = record.epoch;
        keep_checkpoint();
      }
    }
  }

  std::pair<double, std::string> held_out_loss(const EpochRecord& record) const override {
    return {record.validation["val_loss"].get<double>(), "validation loss"};
  }

  std::string describe(const EpochRecord& record) const override {
    const auto& bleu = record.validation["val_bleu"];
    return fmt::format("train loss {:.4f} acc {:.4f} | val loss {:.4f} acc {:.4f} BLEU {}", record.train_loss,
                       record.train_acc, record.validation["val_loss"].get<double>(),
                       record.validation["val_acc"].get<double>(),
                       bleu.is_null() ? std::string("—") : fmt::format("{:.2f}", bleu.get<double>()));
  }

  nlohmann::json final_evaluation() override {
    if (best_epoch_ == 0) return nullptr;
    restore_checkpoint();
    const auto hypotheses = translate(*model_, dataset_.test, *dataset_.target_tokenizer, config_.decoding,
                                      config_.eval_batch_size, device_);
    return {{"test_bleu", sacrebleu_score(hypotheses, dataset_.test.references).score},
            {"test_bleu_tokenized", tokenized_bleu_score(hypotheses, dataset_.test.references).score},
            {"best_epoch", best_epoch_},
            {"checkpoint_metric", "val_bleu"}};
  }

  NamedTensors state() override {
    std::vector<int64_t> sentences, sizes;
    for (const auto& batch : batches_) {
      sentences.insert(sentences.end(), batch.begin(), batch.end());
      sizes.push_back(static_cast<int64_t>(batch.size()));
    }
    NamedTensors state{{"generator", generator_.get_state()},
                       {"batch_sentences", torch::tensor(sentences, torch::kInt64)},
                       {"batch_sizes", torch::tensor(sizes, torch::kInt64)},
                       {"next_batch", torch::tensor(static_cast<int64_t>(next_))},
                       {"loss_sum", loss_sum_},
                       {"correct", correct_},
                       {"tokens", torch::tensor(tokens_)},
                       {"best_bleu", torch::tensor(best_bleu_, torch::kDouble)},
                       {"best_epoch", torch::tensor(best_epoch_)}};
    for (size_t i = 0; i < checkpoint_.size(); ++i) state["best_weights." + std::to_string(i)] = checkpoint_[i];
    return state;
  }

  void load_state(const NamedTensors& state) override {
    generator_.set_state(named_tensor(state, "generator"));
    const auto sentences = named_tensor(state, "batch_sentences").contiguous();
    const auto sizes = named_tensor(state, "batch_sizes").contiguous();
    batches_.clear();
    int64_t start = 0;
    for (int64_t b = 0; b < sizes.numel(); ++b) {
      const int64_t size = sizes[b].item<int64_t>();
      const auto* first = sentences.data_ptr<int64_t>() + start;
      batches_.emplace_back(first, first + size);
      start += size;
    }
    next_ = static_cast<size_t>(named_tensor(state, "next_batch").item<int64_t>());
    loss_sum_ = named_tensor(state, "loss_sum").to(device_);
    correct_ = named_tensor(state, "correct").to(device_);
    tokens_ = named_tensor(state, "tokens").item<int64_t>();
    best_bleu_ = named_tensor(state, "best_bleu").item<double>();
    best_epoch_ = named_tensor(state, "best_epoch").item<int64_t>();
    checkpoint_.clear();
    for (size_t i = 0; state.count("best_weights." + std::to_string(i)); ++i) {
      checkpoint_.push_back(state.at("best_weights." + std::to_string(i)).to(device_));
    }
  }

 private:
  void keep_checkpoint() {
    torch::NoGradGuard no_grad;
    checkpoint_.clear();
    for (const auto& tensor : model_->parameters()) checkpoint_.push_back(tensor.detach().clone());
    for (const auto& tensor : model_->buffers()) checkpoint_.push_back(tensor.detach().clone());
  }

  void restore_checkpoint() {
    torch::NoGradGuard no_grad;
    size_t i = 0;
    for (auto& tensor : model_->parameters()) tensor.copy_(checkpoint_[i++]);
    for (auto& tensor : model_->buffers()) tensor.copy_(checkpoint_[i++]);
  }

  const RunConfig& config_;
  const TranslationDataset& dataset_;
  torch::Device device_;
  at::Generator generator_;
  std::shared_ptr<TranslationModel> model_;
  double label_smoothing_ = 0;
  std::vector<std::vector<int64_t>> first_epoch_batches_, batches_;
  size_t next_ = 0;
  torch::Tensor source_, target_input_, target_output_, mask_;
  int64_t batch_tokens_ = 0;
  torch::Tensor loss_sum_, correct_;
  int64_t tokens_ = 0;
  double best_bleu_ = 0;
  int64_t best_epoch_ = 0;  // 0: no BLEU yet
  std::vector<torch::Tensor> checkpoint_;
};

}  // namespace

WorkloadEntry translation_workload_entry() {
  WorkloadEntry entry;
  entry.name = "translation";
  entry.summary = "machine translation: label-smoothed cross-entropy, token accuracy, BLEU of the best checkpoint";
  entry.target_metrics = {"train_loss", "train_acc", "val_loss", "val_acc", "val_bleu"};
  entry.own_validation_split = "their official validation split (size it with dataset.val_subset)";
  entry.spec_keys = {"decoding"};  // batches by dataset.batch_tokens / dataset.batch_sentences
  entry.parse_settings = [](const nlohmann::json& spec, RunConfig& run) {
    run.decoding = resolve_options(spec.value("decoding", nlohmann::json::object()), decoding_options(), "decoding",
                                   "decoding");
  };
  // Sentences per evaluation and decoding batch: beam search holds beam × this many decoder states.
  entry.default_eval_batch_size = 100;
  entry.compression_refusal =
      "translation runs take no compression block (compression runs are image runs; the Transformer's low rank is "
      "pre-set: model options)";
  entry.final_numbers = {"test_bleu"};
  entry.load = [](const DatasetRequest& dataset, const std::vector<std::string>& data_roots) {
    return std::make_shared<const TranslationDataset>(load_translation_dataset(dataset, data_roots));
  };
  entry.make = [](const RunConfig& run, const WorkloadData& data, const RunnerOptions& options,
                  nlohmann::json& meta) -> std::unique_ptr<Workload> {
    return std::make_unique<TranslationWorkload>(run, loaded_as<TranslationDataset>(data, "translation"),
                                                 options.device, meta);
  };
  return entry;
}

std::vector<std::string> translate(TranslationModel& model, const TokenizedSplit& split,
                                   const SubwordTokenizer& target_tokenizer, const nlohmann::json& decoding,
                                   int64_t batch_size, const torch::Device& device) {
  model.eval();
  const Options options(decoding);
  const bool beam = options.text("method") == "beam";
  std::vector<std::string> translations(static_cast<size_t>(split.size()));
  for (const auto& indices : evaluation_batches(split, batch_size)) {
    const auto source = make_translation_batch(split, indices).source.to(device);
    const auto limits = decoding_limits(source, options.integer("max_length_offset"));
    const auto outputs = beam ? beam_search(model, source, options.integer("beam_size"), options.number("length_penalty"), limits)
                              : greedy_decode(model, source, limits);
    for (size_t b = 0; b < indices.size(); ++b) translations[indices[b]] = target_tokenizer.decode(outputs[b]);
  }
  return translations;
}

}  // namespace ngd
