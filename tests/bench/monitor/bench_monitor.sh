#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_monitor.sh - deployment monitoring (issue 16; doc/manual.md,
# Deployments, "Monitoring") measured: what it costs each row, and what
# the drift computation costs against numpy + scipy, in one run.
#
# A benchmark, not a test: it measures, prints medians and ratios, and marks
# each goal met or missed; it fails only when something cannot be measured.
#
#   1. per-row overhead of monitoring: one row written and its answer
#      line read on ONE open handle of deployments/<d>/predict (as
#      tests/bench/serve/serve_bench.c's handle measurement), the rows of
#      a file in turn, through the same model deployed twice: with
#      "monitor": {"interval": MON_INTERVAL, "window": W} (latency
#      histograms, the ring of the last W rows' inputs and prediction,
#      and every MON_INTERVAL s a metrics line and the drift of the
#      window, computed by the committer thread) and with "monitor":
#      false.  Both log every answer to their prediction store (that is
#      not monitoring's: no spec field turns it off), so the difference
#      is monitoring's own.  Two models: iris (logistic on the 4 inputs,
#      its 150 rows in turn, window IRIS_WINDOW; a reference of
#      105 rows, its train split) and wide (logistic on
#      WIDE_FEATURES numeric inputs, WIDE_ROWS training rows, so a
#      reference of 10,000 rows; 1,000 live rows, every other input
#      shifted by 0.25 sd, in turn; window WIDE_WINDOW).  Each window is
#      filled before measuring (the drift of a full window costs most).
#      pair_bench.c drives both deployments' handles side by side: LAT_N
#      rows each, in blocks of LAT_BLOCK rows taken in turn, so that both
#      see the same seconds of a shared machine (a p50 here moves by 1.5x
#      from one second to the next); LAT_ROUNDS rounds; the CPU time the
#      hypervisor stole meanwhile (/proc/stat) is printed.  The
#      committer's drift ticks load the CPU of both sides alike: the
#      idle figure below is their cost.
#      Checked after: the monitored deployments wrote metrics lines and
#      their drift window is full; the others say {"monitor": false}.
#      As context: deployments/wide-on/drift (the window's drift, made
#      when read: snapshot, every input and the prediction, JSON), read
#      DRIFT_READS times by cat, by open + read + close, and stat alone
#      (a generated file's getattr makes it too, for its size); and the
#      daemon's CPU time over IDLE_S s with no traffic (the committer
#      computing the drift of the full windows every MON_INTERVAL s).
#   2. drift computation: drift_bench.c, compiled here with fs/ml/drift.c
#      (-O2, as fs/meson.build's flags for it: -D_GNU_SOURCE), on
#      DRIFT_NUM numeric features, then DRIFT_NUM/2 numeric + DRIFT_NUM/2
#      categorical, of DRIFT_REF reference and DRIFT_LIVE live rows:
#      building the references (drift_ref_*), then drift_numbers /
#      drift_categories of every feature (what the committer does each
#      interval), DRIFT_RUNS runs each; and the window's transpose
#      (snapshot_take, under the deployment's lock).  The peer (bench_drift.py, PY_RUNS runs): numpy + scipy on
#      the same data: scipy.stats.ks_2samp per numeric feature (and
#      chi2_contingency per categorical one, after counting with numpy);
#      as context with method="asymp" and with the PSI too (numpy), and
#      drift.c's figures checked against scipy's.
#   3. alert latency after an injected shift: deployment shift-<r> (iris's
#      m@1, {"interval": MON_INTERVAL, "window": SHIFT_WINDOW, "psi":
#      0.2}) takes SHIFT_WINDOW rows as training saw them, then rows whose
#      petal_length moved up by one standard deviation (of the training
#      rows), in blocks of SHIFT_BLOCK, one block every SHIFT_GAP s, until
#      alerts says psi of petal_length was raised: the shifted rows it
#      took and the seconds from the first of them, over SHIFT_ROUNDS
#      rounds (a new deployment each).
#
# Goals: (1) monitoring on costs at most 1.10x monitoring off, p50 per
# row on a handle (judged on the ratio of the medians over rounds of
# each side's p50), for each model; (2) drift of 50 numeric features over
# a 10,000-row window (10,000 reference rows) in <= 20 ms (median).
#
# Usage: tests/bench/monitor/bench_monitor.sh   (needs FUSE: /dev/fuse,
#        fusermount3)
# Environment:
#   MLFS_BUILD    release build dir (default: <repo>/build-release); it is
#                 configured -Dbuildtype=release -Dtests=false
#                 -Db_sanitize=none (set up here when missing).  Jobs run
#                 $MLFS_BUILD/fs/mlfs-job: use a private build dir on a
#                 shared tree
#   BENCH_DIR     scratch dir (default: mktemp -d in $TMPDIR or /tmp); must
#                 be new or empty; removed at exit
#   LAT_N         rows per side and round (20000)
#   LAT_BLOCK     rows of a block: each side's blocks in turn (50)
#   LAT_ROUNDS    rounds (5)
#   MON_INTERVAL  the monitored deployments' interval, seconds (1; the
#                 default of a spec is 10: 1 makes the drift of the window
#                 run during every measurement)
#   IRIS_WINDOW   window of iris-on (1000, the default of a spec)
#   WIDE=0        leave out the wide model (default 1)
#   WIDE_FEATURES inputs of the wide model (50)
#   WIDE_ROWS     its training dataset's rows (15000: the 0.7 train split
#                 gives more than 10,000, so reference.csv has 10,000)
#   WIDE_WINDOW   window of wide-on (10000)
#   DRIFT_READS   reads of deployments/wide-on/drift (7)
#   IDLE_S        seconds of the idle CPU measurement (5)
#   DRIFT_NUM     features of the drift measurement (50; even)
#   DRIFT_REF     reference rows (10000)
#   DRIFT_LIVE    live rows (10000)
#   DRIFT_RUNS    runs of the C side (20)
#   PY_RUNS       runs of the numpy + scipy side (10)
#   SEED          the data's seed (1)
#   MLFS_REV      what to call the mlfs measured (default: git rev of REPO)
#   PY            a Python 3 with numpy and scipy (/usr/bin/python3;
#                 Debian: python3-scipy)
#
# Needs: meson, ninja, cc, pkg-config, fusermount3, jq, python3-scipy.
# About 1.5 minutes on 2 vCPUs once the release build is there.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${MLFS_BUILD:-$REPO/build-release}
LAT_N=${LAT_N:-20000}
LAT_BLOCK=${LAT_BLOCK:-50}
LAT_ROUNDS=${LAT_ROUNDS:-5}
MON_INTERVAL=${MON_INTERVAL:-1}
IRIS_WINDOW=${IRIS_WINDOW:-1000}
WIDE=${WIDE:-1}
WIDE_FEATURES=${WIDE_FEATURES:-50}
WIDE_ROWS=${WIDE_ROWS:-15000}
WIDE_WINDOW=${WIDE_WINDOW:-10000}
DRIFT_READS=${DRIFT_READS:-7}
IDLE_S=${IDLE_S:-5}
DRIFT_NUM=${DRIFT_NUM:-50}
DRIFT_REF=${DRIFT_REF:-10000}
DRIFT_LIVE=${DRIFT_LIVE:-10000}
DRIFT_RUNS=${DRIFT_RUNS:-20}
PY_RUNS=${PY_RUNS:-10}
SEED=${SEED:-1}
PY=${PY:-/usr/bin/python3}
SHIFT_WINDOW=${SHIFT_WINDOW:-1000}
SHIFT_BLOCK=${SHIFT_BLOCK:-50}
SHIFT_GAP=${SHIFT_GAP:-0.1}
SHIFT_ROUNDS=${SHIFT_ROUNDS:-3}
IRIS=$REPO/examples/data/iris.csv
PB_SRC=$HERE/pair_bench.c
DB_SRC=$HERE/drift_bench.c
DRIFT_C=$REPO/fs/ml/drift.c
START=$(date +%s)

