#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_ml.sh - mlfs as an ML platform, measured side by side with
# scikit-learn (training, batch scoring) and with libfuse's passthrough_ll
# (predict latency), in one run.
#
# A benchmark, not a test: it measures, prints medians and ratios, and marks
# each goal met or missed; it fails only when something cannot be measured.
#
#   1. training through the mount (train/<job>.json, jobs/<job>/wait), fit
#      time and test metrics from models/<m>/v1/metrics.json, against
#      scikit-learn trained on exactly the rows of jobs/<job>/split, after a
#      StandardScaler fitted on the train rows (mlfs standardises too), in
#      float32 as mlfs trains (float64 beside it).  Both sides time the same
#      span, from the data in memory to the fitted model: mlfs's
#      prepare_seconds + fit_seconds (labels, split, features, plugin fit)
#      against taking the train rows + StandardScaler + fit() with its
#      input checks; CSV parsing and numpy.loadtxt are outside it:
#        b1m     1,000,000 x 50, 2 classes   logistic  vs LogisticRegression(C=1)
#        c10       200,000 x 50, 10 classes  logistic  vs LogisticRegression(C=1, multinomial)
#        reg       500,000 x 50              linear    vs Ridge(alpha=1)
#        digits      1,797 x 64, 10 classes  logistic, mlp [64], kmeans k=10
#        m200k     200,000 x 100, 10 classes mlp [64] 50 epochs vs MLPClassifier
#   2. predict latency: open+read 4 KiB+close through passthrough_ll (the
#      floor) vs models/<m>/predict (a) open+write a row+read+close and
#      (b) write+read on one open handle; C client for both sides
#   3. batch scoring of the 1M x 50 features through one predict handle
#      (writes of up to 1 MiB cut at a newline, answers drained after
#      each; also once with exact 1 MiB writes) vs numpy.loadtxt +
#      StandardScaler.transform + LogisticRegression.predict_proba (float32,
#      and float64 beside it); the run fails if mlfs's answers disagree with
#      scikit-learn's (bench_ml.py agree says how far they may)
#   4. RssAnon of a fresh mlfs daemon serving ten models
#
# Goals: accuracy within 0.5 pp of scikit-learn on b1m and m200k, within
# 2 pp (r2: 2 points; k-means inertia: 2 %) elsewhere; fit time <= 0.5x
# scikit-learn's (none above 1.0x); predict (a) p50 <= 1.5x and (b) p50
# <= 1.0x passthrough_ll's open+read+close; batch scoring >= 3x
# scikit-learn's rows/s; RssAnon < 50 MB with ten models loaded.  Each
# goal is judged on the medians the report prints; the BLAS threads of
# each side are read from the job (metrics.json) and from threadpoolctl.
#
# Usage: tests/bench/ml/bench_ml.sh        (as root: FUSE mounts, perf)
# Environment:
#   MLFS_BUILD   release build dir (default: <repo>/build-release); it is
#                configured -Dbuildtype=release -Dtests=false -Db_sanitize=none.
#                Jobs run $MLFS_BUILD/fs/mlfs-job, so a build dir that someone
#                else rebuilds during the run fails jobs: use a private one
#                (e.g. MLFS_BUILD=/tmp/mlfs-bench-build) on a shared tree
#   BENCH_DIR    scratch dir (default: mktemp -d in $TMPDIR or /tmp); must be
#                new or empty; removed at exit.  Needs about 3 GB.
#   SMALL_RUNS   repeats of each fit on digits, c10 and reg, both sides (5)
#   BIG_RUNS     repeats of each fit on b1m and m200k, both sides (3)
#   LAT_N        iterations per latency measurement (10000)
#   LAT_ROUNDS   rounds of each latency measurement, interleaved (3)
#   BATCH_RUNS   batch scoring runs, each side (3)
#   PROFILE      1 (default): perf profiles of the first b1m and m200k jobs
#                (perf attached to the job's process, so their fit times
#                carry perf's small overhead) and, after measuring, of the
#                daemon (batch scoring, predict on a handle, open+close);
#                0: none
#   SCALE        multiplies the rows of the synthetic data sets (1; e.g. 0.02
#                for a quick smoke test of the script, figures meaningless)
#   MLFS_REV     what to call the mlfs measured (default: git describe of REPO)
#   PY           the Python with numpy and scikit-learn (/usr/bin/python3)
#
# Needs: meson, ninja, gcc, pkg-config, libfuse3-dev (passthrough_ll.c),
# fusermount3, Debian's python3-numpy and python3-sklearn, perf (optional).
# About 21 minutes on 2 vCPUs at load 7 to 15 (8 on a quieter machine
# before float64 ran beside float32), a third of it scikit-learn fitting
# the MLP.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${MLFS_BUILD:-$REPO/build-release}
SMALL_RUNS=${SMALL_RUNS:-5}
BIG_RUNS=${BIG_RUNS:-3}
LAT_N=${LAT_N:-10000}
LAT_ROUNDS=${LAT_ROUNDS:-3}
BATCH_RUNS=${BATCH_RUNS:-3}
PROFILE=${PROFILE:-1}
PY=${PY:-/usr/bin/python3}
SCALE=${SCALE:-1}
PT_SRC=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
HELPER=$HERE/bench_ml.py
START=$(date +%s)

