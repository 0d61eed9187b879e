#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_serve.sh - deployments/<d>/ (DESIGN.md §4) measured side by side
# with the model's own predict, in one run.
#
# A benchmark, not a test: it measures, prints medians and ratios, and marks
# each goal met or missed; it fails only when something cannot be measured.
#
# Two versions of one model are trained on iris (m@1: logistic; m@2:
# logistic with l2 0.5, the same size and cost) and served through
# deployments; every deployment logs to its prediction store (the default).
#
#   1. routing overhead: one iris row written and its answer line read on
#      ONE open handle, LAT_N times, through deployments/lat/predict (a
#      canary, m@1 90 / m@2 10) and through models/m/predict (m@2, the
#      latest), in LAT_ROUNDS interleaved rounds; and, as context,
#      open + write + read + close per row (OPEN_N times) on both, where
#      the deployment's close commits its prediction store.  C client
#      (serve_bench.c) for both sides.
#   2. load: CLIENTS threads of the C client, each on its own handle of
#      deployments/load/predict (a canary like lat), for LOAD_SECS: rows/s,
#      p50/p99 per row, errors; then SHELLS shells, each started with
#      setsid (a process session of its own, as answers are kept per
#      session), looping `echo ROW > predict; cat predict` for LOAD_SECS:
#      answers counted.  Then the prediction store is checked against the
#      answers of both phases: exactly one "prediction" line per answered
#      row, no id logged or answered twice, no line for a row not
#      answered.  As context (LOAD_MODEL=1), the same C clients on
#      models/m/predict for LOAD_SECS.
#   3. bandits: epsilon-greedy (epsilon 0.1) and thompson over m@1 and
#      m@2, BANDIT_N requests in batches of BANDIT_BATCH rows on one handle
#      each; after each batch the handle is fsynced, the candidate of each
#      request id is read from the new lines of `predictions`, and
#      feedback is written for every row: truth = the answer with
#      probability 0.95 if m@2 (the better one, listed second, so that
#      ties going to the first help no one) answered it, else 0.70, and a
#      wrong class otherwise.  Reported: the share of the last half of the
#      requests routed to m@2.
#   4. rollback: blue-green m@1 -> m@2 with "rollback": {"accuracy_below":
#      0.8, "min_requests": ROLLBACK_MIN}, `promote` written to ctl, then
#      per row: predict on one handle, its feedback (wrong with
#      probability 0.30) written to `feedback`, `status` read; reported:
#      after how many feedback rows status says "rolled back", and which
#      candidate serves the next rows.
#
# Goals: (1) deployment p50 on a handle <= 1.2x the model's p50; (2) 0
# errors, and the prediction store holds exactly one line per answered
# row with no id twice; (3) epsilon-greedy sends >= 85 % and thompson >=
# 90 % of the last half of the requests to the better candidate; (4) the
# rollback happens within ROLLBACK_MIN + 100 feedback rows.  Latency goals
# are judged on the medians over rounds (of each side's p50); the ratio in
# each round is printed beside it.
#
# Usage: tests/bench/serve/bench_serve.sh      (needs FUSE: /dev/fuse,
#        fusermount3)
# Environment:
#   MLFS_BUILD   release build dir (default: <repo>/build-release); it is
#                configured -Dbuildtype=release -Dtests=false -Db_sanitize=none
#                (set up here when missing).  Jobs run $MLFS_BUILD/fs/mlfs-job:
#                use a private build dir on a shared tree
#   BENCH_DIR    scratch dir (default: mktemp -d in $TMPDIR or /tmp); must be
#                new or empty; removed at exit.  The load phase logs about
#                400 bytes per row: a few hundred MB for 60 s
#   LAT_N        rows per latency measurement on a handle (10000)
#   OPEN_N       rows per open+write+read+close measurement (2000)
#   LAT_ROUNDS   rounds of the latency measurements, interleaved (5)
#   LOAD_SECS    seconds of each load phase (60)
#   CLIENTS      C clients in the load phase (16)
#   SHELLS       shells in the load phase (16)
#   LOAD_MODEL   1 (default): also the C clients on models/m/predict, as
#                context; 0: not
#   BANDIT_N     requests per bandit, with feedback for each (2000)
#   BANDIT_BATCH rows per bandit batch (10)
#   ROLLBACK_MIN the rollback rule's min_requests (200)
#   SEED         the deployments' seed and the feedback's (1)
#   MLFS_REV     what to call the mlfs measured (default: git rev of REPO)
#   PY           a Python 3 for the checks and the feedback loops
#                (/usr/bin/python3; standard library only)
#
# Needs: meson, ninja, cc, pkg-config, fusermount3, setsid, jq, python3.
# About 4.5 minutes with LOAD_SECS=60 on 2 vCPUs; the load phases run
# 16 clients on 2 CPUs, so the load average reads about 15 meanwhile.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${MLFS_BUILD:-$REPO/build-release}
LAT_N=${LAT_N:-10000}
OPEN_N=${OPEN_N:-2000}
LAT_ROUNDS=${LAT_ROUNDS:-5}
LOAD_SECS=${LOAD_SECS:-60}
CLIENTS=${CLIENTS:-16}
SHELLS=${SHELLS:-16}
LOAD_MODEL=${LOAD_MODEL:-1}
BANDIT_N=${BANDIT_N:-2000}
BANDIT_BATCH=${BANDIT_BATCH:-10}
ROLLBACK_MIN=${ROLLBACK_MIN:-200}
SEED=${SEED:-1}
PY=${PY:-/usr/bin/python3}
IRIS=$REPO/examples/data/iris.csv
START=$(date +%s)

