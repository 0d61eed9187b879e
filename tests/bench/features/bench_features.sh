#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_features.sh - mlfs feature sets (issue 13) measured side by side
# with pandas, in one run: the parts of issue 13's benchmark that exist.
#
# A benchmark, not a test: it measures, prints medians and ratios
# (pandas seconds / mlfs seconds: above 1 means mlfs is faster); it fails
# only when something cannot be measured or the two sides disagree.
#
#   data: N events (MLFS_BENCH_EVENTS, default 10,000,000) of 100,000
#     entities over 2024, "customer_id,ts,amount,country", in time order;
#     ts in integer seconds since the epoch (pandas reads that fastest: an
#     int64 column and one vectorised to_datetime; ISO text would cost it a
#     date parse); 1 % of the events repeat an (entity, time); 0.5 % of
#     amounts and of countries missing (bench_features.py gen says more).
#     The feature set: entity customer_id, timestamp ts, txns_1h (count,
#     1h), amount_sum_7d (sum, 7d), amount_mean_1d (mean, 1d), country_last
#     (last).  The CSV is warm in the page cache for both sides.
#   1. offline sync, ROUNDS times: mlfs from the `cp` of the CSV into
#      datasets/<d>/data.csv (made by mkdir before the clock starts), the
#      spec written to features/<fs>/spec ("source": <d>), `echo sync >
#      ctl`, to the end of `cat jobs/<fs>-sync-1/wait`; against pandas
#      from read_csv to the end of to_csv of the same features
#      (bench_features.py sync: stable sort, groupby.rolling with time
#      windows, groupby ffill, the last row per (entity, time)).  Every
#      value of mlfs's offline.csv is checked against pandas' (1e-9
#      relative, missing where missing): the run fails on a mismatch.
#   2. point-in-time join, ROUNDS times: JOIN_ROWS (default 1,000,000)
#      rows "<entity>,<time>" at random seconds of the year, `cat rows >
#      features/<fs>/join; cat features/<fs>/join > out` in one shell
#      session, against pandas.merge_asof (by entity, backward) of the rows
#      on pandas' own offline output, from reading both CSVs to the end of
#      to_csv.  country_last must be identical; the windowed features
#      differ wherever a window ran out between an entity's last event and
#      the row's time (merge_asof repeats the event's values, mlfs is exact
#      at the instant), which is counted and reported as a note, and every
#      mlfs answer is checked against an exact reference (integer cents,
#      prefix sums): the run fails on a mismatch.
#
# Not measured here: the events stream (features/<fs>/events), online
# reads (features/<fs>/online/<key>) and the daemon's memory, issue 13's
# other benchmark points: bench_online.sh measures them.
#
# Rounds: ROUNDS (default 3) of each measurement, mlfs and pandas
# interleaved, which goes first alternating; when the first sync round of
# both sides takes over MAX_ROUND_S (default 180) seconds, one round only
# (the report says so) unless ROUNDS was set.
#
# Usage: tests/bench/features/bench_features.sh   (as root: FUSE mounts)
# Environment:
#   MLFS_BENCH_EVENTS  events in the CSV (10000000; e.g. 200000 to try it)
#   JOIN_ROWS    rows of the point-in-time join (1000000)
#   ROUNDS       rounds of each measurement (3)
#   MAX_ROUND_S  see Rounds (180)
#   SEED         of the generator (13)
#   MLFS_BUILD   release build dir (default: <repo>/build-release); it is
#                configured -Dbuildtype=release -Dtests=false -Db_sanitize=none.
#                Jobs run $MLFS_BUILD/fs/mlfs-job: use a build dir no one
#                rebuilds during the run
#   BENCH_DIR    scratch dir (default: mktemp -d in $TMPDIR or /tmp); must be
#                new or empty; removed at exit.  Needs about 4 GB at 10M
#                events (the store keeps every round's dataset and version)
#   KEEP=1       keep BENCH_DIR (the data, answers and results) at exit
#   PY           the Python with numpy and pandas (/usr/bin/python3; Debian:
#                apt-get install python3-pandas)
#
# Needs: meson, ninja, gcc, pkg-config, fusermount3, jq, python3-pandas.
# About 6 to 8 minutes at 10M events on 2 vCPUs shared with other work
# (load 3 to 4): a sync round of both sides takes about 180 s there, so
# one round unless ROUNDS is set; at 200,000 events, 1 minute, 3 rounds.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${MLFS_BUILD:-$REPO/build-release}
EVENTS=${MLFS_BENCH_EVENTS:-10000000}
JOIN_ROWS=${JOIN_ROWS:-1000000}
ROUNDS_SET=${ROUNDS:+1}
ROUNDS=${ROUNDS:-3}
MAX_ROUND_S=${MAX_ROUND_S:-180}
SEED=${SEED:-13}
KEEP=${KEEP:-0}
PY=${PY:-/usr/bin/python3}
HELPER=$HERE/bench_features.py
START=$(date +%s)