# log, is_mounted, unmount, wait_mounted, loadavg, compilers, ratio,
# verdict, build_release, check_binaries
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
die() { log "error: $*"; exit 1; }

for cmd in meson cc pkg-config fusermount3 awk jq; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
"$PY" -c 'import numpy, scipy.stats' 2>/dev/null ||
	die "$PY lacks numpy or scipy (apt-get install python3-scipy)"
[[ -r $IRIS && -r $PB_SRC && -r $DB_SRC && -r $DRIFT_C ]] ||
	die "iris.csv, pair_bench.c, drift_bench.c or fs/ml/drift.c missing"
((DRIFT_NUM >= 2 && DRIFT_NUM % 2 == 0)) || die "DRIFT_NUM must be even, 2 or more"
((LAT_ROUNDS >= 1 && LAT_N >= 10 && LAT_BLOCK >= 1)) ||
	die "LAT_ROUNDS >= 1, LAT_N >= 10 and LAT_BLOCK >= 1, please"

# ---------------------------------------------------------------- scratch
if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p "$BENCH_DIR"
	[[ -z $(ls -A "$BENCH_DIR") ]] || die "BENCH_DIR $BENCH_DIR is not empty"
	W=$(cd "$BENCH_DIR" && pwd -P)
else
	W=$(mktemp -d "${TMPDIR:-/tmp}/mlfs-bench-monitor.XXXXXX")
	W=$(cd "$W" && pwd -P)
