#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_batch.sh - batch/ (issue 15, point 2: a dataset version scored by
# a model out of process into a new dataset) measured end to end against
# scikit-learn on the same rows, in one run.
#
# A benchmark, not a test: it measures, prints medians and ratios, and marks
# each goal met or missed; it fails only when something cannot be measured
# (and, after the summary, when the answers are wrong: see 2).
#
# The data and the scikit-learn side are bench_ml.sh's (bench_ml.py, called,
# not copied): b1m, 1,000,000 x 50, two classes (make_classification), and
# its features-only CSV.  b1m is copied into datasets/b1m/data.csv (v1) and
# a logistic model b1m@1 is trained on it with bench_ml.sh's b1m-logistic
# spec (label y, l2 = 1/(0.8 n), split 0.8/0.2 seed 1); scikit-learn's
# LogisticRegression is fitted on exactly the train rows of jobs/<job>/split
# after a StandardScaler (bench_ml.py sk).
#
#   1. batch scoring, BATCH_RUNS interleaved rounds, each side once a round:
#      mlfs: from writing {"model": "b1m@1", "dataset": "b1m@1", "output":
#      "scored<r>"} (plus "keep" with BATCH_KEEP) into batch/b<r>.json
#      until `cat jobs/b<r>/wait` says "succeeded", so including the spec
#      check, the job's start, its parse and scoring (a thread per core)
#      and the daemon publishing scored<r>/v1 (copy, validation, hash,
#      schema and stats of the answers); a new output dataset each round.
#      scikit-learn: numpy.loadtxt of the features CSV + StandardScaler
#      .transform + LogisticRegression.predict_proba, float32 (float64
#      beside it) (bench_ml.py batch, RUNS 1, each round); the answers stay
#      in memory.  Both read their input from the page cache.  rows/s =
#      1,000,000 / median seconds.
#   2. the answers: the output of round 1 (data.csv of scored1/v1), column
#      by column, against the model's own predict on the same rows: the
#      features CSV through ONE handle of models/b1m/v1/predict, writes of
#      up to 1 MiB cut at a newline (predict_bench batch, as bench_ml.sh's
#      batch scoring; its time is shown as context).  Counted: rows whose
#      text differs, per column; rows that differ beyond float32 rounding
#      (another class, or a probability more than ANSWER_TOL away); the
#      outputs of the other rounds must be byte for byte round 1's.  As
#      context, predict's own answers with writes of up to 64 KiB against
#      those with 1 MiB (float32 sums can round differently with the rows
#      scored together), and the answers against scikit-learn's
#      (bench_ml.py agree).
#   3. CPU use of the job process (mlfs-job, a child of the daemon),
#      sampled from /proc every 0.1 s until it exits (pidfd): its CPU time
#      (utime + stime) against its wall time, CPU seconds per thread, and
#      the CPU % over the span when its scoring threads ran (the threads
#      started after the job did most of the CPU work); beside the log's
#      "scored N rows in S s (T threads)".
#   4. where the time goes (medians): the spec write, to the job's start
#      (queue, spawn), the log's "parsed ... in X s" and "scored ... in S
#      s" (both count from the start of the job's batch code: X is model
#      load + parse, S also the scoring and writing out/data.csv), the job's exit, then the publication
#      until wait returns (with the daemon's CPU seconds meanwhile).
#
# Goals: end-to-end batch scoring >= 3x scikit-learn's rows/s (float32,
# medians); 0 answers different from predict's, as text and beyond
# rounding; both cores busy while scoring (CPU >= 150 % over the scoring
# threads' span on 2 cores: >= 75 % of nproc x 100 %).
#
# Usage: tests/bench/batch/bench_batch.sh     (needs FUSE: /dev/fuse,
#        fusermount3)
# Environment:
#   MLFS_BUILD   release build dir (default: <repo>/build-release); it is
#                configured -Dbuildtype=release -Dtests=false -Db_sanitize=none
#                (set up here when missing).  Jobs run $MLFS_BUILD/fs/mlfs-job:
#                use a private build dir on a shared tree
#   BENCH_DIR    scratch dir (default: mktemp -d in $TMPDIR or /tmp); must be
#                new or empty; removed at exit.  Needs about 3 GB
#                (bench_ml.py gen writes all of bench_ml.sh's data sets; the
#                ones not used here are removed at once)
#   BATCH_RUNS   rounds, each side once a round (3)
#   BATCH_KEEP   columns of b1m to keep in the output, comma-separated, e.g.
#                "y" or "y,x0" (default none: the output is
#                prediction,p_0,p_1); the check splits rows at commas, so
#                columns whose values hold none
#   ANSWER_TOL   largest probability difference from predict's that counts
#                as float32 rounding (1e-6)
#   SCALE        multiplies the rows of the data (1; e.g. 0.02 for a quick
#                smoke test of the script, figures meaningless)
#   MLFS_REV     what to call the mlfs measured (default: git rev of REPO)
#   PY           the Python with numpy and scikit-learn (/usr/bin/python3)
#
# Needs: meson, ninja, gcc, pkg-config, fusermount3, jq, Debian's
# python3-numpy and python3-sklearn (Python >= 3.9 for os.pidfd_open).
# About 5 minutes on 2 vCPUs with BATCH_RUNS=3, a quarter of it generating
# the data.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${MLFS_BUILD:-$REPO/build-release}
BATCH_RUNS=${BATCH_RUNS:-3}
BATCH_KEEP=${BATCH_KEEP:-}
ANSWER_TOL=${ANSWER_TOL:-1e-6}
SCALE=${SCALE:-1}
PY=${PY:-/usr/bin/python3}
ML_HELPER=$REPO/tests/bench/ml/bench_ml.py
PB_SRC=$REPO/tests/bench/ml/predict_bench.c
START=$(date +%s)