# log, is_mounted, unmount
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
die() { log "error: $*"; exit 1; }

for cmd in meson cc pkg-config fusermount3 setsid awk jq; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
"$PY" -c 'import json, random' 2>/dev/null || die "$PY is not a working Python 3"
[[ -r $IRIS ]] || die "$IRIS not found"
((BANDIT_N >= 2 * BANDIT_BATCH && BANDIT_N % BANDIT_BATCH == 0)) ||
	die "BANDIT_N ($BANDIT_N) must be a multiple of BANDIT_BATCH ($BANDIT_BATCH), two batches or more"

# ---------------------------------------------------------------- scratch
if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p "$BENCH_DIR"
	[[ -z $(ls -A "$BENCH_DIR") ]] || die "BENCH_DIR $BENCH_DIR is not empty"
	W=$(cd "$BENCH_DIR" && pwd -P)
else
	W=$(mktemp -d "${TMPDIR:-/tmp}/mlfs-bench-serve.XXXXXX")
	W=$(cd "$W" && pwd -P)
fi
RES=$W/res
STORE=$W/store
CACHE=$W/cache
MNT=$W/mnt
mkdir -p "$RES" "$STORE" "$CACHE" "$MNT" "$W/shells"

ML_PID=
SB_PID=
SHELL_PIDS=()

