#!/usr/bin/env python3
"""How many tests ran per layer, from the runs scripts/test.sh made.

Reads the nextest JUnit reports copied to artifacts/ (workspace run, desktop run), the Vitest
JSON report and schemathesis' JUnit report, and classifies each Rust test as:
  e2e      - the end-to-end binary (tests/tests/e2e), except desktop::
  desktop  - the real app in a window (desktop:: and the keychain round trip)
  property - a test defined inside a proptest! block anywhere in the repository
  unit     - every other Rust test (chart/'s included, counted from its cargo test log)
Usage: scripts/test-summary.py ARTIFACTS_DIR
"""
import json
import pathlib
import re
import sys
import xml.etree.ElementTree as ET

root = pathlib.Path(__file__).resolve().parent.parent
art = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else root / "artifacts")


def proptest_names():
    """Names of the functions declared inside proptest! { ... } blocks."""
    names = set()
    for f in root.glob("**/*.rs"):
        if "target" in f.parts or "node_modules" in f.parts:
            continue
        text = f.read_text(errors="replace")
        for m in re.finditer(r"proptest!\s*\{", text):
            depth, i = 1, m.end()
            while depth and i < len(text):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            names.update(re.findall(r"\bfn\s+([a-z0-9_]+)\s*\(", text[m.end():i]))
    return names


def junit_cases(path):
    if not path.exists():
        return []
    out = []
    for suite in ET.parse(path).getroot().iter("testsuite"):
        for case in suite.iter("testcase"):
            failed = case.find("failure") is not None or case.find("error") is not None
            out.append((suite.get("name", ""), case.get("name", ""), failed))
    return out


props = proptest_names()
layers = {k: [0, 0] for k in ("unit", "property", "e2e", "desktop", "UI", "API contract")}


def count(layer, failed):
    layers[layer][0] += 1
    layers[layer][1] += int(failed)


for suite, name, failed in junit_cases(art / "tests-junit.xml") + junit_cases(art / "desktop-junit.xml"):
    short = name.rsplit("::", 1)[-1]
    if (suite.endswith("::e2e") and name.startswith("desktop::")) or "keychain_round_trip" in name:
        count("desktop", failed)
    elif short in props:
        count("property", failed)
    elif suite.endswith("::e2e"):
        count("e2e", failed)
    else:
        count("unit", failed)

chart = art / "chart-tests.log"
if chart.exists():
    for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed", chart.read_text()):
        layers["unit"][0] += int(m.group(1)) + int(m.group(2))
        layers["unit"][1] += int(m.group(2))

ui = art / "ui-tests.json"
if ui.exists():
    r = json.loads(ui.read_text())
    layers["UI"] = [r.get("numTotalTests", 0), r.get("numFailedTests", 0)]

st = sorted((art / "schemathesis").glob("junit-*.xml")) if (art / "schemathesis").exists() else []
if st:
    cases = junit_cases(st[-1])
    layers["API contract"] = [len(cases), sum(f for _, _, f in cases)]

print("tests per layer: " + ", ".join(
    f"{k} {n}" + (f" ({f} failed)" if f else "") for k, (n, f) in layers.items() if n))