# log, is_mounted, unmount
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
die() { log "error: $*"; exit 1; }

for cmd in meson gcc pkg-config fusermount3 awk jq cmp; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
[[ -r $ML_HELPER && -r $PB_SRC ]] || die "tests/bench/ml/bench_ml.py or predict_bench.c missing"
"$PY" -c 'import os, numpy, sklearn; os.pidfd_open' 2>/dev/null ||
	die "$PY lacks numpy, scikit-learn or os.pidfd_open (apt-get install python3-sklearn)"
((BATCH_RUNS >= 1)) || die "BATCH_RUNS must be 1 or more"

# ---------------------------------------------------------------- scratch
if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p "$BENCH_DIR"
	[[ -z $(ls -A "$BENCH_DIR") ]] || die "BENCH_DIR $BENCH_DIR is not empty"
	W=$(cd "$BENCH_DIR" && pwd -P)
else
	W=$(mktemp -d "${TMPDIR:-/tmp}/mlfs-bench-batch.XXXXXX")
	W=$(cd "$W" && pwd -P)
fi
DATA=$W/data
RES=$W/res
STORE=$W/store
CACHE=$W/cache
MNT=$W/mnt
mkdir -p "$DATA" "$RES" "$STORE" "$CACHE" "$MNT"

ML_PID=
WATCH_PID=

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [[ -n $WATCH_PID ]]; then
		kill -TERM "$WATCH_PID" 2>/dev/null
		wait "$WATCH_PID" 2>/dev/null
	fi
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

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# diff_s A B: B - A, or nan if either is
diff_s() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan") print "nan"; else printf "%.3f", b - a }'; }

note_load start

# ---------------------------------------------------------------- build
build_release

log "building the C client (tests/bench/ml/predict_bench.c)"
gcc -O2 -Wall -Wextra -o "$W/predict_bench" "$PB_SRC" || die "cannot build predict_bench"
PB=$W/predict_bench

# ---------------------------------------------------------------- data
log "generating the data (bench_ml.py gen, fixed seeds)"
note_load gen
GEN_S=$("$PY" "$ML_HELPER" gen "$DATA" "$SCALE") || die "generating data failed"
rm -f "$DATA"/{c10,reg,digits,m200k}.csv # bench_ml.sh's; not used here
NROWS=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 1000000 * s }')
for f in b1m b1m_features; do
	n=$(($(wc -l <"$DATA/$f.csv") - 1))
	[[ $n == "$NROWS" ]] || die "$f.csv has $n rows, expected $NROWS"
done
log "data generated in $GEN_S s: b1m.csv $(du -h "$DATA/b1m.csv" | cut -f1), b1m_features.csv $(du -h "$DATA/b1m_features.csv" | cut -f1)"

