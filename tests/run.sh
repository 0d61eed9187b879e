#!/bin/bash
# The test command: install what is missing, build with ASan+UBSan and
# warnings as errors, run the unit suite (TAP via meson test) and the
# integration suite (pytest against real mounts), and end with one line
# "N passed, N failed".  Exit status 0 only if nothing failed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MLFS_TEST_BUILD:-$ROOT/build-test}
cd "$ROOT"

bash tests/deps.sh || exit 1

if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" -Dbuildtype=debugoptimized \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dwerror=true >/dev/null || exit 1
fi
meson compile -C "$BUILD" || exit 1

# The S3 servers the tests talk to, on 127.0.0.1 only: s3rver behind a
# SigV4-verifying gateway and a fault proxy (tests/s3/start.sh).
S3DIR="$BUILD/s3"
if ! bash tests/s3/start.sh "$S3DIR" >/dev/null; then
	echo "cannot start the S3 test servers" >&2
	exit 1
fi
trap 'bash tests/s3/stop.sh "$S3DIR" >/dev/null 2>&1' EXIT
set -a
. "$S3DIR/env"
set +a
export MLFS_S3_ENV="$S3DIR/env"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== unit tests"
meson test -C "$BUILD" --suite unit --print-errorlogs --num-processes 2
unit_log="$BUILD/meson-logs/testlog.json"
read -r upass ufail < <(/usr/bin/python3 - "$unit_log" <<'PY'
import json, sys
p = f = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t["result"] in ("OK", "EXPECTEDFAIL", "SKIP"):
        p += 1
    else:
        f += 1
print(p, f)
PY
)

echo "== integration tests"
junit="$BUILD/pytest.xml"
MLFS_BUILD="$BUILD" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	--junitxml="$junit" tests/integration
read -r ipass ifail < <(/usr/bin/python3 - "$junit" <<'PY'
import sys
import xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
    s = r if r.tag == "testsuite" else r.find("testsuite")
    t, f, e, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    print(t - f - e - sk + sk, f + e)
except Exception:
    print(0, 1)
PY
)

echo "unit: $upass passed, $ufail failed; integration: $ipass passed, $ifail failed"
passed=$((upass + ipass))
failed=$((ufail + ifail))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