# log, is_mounted, unmount
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
die() { log "error: $*"; exit 1; }

for cmd in meson gcc pkg-config fusermount3 awk jq; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
"$PY" -c 'import numpy, pandas' 2>/dev/null ||
	die "$PY lacks numpy or pandas (apt-get install python3-pandas)"

# ---------------------------------------------------------------- scratch
if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p "$BENCH_DIR"
	[[ -z $(ls -A "$BENCH_DIR") ]] || die "BENCH_DIR $BENCH_DIR is not empty"
	W=$(cd "$BENCH_DIR" && pwd -P)
else
	W=$(mktemp -d "${TMPDIR:-/tmp}/mlfs-bench-features.XXXXXX")
	W=$(cd "$W" && pwd -P)
fi
DATA=$W/data
RES=$W/res
ML_STORE=$W/mlfs-store
ML_CACHE=$W/mlfs-cache
ML_MNT=$W/mlfs-mnt
mkdir -p "$DATA" "$RES" "$ML_STORE" "$ML_CACHE" "$ML_MNT"
ML_PID=


cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	unmount "$ML_MNT" "$ML_PID" mlfs
	if is_mounted "$ML_MNT"; then
		log "a mount is still active; leaving $W in place"
	elif [[ $KEEP == 1 ]]; then
		log "kept $W"
	else
		rm -rf "$W"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_mounted MNT PID NAME LOG
wait_mounted() {
	local mnt=$1 pid=$2 name=$3 logf=$4 i
	for ((i = 0; i < 300; i++)); do
		is_mounted "$mnt" && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$logf" >&2 || true
			die "$name exited before mounting"
		fi
		sleep 0.1
	done
	tail -n 20 "$logf" >&2 || true
	die "$name did not mount $mnt within 30 s"
}

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
note() { printf '%s\n' "$*" >>"$RES/notes.txt"; log "note: $*"; }

# ---------------------------------------------------------------- build
log "building release mlfs in $BUILD"
REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$REPO" diff --quiet HEAD -- fs cache plugins 2>/dev/null ||
	REV+=" (with uncommitted changes)"
if [[ ! -f $BUILD/build.ninja ]]; then
	meson setup "$BUILD" "$REPO" -Dbuildtype=release -Db_sanitize=none \
		-Dtests=false >"$W/meson-setup.log" 2>&1 ||
		{ tail -n 30 "$W/meson-setup.log" >&2; die "meson setup failed"; }
fi
bt=$(meson introspect --buildoptions "$BUILD" |
	jq -r '[.[] | select(.name == "buildtype" or .name == "b_sanitize") | .value] | join(" ")')
[[ $bt == "release none" || $bt == "none release" ]] ||
	die "$BUILD is configured '$bt', not a release build without sanitizers (set MLFS_BUILD)"
meson compile -C "$BUILD" >"$W/meson-compile.log" 2>&1 ||
	{ tail -n 30 "$W/meson-compile.log" >&2; die "meson compile failed"; }
MLFS=$BUILD/fs/mlfs
[[ -x $MLFS ]] || die "$MLFS not built"

# ---------------------------------------------------------------- data
log "generating $EVENTS events and $JOIN_ROWS join rows (numpy, seed $SEED)"
"$PY" "$HELPER" gen "$DATA/events.csv" "$DATA/rows.csv" "$EVENTS" \
	"$JOIN_ROWS" "$SEED" >"$RES/gen.json" || die "generating data failed"
log "data: $(cat "$RES/gen.json")"

