#!/usr/bin/python3
"""Keeps docs/optimizers.md in step with the registry: every registered optimizer has a section whose
heading names it ("## kfac", "## psgd and pbfgs (...)") and whose settings tables list each of its
settings with the registered default, and no table row there names a setting the optimizer lacks.

    check_optimizer_docs.py NGDBENCH_BINARY DOCS_FILE     (exit 1 listing every mismatch)
"""
import json
import re
import subprocess
import sys

SETTING_LINE = re.compile(r"^    (\S+)\s+(\S+)\s")  # `ngdbench list optimizers -v`: name, JSON default
HEADING = re.compile(r"^## (.*)$")
TABLE_ROW = re.compile(r"^\| `([a-z_0-9]+)` \| ([^|]*) \| ([^|]*)")
ONLY = re.compile(r"^([a-z][a-z0-9-]*) only\b")  # "psgd only: ..." in a section shared by several


def registered(binary):
    """{optimizer: {setting: default as JSON}} from the CLI."""
    listing = subprocess.run([binary, "list", "optimizers", "-v"], check=True, capture_output=True, text=True).stdout
    optimizers, current = {}, None
    for line in listing.splitlines():
        if not line.startswith(" "):
            current = line.split()[0]
            optimizers[current] = {}
        elif (match := SETTING_LINE.match(line)) and current:
            optimizers[current][match.group(1)] = json.loads(match.group(2))
    return optimizers


def documented(text):
    """{optimizer name in a section heading: {setting: default text}} from the settings tables."""
    sections, names = {}, []
    for line in text.splitlines():
        if heading := HEADING.match(line):
            title = heading.group(1)
            names = re.findall(r"[a-z][a-z0-9-]*", title)  # "## psgd and pbfgs (...)" documents both
            for name in names:
                sections.setdefault(name, {})
        elif (row := TABLE_ROW.match(line)) and names:
            only = ONLY.match(row.group(3).strip())
            for name in ([only.group(1)] if only else names):
                sections.setdefault(name, {})[row.group(1)] = row.group(2).strip()
    return sections


def same_default(registered_value, text):
    text = text.strip("`").strip()
    if isinstance(registered_value, bool):
        return text == str(registered_value).lower()
    if registered_value is None:
        return text == "null"
    if isinstance(registered_value, (int, float)):
        try:
            return float(text) == float(registered_value)
        except ValueError:
            return False
    if isinstance(registered_value, list):
        return text.replace(" ", "") == json.dumps(registered_value).replace(" ", "")
    return text.strip('"') == registered_value


def main():
    binary, docs = sys.argv[1], sys.argv[2]
    sections = documented(open(docs, encoding="utf-8").read())
    problems = []
    for optimizer, settings in registered(binary).items():
        table = sections.get(optimizer)
        if table is None:
            problems.append(f"{optimizer}: no section in {docs}")
            continue
        for name, default in settings.items():
            if name not in table:
                problems.append(f"{optimizer}: setting `{name}` (default {json.dumps(default)}) missing from its table")
            elif not same_default(default, table[name]):
                problems.append(f"{optimizer}: `{name}` documented default {table[name]!r}, registered {json.dumps(default)}")
        for name in table:
            if name not in settings:
                problems.append(f"{optimizer}: the table lists `{name}`, which is not a setting")
    for problem in problems:
        print(f"{docs}: {problem}")
    print(f"check_optimizer_docs: {len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