# log, is_mounted, unmount
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
die() { log "error: $*"; exit 1; }

for cmd in meson gcc pkg-config fusermount3 awk jq; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
[[ -r $PT_SRC ]] || die "$PT_SRC not found (install libfuse3-dev)"
"$PY" -c 'import numpy, sklearn' 2>/dev/null ||
	die "$PY lacks numpy or scikit-learn (apt-get install python3-sklearn)"
if [[ $PROFILE == 1 ]] && ! command -v perf >/dev/null; then
	log "perf not found: no profiles"
	PROFILE=0
fi

# ---------------------------------------------------------------- scratch
if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p "$BENCH_DIR"
	[[ -z $(ls -A "$BENCH_DIR") ]] || die "BENCH_DIR $BENCH_DIR is not empty"
	W=$(cd "$BENCH_DIR" && pwd -P)
else
	W=$(mktemp -d "${TMPDIR:-/tmp}/mlfs-bench-ml.XXXXXX")
	W=$(cd "$W" && pwd -P)
fi
DATA=$W/data
RES=$W/res
ML_STORE=$W/mlfs-store
ML_CACHE=$W/mlfs-cache
ML_MNT=$W/mlfs-mnt
MEM_STORE=$W/mem-store
MEM_CACHE=$W/mem-cache
MEM_MNT=$W/mem-mnt
PT_SRCDIR=$W/pt-src
PT_MNT=$W/pt-mnt
mkdir -p "$DATA" "$RES/train" "$ML_STORE" "$ML_CACHE" "$ML_MNT" \
	"$MEM_STORE" "$MEM_CACHE" "$MEM_MNT" "$PT_SRCDIR" "$PT_MNT"

ML_PID=
MEM_PID=
PT_PID=
PERF_PID=


