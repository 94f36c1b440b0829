"""Test outcomes for the claims that are identities (measure kind "test", docs/protocol.md): the report
cannot run tests, so it reads what a test run wrote.

    scripts/test-verdicts.py --junit build/ctest-numerical.xml [--gtest-xml FILE ...] [--claims FILE]
                             [--out results/test-verdicts.json]
    scripts/test-verdicts.py --records-filter      the gtest filter of the tests whose properties claims print
    scripts/test-verdicts.py --ctest-regex         a `ctest -R` expression selecting the tests claims name

Reads CTest's JUnit file (`ctest --output-junit FILE`: one <testcase> per CTest test, whose names
gtest_discover_tests makes "Suite.Test" or "Prefix/Suite.Test/Param"; CTest's dashboard Test.xml of
`ctest -T Test` is read too) and, optionally, Google Test's own XML (`--gtest_output=xml:FILE`, which
alone carries RecordProperty values), and writes the outcomes of the tests the claims file names as JSON:

    {"format_version": 1, "sources": [...], "tests": {name: {"status": "passed" | "failed" | "skipped",
                                                               "properties": {...}, "output": [...]}}}

`make test-verdicts` runs the numerical tests and writes results/test-verdicts.json, which the report
reads by default (`scripts/report.py --test-results PATH` takes that JSON, a JUnit, dashboard or gtest XML
file, or the build/Testing folder of `ctest -T Test` directly).
"""
import argparse
import base64
import binascii
import json
import os
import sys
import xml.etree.ElementTree as ElementTree
import zlib

FORMAT_VERSION = 1

# Attributes of a gtest <testcase> that are not RecordProperty values (older gtest wrote properties as
# attributes; newer ones as <properties><property name value/></properties>).
GTEST_ATTRIBUTES = {"name", "status", "result", "time", "timestamp", "classname", "file", "line", "value_param",
                    "type_param"}


def case_status(case):
    """passed, failed or skipped, from a <testcase> of CTest's JUnit file or gtest's XML."""
    if case.find("failure") is not None or case.find("error") is not None or case.get("status") == "fail":
        return "failed"
    if (case.find("skipped") is not None or case.get("status") in ("notrun", "disabled")
            or case.get("result") in ("skipped", "suppressed")):
        return "skipped"
    return "passed"


def case_name(case):
    """The CTest name of a test case: CTest's JUnit gives it whole (classname = name); gtest's XML splits
    it into classname "Prefix/Suite" and name "Test/Param"."""
    name, classname = case.get("name", ""), case.get("classname")
    if not classname or classname == name:
        return name
    return f"{classname}.{name}"


def case_properties(case):
    properties = {p.get("name"): p.get("value") for p in case.iter("property") if p.get("name")}
    properties.update({k: v for k, v in case.attrib.items() if k not in GTEST_ATTRIBUTES})
    return properties


def case_output(case):
    """What the test printed itself (the lines of <system-out> that are not Google Test's own)."""
    text = case.findtext("system-out") or ""
    return [line for line in text.splitlines()
            if line.strip() and not line.startswith(("[", "Running main()", "Note: Google Test filter"))]


def dashboard_value(element):
    """The text of a <Value> of CTest's dashboard XML, decoded where CTest compressed it."""
    if element is None:
        return ""
    text = element.text or ""
    if element.get("encoding") == "base64":
        try:
            data = base64.b64decode(text)
            text = (zlib.decompress(data) if element.get("compression") == "gzip" else data).decode("utf-8", "replace")
        except (binascii.Error, zlib.error, ValueError):
            return ""
    return text


def outcomes_from_dashboard(root):
    """{name: outcome} of CTest's dashboard Test.xml (`ctest -T Test`: build/Testing/<tag>/Test.xml)."""
    outcomes = {}
    for test in root.iter("Test"):
        if test.get("Status") is None:
            continue  # the <TestList> entries
        status = {"passed": "passed", "failed": "failed"}.get(test.get("Status"), "skipped")
        outcome = {"status": status}
        if status != "skipped":
            output = [line for line in dashboard_value(test.find("Results/Measurement/Value")).splitlines()
                      if line.strip() and not line.startswith(("[", "Running main()", "Note: Google Test filter"))]
            if output:
                outcome["output"] = output
        outcomes[test.findtext("Name", "")] = outcome
    return outcomes


def dashboard_file(folder):
    """build/Testing/<tag>/Test.xml of a CTest dashboard folder (build/Testing, or the build folder): the tag
    its TAG file names, else the newest."""
    for candidate in (folder, os.path.join(folder, "Testing")):
        tag = os.path.join(candidate, "TAG")
        if os.path.isfile(tag):
            with open(tag, encoding="utf-8") as file:
                path = os.path.join(candidate, file.readline().strip(), "Test.xml")
            if os.path.isfile(path):
                return path
        found = sorted(os.path.join(candidate, name, "Test.xml") for name in
                       (os.listdir(candidate) if os.path.isdir(candidate) else [])
                       if os.path.isfile(os.path.join(candidate, name, "Test.xml")))
        if found:
            return found[-1]
    raise ValueError(f"{folder}: no CTest dashboard results (Testing/<tag>/Test.xml from `ctest -T Test`)")