# stop_load: the load clients this script started, if still running
stop_load() {
	local pid
	if [[ -n $SB_PID ]]; then
		kill -TERM "$SB_PID" 2>/dev/null || true
		wait "$SB_PID" 2>/dev/null || true
		SB_PID=
	fi
	for pid in "${SHELL_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${SHELL_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	SHELL_PIDS=()
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	stop_load
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

MED_DIGITS=2 # med (lib.sh): medians of two with 2 decimals

note_load start

# ---------------------------------------------------------------- build
build_release

log "building the C client"
cc -O2 -Wall -Wextra -pthread -o "$W/serve_bench" "$HERE/serve_bench.c" ||
	die "cannot build serve_bench"
SB=$W/serve_bench

# ---------------------------------------------------------------- mount
log "mounting mlfs"
"$MLFS" -f -o "cache=$CACHE" "$STORE" "$MNT" >"$W/mlfs.log" 2>&1 &
ML_PID=$!
wait_mounted "$MNT" "$ML_PID" mlfs "$W/mlfs.log"

mkdir "$MNT/datasets/iris"
cp "$IRIS" "$MNT/datasets/iris/data.csv" || die "cp iris.csv into mlfs failed"

# mlfs_job JOB SPEC: run a training job to its end
mlfs_job() {
	local job=$1 spec=$2 st
	printf '%s\n' "$spec" >"$MNT/train/$job.json" ||
		{ cat "$MNT/.mlfs/errors" >&2 2>/dev/null; die "spec for $job refused: $spec"; }
	st=$(cat "$MNT/jobs/$job/wait")
	if [[ $st != succeeded ]]; then
		tail -n 20 "$MNT/jobs/$job/log" >&2 || true
		check_binaries
		die "job $job: $st"
	fi
}

log "training m@1 and m@2 on iris"
mlfs_job a '{"dataset": "iris", "algorithm": "logistic", "model": "m"}'
mlfs_job b '{"dataset": "iris", "algorithm": "logistic", "model": "m", "params": {"l2": 0.5}}'

# deploy NAME SPEC: mkdir deployments/NAME and write its spec
deploy() {
	mkdir "$MNT/deployments/$1"
	printf '%s\n' "$2" >"$MNT/deployments/$1/spec" ||
		{ tail -n 3 "$MNT/.mlfs/errors" >&2 2>/dev/null; die "deployment $1 refused: $2"; }
}

CANARY="{\"strategy\": \"canary\", \"seed\": $SEED, \"candidates\": [{\"model\": \"m@1\", \"weight\": 90}, {\"model\": \"m@2\", \"weight\": 10}]}"
deploy lat "$CANARY"
deploy load "$CANARY"
deploy eg "{\"strategy\": \"epsilon-greedy\", \"epsilon\": 0.1, \"seed\": $SEED, \"candidates\": [\"m@1\", \"m@2\"]}"
deploy th "{\"strategy\": \"thompson\", \"seed\": $SEED, \"candidates\": [\"m@1\", \"m@2\"]}"
deploy bg "{\"strategy\": \"blue-green\", \"seed\": $SEED, \"candidates\": [\"m@1\", \"m@2\"], \"rollback\": {\"accuracy_below\": 0.8, \"min_requests\": $ROLLBACK_MIN}}"

ROW=$(sed -n 2p "$IRIS" | cut -d, -f1-4)
printf '%s\n' "$ROW" >"$W/row.csv"

# ---------------------------------------------------------------- 1. latency
log "1. routing overhead: $LAT_ROUNDS rounds of $LAT_N rows on a handle and $OPEN_N open+close, each side"
note_load latency
DEP_P=$MNT/deployments/lat/predict
MOD_P=$MNT/models/m/predict
: >"$RES/lat.tsv"
for ((r = 1; r <= LAT_ROUNDS; r++)); do
	for kind in dep-handle mod-handle dep-open mod-open; do
		case $kind in
		dep-handle) out=$("$SB" handle "$DEP_P" "$W/row.csv" "$LAT_N" lat-) ;;
		mod-handle) out=$("$SB" handle "$MOD_P" "$W/row.csv" "$LAT_N" -) ;;
		dep-open) out=$("$SB" open "$DEP_P" "$W/row.csv" "$OPEN_N" lat-) ;;
		mod-open) out=$("$SB" open "$MOD_P" "$W/row.csv" "$OPEN_N" -) ;;
		esac || die "latency $kind failed"
		printf '%s\t%s\n' "$kind" "$out" >>"$RES/lat.tsv"
		log "latency round $r $kind: p50 p99 mean (us) $out"
	done
done

# round_ratios A B: the p50 of A over that of B in each round, in order
round_ratios() {
	awk -F'\t' -v a="$1" -v b="$2" '
		$1 == a { split($2, f, " "); x[++na] = f[1] }
		$1 == b { split($2, f, " "); y[++nb] = f[1] }
		END { for (i = 1; i <= na && i <= nb; i++) if (y[i] > 0) printf "%.2f\n", x[i] / y[i] }' \
		"$RES/lat.tsv"
}

# lat_stat KIND FIELD: the median over rounds of field (1 p50, 2 p99, 3 mean)
lat_stat() {
	awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$RES/lat.tsv" |
		awk -v f="$2" '{ print $f }' | med
}

# ---------------------------------------------------------------- 2. load
log "2. load: $CLIENTS C clients on their own handles for $LOAD_SECS s"
note_load load-c
LOAD_P=$MNT/deployments/load/predict
"$SB" load "$LOAD_P" "$W/row.csv" "$CLIENTS" "$LOAD_SECS" load- \
	"$W/ids-c.txt" >"$RES/load-c.txt" 2>"$W/load-c.err" &
SB_PID=$!
wait "$SB_PID" || { SB_PID=; tail -n 20 "$W/load-c.err" >&2; die "the load client failed"; }
SB_PID=
read -r C_ROWS C_SECS C_RATE C_P50 C_P99 C_MEAN C_ERR <"$RES/load-c.txt"
log "C clients: $C_ROWS rows in $C_SECS s, $C_RATE rows/s, p50 $C_P50 us, p99 $C_P99 us, mean $C_MEAN us, $C_ERR errors"
if [[ -s $W/load-c.err ]]; then
	log "the C clients said:"
	sort "$W/load-c.err" | uniq -c | sort -rn | head -n 10 >&2