perf_stop() {
	[[ -n $PERF_PID ]] || return 0
	kill -INT "$PERF_PID" 2>/dev/null || true
	wait "$PERF_PID" 2>/dev/null || true
	PERF_PID=
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	perf_stop
	unmount "$ML_MNT" "$ML_PID" mlfs
	unmount "$MEM_MNT" "$MEM_PID" "mlfs (memory)"
	unmount "$PT_MNT" "$PT_PID" passthrough_ll
	if is_mounted "$ML_MNT" || is_mounted "$MEM_MNT" || is_mounted "$PT_MNT"; then
		log "a mount is still active; leaving $W in place"
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

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
note_load() { printf '%s\t%s\n' "$1" "$(loadavg)" >>"$RES/load.tsv"; }
rss_anon() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status"; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

note_load start

# ---------------------------------------------------------------- build
log "building release mlfs in $BUILD"
if [[ -n ${MLFS_REV:-} ]]; then
	REV=$MLFS_REV
else # what is built now, not what HEAD is at the end
	REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
	git -C "$REPO" diff --quiet HEAD 2>/dev/null || REV+=" (with uncommitted changes)"
fi
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
# a build dir shared with someone who rebuilds it mid-run breaks jobs
# (the daemon spawns $BUILD/fs/mlfs-job each time): say so if it happens
BIN_STAMP=$(stat -c %Y "$MLFS" "$BUILD/fs/mlfs-job" | tr '\n' ' ')
check_binaries() {
	[[ $(stat -c %Y "$MLFS" "$BUILD/fs/mlfs-job" | tr '\n' ' ') == "$BIN_STAMP" ]] ||
		log "warning: $BUILD was rebuilt during the run; use a private MLFS_BUILD"
}

log "building passthrough_ll and the C client"
cp "$PT_SRC" "$W/passthrough_ll.c"
pt_helpers=$(dirname "$PT_SRC")/passthrough_helpers.h
[[ -r $pt_helpers ]] && cp "$pt_helpers" "$W/"
# shellcheck disable=SC2046
gcc -O2 -o "$W/passthrough_ll" "$W/passthrough_ll.c" \
	$(pkg-config --cflags --libs fuse3) -lpthread ||
	die "cannot build passthrough_ll"
gcc -O2 -Wall -Wextra -o "$W/predict_bench" "$HERE/predict_bench.c" ||
	die "cannot build predict_bench"
PB=$W/predict_bench

# ---------------------------------------------------------------- data
log "generating the data sets (scikit-learn, fixed seeds)"
GEN_S=$("$PY" "$HELPER" gen "$DATA" "$SCALE") || die "generating data failed"
log "data generated in $GEN_S s: $(du -sh "$DATA" | cut -f1)"
declare -A NROWS=([digits]=1797)
for ds in b1m:1000000 c10:200000 reg:500000 m200k:200000; do
	NROWS[${ds%%:*}]=$(awk -v n="${ds#*:}" -v s="$SCALE" 'BEGIN { printf "%d", n * s }')
done
for ds in "${!NROWS[@]}"; do
	n=$(($(wc -l <"$DATA/$ds.csv") - 1))
	[[ $n == "${NROWS[$ds]}" ]] || die "$ds.csv has $n rows, expected ${NROWS[$ds]}"
done

# ---------------------------------------------------------------- mount
log "mounting mlfs"
"$MLFS" -f -o "cache=$ML_CACHE" "$ML_STORE" "$ML_MNT" >"$W/mlfs.log" 2>&1 &
ML_PID=$!
wait_mounted "$ML_MNT" "$ML_PID" mlfs "$W/mlfs.log"

: >"$RES/import.tsv"
for ds in b1m c10 reg digits m200k; do
	mkdir "$ML_MNT/datasets/$ds"
	t0=$(now)
	cp "$DATA/$ds.csv" "$ML_MNT/datasets/$ds/data.csv" ||
		{ tail -n 20 "$W/mlfs.log" >&2; die "cp $ds.csv into mlfs failed"; }
	t1=$(now)
	s=$(elapsed "$t0" "$t1")
	printf '%s\t%s\t%s\n' "$ds" "$s" "$(stat -c %s "$DATA/$ds.csv")" >>"$RES/import.tsv"
	log "imported $ds in $s s"
done

# ---------------------------------------------------------------- training
# mlfs_job JOB SPEC: run a job to its end; keep metrics, split and log
mlfs_job() {
	local job=$1 spec=$2 st
	printf '%s\n' "$spec" >"$ML_MNT/train/$job.json" ||
		{ cat "$ML_MNT/.mlfs/errors" >&2 2>/dev/null; die "spec for $job refused: $spec"; }
	st=$(cat "$ML_MNT/jobs/$job/wait")
	if [[ $st != succeeded ]]; then
		tail -n 20 "$ML_MNT/jobs/$job/log" >&2 || true
		check_binaries
		die "job $job: $st"
	fi
}

# perf_top DATA: the top self-time symbols of a perf recording
perf_top() {
	perf report -i "$1" --no-children -g none --sort dso,symbol --stdio \
		2>/dev/null | grep '%' | grep -v '^#' | head -n 15 || true
}

# mlfs_job_profiled JOB SPEC PERFDATA: mlfs_job, with perf attached to the
# job's process (the daemon's mlfs-job child) from when it appears
mlfs_job_profiled() {
	local job=$1 spec=$2 data=$3 jpid='' i st
	printf '%s\n' "$spec" >"$ML_MNT/train/$job.json" ||
		die "spec for $job refused: $spec"
	for ((i = 0; i < 200; i++)); do
		jpid=$(ps -o pid=,comm= --ppid "$ML_PID" | awk '$2 == "mlfs-job" { print $1; exit }')
		[[ -n $jpid ]] && break
		sleep 0.05
	done
	if [[ -n $jpid ]]; then
		perf record -F 199 -g -p "$jpid" -o "$data" >/dev/null 2>&1 &
		PERF_PID=$!
	else
		log "$job: no mlfs-job process found to profile"
	fi
	st=$(cat "$ML_MNT/jobs/$job/wait")
	perf_stop
	if [[ $st != succeeded ]]; then
		tail -n 20 "$ML_MNT/jobs/$job/log" >&2 || true
		check_binaries
		die "job $job: $st"
	fi
}

# experiment NAME DATASET ALGO GOALCLASS RUNS MLFS_PARAMS SK_PARAMS [TASK] [SPLIT]
experiment() {
	local name=$1 ds=$2 algo=$3 class=$4 runs=$5 mp=$6 skp=$7
	local task=${8:-classification} split=${9:-'{"train": 0.8, "validation": 0.0, "test": 0.2, "seed": 1}'}
	local d=$RES/train/$name i job spec skalgo pkl=() prof=0
	mkdir -p "$d"
	printf '%s\n' "$ds" >"$d/dataset"
	printf '%s\n' "$algo" >"$d/algorithm"
	printf '%s\n' "$class" >"$d/class"
	printf '%s\n' "$mp" >"$d/mlfs_params"
	note_load "$name"
	[[ $PROFILE == 1 && $class == large ]] && prof=1
	for ((i = 1; i <= runs; i++)); do
		job=$name-$i
		spec=$(jq -cn --arg ds "$ds" --arg algo "$algo" --arg task "$task" \
			--argjson p "$mp" --argjson sp "$split" \
			'{dataset: $ds, algorithm: $algo, label: "y", task: $task,
			  params: $p, split: $sp}')
		[[ $algo == kmeans ]] && spec=$(jq -c 'del(.label, .task)' <<<"$spec")
		printf '%s\n' "$spec" >"$d/spec"
		log "$name: mlfs run $i/$runs ($algo on $ds)"
		if ((prof && i == 1)); then
			mlfs_job_profiled "$job" "$spec" "$W/perf-$name.data"
		else
			mlfs_job "$job" "$spec"
		fi
		cp "$ML_MNT/models/$job/v1/metrics.json" "$d/mlfs-$i.metrics.json"
		cp "$ML_MNT/jobs/$job/log" "$d/mlfs-$i.log"
		((i == 1)) && cp "$ML_MNT/jobs/$job/split" "$d/split"
		log "$name: mlfs prepare $(jq .prepare_seconds "$d/mlfs-$i.metrics.json") s + fit $(jq .fit_seconds "$d/mlfs-$i.metrics.json") s (BLAS $(jq .blas_threads "$d/mlfs-$i.metrics.json") threads), parse $(jq .parse_seconds "$d/mlfs-$i.metrics.json") s"
	done
	if ((prof)) && [[ -s $W/perf-$name.data ]]; then
		perf_top "$W/perf-$name.data" >"$d/profile.txt"
		rm -f "$W/perf-$name.data"
	fi
	skalgo=$algo
	[[ $algo == linear ]] && skalgo=ridge
	[[ $name == b1m-logistic ]] && pkl=("$W/b1m-model.pkl")
	log "$name: scikit-learn, $runs fit(s)"
	"$PY" "$HELPER" sk "$skalgo" "$DATA/$ds.csv" "$d/split" "$runs" "$skp" \
		"${pkl[@]}" >"$d/sk.json" || die "scikit-learn $name failed"
	log "$name: scikit-learn float32 $(jq -c '.fit_seconds' "$d/sk.json") s, float64 $(jq -c '.float64.fit_seconds' "$d/sk.json") s ($(jq -r .blas "$d/sk.json"))"
}

nl2() { awk -v n="$1" 'BEGIN { printf "%.17g", 1 / (0.8 * n) }'; }
MLP_MLFS='{"hidden": [64], "epochs": 50, "early_stopping": false, "batch_size": 200, "learning_rate": 0.001, "l2": 0.0001, "n_iter_no_change": 1000, "tol": 0}'
MLP_SK='{"hidden": [64], "epochs": 50, "batch_size": 200, "learning_rate": 0.001, "alpha": 0.0001}'

for ds in digits c10 b1m; do
	l2=$(nl2 "${NROWS[$ds]}")
	runs=$SMALL_RUNS
	class=small
	[[ $ds == b1m ]] && { runs=$BIG_RUNS; class=large; }
	experiment "$ds-logistic" "$ds" logistic "$class" "$runs" \
		"{\"l2\": $l2}" "{\"l2\": $l2}"
done
l2=$(nl2 "${NROWS[reg]}")
experiment reg-ridge reg linear small "$SMALL_RUNS" "{\"l2\": $l2}" "{\"l2\": $l2}" regression
experiment digits-mlp digits mlp small "$SMALL_RUNS" "$MLP_MLFS" "$MLP_SK"
# context: scikit-learn's alpha is divided by the batch size, mlfs's l2 is
# not; alpha = l2 * batch_size is the same penalty as mlfs's l2
log "digits-mlp: scikit-learn with alpha = l2 * batch_size (context)"
"$PY" "$HELPER" sk mlp "$DATA/digits.csv" "$RES/train/digits-mlp/split" "$SMALL_RUNS" \
	'{"hidden": [64], "epochs": 50, "batch_size": 200, "learning_rate": 0.001, "alpha": 0.02}' \
	>"$RES/train/digits-mlp/sk-alpha.json" || die "scikit-learn digits-mlp alpha=0.02 failed"
experiment digits-kmeans digits kmeans small "$SMALL_RUNS" '{"k": 10, "n_init": 10}' \
	'{"k": 10, "n_init": 10}' clustering \
	'{"train": 1.0, "validation": 0.0, "test": 0.0, "seed": 1}'
experiment m200k-mlp m200k mlp large "$BIG_RUNS" "$MLP_MLFS" "$MLP_SK"

# ---------------------------------------------------------------- latency
log "predict latency: mounting passthrough_ll over a dir with a 4 KiB file"
head -c 4096 /dev/urandom >"$PT_SRCDIR/file4k"
"$W/passthrough_ll" -f -o "source=$PT_SRCDIR" "$PT_MNT" >"$W/pt.log" 2>&1 &
PT_PID=$!
wait_mounted "$PT_MNT" "$PT_PID" passthrough_ll "$W/pt.log"

MODEL=digits-logistic-1
PREDICT=$ML_MNT/models/$MODEL/predict
sed -n 2p "$DATA/digits.csv" | cut -d, -f1-64 >"$W/row.csv"
[[ $(wc -l <"$W/row.csv") == 1 ]] || die "no row for predict"
note_load latency
: >"$RES/lat.tsv"
for ((r = 1; r <= LAT_ROUNDS; r++)); do
	for kind in passthrough open handle; do
		case $kind in
		passthrough) out=$("$PB" read "$PT_MNT/file4k" "$LAT_N") ;;
		open) out=$("$PB" open "$PREDICT" "$W/row.csv" "$LAT_N") ;;
		handle) out=$("$PB" handle "$PREDICT" "$W/row.csv" "$LAT_N") ;;
		esac || die "latency $kind failed"
		printf '%s\t%s\n' "$kind" "$out" >>"$RES/lat.tsv"
		log "latency round $r $kind: p50 p99 mean (us) $out"
	done
