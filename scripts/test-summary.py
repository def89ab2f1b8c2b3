#!/usr/bin/env python3
"""Print 'N passed, N failed, N skipped' for one or more meson build directories.

Reads meson-logs/testlog.json (one JSON object per test). TAP tests count once each, like any other
test: a test passes only when all its cases pass.
"""
import json
import sys

passed = failed = skipped = 0
for build in sys.argv[1:]:
    try:
        with open(f"{build}/meson-logs/testlog.json") as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)["result"]
                if r in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif r == "SKIP":
                    skipped += 1
                else:
                    failed += 1
    except FileNotFoundError:
        print(f"{build}: no test log (the build or the test run failed before any test ran)")
        failed += 1
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
