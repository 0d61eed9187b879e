#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_landing.sh - a landing directory under load (manual "Collecting
# data"): FILES (1,000) files of SIZE (100 KB) CSV moved into a directory
# that datasets/l<r>/watch follows, as fast as os.rename goes.  Per round:
#   - the time from the first mv to the last file's version, and from
#     the last mv to it (the lag the issue asks for);
#   - files/s and MB/s taken;
#   - the check: every file is exactly one version (lineage detail names
#     it), none missed, none twice (3 s more, no version comes).
# For context, the same files copied one by one into data.csv with cp,
# as a script without a watch would (peer/mlfs > 1: the watch is faster).
#
# A benchmark, not a test: medians of ROUNDS (3); it fails only when a
# check fails or something cannot be measured.
#
# Usage: tests/bench/prep/bench_landing.sh   (as root: FUSE)
# Environment: FILES, SIZE (bytes), ROUNDS, MLFS_BUILD (default
# <repo>/build-release, set up here when missing), BENCH_DIR (scratch).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
. "$REPO/tests/bench/lib.sh"
die() { log "error: $*"; exit 1; }

FILES=${FILES:-1000}
SIZE=${SIZE:-100000}
ROUNDS=${ROUNDS:-3}
BUILD=${MLFS_BUILD:-$REPO/build-release}
W=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/bench-landing.XXXXXX")}
RES=$W/results
mkdir -p "$W" "$RES"
MNT=$W/mnt STORE=$W/store CACHE=$W/cache
ML_PID=

cleanup() {
	unmount "$MNT" "$ML_PID" mlfs
	if is_mounted "$MNT"; then
		log "a mount is still active; leaving $W in place"
		return
	fi
	rm -rf "$W"
}
trap cleanup EXIT

[[ $(id -u) == 0 ]] || die "run as root (FUSE)"
command -v jq >/dev/null || die "needs jq"
build_release

mkdir -p "$MNT" "$STORE"
"$MLFS" -f -o "cache=$CACHE" "$STORE" "$MNT" >"$W/mlfs.log" 2>&1 &
ML_PID=$!
wait_mounted "$MNT" "$ML_PID" mlfs "$W/mlfs.log"

# gen DIR: FILES files of about SIZE bytes, each unlike the others
gen() {
	python3 - "$1" "$FILES" "$SIZE" <<'PY'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    rows = ["id,x,y,z\n"]
    k = got = 0
    while got < size:
        rows.append(f"{i}-{k},{(i * 7919 + k) % 100003},{k * 0.5},{i}\n")
        got += len(rows[-1])
        k += 1
    with open(os.path.join(d, f"f{i:05}.csv"), "w") as f:
        f.write("".join(rows))
PY
}

# land SRC DST: move every file, timing the first and last mv
land() {
	python3 - "$1" "$2" <<'PY'
import os, sys, time
src, dst = sys.argv[1], sys.argv[2]
names = sorted(os.listdir(src))
t0 = time.time()
for n in names:
    os.rename(os.path.join(src, n), os.path.join(dst, n))
print(f"{t0:.6f} {time.time():.6f}")
PY
}

latest() { readlink "$1/latest" 2>/dev/null | tr -d v || echo 0; }

for ((r = 1; r <= ROUNDS; r++)); do
	d=$MNT/datasets/l$r
	src=$W/src$r landing=$W/landing$r
	mkdir -p "$src" "$landing" "$d"
	gen "$src"
	bytes=$(du -sb "$src" | cut -f1)
	echo "$landing" >"$d/watch"
	note_load "round $r"
	read -r first last < <(land "$src" "$landing")
	while (($(latest "$d") < FILES)); do
		sleep 0.005
		awk -v t="$last" -v now="$(date +%s.%N)" 'BEGIN { exit !(now - t > 300) }' &&
			die "round $r: $(latest "$d") of $FILES files taken after 300 s"
	done
	done_t=$(date +%s.%N)
	sleep 3
	n=$(latest "$d")
	((n == FILES)) || die "round $r: $n versions for $FILES files"
	for ((v = 1; v <= n; v++)); do
		jq -r .detail "$d/v$v/lineage"
	done | xargs -n1 basename | sort >"$RES/taken$r"
	ls "$landing" | sort >"$RES/landed$r"
	cmp -s "$RES/taken$r" "$RES/landed$r" ||
		die "round $r: the versions do not name each file once"
	awk -v a="$first" -v b="$last" -v c="$done_t" -v n="$FILES" -v by="$bytes" \
		'BEGIN { printf "%.3f %.3f %.1f %.1f\n", c - a, c - b, n / (c - a), by / 1e6 / (c - a) }' \
		>>"$RES/watch"
	echo "" >"$d/watch"
	# the peer: the same files copied one by one into data.csv
	p=$MNT/datasets/p$r
	mkdir "$p"
	t0=$(date +%s.%N)
	for f in "$landing"/*; do cp "$f" "$p/data.csv"; done
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f\n", b - a }' >>"$RES/cp"
	rm -rf "$src" "$landing"
done

check_binaries
wall=$(cut -d' ' -f1 "$RES/watch" | med)
lag=$(cut -d' ' -f2 "$RES/watch" | med)
fps=$(cut -d' ' -f3 "$RES/watch" | MED_DIGITS=1 med)
mbs=$(cut -d' ' -f4 "$RES/watch" | MED_DIGITS=1 med)
cpw=$(med <"$RES/cp")
cat <<EOF

landing: $FILES files of ~$SIZE bytes moved into a watched directory,
$ROUNDS rounds, mlfs $REV, load $(loadavg)
| measurement | median | rounds |
|---|---:|---|
| first mv to the last file's version (s) | $wall | $(cut -d' ' -f1 "$RES/watch" | tr '\n' ' ') |
| last mv to its version (s) | $lag | $(cut -d' ' -f2 "$RES/watch" | tr '\n' ' ') |
| files taken per second | $fps | $(cut -d' ' -f3 "$RES/watch" | tr '\n' ' ') |
| MB/s taken | $mbs | |
| cp of each file into data.csv (s), for context | $cpw | $(tr '\n' ' ' <"$RES/cp") |
| cp / watch | $(ratio "$cpw" "$wall") | |
every file one version, none missed, none twice: checked in each round
EOF