fi
RES=$W/res
DATA=$W/data
STORE=$W/store
CACHE=$W/cache
MNT=$W/mnt
mkdir -p "$RES" "$DATA" "$STORE" "$CACHE" "$MNT" "$DATA/drift-num" "$DATA/drift-mix"

ML_PID=

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	unmount "$MNT" "$ML_PID" mlfs
	if is_mounted "$MNT"; then
		log "a mount is still active; leaving $W in place"
	else
		rm -rf "$W"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cpu_ticks: "total steal" of /proc/stat's cpu line
cpu_ticks() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9; exit }' /proc/stat; }
# field FILE NAME K: field K of the line of FILE that starts with NAME
field() { awk -v n="$2" -v k="$3" '$1 == n { print $k; exit }' "$1"; }

note_load start

# ---------------------------------------------------------------- build
build_release

log "building the C clients (pair_bench.c, drift_bench.c with fs/ml/drift.c)"
cc -O2 -Wall -Wextra -o "$W/pair_bench" "$PB_SRC" || die "cannot build pair_bench"
PB=$W/pair_bench
cc -O2 -Wall -Wextra -std=c17 -D_GNU_SOURCE -I"$REPO/fs/ml" \
	-o "$W/drift_bench" "$DB_SRC" "$DRIFT_C" -lm || die "cannot build drift_bench"
DB=$W/drift_bench

# ---------------------------------------------------------------- 2. drift
# first, before the mount: the daemon's monitors compute drift every
# MON_INTERVAL s, which would share the CPU with this
HALF=$((DRIFT_NUM / 2))
log "2. drift: $DRIFT_NUM numeric features, $DRIFT_REF reference x $DRIFT_LIVE live rows, $DRIFT_RUNS runs (C)"
note_load drift-c
"$DB" "$DRIFT_NUM" 0 "$DRIFT_REF" "$DRIFT_LIVE" "$DRIFT_RUNS" "$SEED" \
	"$DATA/drift-num" >"$RES/drift-num-c.txt" || die "drift_bench failed"
log "C, $DRIFT_NUM numeric: $(paste -sd';' "$RES/drift-num-c.txt")"
log "2. drift: $HALF numeric + $HALF categorical features (C)"
"$DB" "$HALF" "$HALF" "$DRIFT_REF" "$DRIFT_LIVE" "$DRIFT_RUNS" "$SEED" \
	"$DATA/drift-mix" >"$RES/drift-mix-c.txt" || die "drift_bench failed"
log "C, $HALF + $HALF: $(paste -sd';' "$RES/drift-mix-c.txt")"
log "2. drift: numpy + scipy on the same data, $PY_RUNS runs each"
note_load drift-py
"$PY" "$HERE/bench_drift.py" "$DATA/drift-num" "$DRIFT_NUM" 0 "$DRIFT_REF" \
	"$DRIFT_LIVE" "$PY_RUNS" >"$RES/drift-num-py.txt" || die "bench_drift.py failed"
