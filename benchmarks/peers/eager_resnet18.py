#!/usr/bin/env python3
"""The training step of experiments/gpu/resnet18-cifar10-sgd-anchor.json in plain PyTorch eager.

    benchmarks/peers/eager_resnet18.py --data-root DIR [--spec SPEC] [--scale paper|cpu] [--device cuda]
                                       [--steps N] [--out FILE]

The anchor of scripts/gpu-check.sh (docs/gpu.md): ngdbench's SGD step should take at most 1.1x this
loop's on the same GPU. It reads its settings from the spec (model width, batch size, epochs, SGD's lr,
momentum and weight decay, the training-split size) and does what ngdbench's runner does per step: a
batch of CIFAR-10 images in a fresh shuffle, random 4-pixel crop and horizontal flip on the CPU,
normalised, copied from pinned memory without blocking; forward, cross-entropy, backward, SGD step;
running loss and accuracy summed on the device and read once an epoch. ResNet-18 is the kuangliu CIFAR
variant ngdbench builds (models/resnet.cpp). Every epoch is timed between device
synchronisations; the epochs after the first are the steady state.

Runs torch.optim.SGD twice in one process, as PyTorch sets it up (foreach, one multi-tensor kernel per
update) and with foreach=False (a loop over the parameters, as LibTorch's torch::optim::SGD does), and
prints one JSON document (also written to --out). Without an importable torch it prints
{"skipped": reason} and exits 0, so a machine without PyTorch only loses this comparison.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_SPEC = os.path.join(ROOT, "experiments", "gpu", "resnet18-cifar10-sgd-anchor.json")
# datasets/cifar.cpp's normalisation.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
RECORD = 1 + 3 * 32 * 32


def spec_at_scale(path, scale):
    with open(path) as file:
        spec = json.load(file)
    overlay = spec.get("scales", {}).get(scale, {}) if scale else {}
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def read_cifar(folder, files):
    labels, images = [], []
    for name in files:
        with open(os.path.join(folder, name), "rb") as file:
            data = file.read()
        if len(data) % RECORD:
            raise ValueError(f"{name}: {len(data)} bytes is not a whole number of {RECORD}-byte records")
        for offset in range(0, len(data), RECORD):
            labels.append(data[offset])
            images.append(data[offset + 1:offset + RECORD])
    return labels, b"".join(images)


def build_model(torch, width, classes=10):
    nn = torch.nn
    functional = torch.nn.functional

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = functional.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return functional.relu(out + self.shortcut(x))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.stem_bn = nn.BatchNorm2d(width)
            blocks, channels = [], width
            for stage in range(4):
                stage_width = width << stage
                for b in range(2):
                    blocks.append(Block(channels, stage_width, 2 if stage > 0 and b == 0 else 1))
                    channels = stage_width
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(channels, classes)

        def forward(self, x):
            x = self.blocks(functional.relu(self.stem_bn(self.stem(x))))
            return self.fc(functional.adaptive_avg_pool2d(x, 1).flatten(1))

    return ResNet18()


def augment(torch, images, generator):
    """Random 4-pixel crop (zero padding) and horizontal flip of a uint8 batch, on the CPU."""
    count = images.shape[0]
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    rows = torch.randint(0, 9, (count, 1), generator=generator) + torch.arange(32)
    cols = torch.randint(0, 9, (count, 1), generator=generator) + torch.arange(32)
    batch = torch.arange(count)[:, None, None, None]
    channel = torch.arange(3)[None, :, None, None]
    cropped = padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    flip = (torch.rand(count, generator=generator) < 0.5)[:, None, None, None]
    return torch.where(flip, cropped.flip(3), cropped)


def train(torch, args, spec, images, labels, foreach):
    device = torch.device(args.device)
    hparams = spec["optimizers"][0]["hparams"]
    torch.manual_seed(0)
    model = build_model(torch, spec["model"].get("width", 64)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=hparams["lr"], momentum=hparams.get("momentum", 0),
                                weight_decay=hparams.get("weight_decay", 0), foreach=foreach)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD).view(1, 3, 1, 1) * 255
    batch_size = spec["batch_size"]
    count = images.shape[0]
    steps = (count + batch_size - 1) // batch_size
    if args.steps:
        steps = min(steps, args.steps)
    generator = torch.Generator().manual_seed(0)
    cuda = device.type == "cuda"
    epochs = []
    model.train()
    for epoch in range(args.epochs or spec["epochs"]):
        order = torch.randperm(count, generator=generator)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        if cuda:
            torch.cuda.synchronize(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        for step in range(steps):
            index = order[step * batch_size:(step + 1) * batch_size]
            batch = ((augment(torch, images[index], generator).float() - mean) / std)
            target = labels[index]
            if cuda:
                batch, target = batch.pin_memory().to(device, non_blocking=True), target.pin_memory().to(device, non_blocking=True)
            else:
                batch, target = batch.to(device), target.to(device)
            output = model(batch)
            loss = torch.nn.functional.cross_entropy(output, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * target.shape[0]
            correct += (output.detach().argmax(1) == target).sum()
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        epochs.append({"epoch": epoch + 1, "steps": steps, "train_time_s": seconds,
                       "cpu_time_s": time.process_time() - cpu_start, "ms_per_step": 1e3 * seconds / steps,
                       "train_loss": loss_sum.item() / min(count, steps * batch_size),
                       "train_acc": correct.item() / min(count, steps * batch_size)})
        print(f"eager: foreach={foreach}: epoch {epoch + 1}: {steps} steps in {seconds:.3f} s "
              f"({1e3 * seconds / steps:.2f} ms/step), loss {epochs[-1]['train_loss']:.4f}", file=sys.stderr)
    return {"foreach": foreach, "parameters": sum(p.numel() for p in model.parameters()), "epochs": epochs}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=DEFAULT_SPEC)
    parser.add_argument("--scale", default="paper")
    parser.add_argument("--data-root", required=True, help="a data root holding cifar-10-batches-bin/")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=0, help="epochs (default: the spec's)")
    parser.add_argument("--steps", type=int, default=0, help="at most this many steps an epoch (default: all)")
    parser.add_argument("--variants", default="default,off", help="foreach settings to run: default, off")
    parser.add_argument("--out", help="also write the JSON document here")
    args = parser.parse_args()

    def finish(document):
        text = json.dumps(document, indent=2)
        print(text)
        if args.out:
            with open(args.out, "w") as file:
                file.write(text + "\n")
        return 0

    try:
        import torch
    except ImportError as error:
        return finish({"skipped": f"no PyTorch for {sys.executable} ({error})"})
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        return finish({"skipped": f"torch {torch.__version__} sees no CUDA device"})
    spec = spec_at_scale(args.spec, args.scale)
    folder = os.path.join(args.data_root, "cifar-10-batches-bin")
    labels, pixels = read_cifar(folder, [f"data_batch_{i}.bin" for i in range(1, 6)])
    dataset = spec["dataset"]
    # The training split's size as ngdbench carves it: train_subset, else all but the validation images.
    count = dataset.get("train_subset") or len(labels) - (dataset.get("validation_subset") or 0)
    images = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).view(-1, 3, 32, 32)[:count].clone()
    targets = torch.tensor(labels[:count], dtype=torch.int64)
    matmul = getattr(torch.backends.cuda, "matmul", None)
    document = {
        "spec": os.path.relpath(args.spec, ROOT), "scale": args.scale, "device": args.device,
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
        "threads": torch.get_num_threads(), "train_images": count, "batch_size": spec["batch_size"],
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32": {"cudnn": getattr(torch.backends.cudnn, "allow_tf32", None),
                 "matmul": getattr(matmul, "allow_tf32", None) if matmul is not None else None},
        "runs": []}
    for variant in args.variants.split(","):
        document["runs"].append(train(torch, args, spec, images, targets, None if variant == "default" else False))
        document["runs"][-1]["variant"] = variant
    return finish(document)


if __name__ == "__main__":
    sys.exit(main())