done
unmount "$PT_MNT" "$PT_PID" passthrough_ll
PT_PID=

# ---------------------------------------------------------------- batch
log "batch scoring: ${NROWS[b1m]} rows through models/b1m-logistic-1/predict"
cat "$DATA/b1m_features.csv" >/dev/null # both sides read from the page cache
note_load batch
: >"$RES/batch-mlfs.tsv"
for ((r = 1; r <= BATCH_RUNS; r++)); do
	out=$("$PB" batch "$ML_MNT/models/b1m-logistic-1/predict" \
		"$DATA/b1m_features.csv" "$W/answers.csv") || die "mlfs batch scoring failed"
	printf '%s\n' "$out" >>"$RES/batch-mlfs.tsv"
	log "mlfs batch run $r: rows seconds rows/s answers errors $out"
done
# context: the same with exact 1 MiB writes that cut rows anywhere, as a
# naive streaming client would send them (a read scores a partial row)
out=$("$PB" batch-raw "$ML_MNT/models/b1m-logistic-1/predict" \
	"$DATA/b1m_features.csv" "$W/answers-raw.csv") || die "mlfs raw batch scoring failed"
printf '%s\n' "$out" >"$RES/batch-raw.tsv"
log "mlfs batch, unaligned 1 MiB writes: rows seconds rows/s answers errors $out"
rm -f "$W/answers-raw.csv"
log "batch scoring: numpy.loadtxt + StandardScaler.transform + predict_proba"
"$PY" "$HELPER" batch "$DATA/b1m_features.csv" "$W/b1m-model.pkl" "$BATCH_RUNS" \
	>"$RES/batch-sk.json" || die "scikit-learn batch scoring failed"
