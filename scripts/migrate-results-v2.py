#!/usr/bin/env python3
"""Migrates result files from schema_version 1 to 2, in place: python3 scripts/migrate-results-v2.py DIR|FILE...

Version 2 states what version 1 left to be guessed (docs/harness.md, "Result file"):
  - "workload": "image" or "translation" (version 1 readers took a result with a "final" block holding
    test_bleu for a translation run);
  - "variant": always present (version 1 readers fell back to the optimizer's name without one);
  - "study": always present (version 1 readers fell back to the seed without one, files written before
    studies).
It sets schema_version 2 and adds only the missing fields, as lines of the file's own indentation, so every
other byte (the numbers as the harness wrote them) stays as it was. Files that are not version 1 results
are left alone; the summary line says how many were migrated. Running it twice changes nothing.
"""
import json
import os
import re
import sys


def workload_of(result):
    final = result.get("final")
    return "translation" if isinstance(final, dict) and final.get("test_bleu") is not None else "image"


def additions(result):
    """{key: value} the file gains (schema_version is replaced, not added)."""
    added = {"workload": workload_of(result)}
    if not result.get("variant"):
        added["variant"] = result["optimizer"]
    if result.get("study") is None:
        added["study"] = result["seed"]
    return added


def migrate_text(text, path):
    """The version 2 text of a version 1 result file's `text`, or None if it is not one."""
    try:
        result = json.loads(text)
    except ValueError:
        return None
    if not (isinstance(result, dict) and result.get("schema_version") == 1 and "run_id" in result):
        return None
    lines = text.splitlines(keepends=True)
    indent = re.match(r"(\s+)\"", lines[1]).group(1) if len(lines) > 2 else None
    if indent is None or lines[0].strip() != "{":
        sys.exit(f"migrate: {path}: not an indented JSON object; migrate it by hand")
    top = re.compile(r"^" + re.escape(indent) + r"\"([^\"]+)\":")
    keys = [(i, m.group(1)) for i, m in ((i, top.match(line)) for i, line in enumerate(lines)) if m]
    for key, value in sorted(additions(result).items(), reverse=True):
        # Before the first top-level key that sorts after it (the harness writes sorted keys), or last.
        at = next((i for i, name in keys if name > key), None)
        if at is None:
            at = len(lines) - 1  # the closing brace: the last value gains a comma
            if lines[at].strip() != "}":
                sys.exit(f"migrate: {path}: does not end with a line holding only \"}}\"; migrate it by hand")
            lines[at - 1] = lines[at - 1].rstrip("\n") + ",\n"
            lines.insert(at, f"{indent}{json.dumps(key)}: {json.dumps(value)}\n")
        else:
            lines.insert(at, f"{indent}{json.dumps(key)}: {json.dumps(value)},\n")
        keys = [(i + (i >= at), name) for i, name in keys]
    version = next(i for i, name in keys if name == "schema_version")
    lines[version] = re.sub(r"(\"schema_version\":\s*)1", r"\g<1>2", lines[version], count=1)
    migrated = "".join(lines)
    expected = dict(result, schema_version=2, **additions(result))
    if json.loads(migrated) != expected:
        sys.exit(f"migrate: {path}: the edit did not give the expected object; nothing written")
    return migrated


def paths(arguments):
    for argument in arguments:
        if os.path.isfile(argument):
            yield argument
            continue
        for root, folders, files in os.walk(argument):
            folders.sort()
            for name in sorted(files):
                if name.endswith(".json"):
                    yield os.path.join(root, name)


def main(arguments):
    if not arguments:
        sys.exit(__doc__)
    migrated = seen = 0
    for path in paths(arguments):
        seen += 1
        with open(path, encoding="utf-8") as file:
            text = file.read()
        new = migrate_text(text, path)
        if new is None:
            continue
        with open(path + ".migrating", "w", encoding="utf-8") as file:
            file.write(new)
        os.replace(path + ".migrating", path)
        migrated += 1
    print(f"migrate: {migrated} of {seen} JSON files migrated to schema_version 2")


if __name__ == "__main__":
    main(sys.argv[1:])
