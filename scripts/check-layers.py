#!/usr/bin/env python3
"""Fails when a source file includes a header from a layer above its own (docs/harness.md#layers).

Usage: check-layers.py [ROOT]     checks the tree at ROOT (default: this checkout)
       check-layers.py --self-test  proves on a generated tree that an upward include is caught

Layers, bottom to top; a file may include its own layer and those below. Folders are matched by the
longest prefix, so harness/base/ and harness/models/ are layers of their own below the rest of harness/.
Tests, benchmarks and tools sit above every layer and are not checked.
"""
import pathlib
import re
import sys
import tempfile

# (layer, folders): the order is the layering.
LAYERS = [
    ("base", ["harness/base/"]),
    ("models", ["harness/models/"]),
    ("datasets", ["datasets/"]),
    ("optimizers", ["optimizers/"]),
    ("application", ["harness/"]),
]
# Layers on the same level may not include each other either: models and datasets are independent.
LEVEL = {"base": 0, "models": 1, "datasets": 1, "optimizers": 2, "application": 3}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def layer_of(path):
    """The layer of a repository-relative path, or None when it is in no layer."""
    best = None
    for layer, folders in LAYERS:
        for folder in folders:
            if path.startswith(folder) and (best is None or len(folder) > len(best[1])):
                best = (layer, folder)
    return best[0] if best else None


def violations(root):
    root = pathlib.Path(root)
    found = []
    sources = sorted(source for top in ("harness", "datasets", "optimizers") for source in (root / top).rglob("*"))
    for source in sources:
        if source.suffix not in (".h", ".cpp") or not source.is_file():
            continue
        path = source.relative_to(root).as_posix()
        own = layer_of(path)
        if own is None:
            continue
        for number, line in enumerate(source.read_text(errors="replace").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            target = layer_of(match.group(1))
            if target is None or target == own:
                continue
            if LEVEL[target] >= LEVEL[own]:
                found.append(f"{path}:{number}: {own} includes {match.group(1)} ({target}), "
                             f"which is {'above' if LEVEL[target] > LEVEL[own] else 'beside'} it")
    return found


def self_test():
    with tempfile.TemporaryDirectory() as folder:
        root = pathlib.Path(folder)
        files = {
            "harness/base/options.h": "",
            "harness/models/model.h": '#include "harness/base/options.h"\n',
            "optimizers/sgd.cpp": '#include "harness/models/model.h"\n#include "harness/runner.h"\n',
            "datasets/mnist.cpp": '#include "harness/models/model.h"\n',
            "harness/runner.h": '#include "optimizers/sgd.h"\n',
            "tests/any_test.cpp": '#include "harness/runner.h"\n',
        }
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        found = violations(root)
        expected = ["datasets/mnist.cpp:1", "optimizers/sgd.cpp:2"]
        if [v.split(": ")[0] for v in found] != expected:
            print("self-test failed: expected violations at", expected, "got", found)
            return 1
    print("self-test passed: an upward and a sideways include are caught, downward ones pass")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = argv[1] if len(argv) > 1 else pathlib.Path(__file__).resolve().parent.parent
    found = violations(root)
    for violation in found:
        print(violation)
    if found:
        print(f"{len(found)} include(s) point up or sideways; see docs/harness.md#layers")
        return 1
    print("every include points to its own layer or one below")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