log "scipy, $DRIFT_NUM numeric: $(paste -sd';' "$RES/drift-num-py.txt")"
"$PY" "$HERE/bench_drift.py" "$DATA/drift-mix" "$HALF" "$HALF" "$DRIFT_REF" \
	"$DRIFT_LIVE" "$PY_RUNS" >"$RES/drift-mix-py.txt" || die "bench_drift.py failed"
log "scipy, $HALF + $HALF: $(paste -sd';' "$RES/drift-mix-py.txt")"
rm -rf "$DATA/drift-num" "$DATA/drift-mix"

# ---------------------------------------------------------------- data
# iris: its 150 rows' inputs, in turn
tail -n +2 "$IRIS" | cut -d, -f1-4 | grep . >"$DATA/iris-rows.csv"
if [[ $WIDE == 1 ]]; then
	log "generating wide: $WIDE_ROWS x $WIDE_FEATURES, and 1000 live rows"
	"$PY" - "$DATA/wide.csv" "$DATA/wide-rows.csv" "$WIDE_ROWS" \
		"$WIDE_FEATURES" "$SEED" <<'EOF' || die "cannot generate wide"
import sys
import numpy as np

out, live_out, n, f, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
rng = np.random.default_rng(seed)
mu = rng.normal(0, 10, f)
sd = 0.5 + 4 * rng.random(f)
w = rng.standard_normal(f)
x = mu + sd * rng.standard_normal((n, f))
y = np.where(((x - mu) / sd) @ w + rng.standard_normal(n) > 0, "yes", "no")
with open(out, "w") as fp:
    fp.write(",".join("x%d" % j for j in range(f)) + ",y\n")
    for row, label in zip(x, y):
        fp.write(",".join("%.4f" % v for v in row) + "," + label + "\n")
shift = np.where(np.arange(f) % 2 == 1, 0.25 * sd, 0)
live = mu + shift + sd * rng.standard_normal((1000, f))
with open(live_out, "w") as fp:
    for row in live:
        fp.write(",".join("%.4f" % v for v in row) + "\n")
EOF
fi

# ---------------------------------------------------------------- mount
log "mounting mlfs"
"$MLFS" -f -o "cache=$CACHE" "$STORE" "$MNT" >"$W/mlfs.log" 2>&1 &
ML_PID=$!
wait_mounted "$MNT" "$ML_PID" mlfs "$W/mlfs.log"

# mlfs_job JOB SPEC: run a training job to its end
mlfs_job() {
	local job=$1 spec=$2 st
	printf '%s\n' "$spec" >"$MNT/train/$job.json" ||
		{ tail -n 3 "$MNT/.mlfs/errors" >&2 2>/dev/null; die "spec for $job refused: $spec"; }
	st=$(cat "$MNT/jobs/$job/wait")
	if [[ $st != succeeded ]]; then
		tail -n 20 "$MNT/jobs/$job/log" >&2 || true
		check_binaries
		die "job $job: $st"
	fi
}

# deploy NAME SPEC: mkdir deployments/NAME and write its spec
deploy() {
	mkdir "$MNT/deployments/$1"
	printf '%s\n' "$2" >"$MNT/deployments/$1/spec" ||
		{ tail -n 3 "$MNT/.mlfs/errors" >&2 2>/dev/null; die "deployment $1 refused: $2"; }
}

MODELS=(iris)
mkdir "$MNT/datasets/iris"
cp "$IRIS" "$MNT/datasets/iris/data.csv" || die "cp iris.csv into mlfs failed"
log "training m@1 on iris"
note_load train
mlfs_job a '{"dataset": "iris", "algorithm": "logistic", "model": "m"}'
deploy iris-on "{\"candidates\": [\"m@1\"], \"monitor\": {\"interval\": $MON_INTERVAL, \"window\": $IRIS_WINDOW}}"
deploy iris-off '{"candidates": ["m@1"], "monitor": false}'
if [[ $WIDE == 1 ]]; then
	MODELS+=(wide)
	mkdir "$MNT/datasets/wide"
	cp "$DATA/wide.csv" "$MNT/datasets/wide/data.csv" || die "cp wide.csv into mlfs failed"
	log "training w@1 on wide"
	mlfs_job b '{"dataset": "wide", "algorithm": "logistic", "model": "w", "label": "y"}'
	deploy wide-on "{\"candidates\": [\"w@1\"], \"monitor\": {\"interval\": $MON_INTERVAL, \"window\": $WIDE_WINDOW}}"
	deploy wide-off '{"candidates": ["w@1"], "monitor": false}'
	rm -f "$DATA/wide.csv"