# ---------------------------------------------------------------- mount
log "mounting mlfs"
"$MLFS" -f -o "cache=$CACHE" "$STORE" "$MNT" >"$W/mlfs.log" 2>&1 &
ML_PID=$!
wait_mounted "$MNT" "$ML_PID" mlfs "$W/mlfs.log"

mkdir "$MNT/datasets/b1m"
t0=$(now)
cp "$DATA/b1m.csv" "$MNT/datasets/b1m/data.csv" ||
	{ tail -n 20 "$W/mlfs.log" >&2; die "cp b1m.csv into mlfs failed"; }
IMPORT_S=$(elapsed "$t0" "$(now)")
log "imported b1m in $IMPORT_S s"

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

# bench_ml.sh's b1m-logistic, as model b1m
L2=$(awk -v n="$NROWS" 'BEGIN { printf "%.17g", 1 / (0.8 * n) }')
TRAIN_SPEC=$(jq -cn --argjson l2 "$L2" \
	'{dataset: "b1m", algorithm: "logistic", model: "b1m", label: "y",
	  task: "classification", params: {l2: $l2},
	  split: {train: 0.8, validation: 0.0, test: 0.2, seed: 1}}')
log "training b1m@1: $TRAIN_SPEC"
note_load train
mlfs_job t1 "$TRAIN_SPEC"
cp "$MNT/jobs/t1/split" "$W/split"
MLFS_ACC=$(jq -r '.accuracy' "$MNT/models/b1m/v1/metrics.json")
CLASSES=$(jq -r '.classes | join(" ")' "$MNT/models/b1m/v1/meta.json")
log "b1m@1: test accuracy $MLFS_ACC, classes $CLASSES"
log "scikit-learn: the same train rows, StandardScaler + LogisticRegression (bench_ml.py sk)"
"$PY" "$ML_HELPER" sk logistic "$DATA/b1m.csv" "$W/split" 1 "{\"l2\": $L2}" \
	"$W/b1m-model.pkl" >"$RES/sk-fit.json" || die "scikit-learn fit failed"
log "scikit-learn: test accuracy $(jq .metric "$RES/sk-fit.json"), fit $(jq -c .fit_seconds "$RES/sk-fit.json") s"

# ---------------------------------------------------------------- batch
# the spec of round R
KEEP_JSON=$(jq -cn --arg k "$BATCH_KEEP" '$k | split(",") | map(select(length > 0))')
NKEEP=$(jq 'length' <<<"$KEEP_JSON")
batch_spec() {
	jq -cn --arg out "scored$1" --argjson keep "$KEEP_JSON" \
		'{model: "b1m@1", dataset: "b1m@1", output: $out} +
		 (if ($keep | length) > 0 then {keep: $keep} else {} end)'
}

# "$PY" -c "$JOBWATCH" DAEMON_PID OUT: find the daemon's mlfs-job child,
# sample its CPU time (whole process and per thread) every 0.1 s until it
# exits (pidfd), write JSON to OUT.  Times are epoch seconds.
JOBWATCH=$(
	cat <<'EOF'
import json, os, select, sys, time

daemon, out = int(sys.argv[1]), sys.argv[2]
HZ = os.sysconf("SC_CLK_TCK")
STEP = 0.1


def stat(path):
    with open(path) as f:
        s = f.read()
    r = s.rindex(")")
    return s[s.index("(") + 1:r], s[r + 2:].split()  # [0] is field 3


def ticks(f):  # utime (14) + stime (15)
    return int(f[11]) + int(f[12])


def find():
    try:
        tasks = os.listdir("/proc/%d/task" % daemon)
    except OSError:
        return None
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (daemon, t)) as f:
                kids = f.read().split()
        except OSError:
            continue
        for k in kids:
            try:
                if stat("/proc/%s/stat" % k)[0] == "mlfs-job":
                    return int(k)
            except OSError:
                pass
    return None


res = {"found": False}
deadline = time.time() + 600
pid = None
while pid is None and time.time() < deadline and os.path.exists(
        "/proc/%d" % daemon):
    pid = find()
    if pid is None:
        time.sleep(0.01)
if pid is None:
    with open(out, "w") as fp:
        print(json.dumps(res), file=fp)
    sys.exit(0)
