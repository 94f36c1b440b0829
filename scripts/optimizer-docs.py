#!/usr/bin/python3
"""Writes (or checks) the settings tables of docs/optimizers.md from the optimizer registry.

    optimizer-docs.py NGDBENCH_BINARY DOCS_FILE --write   regenerate every table in place
    optimizer-docs.py NGDBENCH_BINARY DOCS_FILE --check   exit 1 listing tables that differ (CTest)

Each table sits between `<!-- settings: NAME -->` and `<!-- end settings -->`, one per registered
optimizer, and is made from `ngdbench list optimizers --json`: the setting's name, its default and its
help with the accepted range. The setting's meaning is written once, in its `OptionInfo` (or the
optimizer's entry function, for a shared setting whose meaning differs there).
"""
import json
import re
import subprocess
import sys

BLOCK = re.compile(r"<!-- settings: ([a-z][a-z0-9-]*) -->\n(.*?)<!-- end settings -->\n", re.DOTALL)


def registry(binary):
    """{optimizer: [setting, ...]} from the CLI, in registry order."""
    listing = subprocess.run([binary, "list", "optimizers", "--json"], check=True, capture_output=True, text=True).stdout
    return {entry["name"]: entry["settings"] for entry in json.loads(listing)}


def shown_default(value):
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:g}"
    return json.dumps(value)


def table(settings):
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for setting in settings:
        meaning = setting["help"] + (f" ({setting['range']})" if "range" in setting else "")
        rows.append(f"| `{setting['name']}` | {shown_default(setting['default'])} | {meaning.replace('|', '∣')} |")
    return "\n".join(rows) + "\n"


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("--write", "--check"):
        print(__doc__)
        return 2
    binary, docs, mode = sys.argv[1:]
    optimizers = registry(binary)
    text = open(docs, encoding="utf-8").read()
    problems, seen = [], set()

    def regenerate(match):
        name = match.group(1)
        seen.add(name)
        if name not in optimizers:
            problems.append(f"{docs}: a settings table for `{name}`, which is not a registered optimizer")
            return match.group(0)
        fresh = table(optimizers[name])
        if match.group(2) != fresh:
            problems.append(f"{docs}: the settings table of `{name}` differs from the registry")
        return f"<!-- settings: {name} -->\n{fresh}<!-- end settings -->\n"

    updated = BLOCK.sub(regenerate, text)
    problems += [f"{docs}: no settings table for `{name}` (add `<!-- settings: {name} -->` and "
                 "`<!-- end settings -->` to its section)" for name in optimizers if name not in seen]
    if mode == "--write":
        with open(docs, "w", encoding="utf-8") as out:
            out.write(updated)
        missing = [p for p in problems if "no settings table" in p or "not a registered" in p]
        for problem in missing:
            print(problem)
        return 1 if missing else 0
    for problem in problems:
        print(problem)
    if problems:
        print(f"run: scripts/optimizer-docs.py {binary} {docs} --write")
        return 1
    print(f"{len(seen)} settings tables match the registry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