fi
log "on: $(jq -c .monitor "$MNT/deployments/iris-on/spec"); off: $(jq -c .monitor "$MNT/deployments/iris-off/spec")"

# window MODEL: the window of MODEL-on
window() { if [[ $1 == iris ]]; then echo "$IRIS_WINDOW"; else echo "$WIDE_WINDOW"; fi; }

# ---------------------------------------------------------------- 1. overhead
for m in "${MODELS[@]}"; do
	n=$(window "$m")
	log "1. filling the windows: $n rows through $m-on and $m-off"
	"$PB" "$MNT/deployments/$m-on/predict" "$MNT/deployments/$m-off/predict" \
		"$DATA/$m-rows.csv" "$n" "$LAT_BLOCK" "$m-on-" "$m-off-" >/dev/null ||
		die "filling $m-on and $m-off failed"
done

log "1. per-row overhead: $LAT_ROUNDS rounds of $LAT_N rows a side, on and off in blocks of $LAT_BLOCK"
note_load latency
read -r TICK0 STEAL0 < <(cpu_ticks)
: >"$RES/lat.tsv"
for ((r = 1; r <= LAT_ROUNDS; r++)); do
	for m in "${MODELS[@]}"; do
		# on first in odd rounds, off first in even ones
		if ((r % 2)); then a=on b=off; else a=off b=on; fi
		read -r a50 a99 amean b50 b99 bmean < <("$PB" \
			"$MNT/deployments/$m-$a/predict" "$MNT/deployments/$m-$b/predict" \
			"$DATA/$m-rows.csv" "$LAT_N" "$LAT_BLOCK" "$m-$a-" "$m-$b-" ||
			echo fail) || true
		[[ -n ${bmean:-} ]] || die "latency of $m failed"
		printf '%s\t%s %s %s\n' "$m-$a" "$a50" "$a99" "$amean" "$m-$b" "$b50" "$b99" "$bmean" >>"$RES/lat.tsv"
		log "round $r $m: p50 p99 mean (us) $a $a50 $a99 $amean; $b $b50 $b99 $bmean"
	done
done
read -r TICK1 STEAL1 < <(cpu_ticks)
STEAL=$(awk -v t="$((TICK1 - TICK0))" -v s="$((STEAL1 - STEAL0))" 'BEGIN { if (t > 0) printf "%.1f %%", 100 * s / t; else print "nan" }')
log "CPU stolen by the hypervisor during the rounds: $STEAL"

# lat_stat KIND FIELD: the median over rounds of field (1 p50, 2 p99, 3 mean)
lat_stat() {
	awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$RES/lat.tsv" |
		awk -v f="$2" '{ print $f }' | med
}
# round_ratios A B: the p50 of A over that of B in each round, in order
round_ratios() {
	awk -F'\t' -v a="$1" -v b="$2" '
		$1 == a { split($2, f, " "); x[++na] = f[1] }
		$1 == b { split($2, f, " "); y[++nb] = f[1] }
		END { for (i = 1; i <= na && i <= nb; i++) if (y[i] > 0) printf "%.2f\n", x[i] / y[i] }' \
		"$RES/lat.tsv"
}