pfd = os.pidfd_open(pid)
wall, boot = time.time(), time.clock_gettime(time.CLOCK_BOOTTIME)
try:
    f = stat("/proc/%d/stat" % pid)[1]
    start = wall - (boot - int(f[19]) / HZ)  # starttime (22), boot clock
except OSError:
    start = wall
samples = []    # (t, ticks)
threads = {}    # tid -> [ticks, first seen, last seen]
maxthr = 0
first = True
while True:
    t = time.time()
    try:
        f = stat("/proc/%d/stat" % pid)[1]
        tk = ticks(f)
        maxthr = max(maxthr, int(f[17]))
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                g = stat("/proc/%d/task/%s/stat" % (pid, tid))[1]
            except OSError:
                continue
            e = threads.setdefault(int(tid), [0, None if first else t, t])
            e[0], e[2] = ticks(g), t
        samples.append((t, tk))
        first = False
    except OSError:
        pass
    r, _, _ = select.select([pfd], [], [], STEP)
    if r:
        break
end = time.time()
try:  # a zombie not yet reaped still shows its total
    samples.append((end, ticks(stat("/proc/%d/stat" % pid)[1])))
except OSError:
    pass
cpu = samples[-1][1] / HZ if samples else 0.0
# the scoring threads: those started after the first sample that did
# most of the work (not a helper thread that idles through the job)
late = [(v[0] / HZ, v[1], v[2]) for k, v in threads.items()
        if k != pid and v[1] is not None]
top = max((w[0] for w in late), default=0)
workers = sorted((w for w in late if w[0] >= 0.05 and w[0] >= 0.25 * top),
                 key=lambda w: w[1])
others = [v[0] / HZ for k, v in threads.items()
          if k != pid and (v[1] is None or
                           (v[0] / HZ, v[1], v[2]) not in workers)]
win = None
if workers:
    a, b = min(w[1] for w in workers), max(w[2] for w in workers)
    sa = [s for s in samples if s[0] >= a]
    sb = [s for s in samples if s[0] <= b]
    if sa and sb and sb[-1][0] - sa[0][0] >= 0.3:
        win = (sb[-1][0] - sa[0][0],
               100.0 * (sb[-1][1] - sa[0][1]) / HZ / (sb[-1][0] - sa[0][0]))
res = {"found": True, "pid": pid, "start": start, "found_at": wall,
       "exit": end, "wall_s": end - start, "cpu_s": cpu,
       "cpu_pct": 100.0 * cpu / (end - start) if end > start else None,
       "max_threads": maxthr, "samples": len(samples),
       "main_cpu_s": threads.get(pid, [0])[0] / HZ,
       "other_cpu_s": sorted(others, reverse=True),
       "workers": [{"cpu_s": w[0], "from_s": w[1] - start,
                    "to_s": w[2] - start} for w in workers],
       "window_s": win[0] if win else None,
       "after_workers_s": end - max(w[2] for w in workers) if workers else None,
       "window_pct": win[1] if win else None}
with open(out, "w") as fp:
    print(json.dumps(res), file=fp)
EOF
)

# logged NAME LOG: the seconds the job log gives for "parsed"/"scored"
logged() {
	case $1 in
	parsed) sed -n 's/^parsed .* in \([0-9.]*\) s$/\1/p' "$2" | tail -n 1 ;;
	scored) sed -n 's/^scored .* in \([0-9.]*\) s (.*$/\1/p' "$2" | tail -n 1 ;;
	threads) sed -n 's/^scored .* (\([0-9]*\) threads)$/\1/p' "$2" | tail -n 1 ;;
	esac
}

