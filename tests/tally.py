#!/usr/bin/python3
"""Count what a test suite did, from its own results file, and refuse to
count what did not happen.

  tally.py unit FILE ALLOW [STATUS]          meson's testlog.json (TAP tests)
  tally.py pytest NAME FILE ALLOW [STATUS]   pytest's JUnit XML

Prints one line "SUITE: N passed, N failed, N skipped" (then one line per
failure, each led by "  FAIL ") and exits 0; the test command adds the
counts up.  STATUS is the exit status of the runner (meson test, pytest):
a runner that failed while no result says why is one failure more.

What counts:
  - unit: every TAP line is one check ("ok", "not ok", "ok # skip"); a
    program that ended badly (ERROR, TIMEOUT, a crash) without a "not ok"
    line that says why is one failure; a program that reported OK but
    printed no check is a failure; a whole-program skip ("1..0 # SKIP
    why") is one skip.
  - pytest: every testcase; an xfail is a skip (it did not pass).
  - a results file that is missing, unreadable or holds no test is a
    failure, never "0 passed".
  - a skip is a failure unless the allow-list (ALLOW) has a line whose
    glob matches its id, with a reason: "<glob> <reason...>".  Ids are
    "unit/<program>/<check>" and "<NAME>/<module>::<test>".
"""
import fnmatch
import json
import re
import sys
import xml.etree.ElementTree as ET

TAP_LINE = re.compile(r"^(not )?ok\b\s*(\d+)?\s*(?:-\s*)?([^#]*)(?:#\s*(.*))?$")
SKIP_PLAN = re.compile(r"^1\.\.0\b\s*(?:#\s*(?:skip\w*)?\s*(.*))?$", re.I)


class Tally:
    def __init__(self, suite, allow):
        self.suite = suite
        self.allow = allow
        self.passed = 0
        self.failed = []
        self.skipped = 0

    def fail(self, what):
        self.failed.append(what)

    def skip(self, ident, why):
        if allowed(self.allow, ident):
            self.skipped += 1
        else:
            self.fail(f"{ident}: skipped ({why.strip() or 'no reason'}), "
                      "and not in the allow-list")

    def report(self):
        print(f"{self.suite}: {self.passed} passed, {len(self.failed)} failed,"
              f" {self.skipped} skipped")
        for f in self.failed:
            print("  FAIL " + f)


def read_allow(path):
    """The allow-list: (glob, reason) pairs; a glob without a reason is
    an error in the list itself, so it allows nothing."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) < 2:
                raise ValueError(f"{path}:{n}: \"{parts[0]}\": no reason")
            out.append((parts[0], parts[1]))
    return out


def allowed(allow, ident):
    return any(fnmatch.fnmatchcase(ident, g) for g, _ in allow)


def tally_unit(t, path):
    entries = []
    with open(path) as f:
        for line in f:
            if line.strip():
                entries.append(json.loads(line))
    if not entries:
        t.fail(f"{path}: no test ran")
    for e in entries:
        name = e["name"].split(" / ")[-1]
        result = e["result"]
        checks = bad = 0
        whole_skip = None
        for line in (e.get("stdout") or "").splitlines():
            m = SKIP_PLAN.match(line)
            if m:
                whole_skip = m.group(1) or ""
                continue
            m = TAP_LINE.match(line)
            if not m:
                continue
            checks += 1
            desc = m.group(3).strip() or f"check {m.group(2)}"
            ident = f"unit/{name}/{desc}"
            directive = (m.group(4) or "").strip()
            if directive.lower().startswith("skip"):
                t.skip(ident, directive[4:])
            elif directive.lower().startswith("todo"):
                t.fail(f"{ident}: TODO ({directive[4:].strip()})")
            elif m.group(1):
                bad += 1
                t.fail(ident)
            else:
                t.passed += 1
        if whole_skip is not None and checks == 0 and result == "SKIP":
            t.skip(f"unit/{name}", whole_skip)
        elif result not in ("OK", "SKIP", "EXPECTEDFAIL") and not bad:
            why = result
            if e.get("returncode"):
                why += f", exit status {e['returncode']}"
            t.fail(f"unit/{name}: {why}")
        elif result in ("OK", "EXPECTEDFAIL") and checks == 0:
            t.fail(f"unit/{name}: reported {result} but ran no check")


def tally_pytest(t, path):
    root = ET.parse(path).getroot()
    cases = list(root.iter("testcase"))
    if not cases:
        t.fail(f"{path}: no test ran")
    for c in cases:
        mod = c.get("classname", "").split(".")[-1]
        ident = f"{t.suite}/{mod}::{c.get('name')}"
        bad = c.find("failure")
        if bad is None:
            bad = c.find("error")
        sk = c.find("skipped")
        if bad is not None:
            msg = (bad.get("message") or "").splitlines()
            t.fail(ident + (": " + msg[0][:200] if msg else ""))
        elif sk is not None:
            t.skip(ident, sk.get("message") or "")
        else:
            t.passed += 1


def main(argv):
    if len(argv) >= 4 and argv[1] == "unit":
        suite, path, allow, status = "unit", argv[2], argv[3], argv[4:]
        fn = tally_unit
    elif len(argv) >= 5 and argv[1] == "pytest":
        suite, path, allow, status = argv[2], argv[3], argv[4], argv[5:]
        fn = tally_pytest
    else:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        t = Tally(suite, read_allow(allow))
    except (OSError, ValueError) as e:
        t = Tally(suite, [])
        t.fail(f"allow-list: {e}")
    try:
        fn(t, path)
    except (OSError, ValueError, KeyError, ET.ParseError) as e:
        t.fail(f"{path}: cannot read the results ({e})")
    if status and status[0] not in ("", "0") and not t.failed:
        t.fail(f"{suite}: the runner exited {status[0]} and no result says why")
    t.report()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
