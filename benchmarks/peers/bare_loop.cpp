// The floor `make bench-peers` compares ngdbench's training step with: a plain LibTorch loop (the
// pytorch/examples cpp/mnist shape) over the same MLP, batch size and data, without the harness.
//
//   ngdbench_bare_loop --steps N --batch B --threads T [--hidden 256,128] [--data-root DIR]
//
// Loads Fashion-MNIST, normalises it once, times `steps` SGD steps (momentum 0.9) on batches in a fixed
// shuffled order, first step included as in ngdbench's epoch times, and prints one JSON line:
// {"steps", "seconds_per_step", "cpu_seconds_per_step", "final_loss"}.
#include <fmt/format.h>
#include <torch/torch.h>

#include <sstream>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "harness/run/machine.h"

namespace {

// SGD settings of the comparison (the same in scripts/bench-peers' PyTorch loop).
constexpr double kLearningRate = 0.01;
constexpr double kMomentum = 0.9;

struct Arguments {
  int64_t steps = 200;
  int64_t batch = 128;
  int threads = 1;
  std::vector<int64_t> hidden = {256, 128};
  std::string data_root = "/usr/share/datasets";
};

Arguments parse(int argc, char** argv) {
  Arguments arguments;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--steps") {
      arguments.steps = std::stoll(value);
    } else if (flag == "--batch") {
      arguments.batch = std::stoll(value);
    } else if (flag == "--threads") {
      arguments.threads = std::stoi(value);
    } else if (flag == "--data-root") {
      arguments.data_root = value;
    } else if (flag == "--hidden") {
      arguments.hidden.clear();
      std::stringstream widths(value);
      for (std::string width; std::getline(widths, width, ',');) arguments.hidden.push_back(std::stoll(width));
    } else {
      throw std::invalid_argument("ngdbench_bare_loop: unknown flag " + flag);
    }
  }
  return arguments;
}

}  // namespace

int main(int argc, char** argv) try {
  ngd::configure_process_for_timing(argv);  // as ngdbench runs
  const auto arguments = parse(argc, argv);
  ngd::configure_threads(arguments.threads);
  torch::manual_seed(0);
  const int64_t samples = arguments.steps * arguments.batch;
  const auto dataset = ngd::load_dataset({"fashion-mnist", samples, 1}, {arguments.data_root});
  const auto images = ngd::normalize_images(dataset.train.images, dataset).flatten(1);
  const auto labels = dataset.train.labels;

  torch::nn::Sequential model;
  int64_t width = images.size(1);
  for (const int64_t hidden : arguments.hidden) {
    model->push_back(torch::nn::Linear(width, hidden));
    model->push_back(torch::nn::ReLU());
    width = hidden;
  }
  model->push_back(torch::nn::Linear(width, dataset.num_classes));
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(kLearningRate).momentum(kMomentum));
  const auto order = torch::randperm(images.size(0));

  double loss_value = 0;
  const auto train_step = [&](int64_t step) {
    const auto batch = order.slice(0, step * arguments.batch, (step + 1) * arguments.batch);
    optimizer.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model->forward(images.index_select(0, batch)),
                                                     labels.index_select(0, batch));
    loss.backward();
    optimizer.step();
    loss_value = loss.item<double>();
  };
  const ngd::TimingProbe clock;
  for (int64_t step = 0; step < arguments.steps; ++step) train_step(step);
  const auto timing = clock.finish();
  const double steps = static_cast<double>(arguments.steps);
  fmt::print("{{\"steps\": {}, \"seconds_per_step\": {}, \"cpu_seconds_per_step\": {}, \"final_loss\": {}}}\n",
             arguments.steps, timing.wall_s / steps, timing.cpu_s / steps, loss_value);
  return 0;
} catch (const std::exception& error) {
  fmt::print(stderr, "ngdbench_bare_loop: {}\n", error.what());
  return 1;
}