log "batch scoring: $BATCH_RUNS rounds of batch/ (end to end) and scikit-learn, $NROWS rows"
cat "$DATA/b1m_features.csv" >/dev/null # scikit-learn reads from the page cache
: >"$RES/mlfs.tsv"
for ((r = 1; r <= BATCH_RUNS; r++)); do
	note_load "round-$r"
	job=b$r
	spec=$(batch_spec "$r")
	"$PY" -c "$JOBWATCH" "$ML_PID" "$RES/cpu-$r.json" &
	WATCH_PID=$!
	sleep 0.2 # the watcher up before the job starts
	d0=$(cpu_s "$ML_PID")
	t0=$(now)
	printf '%s\n' "$spec" >"$MNT/batch/$job.json" ||
		{ tail -n 3 "$MNT/.mlfs/errors" >&2 2>/dev/null; die "batch spec refused: $spec"; }
	t1=$(now)
	st=$(cat "$MNT/jobs/$job/wait")
	t2=$(now)
	d2=$(cpu_s "$ML_PID")
	wait "$WATCH_PID" || log "round $r: the CPU sampler failed"
	WATCH_PID=
	cp "$MNT/jobs/$job/log" "$RES/log-$r.txt"
	if [[ $st != succeeded ]]; then
		tail -n 20 "$RES/log-$r.txt" >&2 || true
		check_binaries
		die "batch job $job: $st"
	fi
	[[ -r $MNT/datasets/scored$r/v1/data.csv ]] || die "batch job $job succeeded but datasets/scored$r/v1/data.csv is missing"
	e2e=$(elapsed "$t0" "$t2")
	spec_s=$(elapsed "$t0" "$t1")
	X=$(logged parsed "$RES/log-$r.txt")
	S=$(logged scored "$RES/log-$r.txt")
	T=$(logged threads "$RES/log-$r.txt")
	cw=$RES/cpu-$r.json
	if [[ -s $cw ]] && [[ $(jq -r .found "$cw") == true ]]; then
		jstart=$(elapsed "$t0" "$(jq .start "$cw")")
		jexit=$(elapsed "$t0" "$(jq .exit "$cw")")
		pub=$(elapsed "$(jq .exit "$cw")" "$t2")
		jwall=$(jq '.wall_s * 1000 | round / 1000' "$cw")
		jcpu=$(jq '.cpu_s * 100 | round / 100' "$cw")
		jpct=$(jq '.cpu_pct | round' "$cw")
		wpct=$(jq -r '.window_pct // "nan" | if type == "number" then round else . end' "$cw")
		ws=$(jq -r '.window_s // "nan" | if type == "number" then . * 1000 | round / 1000 else . end' "$cw")
		aw=$(jq -r '.after_workers_s // "nan" | if type == "number" then . * 1000 | round / 1000 else . end' "$cw")
	else
		jstart=nan jexit=nan pub=nan jwall=nan jcpu=nan jpct=nan wpct=nan ws=nan aw=nan
	fi
	dcpu=$(awk -v a="$d0" -v b="$d2" 'BEGIN { printf "%.2f", b - a }')
	X=${X:-nan} S=${S:-nan} T=${T:-nan}
	# 1 round, 2 end to end, 3 spec write, 4 job start, 5 parsed (log),
	# 6 scored (log), 7 job exit, 8 job wall, 9 publication, 10 job CPU s,
	# 11 job CPU %, 12 CPU % over the scoring threads, 13 threads (log),
	# 14 daemon CPU s, 15 spec -> job start, 16 scored - parsed,
	# 17 job wall - scored, 18 the scoring threads' span, 19 from their
	# end to the job's exit
	{
		printf '%s\t' "$r" "$e2e" "$spec_s" "$jstart" "$X" "$S" "$jexit" \
			"$jwall" "$pub" "$jcpu" "$jpct" "$wpct" "$T" "$dcpu" \
			"$(diff_s "$spec_s" "$jstart")" "$(diff_s "$X" "$S")"
		printf '%s\t' "$(diff_s "$S" "$jwall")"
		printf '%s\t%s\n' "$ws" "$aw"
	} >>"$RES/mlfs.tsv"
	log "round $r mlfs: $e2e s end to end (spec $spec_s s, job start +$jstart s, parsed in $X s, scored in $S s with $T threads, job exit +$jexit s, publish $pub s); job CPU $jcpu s over $jwall s = $jpct %, scoring span $wpct %; daemon CPU $dcpu s"
	"$PY" "$ML_HELPER" batch "$DATA/b1m_features.csv" "$W/b1m-model.pkl" 1 \
		>"$RES/batch-sk-$r.json" || die "scikit-learn batch scoring failed"
	log "round $r scikit-learn: float32 $(jq '.seconds[0] * 1000 | round / 1000' "$RES/batch-sk-$r.json") s, float64 $(jq '.seconds_f64[0] * 1000 | round / 1000' "$RES/batch-sk-$r.json") s"
done

