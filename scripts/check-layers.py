#!/usr/bin/env python3
"""Fails when a source file includes a header from a folder above its own (docs/harness.md#layers).

Usage: check-layers.py [ROOT]     checks the tree at ROOT (default: this checkout)
       check-layers.py --self-test  proves on a generated tree that upward and sideways includes are caught

One folder per layer, bottom to top; a file may include its own folder and the folders below it:

    base/ < models/, datasets/ < optimizers/ < harness/spec/ < harness/results/ < harness/run/ < harness/cli/

models/ and datasets/ are on one level and may not include each other. optimizers/curvature/ (the
shared curvature kernels) is part of optimizers/ but includes no plugin: of optimizers/ outside it only
the contract, optimizers/optimizer.h, and its state helpers, optimizers/optimizer_state.h. A source file directly in harness/ belongs to no layer and is
reported: every harness file lives in one of its four folders. Tests, benchmarks and tools sit above
every layer and are not checked.
"""
import pathlib
import re
import sys
import tempfile

# (folder, layer, level): the levels are the floors; folders on one level may not include each other.
LAYERS = [
    ("base/", "base", 0),
    ("models/", "models", 1),
    ("datasets/", "datasets", 1),
    ("optimizers/", "optimizers", 2),
    ("harness/spec/", "spec", 3),
    ("harness/results/", "results", 4),
    ("harness/run/", "run", 5),
    ("harness/cli/", "cli", 6),
]
LEVEL = {layer: level for _, layer, level in LAYERS}
CHECKED = ("base", "models", "datasets", "optimizers", "harness")
CURVATURE = "optimizers/curvature/"
CONTRACT = ("optimizers/optimizer.h", "optimizers/optimizer_state.h")
# Includes that break a floor until the untangling that removes them lands: (file, include). Empty when
# the tree is clean; each entry is a debt, listed in docs/harness.md#layers.
TEMPORARY = set()
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    """The layer of a repository-relative path; None outside the layers; "" for harness/ outside its folders."""
    for folder, layer, _ in LAYERS:
        if path.startswith(folder):
            return layer
    return "" if path.startswith("harness/") else None


def violations(root):
    root = pathlib.Path(root)
    found = []
    sources = sorted(source for top in CHECKED for source in (root / top).rglob("*"))
    for source in sources:
        if source.suffix not in (".h", ".cpp") or not source.is_file():
            continue
        path = source.relative_to(root).as_posix()
        own = layer_of(path)
        if own is None:
            continue
        if own == "":
            found.append(f"{path}: in harness/ but in none of its layer folders (spec/, results/, run/, cli/)")
            continue
        for number, line in enumerate(source.read_text(errors="replace").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            header = match.group(1)
            target = layer_of(header)
            if target is None or (path, header) in TEMPORARY:
                continue
            if target == "":
                found.append(f"{path}:{number}: includes {header}, in none of harness/'s layer folders")
            elif target == own:
                if path.startswith(CURVATURE) and not header.startswith(CURVATURE) and header not in CONTRACT:
                    found.append(f"{path}:{number}: curvature kernel includes {header}, a plugin's header")
            elif LEVEL[target] >= LEVEL[own]:
                found.append(f"{path}:{number}: {own} includes {header} ({target}), "
                             f"which is {'above' if LEVEL[target] > LEVEL[own] else 'beside'} it")
    return found


def self_test():
    with tempfile.TemporaryDirectory() as folder:
        root = pathlib.Path(folder)
        files = {
            "base/options.h": "",
            "models/model.h": '#include "base/options.h"\n',
            "optimizers/optimizer.h": '#include "models/model.h"\n',
            "optimizers/sgd.cpp": '#include "models/model.h"\n#include "harness/run/runner.h"\n',
            "optimizers/curvature/woodbury.h": '#include "optimizers/optimizer.h"\n#include "optimizers/sgd.h"\n',
            "datasets/mnist.cpp": '#include "models/model.h"\n',
            "harness/spec/spec.cpp": '#include "optimizers/sgd.h"\n#include "harness/run/runner.h"\n',
            "harness/results/results.h": '#include "harness/spec/spec.h"\n',
            "harness/run/runner.h": '#include "harness/results/results.h"\n#include "harness/cli/slurm.h"\n',
            "harness/cli/main.cpp": '#include "harness/run/runner.h"\n#include "base/options.h"\n',
            "harness/stray.cpp": "",
            "tests/any_test.cpp": '#include "harness/cli/slurm.h"\n',
        }
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        found = violations(root)
        expected = ["datasets/mnist.cpp:1", "harness/run/runner.h:2", "harness/spec/spec.cpp:2", "harness/stray.cpp",
                    "optimizers/curvature/woodbury.h:2", "optimizers/sgd.cpp:2"]
        if [v.split(": ")[0] for v in found] != expected:
            print("self-test failed: expected violations at", expected, "got", found)
            return 1
    print("self-test passed: upward (spec → run, run → cli, optimizers → harness), sideways (datasets → models),"
          " curvature → plugin and unplaced harness files are caught; downward includes pass")
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
    print("every include points to its own folder or one below"
          + (f" ({len(TEMPORARY)} temporary exception(s), docs/harness.md#layers)" if TEMPORARY else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