# ---------------------------------------------------------------- mount
log "mounting mlfs"
"$MLFS" -f -o "cache=$ML_CACHE" "$ML_STORE" "$ML_MNT" >"$W/mlfs.log" 2>&1 &
ML_PID=$!
wait_mounted "$ML_MNT" "$ML_PID" mlfs "$W/mlfs.log"

SPEC_FEATURES='[
 {"name": "txns_1h", "agg": "count", "window": "1h"},
 {"name": "amount_sum_7d", "column": "amount", "agg": "sum", "window": "7d"},
 {"name": "amount_mean_1d", "column": "amount", "agg": "mean", "window": "1d"},
 {"name": "country_last", "column": "country", "agg": "last"}]'

# ---------------------------------------------------------------- sync
# mlfs_sync R: one timed sync of round R; appends to mlfs-sync.jsonl
mlfs_sync() {
	local r=$1 d=events$1 fs=cust$1 spec t0 t1 t2 t3 st logf hist off
	spec=$(jq -cn --arg d "$d" --argjson f "$SPEC_FEATURES" \
		'{entity: "customer_id", timestamp: "ts", source: $d, features: $f}')
	mkdir "$ML_MNT/datasets/$d" "$ML_MNT/features/$fs"
	t0=$(now)
	cp "$DATA/events.csv" "$ML_MNT/datasets/$d/data.csv" ||
		{ tail -n 20 "$W/mlfs.log" >&2; die "cp events.csv into mlfs failed"; }
	t1=$(now)
	printf '%s\n' "$spec" >"$ML_MNT/features/$fs/spec" ||
		{ tail -n 5 "$ML_MNT/.mlfs/errors" >&2; die "spec refused: $spec"; }
	echo sync >"$ML_MNT/features/$fs/ctl" ||
		{ tail -n 5 "$ML_MNT/.mlfs/errors" >&2; die "sync refused"; }
	t2=$(now)
	st=$(cat "$ML_MNT/jobs/$fs-sync-1/wait")
	t3=$(now)
	logf=$RES/mlfs-sync-$r.log
	cp "$ML_MNT/jobs/$fs-sync-1/log" "$logf"
	[[ $st == succeeded ]] || { tail -n 20 "$logf" >&2; die "job $fs-sync-1: $st"; }
	# the job's own clock: events read and ordered, offline.csv written
	hist=$(sed -n 's/.* entities (.*) in \([0-9.]*\) s$/\1/p' "$logf" | tail -n 1)
	off=$(sed -n 's/.*offline\.csv: [0-9]* rows in \([0-9.]*\) s$/\1/p' "$logf" | tail -n 1)
	jq -cn --argjson cp "$(elapsed "$t0" "$t1")" \
		--argjson sc "$(elapsed "$t1" "$t2")" \
		--argjson w "$(elapsed "$t2" "$t3")" \
		--argjson tot "$(elapsed "$t0" "$t3")" \
		--argjson h "${hist:-null}" --argjson o "${off:-null}" \
		'{cp: $cp, spec_ctl: $sc, wait: $w, total: $tot, job_hist: $h,
		  job_offline: $o}' >>"$RES/mlfs-sync.jsonl"
	log "mlfs sync round $r: $(tail -n 1 "$RES/mlfs-sync.jsonl")"
}

pandas_sync() {
	local r=$1
	"$PY" "$HELPER" sync "$DATA/events.csv" "$W/pandas-offline.csv" \
		>>"$RES/pandas-sync.jsonl" || die "pandas sync failed"
	log "pandas sync round $r: $(tail -n 1 "$RES/pandas-sync.jsonl")"
}

: >"$RES/mlfs-sync.jsonl"
: >"$RES/pandas-sync.jsonl"
for ((r = 1; r <= ROUNDS; r++)); do
	t0=$(now)
	if ((r % 2)); then
		mlfs_sync "$r"
		pandas_sync "$r"
	else
		pandas_sync "$r"
		mlfs_sync "$r"
	fi
	s=$(elapsed "$t0" "$(now)")
	if ((r == 1)) && [[ -z $ROUNDS_SET ]] &&
		awk -v s="$s" -v m="$MAX_ROUND_S" 'BEGIN { exit !(s > m) }'; then
		note "the first sync round took $s s (over $MAX_ROUND_S s): one round of each measurement"
		ROUNDS=1
	fi