# ---------------------------------------------------------------- answers
log "answers: models/b1m/v1/predict on the same rows, one handle"
note_load answers
PRED_OUT=$("$PB" batch "$MNT/models/b1m/v1/predict" "$DATA/b1m_features.csv" \
	"$W/answers.csv") || die "predict on models/b1m/v1/predict failed"
log "predict (rows seconds rows/s answers errors): $PRED_OUT"
# context: predict's answers depend on which rows share a write?  The
# same rows again in writes of up to 64 KiB
"$PB" batch "$MNT/models/b1m/v1/predict" "$DATA/b1m_features.csv" \
	"$W/answers-64k.csv" 65536 >/dev/null || die "predict with 64 KiB writes failed"
PRED_SELF=$(paste -d'|' "$W/answers.csv" "$W/answers-64k.csv" |
	awk -F'|' '$1 != $2 { n++ } END { print n + 0 }')
log "predict's answers with 64 KiB writes differ from those with 1 MiB writes on $PRED_SELF rows"
rm -f "$W/answers-64k.csv"
cp "$MNT/datasets/scored1/v1/data.csv" "$W/scored1.csv"
SAME_RUNS=0
for ((r = 2; r <= BATCH_RUNS; r++)); do
	if cmp -s "$W/scored1.csv" "$MNT/datasets/scored$r/v1/data.csv"; then
		SAME_RUNS=$((SAME_RUNS + 1))
	else
		log "round $r's output differs from round 1's"
	fi
done
EXPECT_HDR=$(jq -r --arg c "$CLASSES" '(. + ["prediction"] + ($c | split(" ") | map("p_" + .))) | join(",")' <<<"$KEEP_JSON")
# compare: the output's columns after the keep columns, against the
# predict answers (class,p_0,...), text and number
awk -F, -v nkeep="$NKEEP" -v tol="$ANSWER_TOL" -v ans="$W/answers.csv" \
	-v hdr="$EXPECT_HDR" -v examples="$RES/examples.txt" '
	FNR == 1 { hdr_ok = ($0 == hdr); next }
	{
		if ((getline a < ans) <= 0) { extra++; next }
		n++
		na = split(a, A, ",")
		if (NF - nkeep != na) { shape++; beyond++; next }
		differs = 0; far = 0
		for (i = 1; i <= na; i++) {
			o = $(nkeep + i)
			if ((o "") != (A[i] "")) { col[i]++; differs = 1; if (i == 1) far = 1 }
			if (i > 1) {
				d = o - A[i]; if (d < 0) d = -d
				if (d > maxd) maxd = d
				if (d > tol) far = 1
			}
		}
		if (differs) {
			rows++
			if (shown < 5) { printf "row %d: batch %s | predict %s\n", n, $0, a >examples; shown++ }
		}
		if (far) beyond++
	}
	END {
		while ((getline a < ans) > 0) missing++
		printf "rows\t%d\nheader_ok\t%d\ntext_rows\t%d\nbeyond\t%d\nshape\t%d\nextra\t%d\nmissing\t%d\nmax_diff\t%.3g\n",
			n, hdr_ok, rows, beyond, shape, extra, missing, maxd
		for (i = 1; i <= na; i++) printf "col%d\t%d\n", i, col[i] + 0
	}' "$W/scored1.csv" >"$RES/compare.tsv" || die "cannot compare the answers"
