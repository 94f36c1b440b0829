#!/usr/bin/env python3
"""Renames settings and optimizers in result files, in place:
    python3 scripts/migrate-result-names.py [--check] DIR|FILE...

One spelling per idea (specs still accept the old names, with a warning; result files are not specs):
  - shampoo: "epsilon" is "eps" and "grafting_epsilon" is "grafting_eps", as in adamw, nadamw and soap;
    "start_preconditioning_step": -1 ("absent": the inverse interval) is null;
  - soap: "stat_decay": -1 ("absent": beta2) is null;
  - sngd: the "root_method" values "denman-beavers" and "newton-schulz" are "denman_beavers" and
    "newton_schulz" (snake case, as every other choice);
  - the optimizers "psgd" and "pbfgs" are "dldr-psgd" and "dldr-pbfgs" (DLDR's P-SGD and P-BFGS, not
    Xi-Lin Li's PSGD); a "variant" equal to the old name (a spec that named no variant) becomes the new name,
    chosen variant names such as "psgd-d40" stay.
A renamed setting is part of the run's "identity", so its "config_hash" (stable_hash of the identity's compact
dump, base/stable_hash.h), its "run_id" ("<optimizer>-<config_hash>-s<seed>") and its file name change with it:
without the migration a rerun would not find the finished run and `ngdbench report` would treat the two
spellings as two configurations.

First the script recomputes every result file's config_hash from its stored identity (nlohmann's compact dump:
keys in byte order, numbers as the file spells them) and stops, changing nothing, if any does not reproduce.
Then it edits the text of each result that needs a rename (the identity, and the fields that repeat it:
optimizer, variant, label, hparams, grid_values, tuning.space, optimizer_report.root_method, config_hash,
run_id), so every other byte (the numbers as the harness wrote them) stays as it was, checks that the new
identity hashes to the new config_hash, writes the new text atomically under the new file name and removes the
old file. The `ngdbench regress` baseline (results/baselines/ci.json: experiment -> label -> entry) gets the
same renames of its labels and "optimizer" values, its entries moved to where the harness's sorted keys put
them. Generated report files (report.*, csv/, tables/, plots/, verdicts.json, results.sqlite) are not edited:
rerun the report. With --check nothing is written: it prints what would change. Running it twice changes
nothing; the summary line says how many files were migrated and how many were renamed.
"""
import json
import os
import re
import sys

OPTIMIZERS = {"psgd": "dldr-psgd", "pbfgs": "dldr-pbfgs"}
# optimizer (new name) -> setting -> new name, and optimizer -> setting -> {old value: new value}.
SETTING_NAMES = {"shampoo": {"epsilon": "eps", "grafting_epsilon": "grafting_eps"}}
SETTING_VALUES = {
    "shampoo": {"start_preconditioning_step": {-1: None}},
    "soap": {"stat_decay": {-1: None}},
    "sngd": {"root_method": {"denman-beavers": "denman_beavers", "newton-schulz": "newton_schulz"}},
}


# --- JSON with positions --------------------------------------------------------------------------------------

class Node:
    """A JSON value of a text: kind, [start, end) in the text, and its content (members: [(key, key_start,
    key_end, Node)]; items: [Node]; a scalar's Python value; a number's text as written)."""

    __slots__ = ("kind", "start", "end", "value", "members", "items", "raw")

    def __init__(self, kind, start, end, value=None, members=None, items=None, raw=None):
        self.kind, self.start, self.end, self.value = kind, start, end, value
        self.members, self.items, self.raw = members, items, raw

    def get(self, key):
        if self.kind != "object":
            return None
        return next((node for name, _, _, node in self.members if name == key), None)


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')


class ParseError(ValueError):
    pass