done
LAST=$ROUNDS

log "checking every value of mlfs's offline.csv against pandas'"
cp "$ML_MNT/features/cust$LAST/offline.csv" "$W/mlfs-offline.csv"
cp "$ML_MNT/features/cust$LAST/stats" "$RES/mlfs-stats.json"
if ! "$PY" "$HELPER" check "$W/mlfs-offline.csv" "$W/pandas-offline.csv" \
	>"$RES/check.json"; then
	jq . "$RES/check.json" >&2 || cat "$RES/check.json" >&2
	die "mlfs's offline.csv disagrees with pandas'"
fi
log "offline.csv: $(jq -c '{rows_mlfs, rows_pandas, mismatches}' "$RES/check.json")"
rm -f "$W/mlfs-offline.csv"

# ---------------------------------------------------------------- join
JOIN=$ML_MNT/features/cust$LAST/join

mlfs_join() {
	local r=$1 out
	# one shell session: the read gets what the write's handle answered
	out=$(bash -c 'a=$EPOCHREALTIME; cat "$1" >"$2"; b=$EPOCHREALTIME
		cat "$2" >"$3"; c=$EPOCHREALTIME; echo "$a $b $c"' _ \
		"$DATA/rows.csv" "$JOIN" "$W/mlfs-join.csv") ||
		die "the join through $JOIN failed"
	read -r a b c <<<"$out"
	jq -cn --argjson w "$(elapsed "$a" "$b")" --argjson rd "$(elapsed "$b" "$c")" \
		--argjson tot "$(elapsed "$a" "$c")" \
		'{write: $w, read: $rd, total: $tot}' >>"$RES/mlfs-join.jsonl"
	log "mlfs join round $r: $(tail -n 1 "$RES/mlfs-join.jsonl")"
}

pandas_join() {
	local r=$1
	"$PY" "$HELPER" join "$W/pandas-offline.csv" "$DATA/rows.csv" \
		"$W/pandas-join.csv" >>"$RES/pandas-join.jsonl" ||
		die "pandas join failed"
	log "pandas join round $r: $(tail -n 1 "$RES/pandas-join.jsonl")"
}

: >"$RES/mlfs-join.jsonl"
: >"$RES/pandas-join.jsonl"
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then
		mlfs_join "$r"
		pandas_join "$r"
	else
		pandas_join "$r"
		mlfs_join "$r"
	fi
done

log "checking the join's answers (merge_asof, exact reference)"
if ! "$PY" "$HELPER" checkjoin "$W/mlfs-join.csv" "$W/pandas-join.csv" \
	"$DATA/rows.csv" "$DATA/events.csv" >"$RES/checkjoin.json"; then
	jq . "$RES/checkjoin.json" >&2 || cat "$RES/checkjoin.json" >&2
	die "mlfs's join answers disagree"
fi
log "join: $(jq -c 'del(.examples)' "$RES/checkjoin.json")"

unmount "$ML_MNT" "$ML_PID" mlfs
ML_PID=
grep -iE 'error|warning' "$W/mlfs.log" >"$RES/daemon-problems.txt" &&
	note "the daemon's stderr has $(wc -l <"$RES/daemon-problems.txt") error/warning lines, first: $(head -n 1 "$RES/daemon-problems.txt")"

# ---------------------------------------------------------------- report
{
	printf 'cpu\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	printf 'nproc\t%s\n' "$(nproc)"
	printf 'mem\t%s\n' "$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
	printf 'load at the end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf 'python\t%s\n' "$("$PY" -c 'import sys, numpy, pandas; print(sys.version.split()[0], "numpy", numpy.__version__, "pandas", pandas.__version__)')"
	printf 'mlfs\t%s\n' "$REV"
	printf 'scratch\t%s (%s)\n' "$W" "$(stat -f -c %T "$W")"
	printf 'rounds\t%s\n' "$ROUNDS"
	printf 'minutes\t%s\n' "$((($(date +%s) - START + 59) / 60))"
	printf 'not measured\tthe events stream and online reads (bench_online.sh)\n'
} >"$RES/machine.tsv"
"$PY" "$HELPER" report "$RES"