cmpv() { awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$RES/compare.tsv"; }
log "answers against predict: $(tr '\t\n' '= ' <"$RES/compare.tsv")"
log "answers against scikit-learn's predict_proba (bench_ml.py agree, context)"
tail -n +2 "$W/scored1.csv" | cut -d, -f$((NKEEP + 1))- >"$W/scored1-body.csv"
"$PY" "$ML_HELPER" agree "$W/scored1-body.csv" "$W/b1m-model.pkl" \
	"$DATA/b1m_features.csv" >"$RES/agree.json" || true
log "agree: $(cat "$RES/agree.json")"
rm -f "$W/answers.csv" "$W/scored1.csv" "$W/scored1-body.csv"

# ---------------------------------------------------------------- report
note_load end
check_binaries
RSS=$(awk '/^RssAnon:/ { print $2 }' "/proc/$ML_PID/status")
OUT_SIZE=$(stat -c %s "$MNT/datasets/scored1/v1/data.csv")
unmount "$MNT" "$ML_PID" mlfs
ML_PID=

# col N: the median of column N of mlfs.tsv
col() { awk -F'\t' -v c="$1" '$c != "nan" { print $c }' "$RES/mlfs.tsv" | med; }
# each N: column N of mlfs.tsv, round by round
each() { cut -f"$1" "$RES/mlfs.tsv" | paste -sd' '; }
E2E=$(col 2)
# sk FIELD: scikit-learn's seconds (seconds: float32, seconds_f64), a round a line
sk() { for ((r = 1; r <= BATCH_RUNS; r++)); do jq -r ".$1[0] * 1000 | round / 1000" "$RES/batch-sk-$r.json"; done; }
SK=$(sk seconds | med)
SK64=$(sk seconds_f64 | med)
RATE=$(awk -v n="$NROWS" -v s="$E2E" 'BEGIN { printf "%.0f", n / s }')
SK_RATE=$(awk -v n="$NROWS" -v s="$SK" 'BEGIN { printf "%.0f", n / s }')
SK64_RATE=$(awk -v n="$NROWS" -v s="$SK64" 'BEGIN { printf "%.0f", n / s }')
R=$(ratio "$RATE" "$SK_RATE")
R64=$(ratio "$RATE" "$SK64_RATE")
R_ROUNDS=$(for ((r = 1; r <= BATCH_RUNS; r++)); do
	ratio "$(jq '.seconds[0]' "$RES/batch-sk-$r.json")" "$(awk -F'\t' -v r="$r" '$1 == r { print $2 }' "$RES/mlfs.tsv")"
	echo
done | paste -sd' ')
SK_ROUNDS=$(sk seconds | paste -sd' ')
SK64_ROUNDS=$(sk seconds_f64 | paste -sd' ')
read -r _ P_SECS P_RATE _ _ <<<"$PRED_OUT"
NCPU=$(nproc)
WPCT=$(col 12)
CPU_GOAL=$((NCPU * 75))
TEXT_ROWS=$(cmpv text_rows)
BEYOND=$(($(cmpv beyond) + $(cmpv extra) + $(cmpv missing)))
COLNAMES=(prediction)
for c in $CLASSES; do COLNAMES+=("p_$c"); done
PER_COL=$(for i in "${!COLNAMES[@]}"; do printf '%s %s, ' "${COLNAMES[$i]}" "$(cmpv "col$((i + 1))")"; done)
PER_COL=${PER_COL%, }
ANSWERS_OK=$([[ $BEYOND == 0 && $(cmpv rows) == "$NROWS" && $(cmpv header_ok) == 1 ]] && echo 1 || echo 0)
thread_line() { # round R: per-thread CPU seconds of the job
	jq -r '"main \(.main_cpu_s * 100 | round / 100) s; scoring threads " +
		([.workers[] | "\(.cpu_s * 100 | round / 100) s (+\(.from_s * 100 | round / 100)..+\(.to_s * 100 | round / 100) s)"] | join(", ")) +
		(if (.other_cpu_s | length) > 0 then "; other threads " + ([.other_cpu_s[] | "\(. * 100 | round / 100) s"] | join(", ")) else "" end) +
		"; up to \(.max_threads) threads; \(.samples) samples"' "$RES/cpu-$1.json" 2>/dev/null || echo "not sampled"
}

cat <<EOF

==== mlfs batch scoring benchmark: summary ====
mlfs        $REV
machine     $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $NCPU CPUs, $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r)
python      $("$PY" -c 'import sys, numpy, sklearn; print(sys.version.split()[0], "numpy", numpy.__version__, "scikit-learn", sklearn.__version__)'); $(jq -r .blas "$RES/batch-sk-1.json")
load avg    $(awk -F'\t' '{ printf "%s %s%s; ", $1, $2, $3 ? " (" $3 " compilers running)" : "" }' "$RES/load.tsv")
minutes     $((($(date +%s) - START + 59) / 60)) (data generation $GEN_S s; import of b1m $IMPORT_S s)
data        b1m $NROWS x 50, 2 classes; model b1m@1 logistic, l2 $L2, test accuracy mlfs $MLFS_ACC, scikit-learn $(jq .metric "$RES/sk-fit.json")
daemon      RssAnon $((RSS / 1024)) MB at the end; output data.csv $((OUT_SIZE / 1000000)) MB