log "1. checking that monitoring ran (and did not where off)"
sleep "$(awk -v i="$MON_INTERVAL" 'BEGIN { print i + 1.2 }')" # a line after the last rows
for m in "${MODELS[@]}"; do
	on=$MNT/deployments/$m-on off=$MNT/deployments/$m-off
	lines=$(wc -l <"$on/metrics")
	reqs=$(jq -s 'map(.requests) | add // 0' "$on/metrics")
	win=$(jq '.window' "$on/drift")
	nfeat=$(jq '[.features[] | select(.compared != false)] | length' "$on/drift")
	refrows=$(jq '[.features[] | .reference_rows // empty] | max' "$on/drift")
	maxpsi=$(jq -c '[.features[] | select(.psi != null)] | max_by(.psi) | {name, psi}' "$on/drift")
	offdrift=$(jq -c . "$off/drift")
	offlines=$({ cat "$off/metrics" 2>/dev/null || true; } | wc -l)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$lines" "$reqs" "$win" \
		"$nfeat" "$refrows" "$maxpsi" "$offdrift" "$offlines" >>"$RES/check.tsv"
	log "$m-on: $lines metrics lines ($reqs requests), drift window $win, $nfeat compared (inputs and prediction), reference rows $refrows, max psi $maxpsi; $m-off: drift $offdrift, $offlines metrics lines"
	[[ $win == "$(window "$m")" && $lines -gt 0 && $offdrift == '{"monitor":false}' ]] ||
		die "monitoring of $m is not as set up: window $win, $lines lines, off says $offdrift"
done

if [[ $WIDE == 1 ]]; then
	log "1. context: reading deployments/wide-on/drift, $DRIFT_READS times each way"
	note_load drift-read
	"$PY" - "$MNT/deployments/wide-on/drift" "$DRIFT_READS" >"$RES/drift-read.txt" <<'EOF' ||
import os, statistics, subprocess, sys, time

path, n = sys.argv[1], int(sys.argv[2])


def read():
    fd = os.open(path, os.O_RDONLY)
    while os.read(fd, 1 << 20):
        pass
    os.close(fd)


ways = {"cat": lambda: subprocess.run(["cat", path], check=True,
                                      stdout=subprocess.DEVNULL),
        "read": read, "stat": lambda: os.stat(path)}
for name, f in ways.items():
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        t.append((time.perf_counter() - t0) * 1e3)
    print("%s %.3f %.3f %.3f" % (name, statistics.median(t), min(t), max(t)))
EOF
		die "cannot read wide-on/drift"
	log "drift reads (ms: median min max): $(paste -sd';' "$RES/drift-read.txt")"
fi

log "1. context: the daemon's CPU time over $IDLE_S s without traffic"
note_load idle
c0=$(cpu_s "$ML_PID")
sleep "$IDLE_S"
c1=$(cpu_s "$ML_PID")
IDLE_CPU=$(awk -v a="$c0" -v b="$c1" -v s="$IDLE_S" 'BEGIN { printf "%.3f", (b - a) / s }')
log "daemon CPU: $IDLE_CPU s per s"

# ---------------------------------------------------------- 3. alert latency
log "3. alert latency: $SHIFT_ROUNDS rounds, window $SHIFT_WINDOW"
note_load shift
# iris's rows as training saw them, and with petal_length (column 3)
# moved up by one standard deviation of the training rows
awk -F, 'NR > 1 { print $1 "," $2 "," $3 "," $4 }' "$IRIS" >"$DATA/shift-base.csv"
SD=$(awk -F, '{ s += $3; q += $3 * $3; n++ } END { printf "%.6f", sqrt(q / n - (s / n) ^ 2) }' "$DATA/shift-base.csv")
awk -F, -v sd="$SD" '{ printf "%s,%s,%.4f,%s\n", $1, $2, $3 + sd, $4 }' "$DATA/shift-base.csv" >"$DATA/shift-moved.csv"
: >"$RES/shift.tsv"
for ((r = 1; r <= SHIFT_ROUNDS; r++)); do
	dep=shift-$r
	deploy "$dep" "{\"candidates\": [\"m@1\"], \"monitor\": {\"interval\": $MON_INTERVAL, \"window\": $SHIFT_WINDOW, \"psi\": 0.2, \"ks_p\": 1e-300, \"chi2_p\": 1e-300}}"
	for ((k = 0; k < SHIFT_WINDOW; k += 150)); do
		cat "$DATA/shift-base.csv"
	done | head -n "$SHIFT_WINDOW" >"$MNT/deployments/$dep/predict" ||
		die "filling $dep failed"
	sleep "$(awk -v i="$MON_INTERVAL" 'BEGIN { print 2 * i + 0.5 }')"
	if grep -q '"raised"' "$MNT/deployments/$dep/alerts"; then
		die "$dep raised an alert before the shift"
	fi
	t0=$(date +%s.%N)
	sent=0 got=""
	while ((sent < 20 * SHIFT_WINDOW)); do
		# the next block of the moved rows, in turn
		awk -v s="$sent" -v n="$SHIFT_BLOCK" \
			'{ l[NR - 1] = $0 } END { for (i = 0; i < n; i++) print l[(s + i) % NR] }' \
			"$DATA/shift-moved.csv" >"$MNT/deployments/$dep/predict"
		sent=$((sent + SHIFT_BLOCK))
		sleep "$SHIFT_GAP"
		got=$(jq -c 'select(.rule == "psi" and .subject == "petal_length" and .state == "raised")' \
			"$MNT/deployments/$dep/alerts" | head -1)
		[[ -n $got ]] && break
	done
	[[ -n $got ]] || die "no psi alert on $dep after $sent shifted rows"
	t1=$(date +%s.%N)
	printf '%s\t%s\t%s\n' "$sent" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" \
		"$(jq -r .value <<<"$got" | awk '{ printf "%.3f", $1 }')" >>"$RES/shift.tsv"
	log "round $r: alert after $sent shifted rows, $(tail -1 "$RES/shift.tsv" | cut -f2) s: $got"