def parse(text):
    """The Node tree of a JSON text (strict: one value, nothing after it)."""
    def skip(at):
        return _WHITESPACE.match(text, at).end()

    def value(at):
        at = skip(at)
        if at >= len(text):
            raise ParseError("unexpected end")
        c = text[at]
        if c == "{":
            members, start, at = [], at, skip(at + 1)
            if text.startswith("}", at):
                return Node("object", start, at + 1, members=members)
            while True:
                match = _STRING.match(text, at)
                if not match:
                    raise ParseError(f"expected a key at {at}")
                key = json.loads(match.group())
                at = skip(match.end())
                if not text.startswith(":", at):
                    raise ParseError(f"expected ':' at {at}")
                node = value(at + 1)
                members.append((key, match.start(), match.end(), node))
                at = skip(node.end)
                if text.startswith(",", at):
                    at = skip(at + 1)
                    continue
                if text.startswith("}", at):
                    return Node("object", start, at + 1, members=members)
                raise ParseError(f"expected ',' or '}}' at {at}")
        if c == "[":
            items, start, at = [], at, skip(at + 1)
            if text.startswith("]", at):
                return Node("array", start, at + 1, items=items)
            while True:
                node = value(at)
                items.append(node)
                at = skip(node.end)
                if text.startswith(",", at):
                    at += 1
                    continue
                if text.startswith("]", at):
                    return Node("array", start, at + 1, items=items)
                raise ParseError(f"expected ',' or ']' at {at}")
        if c == '"':
            match = _STRING.match(text, at)
            if not match:
                raise ParseError(f"bad string at {at}")
            return Node("string", at, match.end(), value=json.loads(match.group()))
        for literal, python in (("true", True), ("false", False), ("null", None)):
            if text.startswith(literal, at):
                return Node("literal", at, at + len(literal), value=python, raw=literal)
        match = _NUMBER.match(text, at)
        if not match:
            raise ParseError(f"unexpected character at {at}")
        raw = match.group()
        return Node("number", at, match.end(), value=json.loads(raw), raw=raw)

    node = value(0)
    if skip(node.end) != len(text):
        raise ParseError(f"text after the value at {node.end}")
    return node


# --- nlohmann's compact dump and stable_hash --------------------------------------------------------------------

def dump_string(value):
    """nlohmann::json::dump's string: ", \\ and control characters escaped (\\u00xx, lower case hex), UTF-8 as is."""
    out = ['"']
    for c in value:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif ord(c) < 0x20:
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\u{ord(c):04x}"))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def compact(node):
    """nlohmann::json::dump() of `node` (std::map keys, so sorted by their bytes; numbers as the file writes them:
    the file is nlohmann's dump(2) of the same values, which spells a number as dump() does)."""
    if node.kind == "object":
        members = sorted(node.members, key=lambda member: member[0].encode("utf-8"))
        return "{" + ",".join(dump_string(key) + ":" + compact(value) for key, _, _, value in members) + "}"
    if node.kind == "array":
        return "[" + ",".join(compact(item) for item in node.items) + "]"
    if node.kind == "string":
        return dump_string(node.value)
    return node.raw


def stable_hash(text):
    value = 14695981039346656037
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{(value ^ (value >> 32)) & 0xFFFFFFFF:08x}"


def dump_value(value):
    """A Python value (None, bool, int, str) as nlohmann dumps it: the renames only write these."""
    return "null" if value is None else dump_string(value) if isinstance(value, str) else json.dumps(value)


# --- result files ----------------------------------------------------------------------------------------------

def is_result(root):
    return (root.kind == "object" and root.get("identity") is not None and root.get("identity").kind == "object"
            and root.get("config_hash") is not None and root.get("run_id") is not None)


def hash_problem(root):
    """Why the stored config_hash does not reproduce from the stored identity, or None."""
    stored = root.get("config_hash").value
    computed = stable_hash(compact(root.get("identity")))
    return None if computed == stored else f"stored config_hash {stored}, its identity hashes to {computed}"


def value_renames(optimizer):
    return SETTING_VALUES.get(optimizer, {})


def map_value(table, node):
    """The new value of a string or number `node` under {old: new}, or the node itself (no change)."""
    if node.kind in ("string", "number"):
        for old, new in table.items():
            if isinstance(old, str) == (node.kind == "string") and node.value == old:
                return new
    return node


class Edits:
    """Replacements [start, end) -> text of one text, and what they rename (for the summary)."""

    def __init__(self):
        self.spans, self.kinds = [], set()

    def replace(self, node_or_span, text, kind=None):
        start, end = (node_or_span.start, node_or_span.end) if isinstance(node_or_span, Node) else node_or_span
        self.spans.append((start, end, text))
        if kind:
            self.kinds.add(kind)

    def apply(self, text):
        spans = sorted(set(self.spans))
        for (s1, e1, _), (s2, e2, _) in zip(spans, spans[1:]):
            if s2 < e1:
                raise AssertionError(f"overlapping edits at {s1}..{e1} and {s2}..{e2}")
        for start, end, new in reversed(spans):
            text = text[:start] + new + text[end:]
        return text