log "scikit-learn batch: float32 $(jq -c .seconds "$RES/batch-sk.json") s, float64 $(jq -c .seconds_f64 "$RES/batch-sk.json") s"
"$PY" "$HELPER" agree "$W/answers.csv" "$W/b1m-model.pkl" "$DATA/b1m_features.csv" \
	>"$RES/agree.json" ||
	die "mlfs's batch answers disagree with scikit-learn's: $(cat "$RES/agree.json")"
log "batch answers against scikit-learn's: $(cat "$RES/agree.json")"
rss_anon "$ML_PID" >"$RES/rss-main.txt"

if [[ $PROFILE == 1 ]]; then
	log "profiling the daemon: batch scoring, predict on a handle, open+close"
	for p in batch handle open; do
		perf record -F 999 -g -p "$ML_PID" -o "$W/perf-$p.data" >/dev/null 2>&1 &
		PERF_PID=$!
		sleep 0.5
		case $p in
		batch) "$PB" batch "$ML_MNT/models/b1m-logistic-1/predict" \
			"$DATA/b1m_features.csv" "$W/answers.csv" >/dev/null ;;
		*) "$PB" "$p" "$PREDICT" "$W/row.csv" "$LAT_N" >/dev/null ;;
		esac || die "profiled $p failed"
		perf_stop
		perf_top "$W/perf-$p.data" >"$RES/profile-$p.txt"
		rm -f "$W/perf-$p.data"
	done
