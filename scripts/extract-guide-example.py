#!/usr/bin/python3
"""Writes the "Adding an optimizer" guide's code (docs/optimizers.md) into OUT_DIR as the files it
names, so that CTest compiles and runs exactly what a newcomer copies:

    extract-guide-example.py docs/optimizers.md OUT_DIR

The guide's first ```cpp block after "**1. The plugin**" is optimizers/sign_sgd.cpp, the first after
"**3. The test**" is tests/optimizers/sign_sgd_test.cpp. Exits 1 naming what is missing.
"""
import os
import re
import sys

BLOCK = re.compile(r"```cpp\n(.*?)```", re.S)
# (marker in the guide, the files its following ```cpp blocks become)
SECTIONS = (("**1. The plugin**", ("optimizers/sign_sgd.cpp",)),
            ("**3. The test**", ("tests/optimizers/sign_sgd_test.cpp",)))


def main():
    guide, out = sys.argv[1], sys.argv[2]
    text = open(guide, encoding="utf-8").read()
    for marker, names in SECTIONS:
        start = text.find(marker)
        if start < 0:
            sys.exit(f"{guide}: no section {marker!r} (the guide's example is compiled from it)")
        blocks = BLOCK.findall(text, start)
        if len(blocks) < len(names):
            sys.exit(f"{guide}: {marker!r} needs {len(names)} ```cpp blocks after it")
        for name, code in zip(names, blocks):
            path = os.path.join(out, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as file:
                file.write(code)


if __name__ == "__main__":
    main()