def rename_settings(edits, settings, optimizer):
    """Renames the settings (keys) of object `settings` for `optimizer` and maps their values (each value of a
    list: a tuning space's choices)."""
    if settings is None or settings.kind != "object":
        return
    names = SETTING_NAMES.get(optimizer, {})
    for key, key_start, key_end, node in settings.members:
        if key in names:
            edits.replace((key_start, key_end), dump_string(names[key]), f"{optimizer}: {key} -> {names[key]}")
        table = value_renames(optimizer).get(names.get(key, key))
        if table:
            targets = node.items if node.kind == "array" else [node]
            for target in targets:
                new = map_value(table, target)
                if new is not target:
                    old = target.raw or dump_string(target.value)
                    edits.replace(target, dump_value(new), f"{optimizer}: {key} {old} -> {dump_value(new)}")


def renamed_value(table, value):
    for old, new in table.items():
        if isinstance(old, str) == isinstance(value, str) and not isinstance(value, bool) and value == old:
            return new
    return value


def renamed_settings(settings, optimizer):
    """The renames of rename_settings on a parsed object (the check of the edited text)."""
    if not isinstance(settings, dict):
        return settings
    renamed = {}
    for key, value in settings.items():
        key = SETTING_NAMES.get(optimizer, {}).get(key, key)
        table = value_renames(optimizer).get(key)
        if table:
            value = [renamed_value(table, v) for v in value] if isinstance(value, list) else renamed_value(table, value)
        renamed[key] = value
    return renamed


def expected_result(result, migrated):
    """`result` (parsed) with the renames, its label, config_hash and run_id taken from `migrated` (checked
    apart): what the edited text must parse to."""
    old = result["identity"]["optimizer"]
    optimizer = OPTIMIZERS.get(old, old)
    expected = json.loads(json.dumps(result))
    expected["identity"]["optimizer"] = optimizer
    if expected.get("optimizer") == old:
        expected["optimizer"] = optimizer
    if expected.get("variant") == old:
        expected["variant"] = optimizer
    expected["identity"]["hparams"] = renamed_settings(expected["identity"].get("hparams"), optimizer)
    for key in ("hparams", "grid_values", "optimizer_report"):
        if key in expected:
            expected[key] = renamed_settings(expected[key], optimizer)
    if isinstance(expected.get("tuning"), dict) and "space" in expected["tuning"]:
        expected["tuning"]["space"] = renamed_settings(expected["tuning"]["space"], optimizer)
    for key in ("label", "config_hash", "run_id"):
        expected[key] = migrated.get(key)
    return expected


def label_of(variant, grid_values):
    """RunConfig::label(): the variant, then ' name=<compact dump>' per grid value in key order."""
    members = sorted(grid_values.members, key=lambda member: member[0].encode())
    return variant + "".join(f" {key}={compact(node)}" for key, _, _, node in members)


def sort_objects(text):
    """`text` with every object whose keys are out of byte order (a renamed key) put in order, moving whole
    members and keeping the separators between them (the harness writes sorted keys)."""
    while True:
        root = parse(text)
        stack, unsorted = [root], None
        while stack and unsorted is None:
            node = stack.pop()
            if node.kind == "object":
                keys = [key.encode() for key, _, _, _ in node.members]
                if keys != sorted(keys):
                    unsorted = node
                stack.extend(member[3] for member in node.members)
            elif node.kind == "array":
                stack.extend(node.items)
        if unsorted is None:
            return text
        members = unsorted.members
        pieces = [text[key_start:value.end] for _, key_start, _, value in members]
        separators = [text[a[3].end:b[1]] for a, b in zip(members, members[1:])]
        order = sorted(range(len(members)), key=lambda i: members[i][0].encode())
        rebuilt = pieces[order[0]]
        for separator, i in zip(separators, order[1:]):
            rebuilt += separator + pieces[i]
        text = text[:members[0][1]] + rebuilt + text[members[-1][3].end:]


