#!/bin/bash
# The test command: install what is missing, build with ASan+UBSan and
# warnings as errors, run the harness's own tests, the unit suite (TAP via
# meson test) and the integration suite (pytest against real mounts), and
# end with one line "N passed, N failed, N skipped".
#
# It cannot report what did not happen (tests/tally.py counts): every TAP
# line is a check; a missing or unreadable results file, a suite that ran
# nothing, a runner that failed, a crash or a timeout are failures; a skip
# is a failure unless tests/skips.allow lists it with a reason.  Every exit
# path -- a failed install, build or server start, a signal, a time limit
# -- prints the closing line and exits non-zero unless nothing failed.
# Nothing waits for ever: meson gives each program a timeout, pytest-timeout
# each test (MLFS_TEST_TIMEOUT seconds), and each phase has a bound.  The
# EXIT trap unmounts what the suite mounted and ends, by PID, the daemons
# and jobs it started and the S3 servers.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MLFS_TEST_BUILD:-$ROOT/build-test}
ALLOW=$ROOT/tests/skips.allow
cd "$ROOT"

passed=0
failed=0
skipped=0
stage="install"
finished=0
S3DIR=""
# A directory of this run's own: pytest's temporary files, public
# mountpoints (world-searchable, for the tests run as another user) and
# the PIDs of the daemons the suite starts.
MLFS_TEST_TMP=$(mktemp -d /tmp/mlfs-run.XXXXXX) || exit 1
chmod 755 "$MLFS_TEST_TMP"
export MLFS_TEST_TMP

# The PIDs of this shell's descendants (the daemons and their jobs while
# their daemon lives), and of processes running this build's binaries
# (jobs whose daemon died).
our_pids() {
	/usr/bin/python3 - "$$" "$BUILD/fs" <<'PY'
import os, sys
top, bindir = int(sys.argv[1]), os.path.realpath(sys.argv[2])
parent, exe = {}, {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        stat = open(f"/proc/{p}/stat").read()
        parent[int(p)] = int(stat.rsplit(")", 1)[1].split()[1])
        exe[int(p)] = os.readlink(f"/proc/{p}/exe")
    except OSError:
        pass
def ours(p):
    seen = set()
    while p > 1 and p not in seen:
        seen.add(p)
        if p == top:
            return True
        p = parent.get(p, 0)
    return False
me = os.getpid()
for p in parent:
    if p in (top, me, os.getppid()):
        continue
    if ours(p) or os.path.dirname(exe.get(p, "")) == bindir:
        print(p)
PY
}

cleanup() {
	local pids p mnt
	pids=$(our_pids)
	# Unmount what the suite mounted (under its own directory), then end
	# what is left; a clean unmount ends a daemon by itself.
	if [ -r /proc/self/mountinfo ]; then
		while read -r mnt; do
			fusermount3 -u "$mnt" 2>/dev/null ||
				fusermount3 -uz "$mnt" 2>/dev/null
		done < <(awk -v d="$MLFS_TEST_TMP/" \
			'index($5, d) == 1 && /fuse/ { print $5 }' /proc/self/mountinfo)
	fi
	for p in $pids; do
		kill -TERM "$p" 2>/dev/null
	done
	for _ in $(seq 50); do
		local alive=0
		for p in $pids; do
			kill -0 "$p" 2>/dev/null && alive=1
		done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for p in $pids; do
		kill -KILL "$p" 2>/dev/null
	done
	if [ -n "$S3DIR" ]; then
		bash tests/s3/stop.sh "$S3DIR" >/dev/null 2>&1
	fi
}

finish() {
	local rc=$?
	trap - EXIT INT TERM
	cleanup
	if [ "$finished" != 1 ]; then
		echo "run.sh: stopped during $stage (status $rc)" >&2
		failed=$((failed + 1))
	fi
	if [ "$failed" -eq 0 ]; then
		rm -rf "$MLFS_TEST_TMP"
	else
		echo "run.sh: the run's files are kept in $MLFS_TEST_TMP" >&2
	fi
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit $?
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# tally SUITE-ARGS...: run tests/tally.py, print its report, add its counts.
tally() {
	local out head
	out=$(/usr/bin/python3 tests/tally.py "$@") || {
		echo "run.sh: tally.py $1 failed" >&2
		failed=$((failed + 1))
		return
	}
	echo "$out"
	head=$(head -n 1 <<<"$out")
	read -r p f s < <(sed -E 's/^[^:]*: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/' <<<"$head")
	if ! [[ "$p $f $s" =~ ^[0-9]+\ [0-9]+\ [0-9]+$ ]]; then
		echo "run.sh: cannot read \"$head\"" >&2
		failed=$((failed + 1))
		return
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
}

bash tests/deps.sh || exit 1

stage="build"
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" -Dbuildtype=debugoptimized \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dwerror=true >/dev/null || exit 1
fi
meson compile -C "$BUILD" || exit 1

PYTEST=(/usr/bin/python3 -m pytest -q -p no:cacheprovider
	-p timeout --timeout="${MLFS_TEST_TIMEOUT:-300}" -o timeout_method=thread)

stage="the harness's own tests"
echo "== harness"
timeout -k 10 5m "${PYTEST[@]}" --junitxml="$BUILD/harness.xml" tests/harness
tally pytest harness "$BUILD/harness.xml" "$ALLOW" "$?"

# The S3 servers the tests talk to, on 127.0.0.1 only: s3rver behind a
# SigV4-verifying gateway and a fault proxy (tests/s3/start.sh).
stage="the S3 test servers' start"
S3DIR="$BUILD/s3"
if ! bash tests/s3/start.sh "$S3DIR" >/dev/null; then
	echo "cannot start the S3 test servers" >&2
	exit 1
fi
set -a
. "$S3DIR/env"
set +a
export MLFS_S3_ENV="$S3DIR/env"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

stage="the unit tests"
echo "== unit tests"
unit_log="$BUILD/meson-logs/testlog.json"
rm -f "$unit_log"
timeout -k 10 20m meson test -C "$BUILD" --suite unit --print-errorlogs \
	--num-processes 2
tally unit "$unit_log" "$ALLOW" "$?"

stage="the integration tests"
echo "== integration tests"
junit="$BUILD/pytest.xml"
rm -f "$junit"
MLFS_BUILD="$BUILD" timeout -k 30 40m "${PYTEST[@]}" \
	-n "${MLFS_TEST_WORKERS:-2}" --dist loadgroup \
	--basetemp="$MLFS_TEST_TMP/pytest" \
	--junitxml="$junit" tests/integration
tally pytest integration "$junit" "$ALLOW" "$?"

finished=1
