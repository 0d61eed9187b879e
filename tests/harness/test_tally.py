"""The harness cannot miscount: tests/tally.py against results files made
to lie in each way a run can go wrong."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

TALLY = Path(__file__).resolve().parents[1] / "tally.py"


def tally(tmp_path, kind, content, allow="", status="0", name="integration"):
    res = tmp_path / "results"
    if content is not None:
        res.write_text(content)
    al = tmp_path / "allow"
    al.write_text(allow)
    args = [sys.executable, str(TALLY), kind]
    if kind == "pytest":
        args.append(name)
    r = subprocess.run(args + [str(res), str(al), status],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    head, *fails = r.stdout.splitlines()
    counts = [int(w) for w in head.split(":")[1].replace(",", "").split()
              if w.isdigit()]
    return counts, fails


def meson_log(*progs):
    """meson's testlog.json: (name, result, returncode, stdout) each."""
    return "".join(json.dumps({"name": f"mlfs:unit / {n}", "result": r,
                               "returncode": rc, "stdout": out}) + "\n"
                   for n, r, rc, out in progs)


def junit(*cases):
    body = ""
    for name, kind in cases:
        inner = {"pass": "", "fail": '<failure message="assert 1 == 2"/>',
                 "error": '<error message="fixture broke"/>',
                 "skip": '<skipped message="no server"/>'}[kind]
        body += (f'<testcase classname="tests.integration.test_x" '
                 f'name="{name}">{inner}</testcase>')
    return (f'<?xml version="1.0"?><testsuites><testsuite name="pytest">'
            f'{body}</testsuite></testsuites>')


def test_every_tap_line_is_a_check(tmp_path):
    out = "1..4\nok 1 - a\nok 2 - b\nnot ok 3 - c\n#   failed at x.c:3\nok 4 - d\n"
    c, fails = tally(tmp_path, "unit", meson_log(("csv", "FAIL", 1, out)))
    assert c == [3, 1, 0]
    assert fails == ["  FAIL unit/csv/c"]


def test_a_missing_or_garbled_results_file_is_a_failure(tmp_path):
    assert tally(tmp_path, "unit", None)[0] == [0, 1, 0]
    assert tally(tmp_path, "unit", "{not json\n")[0] == [0, 1, 0]
    assert tally(tmp_path, "pytest", None)[0] == [0, 1, 0]
    assert tally(tmp_path, "pytest", "<testsuite")[0] == [0, 1, 0]


def test_a_suite_that_ran_nothing_is_a_failure(tmp_path):
    c, fails = tally(tmp_path, "unit", "")
    assert c == [0, 1, 0] and "no test ran" in fails[0]
    c, fails = tally(tmp_path, "pytest", junit())
    assert c == [0, 1, 0] and "no test ran" in fails[0]


def test_a_program_that_crashed_or_timed_out_is_a_failure(tmp_path):
    c, fails = tally(tmp_path, "unit", meson_log(
        ("s3", "TIMEOUT", -15, "1..9\nok 1 - a\n"),
        ("ds", "ERROR", -11, "1..3\nok 1 - a\nok 2 - b\n"),
        ("meta", "OK", 0, "")))
    assert c == [3, 3, 0]
    assert "unit/s3: TIMEOUT, exit status -15" in fails[0]
    assert "unit/ds: ERROR, exit status -11" in fails[1]
    assert "ran no check" in fails[2]


def test_skips_fail_unless_allowed_with_a_reason(tmp_path):
    out = "1..2\nok 1 - a\nok 2 # skip no fault proxy\n"
    log = meson_log(("s3", "OK", 0, out), ("train", "SKIP", 0,
                                          "1..0 # SKIP no plugin dir\n"))
    c, fails = tally(tmp_path, "unit", log)
    assert c == [1, 2, 0]
    assert "unit/s3/check 2: skipped (no fault proxy)" in fails[0]
    assert "unit/train: skipped (no plugin dir)" in fails[1]
    allow = "# comment\nunit/s3/check* the fault proxy is optional here\n" \
            "unit/train  why not\n"
    assert tally(tmp_path, "unit", log, allow)[0] == [1, 0, 2]
    # a glob without a reason allows nothing, and says so
    c, fails = tally(tmp_path, "unit", log, "unit/*\n")
    assert c[1] == 3 and "no reason" in fails[0]


def test_pytest_failures_errors_and_skips(tmp_path):
    res = junit(("t1", "pass"), ("t2", "fail"), ("t3", "error"),
                ("t4", "skip"), ("t5", "pass"))
    c, fails = tally(tmp_path, "pytest", res, status="1")
    assert c == [2, 3, 0]
    assert fails[0] == "  FAIL integration/test_x::t2: assert 1 == 2"
    assert fails[1] == "  FAIL integration/test_x::t3: fixture broke"
    assert "t4: skipped (no server)" in fails[2]
    allow = "integration/test_x::t4 the server is optional\n"
    assert tally(tmp_path, "pytest", res, allow, "1")[0] == [2, 2, 1]


@pytest.mark.parametrize("kind,content", [
    ("unit", meson_log(("a", "OK", 0, "1..1\nok 1 - a\n"))),
    ("pytest", junit(("t1", "pass")))])
def test_a_runner_that_failed_for_no_reason_given_is_a_failure(
        tmp_path, kind, content):
    assert tally(tmp_path, kind, content, status="0")[0] == [1, 0, 0]
    c, fails = tally(tmp_path, kind, content, status="2")
    assert c == [1, 1, 0] and "exited 2" in fails[0]