def migrate_result(text, root, path):
    """(new text, new file name, what was renamed) of a result, or None when it needs no rename."""
    identity = root.get("identity")
    old_optimizer = identity.get("optimizer").value
    optimizer = OPTIMIZERS.get(old_optimizer, old_optimizer)
    edits = Edits()
    kind_optimizer = f"optimizer: {old_optimizer} -> {optimizer}" if optimizer != old_optimizer else None
    for holder in (identity, root):
        node = holder.get("optimizer")
        if node is not None and node.kind == "string" and node.value == old_optimizer and kind_optimizer:
            edits.replace(node, dump_string(optimizer), kind_optimizer)
    variant_node = root.get("variant")
    variant = variant_node.value if variant_node is not None and variant_node.kind == "string" else None
    new_variant = optimizer if variant == old_optimizer else variant
    if variant_node is not None and new_variant != variant:
        edits.replace(variant_node, dump_string(new_variant), kind_optimizer)
    for settings in (identity.get("hparams"), root.get("hparams"), root.get("grid_values")):
        rename_settings(edits, settings, optimizer)
    tuning = root.get("tuning")
    if tuning is not None and tuning.kind == "object":
        rename_settings(edits, tuning.get("space"), optimizer)
    report = root.get("optimizer_report")
    if report is not None and report.kind == "object":
        rename_settings(edits, report, optimizer)  # sngd reports its root_method
    if not edits.spans:
        return None
    # The label from the grid values as they will be; first check that the stored one is what label() gives.
    label_node, grid = root.get("label"), root.get("grid_values")
    if label_node is not None and grid is not None and grid.kind == "object" and variant is not None:
        if label_of(variant, grid) != label_node.value:
            sys.exit(f"migrate: {path}: its label {label_node.value!r} is not its variant and grid values "
                     f"({label_of(variant, grid)!r}); migrate it by hand")
    staged = edits.apply(text)
    staged_root = parse(staged)
    staged_grid = staged_root.get("grid_values")
    new_label = label_of(new_variant, staged_grid) if staged_grid is not None and staged_grid.kind == "object" else None
    new_hash = stable_hash(compact(staged_root.get("identity")))
    seed = root.get("seed").raw
    new_run_id = f"{optimizer}-{new_hash}-s{seed}"
    second = Edits()
    second.replace(staged_root.get("config_hash"), dump_string(new_hash))
    second.replace(staged_root.get("run_id"), dump_string(new_run_id))
    if new_label is not None and staged_root.get("label") is not None:
        second.replace(staged_root.get("label"), dump_string(new_label))
    migrated = sort_objects(second.apply(staged))
    # The new text: the same object but for the renamed fields, and its identity hashes to its config_hash.
    check = parse(migrated)
    if stable_hash(compact(check.get("identity"))) != check.get("config_hash").value:
        sys.exit(f"migrate: {path}: the migrated identity does not hash to the new config_hash; nothing written")
    parsed = json.loads(migrated)
    if check.get("run_id").value != new_run_id or parsed != expected_result(json.loads(text), parsed):
        sys.exit(f"migrate: {path}: the edit did not give the expected object; nothing written")
    return migrated, new_run_id + ".json", edits.kinds


# --- the regress baseline ----------------------------------------------------------------------------------------

def is_baseline(root):
    """results/baselines/ci.json's shape: {experiment: {label: {"optimizer": ..., ...}}}, "_about" aside."""
    if root.kind != "object":
        return False
    experiments = [node for key, _, _, node in root.members if not key.startswith("_")]
    return bool(experiments) and all(
        node.kind == "object" and node.members and all(
            entry.kind == "object" and entry.get("optimizer") is not None and entry.get("tolerance") is not None
            for _, _, _, entry in node.members) for node in experiments)


def renamed_label(label, old_optimizer):
    """A baseline label (variant + ' name=value'...) with the renames of its optimizer's settings."""
    optimizer = OPTIMIZERS.get(old_optimizer, old_optimizer)
    variant, *rest = label.split(" ")
    if variant == old_optimizer:
        variant = optimizer
    pieces = []
    for piece in rest:
        name, _, value = piece.partition("=")
        table = value_renames(optimizer).get(SETTING_NAMES.get(optimizer, {}).get(name, name), {})
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = object()
        for old, new in table.items():
            if parsed == old and type(parsed) is not bool:
                value = dump_value(new)
        pieces.append(f"{SETTING_NAMES.get(optimizer, {}).get(name, name)}={value}")
    return " ".join([variant] + pieces)