1. batch scoring of b1m, $NROWS rows (medians of $BATCH_RUNS interleaved rounds)
                                                      seconds      rows/s
   mlfs batch/b<r>.json -> jobs/b<r>/wait        $(printf '%10s %11s' "$E2E" "$RATE")
   scikit-learn loadtxt+transform+predict_proba  $(printf '%10s %11s' "$SK" "$SK_RATE")   (float32)
                                                 $(printf '%10s %11s' "$SK64" "$SK64_RATE")   (float64)
   ratio rows/s, mlfs / scikit-learn float32     $(printf '%9sx' "$R")               goal >= 3x: $(verdict "$R >= 3")
   ratio in each round                           $R_ROUNDS   (vs float64: ${R64}x)
   seconds in each round: mlfs $(each 2); scikit-learn float32 $SK_ROUNDS, float64 $SK64_ROUNDS
   context: models/b1m/v1/predict, one handle, 1 MiB writes (predict_bench batch): $P_SECS s, $P_RATE rows/s; batch/ $(ratio "$RATE" "$P_RATE")x that

2. answers: datasets/scored1/v1/data.csv against models/b1m/v1/predict on the same rows
   rows $(cmpv rows) of $NROWS; header "$(head -c 80 <<<"$EXPECT_HDR")" $([[ $(cmpv header_ok) == 1 ]] && echo as expected || echo NOT as expected); rows missing $(cmpv missing), extra $(cmpv extra), of another shape $(cmpv shape)
   rows whose text differs: $TEXT_ROWS (per column: $PER_COL)   goal 0: $(verdict "$TEXT_ROWS == 0")
   rows different beyond rounding (class, or a probability > $ANSWER_TOL apart, or missing): $BEYOND   goal 0: $(verdict "$BEYOND == 0")
   largest probability difference: $(cmpv max_diff)$(if [[ -s $RES/examples.txt ]]; then
	echo "; the first rows that differ:"
	sed 's/^/     /' "$RES/examples.txt"
fi)
   context: predict itself, writes of up to 64 KiB against 1 MiB: $PRED_SELF rows differ as text
   outputs of rounds 2..$BATCH_RUNS byte for byte round 1's: $SAME_RUNS of $((BATCH_RUNS - 1))$( ((BATCH_RUNS > 1)) || echo " (one round)")
   context, against scikit-learn's predict_proba: $(jq -c '{agree, prob_within, prob_max_diff, ok}' "$RES/agree.json" 2>/dev/null || echo "not measured")

3. CPU use of the job process (mlfs-job), sampled every 0.1 s, $NCPU CPUs
   threads (log "scored ... (T threads)") in each round: $(each 13)
   job CPU s over its wall s, in each round: $(paste -d/ <(cut -f10 "$RES/mlfs.tsv") <(cut -f8 "$RES/mlfs.tsv") | paste -sd' ') = $(each 11) %
   CPU % over the scoring threads' span, in each round: $(each 12) (median $WPCT)   goal >= $CPU_GOAL %: $(verdict "\"$WPCT\" != \"nan\" && $WPCT >= $CPU_GOAL")
$(for ((r = 1; r <= BATCH_RUNS; r++)); do echo "   round $r: $(thread_line "$r")"; done)

4. where the time goes, seconds (medians of the rounds; they need not add up)
   spec write + close returned (the daemon checks the spec)   +$(col 3) from the start of the write
   the job process started (queue, spawn)                     +$(col 4)
   job: model load + parse (log "parsed ... in X s")          $(col 5)
   job: scoring + writing out/data.csv (log "scored" - X)     $(col 16)
     of which the scoring threads ran (sampled, +-0.1)        $(col 18)
     from their end to the job's exit (answers written, exit) $(col 19)
   job: the rest of its life (exec, plan, exit)               $(col 17)   (job wall $(col 8))
   publication: job exit -> wait returns                      $(col 9)   (daemon CPU over the whole round $(col 14) s)
   end to end                                                 $E2E
   in each round [spec, start, parsed, scored, exit, wait] from the spec write:
     $(awk -F'\t' '{ printf "[%s, %s, %s, %s, %s, %s] ", $3, $4, $5, $6, $7, $2 }' "$RES/mlfs.tsv")
EOF

if [[ $ANSWERS_OK != 1 ]]; then
	die "the batch answers are not the model's predict on the same rows (see 2)"
fi
