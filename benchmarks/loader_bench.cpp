// Data-loading throughput: gather, augmentation (crop 32 pad 4 + flip) or none, normalisation of
// CIFAR-sized uint8 batches, with and without the prefetch thread. Reported as images/s (items_per_second).
#include <benchmark/benchmark.h>

#include "datasets/batch_loader.h"

namespace ngd {
namespace {

// Training images of the synthetic CIFAR-shaped set the loader draws from.
constexpr int64_t kImages = 10000;

ImageDataset cifar_shaped_dataset(bool augment) {
  ImageDataset dataset;
  dataset.name = "cifar-shaped";
  dataset.train = {torch::randint(0, 256, {kImages, 3, 32, 32}, torch::kInt64).to(torch::kUInt8),
                   torch::randint(0, 10, {kImages}, torch::kInt64)};
  dataset.num_classes = 10;
  dataset.channel_mean = {0.49, 0.48, 0.45};
  dataset.channel_std = {0.20, 0.20, 0.20};
  if (augment) dataset.augmentation = {4, true};
  return dataset;
}

void BM_BatchLoaderEpoch(benchmark::State& state) {
  const auto dataset = cifar_shaped_dataset(state.range(2) != 0);
  BatchLoader loader(dataset, state.range(0), 0, torch::kCPU, state.range(1) != 0);
  for (auto _ : state) {
    loader.start_epoch();
    for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) benchmark::DoNotOptimize(loader.next());
  }
  state.SetItemsProcessed(state.iterations() * kImages);
}
BENCHMARK(BM_BatchLoaderEpoch)
    ->ArgNames({"batch", "prefetch", "augment"})
    ->Args({128, 0, 0})
    ->Args({128, 0, 1})
    ->Args({128, 1, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ngd