done

# ---------------------------------------------------------------- report
note_load end
check_binaries
unmount "$MNT" "$ML_PID" mlfs
ML_PID=

# c FILE NAME K: field K (2 median, 3 min, 4 max) of NAME in a result file
c() { field "$RES/$1" "$2" "$3"; }

D_NUM=$(c drift-num-c.txt drift 2)
D_MIX=$(c drift-mix-c.txt drift 2)
P_NUM=$(c drift-num-py.txt scipy 2)
P_MIX=$(c drift-mix-py.txt scipy 2)

{
	cat <<EOF

==== mlfs monitoring benchmark: summary ====
mlfs        $REV
machine     $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs, $(uname -r)
load avg    $(awk -F'\t' '{ printf "%s %s%s; ", $1, $2, $3 ? " (" $3 " compilers running)" : "" }' "$RES/load.tsv")
minutes     $((($(date +%s) - START + 59) / 60))

1. per-row overhead of monitoring, one row per call on one handle (medians of $LAT_ROUNDS rounds, $LAT_N rows a side each,
   on and off side by side in blocks of $LAT_BLOCK rows)
   monitor on: {"interval": $MON_INTERVAL, "window": W}; off: "monitor": false; both log to the prediction store
                                          p50 us    p99 us   mean us
EOF
	for m in "${MODELS[@]}"; do
		ON50=$(lat_stat "$m-on" 1) OFF50=$(lat_stat "$m-off" 1)
		R=$(ratio "$ON50" "$OFF50")
		if [[ $m == iris ]]; then
			desc="iris, 4 inputs, window $IRIS_WINDOW"
		else
			desc="wide, $WIDE_FEATURES inputs, window $WIDE_WINDOW"
		fi
		printf '   %s\n' "$desc"
		printf '     monitor on                      %9s %9s %9s\n' "$ON50" "$(lat_stat "$m-on" 2)" "$(lat_stat "$m-on" 3)"
		printf '     monitor off                     %9s %9s %9s\n' "$OFF50" "$(lat_stat "$m-off" 2)" "$(lat_stat "$m-off" 3)"
		printf '     ratio p50 on/off (of the medians) %7sx          goal <= 1.10x: %s\n' "$R" "$(verdict "$R <= 1.10")"
		printf '     ratio p50 in each round         %s (median %s)\n' \
			"$(round_ratios "$m-on" "$m-off" | paste -sd' ')" "$(round_ratios "$m-on" "$m-off" | med)"
		printf '     ratio p99 on/off (of the medians) %7sx          (context)\n' \
			"$(ratio "$(lat_stat "$m-on" 2)" "$(lat_stat "$m-off" 2)")"
		awk -F'\t' -v m="$m" '$1 == m { printf "     checked: %s metrics lines (%s requests), drift window %s, %s compared, %s reference rows, max psi %s; off: %s\n", $2, $3, $4, $5, $6, $7, $8 }' "$RES/check.tsv"
	done
	printf '   CPU stolen by the hypervisor during the rounds: %s\n' "$STEAL"
	if [[ $WIDE == 1 ]]; then
		printf '   context: deployments/wide-on/drift (%s inputs + prediction, %s rows), medians of %s, ms:\n' \
			"$WIDE_FEATURES" "$WIDE_WINDOW" "$DRIFT_READS"
		printf '     cat %s; open + read + close %s; stat alone %s (getattr makes it too)\n' \
			"$(c drift-read.txt cat 2)" "$(c drift-read.txt read 2)" "$(c drift-read.txt stat 2)"
	fi
	printf '   context: daemon CPU without traffic (monitors ticking every %s s): %s s per s\n' "$MON_INTERVAL" "$IDLE_CPU"

	cat <<EOF

2. drift computation, $DRIFT_REF reference x $DRIFT_LIVE live rows (C: drift.c -O2, median of $DRIFT_RUNS; scipy: median of $PY_RUNS)
                                             median ms   min ms   max ms
EOF
	for set in num mix; do
		if [[ $set == num ]]; then
			printf '   %s numeric features\n' "$DRIFT_NUM"
		else
			printf '   %s numeric + %s categorical features\n' "$HALF" "$HALF"
		fi
		for k in ref drift snapshot; do
			case $k in
			ref) d="build the references (once a revision)" ;;
			drift) d="drift of every feature (each interval)" ;;
			snapshot) d="window transpose, under the lock" ;;
			esac
			printf '     %-41s %9s %8s %8s\n' "$d" "$(c "drift-$set-c.txt" "$k" 2)" "$(c "drift-$set-c.txt" "$k" 3)" "$(c "drift-$set-c.txt" "$k" 4)"
		done
		for k in scipy asymp full; do
			case $k in
			scipy) d="numpy + scipy: ks_2samp (the peer)" ;;
			asymp) d="  ks_2samp(method=\"asymp\") (context)" ;;
			full) d="  ks_2samp and PSI, as drift.c (context)" ;;
			esac
			printf '     %-41s %9s %8s %8s\n' "$d" "$(c "drift-$set-py.txt" "$k" 2)" "$(c "drift-$set-py.txt" "$k" 3)" "$(c "drift-$set-py.txt" "$k" 4)"
		done
		printf '     drift.c / scipy                              %sx\n' \
			"$(ratio "$(c "drift-$set-c.txt" drift 2)" "$(c "drift-$set-py.txt" scipy 2)")"
		awk '$1 == "agree" { printf "     agreement with scipy (largest |diff|): psi %s, ks %s, ks_p %s, chi2 %s, chi2_p %s, dof mismatches %s\n", $2, $3, $4, $5, $6, $7 }' "$RES/drift-$set-py.txt"
	done
	printf '   goal: %s numeric features <= 20 ms: %s ms, %s (%sx the goal; scipy %s ms)\n' "$DRIFT_NUM" "$D_NUM" \
		"$(verdict "$D_NUM <= 20")" "$(ratio "$D_NUM" 20)" "$P_NUM"
	printf '   %s + %s: %s ms (scipy %s ms)\n' "$HALF" "$HALF" "$D_MIX" "$P_MIX"

	cat <<EOF

3. alert latency after an injected shift: petal_length up 1 sd, psi 0.2, window $SHIFT_WINDOW,
   interval $MON_INTERVAL s, blocks of $SHIFT_BLOCK rows every $SHIFT_GAP s (medians of $SHIFT_ROUNDS rounds)
EOF
	printf '   shifted rows until the alert: %s (min %s, max %s); seconds: %s (min %s, max %s)\n' \
		"$(cut -f1 "$RES/shift.tsv" | med)" "$(cut -f1 "$RES/shift.tsv" | sort -n | head -1)" \
		"$(cut -f1 "$RES/shift.tsv" | sort -n | tail -1)" "$(cut -f2 "$RES/shift.tsv" | med)" \
		"$(cut -f2 "$RES/shift.tsv" | sort -n | head -1)" "$(cut -f2 "$RES/shift.tsv" | sort -n | tail -1)"
	printf '   psi when raised: %s\n' "$(cut -f3 "$RES/shift.tsv" | paste -sd' ')"
} | tee "$RES/summary.txt"