fi
rm -f "$W/answers.csv" "$W/b1m-model.pkl"

unmount "$ML_MNT" "$ML_PID" mlfs
ML_PID=

# ---------------------------------------------------------------- memory
log "memory: a fresh mlfs serving ten models trained on digits"
note_load memory
"$MLFS" -f -o "cache=$MEM_CACHE" "$MEM_STORE" "$MEM_MNT" >"$W/mem.log" 2>&1 &
MEM_PID=$!
wait_mounted "$MEM_MNT" "$MEM_PID" "mlfs (memory)" "$W/mem.log"
: >"$RES/mem.tsv"
printf 'mounted\t%s\n' "$(rss_anon "$MEM_PID")" >>"$RES/mem.tsv"
mkdir "$MEM_MNT/datasets/digits"
cp "$DATA/digits.csv" "$MEM_MNT/datasets/digits/data.csv"
printf 'imported\t%s\n' "$(rss_anon "$MEM_PID")" >>"$RES/mem.tsv"
MEM_SPECS=(
	'"algorithm": "logistic", "params": {"l2": 0.01}'
	'"algorithm": "logistic", "params": {"l2": 0.001}'
	'"algorithm": "logistic", "params": {"l2": 0.0001}'
	'"algorithm": "logistic", "params": {"solver": "sgd", "epochs": 5}'
	'"algorithm": "mlp", "params": {"hidden": [32], "epochs": 10}'
	'"algorithm": "mlp", "params": {"hidden": [64, 32], "epochs": 10}'
	'"algorithm": "kmeans", "params": {"k": 8}'
	'"algorithm": "kmeans", "params": {"k": 10}'
	'"algorithm": "linear", "task": "regression", "params": {"l2": 0}'
	'"algorithm": "linear", "task": "regression", "params": {"l2": 0.01}'
)
ML_MNT_SAVE=$ML_MNT
ML_MNT=$MEM_MNT # mlfs_job works on $ML_MNT
for i in "${!MEM_SPECS[@]}"; do
	mlfs_job "m$i" "{\"dataset\": \"digits\", ${MEM_SPECS[$i]}}"