fi

if [[ $LOAD_MODEL == 1 ]]; then
	log "2. load (context): $CLIENTS C clients on models/m/predict for $LOAD_SECS s"
	note_load load-model
	"$SB" load "$MOD_P" "$W/row.csv" "$CLIENTS" "$LOAD_SECS" - /dev/null \
		>"$RES/load-model.txt" 2>"$W/load-model.err" &
	SB_PID=$!
	wait "$SB_PID" || { SB_PID=; tail -n 20 "$W/load-model.err" >&2; die "the load client failed"; }
	SB_PID=
	read -r M_ROWS M_SECS M_RATE M_P50 M_P99 M_MEAN M_ERR <"$RES/load-model.txt"
	log "C clients on the model: $M_ROWS rows in $M_SECS s, $M_RATE rows/s, p50 $M_P50 us, p99 $M_P99 us, mean $M_MEAN us, $M_ERR errors"
fi

log "2. load: $SHELLS shells (setsid) looping echo ROW > predict; cat predict for $LOAD_SECS s"
note_load load-shells
# each shell: answers to shells/N.out, its iteration count to shells/N.n
# shellcheck disable=SC2016 # expanded by each shell
SHELL_LOOP='p=$1 row=$2 end=$3 n=0
while (( ${EPOCHREALTIME//[!0-9]/} < end )); do
	echo "$row" >"$p" || echo "error: echo failed"
	cat "$p" || echo "error: cat failed"
	n=$((n + 1))
done
echo "$n" >"$4"'
t0=${EPOCHREALTIME//[!0-9]/}
end=$((t0 + LOAD_SECS * 1000000))
for ((i = 1; i <= SHELLS; i++)); do
	setsid bash -c "$SHELL_LOOP" shell "$LOAD_P" "$ROW" "$end" "$W/shells/$i.n" \
		>"$W/shells/$i.out" 2>&1 &
	SHELL_PIDS+=($!)
done
for pid in "${SHELL_PIDS[@]}"; do
	wait "$pid" || true
done
SHELL_PIDS=()
t1=${EPOCHREALTIME//[!0-9]/}
S_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')
S_ITER=$(cat "$W"/shells/*.n 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
S_ANS=$(cat "$W"/shells/*.out | grep -c '^load-' || true)
S_BAD=$(cat "$W"/shells/*.out | grep -vc '^load-' || true)
S_DONE=$(find "$W/shells" -name "*.n" | wc -l)
S_RATE=$(awk -v n="$S_ANS" -v s="$S_SECS" 'BEGIN { printf "%.0f", n / s }')
S_MISS=$((S_ITER - S_ANS))
log "shells: $S_ANS answers in $S_SECS s ($S_RATE/s) for $S_ITER rows sent, $S_BAD other lines, $S_DONE/$SHELLS shells finished"
if ((S_BAD)); then
	log "shell lines that are not answers:"
	cat "$W"/shells/*.out | grep -v '^load-' | sort | uniq -c | sort -rn | head -n 10 >&2
fi
for ((i = 1; i <= SHELLS; i++)); do
	grep '^load-' "$W/shells/$i.out" | cut -d, -f1
done >"$W/ids-sh.txt"

log "2. checking the prediction store of deployments/load against the answers"
note_load load-check
"$PY" - "$MNT/deployments/load/predictions" "$W/ids-c.txt" "$W/ids-sh.txt" \
	>"$RES/load-check.json" <<'EOF' || die "cannot check the prediction store"
import collections, json, sys

log_path, *id_files = sys.argv[1:]
answered = collections.Counter()
for f in id_files:
    with open(f) as fp:
        for line in fp:
            answered[line.strip()] += 1
logged, kinds, bad = collections.Counter(), collections.Counter(), 0
with open(log_path, "rb") as fp:
    for line in fp:
        try:
            o = json.loads(line)
        except ValueError:
            bad += 1
            continue
        kinds[o.get("kind")] += 1
        if o.get("kind") == "prediction":
            logged[o.get("id")] += 1
a, l = set(answered), set(logged)
print(json.dumps({
    "answered": sum(answered.values()),
    "answered_twice": sum(1 for v in answered.values() if v > 1),
    "logged": sum(logged.values()),
    "logged_twice": sum(1 for v in logged.values() if v > 1),
    "answered_not_logged": len(a - l),
    "logged_not_answered": len(l - a),
    "kinds": kinds,
    "unparsable": bad,
    "ok": bool(answered) and answered == logged
          and all(v == 1 for v in logged.values()) and bad == 0
          and set(kinds) == {"prediction"},
}))
EOF
log "prediction store: $(cat "$RES/load-check.json")"
rm -f "$W/ids-c.txt" "$W/ids-sh.txt"

# ---------------------------------------------------------------- 3. bandits
# bandit NAME: BANDIT_N requests with feedback; JSON result on stdout
bandit() {
	"$PY" - "$MNT/deployments/$1" "$IRIS" "$BANDIT_N" "$BANDIT_BATCH" "$SEED" <<'EOF'
import json, os, random, sys, time

d, iris, n, batch, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
BETTER, P_GOOD, P_BAD = "m@2", 0.95, 0.70
with open(iris) as fp:
    data = [l.strip().split(",") for l in fp.read().splitlines()[1:] if l.strip()]
rows = [",".join(r[:4]) for r in data]
classes = sorted({r[4] for r in data})
rng = random.Random(seed)
pos, pending, sent, k = 0, b"", [], 0
right = {}
t0 = time.monotonic()


def new_lines():
    """The candidate of each prediction id in the log's new lines."""
    global pos, pending
    with open(os.path.join(d, "predictions"), "rb") as fp:
        fp.seek(pos)
        data = fp.read()
    pos += len(data)
    data = pending + data
    cut = data.rfind(b"\n") + 1
    pending = data[cut:]
    out = {}
    for line in data[:cut].splitlines():
        o = json.loads(line)
        if o["kind"] == "prediction":
            out[o["id"]] = o["candidate"]
    return out


cand_of = {}
for b in range(n // batch):
    text = "".join(rows[(k + i) % len(rows)] + "\n" for i in range(batch))
    k += batch
    fd = os.open(os.path.join(d, "predict"), os.O_RDWR)
    os.write(fd, text.encode())
    out = b""
    while out.count(b"\n") < batch:
        got = os.read(fd, 1 << 16)
        if not got:
            break
        out += got
    os.fsync(fd)
    os.close(fd)
    answers = [l.split(",") for l in out.decode().splitlines()]
    if len(answers) != batch or any(a[0].startswith("error") for a in answers):
        sys.exit("batch %d: %d answers: %r" % (b, len(answers), out[:300]))
    cand_of.update(new_lines())
    fb = []
    for a in answers:
        rid, pred = a[0], a[1]
        if rid not in cand_of:
            time.sleep(1.2)  # the group commit, should fsync not have done it
            cand_of.update(new_lines())
        if rid not in cand_of:
            sys.exit("%s answered but not in predictions after fsync" % rid)
        c = cand_of.pop(rid)
        good = rng.random() < (P_GOOD if c == BETTER else P_BAD)
        truth = pred if good else rng.choice([x for x in classes if x != pred])
        fb.append("%s,%s\n" % (rid, truth))
        sent.append(c)
        r = right.setdefault(c, [0, 0])
        r[0] += good
        r[1] += 1
    fd = os.open(os.path.join(d, "feedback"), os.O_WRONLY)
    os.write(fd, "".join(fb).encode())
    os.close(fd)
half = sent[len(sent) // 2:]
print(json.dumps({
    "requests": len(sent),
    "share_last_half": half.count(BETTER) / len(half),
    "last_half": len(half),
    "share_all": sent.count(BETTER) / len(sent),
    "feedback_accuracy": {c: round(r[0] / r[1], 3) for c, r in sorted(right.items())},
    "requests_by_candidate": {c: r[1] for c, r in sorted(right.items())},
    "seconds": round(time.monotonic() - t0, 2),
}))
EOF
}

for b in eg th; do
	log "3. bandit $b: $BANDIT_N requests with feedback, batches of $BANDIT_BATCH"
	note_load "bandit-$b"
	bandit "$b" >"$RES/bandit-$b.json" || die "bandit $b could not be measured"
	log "bandit $b: $(cat "$RES/bandit-$b.json")"
	log "bandit $b traffic: $(tr '\n' ';' <"$MNT/deployments/$b/traffic")"
done

# ---------------------------------------------------------------- 4. rollback
log "4. rollback: blue-green, promote, then rows with feedback 70 % right"
note_load rollback
printf 'promote\n' >"$MNT/deployments/bg/ctl" || die "promote refused"
"$PY" - "$MNT/deployments/bg" "$IRIS" "$ROLLBACK_MIN" "$SEED" \
	>"$RES/rollback.json" <<'EOF' || die "rollback could not be measured"
import json, os, random, sys, time

d, iris, rmin, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
P_RIGHT = 0.70
with open(iris) as fp:
    data = [l.strip().split(",") for l in fp.read().splitlines()[1:] if l.strip()]
rows = [",".join(r[:4]) for r in data]
classes = sorted({r[4] for r in data})
rng = random.Random(seed)


def read(name):
    with open(os.path.join(d, name)) as fp:
        return fp.read()


def predict(fd, row):
    os.write(fd, (row + "\n").encode())
    out = b""
    while not out.endswith(b"\n"):
        got = os.read(fd, 1 << 16)
        if not got:
            break
        out += got
    a = out.decode().strip().split(",")
    if a[0].startswith("error") or len(a) < 2:
        sys.exit("bad answer %r" % out)
    return a[0], a[1]


status0 = read("status").strip()
traffic0 = read("traffic").split("\n")
fd = os.open(os.path.join(d, "predict"), os.O_RDWR)
after, n, nright, status, t_fb = None, 0, 0, status0, None
for i in range(rmin + 300):
    rid, pred = predict(fd, rows[i % len(rows)])
    good = rng.random() < P_RIGHT
    truth = pred if good else rng.choice([x for x in classes if x != pred])
    nright += good
    t = time.monotonic()
    ffd = os.open(os.path.join(d, "feedback"), os.O_WRONLY)
    os.write(ffd, ("%s,%s\n" % (rid, truth)).encode())
    os.close(ffd)
    n += 1
    status = read("status").strip()
    if status.startswith("rolled back"):
        after, t_fb = n, time.monotonic() - t
        break
# who serves now
ids = [predict(fd, rows[j % len(rows)])[0] for j in range(10)]
os.fsync(fd)
os.close(fd)
cand = {}
with open(os.path.join(d, "predictions")) as fp:
    for line in fp:
        o = json.loads(line)
        if o["kind"] == "prediction":
            cand[o["id"]] = o["candidate"]
print(json.dumps({
    "status_before": status0,
    "traffic_after_promote": traffic0[:2],
    "rolled_back_after": after,
    "feedback_sent": n,
    "accuracy_sent": round(nright / n, 3) if n else None,
    "status": status,
    "feedback_to_status_ms": round(t_fb * 1e3, 2) if t_fb is not None else None,
    "next_rows_served_by": sorted({cand.get(x, "not logged") for x in ids}),
    "traffic": read("traffic").strip().split("\n"),
}))
EOF
log "rollback: $(cat "$RES/rollback.json")"

# ---------------------------------------------------------------- report
note_load end
check_binaries
RSS=$(awk '/^RssAnon:/ { print $2 }' "/proc/$ML_PID/status")
SEGS=$(find "$STORE/deployments" -name '*.jsonl' | wc -l)
PSIZE=$(du -sh "$STORE/deployments/load" | cut -f1)
unmount "$MNT" "$ML_PID" mlfs
ML_PID=

DH50=$(lat_stat dep-handle 1) DH99=$(lat_stat dep-handle 2)
MH50=$(lat_stat mod-handle 1) MH99=$(lat_stat mod-handle 2)
DO50=$(lat_stat dep-open 1) DO99=$(lat_stat dep-open 2)
MO50=$(lat_stat mod-open 1) MO99=$(lat_stat mod-open 2)
RH=$(ratio "$DH50" "$MH50")
RO=$(ratio "$DO50" "$MO50")
RH_ROUNDS=$(round_ratios dep-handle mod-handle | paste -sd' ')
RH_MED=$(round_ratios dep-handle mod-handle | med)
RO_ROUNDS=$(round_ratios dep-open mod-open | paste -sd' ')
CHK=$(jq -c 'del(.ok)' "$RES/load-check.json")
CHK_OK=$(jq -r '.ok' "$RES/load-check.json")
LOGGED=$(jq -r '.logged' "$RES/load-check.json")
EG=$(jq -r '.share_last_half' "$RES/bandit-eg.json")
TH=$(jq -r '.share_last_half' "$RES/bandit-th.json")
HALF=$(jq -r '.last_half' "$RES/bandit-eg.json")
RB=$(jq -r '.rolled_back_after // "never"' "$RES/rollback.json")
RB_MAX=$((ROLLBACK_MIN + 100))
pct() { awk -v x="$1" 'BEGIN { printf "%.1f %%", 100 * x }'; }

cat <<EOF

==== mlfs deployments benchmark: summary ====
mlfs        $REV
machine     $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs, $(uname -r)
load avg    $(awk -F'\t' '{ printf "%s %s%s; ", $1, $2, $3 ? " (" $3 " compilers running)" : "" }' "$RES/load.tsv")
minutes     $((($(date +%s) - START + 59) / 60))
daemon      RssAnon $((RSS / 1024)) MB at the end; $SEGS prediction-store segments; store of deployments/load $PSIZE

1. routing overhead, one iris row per call (medians of $LAT_ROUNDS interleaved rounds)
                                        p50 us    p99 us
   deployments/lat/predict, 1 handle  $(printf '%9s %9s' "$DH50" "$DH99")   ($LAT_N rows/round)
   models/m/predict, 1 handle         $(printf '%9s %9s' "$MH50" "$MH99")
   ratio p50 (of the medians)         $(printf '%8sx' "$RH")             goal <= 1.2x: $(verdict "$RH <= 1.2")
   ratio p50 in each round            $RH_ROUNDS (median $RH_MED)
   deployment open+write+read+close   $(printf '%9s %9s' "$DO50" "$DO99")   ($OPEN_N rows/round; close commits the store)
   model open+write+read+close        $(printf '%9s %9s' "$MO50" "$MO99")
   ratio p50 (of the medians)         $(printf '%8sx' "$RO")             (context, no goal)
   ratio p50 in each round            $RO_ROUNDS

2. load on deployments/load/predict (canary 90/10), $LOAD_SECS s each
   $CLIENTS C clients, own handles: $C_ROWS rows, $C_RATE rows/s, p50 $C_P50 us, p99 $C_P99 us, errors $C_ERR   goal 0 errors: $(verdict "$C_ERR == 0")
$(if [[ $LOAD_MODEL == 1 ]]; then
	printf '   context: the same clients on models/m/predict: %s rows/s, p50 %s us, p99 %s us, errors %s; deployment/model rows/s %sx\n' \
		"$M_RATE" "$M_P50" "$M_P99" "$M_ERR" "$(ratio "$C_RATE" "$M_RATE")"
fi)
   $SHELLS setsid shells (echo > predict; cat predict): $S_ANS answers ($S_RATE/s) for $S_ITER rows sent, missing $S_MISS, other lines $S_BAD   goal 0: $(verdict "$S_MISS == 0 && $S_BAD == 0")
   prediction store: $LOGGED prediction lines for $((C_ROWS + S_ANS)) answered rows; $CHK
   goal exactly one line per answered row, no id twice: $([[ $CHK_OK == true ]] && echo met || echo missed)

3. bandits, m@2 right 95 % / m@1 right 70 % by feedback, $BANDIT_N requests, batches of $BANDIT_BATCH
   epsilon-greedy (0.1): $(pct "$EG") of the last $HALF to m@2   goal >= 85 %: $(verdict "$EG >= 0.85")
       $(jq -c 'del(.share_last_half, .last_half)' "$RES/bandit-eg.json")
   thompson:             $(pct "$TH") of the last $HALF to m@2   goal >= 90 %: $(verdict "$TH >= 0.90")
       $(jq -c 'del(.share_last_half, .last_half)' "$RES/bandit-th.json")

4. rollback, blue-green promoted to m@2 (right 70 %), accuracy_below 0.8, min_requests $ROLLBACK_MIN
   rolled back after $RB feedback rows   goal <= $RB_MAX: $(verdict "\"$RB\" != \"never\" && $RB + 0 <= $RB_MAX")
   $(jq -c '{status, accuracy_sent, feedback_to_status_ms, next_rows_served_by}' "$RES/rollback.json")
EOF