def migrate_baseline(text, root):
    edits = Edits()
    for experiment, _, _, configurations in root.members:
        if experiment.startswith("_"):
            continue
        for label, key_start, key_end, entry in configurations.members:
            node = entry.get("optimizer")
            old = node.value
            new_label = renamed_label(label, old)
            if new_label != label:
                edits.replace((key_start, key_end), dump_string(new_label), f"baseline label {label} -> {new_label}")
            if old in OPTIMIZERS:
                edits.replace(node, dump_string(OPTIMIZERS[old]), f"optimizer: {old} -> {OPTIMIZERS[old]}")
    if not edits.spans:
        return None
    migrated = sort_objects(edits.apply(text))
    expected = {experiment: configurations if experiment.startswith("_") else {
        renamed_label(label, entry["optimizer"]): dict(entry, optimizer=OPTIMIZERS.get(entry["optimizer"],
                                                                                        entry["optimizer"]))
        for label, entry in configurations.items()} for experiment, configurations in json.loads(text).items()}
    if json.loads(migrated) != expected:
        sys.exit("migrate: the baseline's edit did not give the expected object; nothing written")
    return migrated, None, edits.kinds


# --- main -------------------------------------------------------------------------------------------------------

def paths(arguments):
    for argument in arguments:
        if os.path.isfile(argument):
            yield argument
            continue
        if not os.path.isdir(argument):
            sys.exit(f"migrate: {argument}: no such file or folder")
        for root, folders, files in os.walk(argument):
            folders.sort()
            for name in sorted(files):
                if name.endswith(".json"):
                    yield os.path.join(root, name)


def write_atomically(path, text):
    with open(path + ".migrating", "w", encoding="utf-8", newline="") as file:
        file.write(text)
    os.replace(path + ".migrating", path)


def main(arguments):
    check = "--check" in arguments
    arguments = [argument for argument in arguments if argument != "--check"]
    if not arguments or any(argument.startswith("-") for argument in arguments):
        sys.exit(__doc__)
    files, seen = [], 0
    for path in dict.fromkeys(paths(arguments)):
        seen += 1
        with open(path, encoding="utf-8", newline="") as file:
            text = file.read()
        try:
            root = parse(text)
        except ValueError:
            continue  # not strict JSON (Google Benchmark's NaN): not a result
        files.append((path, text, root))
    results = [(path, text, root) for path, text, root in files if is_result(root)]
    # Every stored hash must reproduce before anything is renamed: a rename recomputes it.
    bad = [(path, hash_problem(root)) for path, _, root in results if hash_problem(root)]
    for path, problem in bad:
        print(f"migrate: {path}: {problem}", file=sys.stderr)
    if bad:
        sys.exit(f"migrate: {len(bad)} of {len(results)} result files' config_hash does not reproduce; "
                 "nothing migrated")
    plans, counts = [], {}
    for path, text, root in files:
        planned = migrate_result(text, root, path) if is_result(root) else \
            migrate_baseline(text, root) if is_baseline(root) else None
        if planned is None:
            continue
        new_text, new_name, kinds = planned
        new_path = os.path.join(os.path.dirname(path), new_name) if new_name else path
        if new_path != path and os.path.exists(new_path):
            with open(new_path, encoding="utf-8", newline="") as file:
                if file.read() != new_text:
                    sys.exit(f"migrate: {path}: {new_path} exists with other contents; nothing migrated")
        plans.append((path, new_path, new_text))
        for kind in {re.sub(r"^baseline label .*", "regress baseline labels", kind) for kind in kinds}:
            counts[kind] = counts.get(kind, 0) + 1
    renamed = sum(1 for path, new_path, _ in plans if new_path != path)
    for path, new_path, new_text in plans:
        if check:
            print(f"would migrate {path}" + (f" -> {os.path.basename(new_path)}" if new_path != path else ""))
            continue
        write_atomically(new_path, new_text)
        if new_path != path:
            os.remove(path)
    for kind, count in sorted(counts.items()):
        print(f"  {kind}: {count} file(s)")
    verb = "would be" if check else "were"
    print(f"migrate: {len(plans)} of {seen} JSON files {verb} migrated ({renamed} renamed); "
          f"{len(results)} result files' config_hash reproduced")


if __name__ == "__main__":
    main(sys.argv[1:])