done
ML_MNT=$ML_MNT_SAVE
printf 'trained\t%s\n' "$(rss_anon "$MEM_PID")" >>"$RES/mem.tsv"
for i in "${!MEM_SPECS[@]}"; do
	"$PB" handle "$MEM_MNT/models/m$i/predict" "$W/row.csv" 1 >/dev/null ||
		die "predict on m$i failed"
done
printf 'served\t%s\n' "$(rss_anon "$MEM_PID")" >>"$RES/mem.tsv"
unmount "$MEM_MNT" "$MEM_PID" "mlfs (memory)"
MEM_PID=

# ---------------------------------------------------------------- report
note_load end
check_binaries
{
	printf 'cpu\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	printf 'nproc\t%s\n' "$(nproc)"
	printf 'mem\t%s\n' "$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
	printf 'kernel\t%s\n' "$(uname -r)"
	printf 'libfuse\t%s\n' "$(pkg-config --modversion fuse3)"
	printf 'python\t%s\n' "$("$PY" -c 'import sys, numpy, sklearn; print(sys.version.split()[0], "numpy", numpy.__version__, "scikit-learn", sklearn.__version__)')"
	printf 'blas\t%s\n' "$("$PY" -c 'import numpy, threadpoolctl; print("; ".join("%s %s %s threads" % (i["internal_api"], i.get("version"), i["num_threads"]) for i in threadpoolctl.threadpool_info()))' 2>/dev/null || echo unknown)"
	printf 'mlfs\t%s\n' "$REV"
	printf 'scratch\t%s\n' "$(stat -f -c %T "$W")"
	printf 'minutes\t%s\n' "$((($(date +%s) - START + 59) / 60))"
	printf 'runs\tsmall %s, large %s, latency %s x %s, batch %s\n' \
		"$SMALL_RUNS" "$BIG_RUNS" "$LAT_ROUNDS" "$LAT_N" "$BATCH_RUNS"
	printf 'gen_seconds\t%s\n' "$GEN_S"
} >"$RES/machine.tsv"
"$PY" "$HELPER" report "$RES"