def outcomes_from_xml(path):
    """{name: {"status", "properties", "output"}} of a CTest JUnit, CTest dashboard or gtest XML file."""
    root = ElementTree.parse(path).getroot()
    if root.tag == "Site":
        return outcomes_from_dashboard(root)
    outcomes = {}
    for case in root.iter("testcase"):
        outcome = {"status": case_status(case)}
        properties = case_properties(case)
        output = case_output(case) if outcome["status"] != "skipped" else []
        if properties:
            outcome["properties"] = properties
        if output:
            outcome["output"] = output
        outcomes[case_name(case)] = outcome
    return outcomes


def merge(into, outcomes):
    """Adds outcomes; a failure anywhere stays a failure, properties and output accumulate."""
    for name, outcome in outcomes.items():
        current = into.setdefault(name, {"status": outcome["status"]})
        if "failed" in (current["status"], outcome["status"]):
            current["status"] = "failed"
        elif current["status"] == "skipped":
            current["status"] = outcome["status"]
        for key in ("properties", "output"):
            if outcome.get(key):
                if key == "properties":
                    current.setdefault(key, {}).update(outcome[key])
                elif not current.get(key):
                    current[key] = outcome[key]
    return into


def load_test_outcomes(path):
    """{name: outcome} from results/test-verdicts.json (this module's output), a CTest JUnit, CTest
    dashboard or gtest XML file, or a folder holding CTest's dashboard results (build/Testing). Raises
    ValueError saying why it cannot be read as test outcomes."""
    if os.path.isdir(path):
        path = dashboard_file(path)
    try:
        with open(path, "rb") as file:
            head = file.read(64).lstrip()
        if head.startswith(b"<"):
            return outcomes_from_xml(path)
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError, ElementTree.ParseError) as error:
        raise ValueError(f"{path}: cannot read test outcomes: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tests"), dict):
        raise ValueError(f"{path}: not a test outcomes file (no \"tests\" object)")
    return data["tests"]


def claimed_tests(claims):
    """(gtest patterns of every test claim, names of their `records` tests)."""
    patterns, records = [], []
    for claim in claims:
        measure = claim.get("measure") or {}
        if measure.get("kind") == "test":
            patterns += measure.get("tests", [])
            if measure.get("records"):
                records.append(measure["records"])
    return patterns, records


def main(argv=None):
    from .claims import gtest_pattern

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--junit", action="append", default=[], help="CTest's --output-junit file (repeatable)")
    parser.add_argument("--gtest-xml", action="append", default=[], help="gtest --gtest_output=xml file (repeatable)")
    parser.add_argument("--claims", default=os.path.join(os.path.dirname(__file__), "..", "..", "results",
                                                         "paper-claims.json"))
    parser.add_argument("--out", default=None, help="output file (default: standard output)")
    parser.add_argument("--records-filter", action="store_true",
                        help="print the gtest filter of the tests whose recorded properties the claims print")
    parser.add_argument("--ctest-regex", action="store_true",
                        help="print a CTest -R regular expression selecting every test the claims name")
    args = parser.parse_args(argv)
    with open(args.claims, encoding="utf-8") as file:
        claims = json.load(file)["claims"]
    patterns, records = claimed_tests(claims)
    if args.records_filter:
        print(":".join(records))
        return 0
    if args.ctest_regex:
        print("^(" + "|".join(gtest_pattern(p).pattern[:-2] for p in patterns + records) + ")$")
        return 0
    if not args.junit and not args.gtest_xml:
        parser.error("give --junit and/or --gtest-xml")
    outcomes = {}
    for path in args.junit + args.gtest_xml:
        try:
            merge(outcomes, outcomes_from_xml(path))
        except (OSError, ElementTree.ParseError) as error:
            sys.exit(f"test-verdicts: {path}: {error}")
    wanted = [gtest_pattern(p) for p in patterns + records]
    kept = {name: outcomes[name] for name in sorted(outcomes) if any(p.match(name) for p in wanted)}
    text = json.dumps({"format_version": FORMAT_VERSION,
                       "sources": [os.path.basename(p) for p in args.junit + args.gtest_xml],
                       "tests": kept}, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if args.out:
        from .render import write
        write(args.out, text)
        counts = {s: sum(o["status"] == s for o in kept.values()) for s in ("passed", "failed", "skipped")}
        print(f"test-verdicts: wrote {args.out}: {len(kept)} of the claims' tests "
              f"({', '.join(f'{n} {s}' for s, n in counts.items())})")
    else:
        sys.stdout.write(text)
    return 0
