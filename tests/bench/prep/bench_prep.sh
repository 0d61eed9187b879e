#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_prep.sh - mlfs's prepare jobs (DESIGN.md §4 "Preparation and
# collection", manual "Preparing a dataset") measured side by side with
# their Python peers, in one run.
#
# A benchmark, not a test: it measures, prints medians and ratios (peer
# seconds / mlfs seconds: above 1 means mlfs is faster), marks each goal
# met or missed, and prints the checks of mlfs's output; it fails only
# when something cannot be measured or a check fails.
#
#   1. SMOTE: SMOTE_ROWS (200,000) x 20 numeric rows, label 1:20
#      (bench_prep.py gen-smote, seeded), balanced to 1:1.  mlfs, end to
#      end: the clock starts before `cp train.csv datasets/s<r>/data.csv`
#      (made by mkdir before), then the spec {"steps": [{"balance":
#      {"method": "smote", "k": 5}}], "seed": 1} is written to
#      datasets/s<r>/prepare, `cat jobs/s<r>-prepare-1/wait`, and
#      `cat datasets/s<r>/latest/data.csv > file` stops it.  Peer:
#      imbalanced-learn's SMOTE(k_neighbors=5, random_state=1), from
#      pandas read_csv to the end of to_csv (imports not counted).
#      Goal: peer/mlfs >= 3.  Checks (bench_prep.py check-smote): the
#      classes 1:1; the input's rows first and unchanged; every synthetic
#      row on a segment between a minority row and one of its 5 nearest
#      minority neighbours (sklearn NearestNeighbors), within CSV printing;
#      the same check on imbalanced-learn's output (the checker's check);
#      and a LogisticRegression fitted on either output scores the same
#      accuracy, within 1 pp, on held-back rows.
#   2. anonymize: ANON_ROWS (5,000,000) rows x 10 columns, about 500 MB
#      (gen-anon): 3 e-mail columns hashed, 2 dropped, 5 numbers kept.
#      The mount has -o anon_key=FILE (32 random bytes, root's, 0600).
#      mlfs: the CSV is copied into datasets/anon/data.csv once (not
#      timed); each round writes {"dataset": "anon@1", "steps":
#      [{"anonymize": {...}}]} to datasets/anon/prepare and times it to
#      the end of `cat jobs/anon-prepare-<r>/wait`, then the read of
#      latest/data.csv into a file.  MB/s is the input's size over each.
#      Goal: >= 200 MB/s, prepare to wait.  Peer, for context: pandas
#      read_csv, hmac.digest (OpenSSL) of each e-mail under the same
#      owner key (HMAC-SHA-256(key file, "mlfs anon v1 uid 0")), drop,
#      to_csv.  Check: every row of both outputs agrees (hashes exactly).
#
# Rounds: ROUNDS (3) of each, mlfs and the peer interleaved, which goes
# first alternating.  The data is warm in the page cache for both sides.
#
# Usage: tests/bench/prep/bench_prep.sh   (as root: FUSE, and the key
#        file must be root's)
#        SMOTE_ROWS=20000 ANON_ROWS=200000 ROUNDS=1 tests/bench/prep/bench_prep.sh
#        to try it
# Environment:
#   SMOTE_ROWS   rows of the SMOTE data (200000)
#   ANON_ROWS    rows of the anonymize data (5000000)
#   ROUNDS       rounds of each measurement (3)
#   SEED         of the generators (7)
#   MLFS_BUILD   release build dir (default: <repo>/build-release); it is
#                configured -Dbuildtype=release -Dtests=false -Db_sanitize=none
#                (set up here when missing).  Jobs run $MLFS_BUILD/fs/mlfs-job:
#                use a build dir no one rebuilds during the run
#   BENCH_DIR    scratch dir (default: mktemp -d in $TMPDIR or /tmp); must be
#                new or empty; removed at exit.  Needs about 7 GB at the
#                default sizes (the store keeps every round's version)
#   KEEP=1       keep BENCH_DIR at exit
#   MLFS_REV     what to call the mlfs measured (default: git rev of REPO)
#   PY           the Python with pandas, scikit-learn and imbalanced-learn
#                (/usr/bin/python3; Debian: apt-get install python3-pandas
#                python3-sklearn python3-imblearn; installed here when
#                missing, as root with apt-get)
#
# Needs: meson, ninja, cc, pkg-config, fusermount3, jq, python3-imblearn.
# About 12 minutes at the default sizes on 2 vCPUs.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${MLFS_BUILD:-$REPO/build-release}
SMOTE_ROWS=${SMOTE_ROWS:-200000}
ANON_ROWS=${ANON_ROWS:-5000000}
ROUNDS=${ROUNDS:-3}
SEED=${SEED:-7}
KEEP=${KEEP:-0}
PY=${PY:-/usr/bin/python3}
HELPER=$HERE/bench_prep.py
START=$(date +%s)

# log, is_mounted, unmount, wait_mounted, note_load, med, ratio,
# build_release, check_binaries
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
die() { log "error: $*"; exit 1; }

if ! "$PY" -c 'import pandas, sklearn, imblearn' 2>/dev/null; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing python3-pandas python3-sklearn python3-imblearn"
		DEBIAN_FRONTEND=noninteractive apt-get install -y python3-pandas \
			python3-sklearn python3-imblearn >/dev/null 2>&1 ||
			die "apt-get install python3-imblearn failed"
	fi
fi
for cmd in meson cc pkg-config fusermount3 awk jq; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
"$PY" -c 'import numpy, pandas, sklearn, imblearn' 2>/dev/null ||
	die "$PY lacks pandas, sklearn or imblearn (apt-get install python3-imblearn)"
[[ $(id -u) == 0 ]] || die "run as root: FUSE, and -o anon_key wants a file of root's"
((ROUNDS >= 1 && SMOTE_ROWS >= 1000 && ANON_ROWS >= 1)) ||
	die "ROUNDS must be 1 or more, SMOTE_ROWS 1000 or more"

# ---------------------------------------------------------------- scratch
if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p "$BENCH_DIR"
	[[ -z $(ls -A "$BENCH_DIR") ]] || die "BENCH_DIR $BENCH_DIR is not empty"
	W=$(cd "$BENCH_DIR" && pwd -P)
else
	W=$(mktemp -d "${TMPDIR:-/tmp}/mlfs-bench-prep.XXXXXX")
	W=$(cd "$W" && pwd -P)
fi
DATA=$W/data
RES=$W/res
STORE=$W/store
CACHE=$W/cache
MNT=$W/mnt
mkdir -p "$DATA" "$RES" "$STORE" "$CACHE" "$MNT"
ML_PID=

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	unmount "$MNT" "$ML_PID" mlfs
	if is_mounted "$MNT"; then
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

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
note() { printf '%s\n' "$*" >>"$RES/notes.txt"; log "note: $*"; }
# job_s LOG WHAT: a phase's seconds from a prepare job's log
job_s() {
	case $2 in
	read) sed -n 's/^read .* in \([0-9.]*\) s$/\1/p' "$1" ;;
	step) sed -n 's/^step 1 (.*, in \([0-9.]*\) s$/\1/p' "$1" ;;
	write) sed -n 's/^done: .* written in \([0-9.]*\) s$/\1/p' "$1" ;;
	esac | tail -n 1
}
# phases T LOG: the job's phases as JSON fields (the rest: publishing,
# the daemon's part, and starting the job)
phases() {
	local r s w
	r=$(job_s "$2" read) s=$(job_s "$2" step) w=$(job_s "$2" write)
	jq -cn --argjson t "$1" --argjson r "${r:-null}" --argjson s "${s:-null}" \
		--argjson w "${w:-null}" '{job_read: $r, job_step: $s, job_write: $w,
		job_rest: (if $r and $s and $w then (($t - $r - $s - $w) * 1000 | round) / 1000 else null end)}'
}

note_load start

# ---------------------------------------------------------------- build
build_release

# ---------------------------------------------------------------- data
log "generating $SMOTE_ROWS SMOTE rows and $ANON_ROWS anonymize rows (seed $SEED)"
"$PY" "$HELPER" gen-smote "$DATA/train.csv" "$DATA/test.csv" "$SMOTE_ROWS" \
	"$SEED" >"$RES/gen-smote.json" || die "generating the SMOTE data failed"
log "smote data: $(cat "$RES/gen-smote.json")"
"$PY" "$HELPER" gen-anon "$DATA/anon.csv" "$ANON_ROWS" "$SEED" \
	>"$RES/gen-anon.json" || die "generating the anonymize data failed"
log "anonymize data: $(cat "$RES/gen-anon.json")"

# ---------------------------------------------------------------- mount
(
	umask 077
	head -c 32 /dev/urandom >"$W/anon.key"
)
log "mounting mlfs with -o anon_key"
"$MLFS" -f -o "cache=$CACHE,anon_key=$W/anon.key" "$STORE" "$MNT" \
	>"$W/mlfs.log" 2>&1 &
ML_PID=$!
wait_mounted "$MNT" "$ML_PID" mlfs "$W/mlfs.log"

# wait_job JOB: its final status, or die with its log
wait_job() {
	local st
	st=$(cat "$MNT/jobs/$1/wait")
	if [[ $st != succeeded ]]; then
		tail -n 20 "$MNT/jobs/$1/log" >&2 || true
		check_binaries
		die "job $1: $st"
	fi
}

# ---------------------------------------------------------------- smote
SMOTE_SPEC='{"steps": [{"balance": {"method": "smote", "k": 5}}], "seed": 1}'

mlfs_smote() {
	local r=$1 d=s$1 t0 t1 t2 t3 t4
	mkdir "$MNT/datasets/$d"
	t0=$(now)
	cp "$DATA/train.csv" "$MNT/datasets/$d/data.csv" ||
		{ tail -n 20 "$W/mlfs.log" >&2; die "cp train.csv into mlfs failed"; }
	t1=$(now)
	printf '%s\n' "$SMOTE_SPEC" >"$MNT/datasets/$d/prepare" ||
		{ tail -n 3 "$MNT/.mlfs/errors" >&2; die "prepare spec refused"; }
	t2=$(now)
	wait_job "$d-prepare-1"
	t3=$(now)
	cat "$MNT/datasets/$d/latest/data.csv" >"$W/mlfs-smote.csv" ||
		die "cannot read datasets/$d/latest/data.csv"
	t4=$(now)
	cp "$MNT/jobs/$d-prepare-1/log" "$RES/mlfs-smote-$r.log"
	jq -cn --argjson cp "$(elapsed "$t0" "$t1")" \
		--argjson job "$(elapsed "$t1" "$t3")" \
		--argjson rd "$(elapsed "$t3" "$t4")" \
		--argjson tot "$(elapsed "$t0" "$t4")" \
		--argjson ph "$(phases "$(elapsed "$t2" "$t3")" "$RES/mlfs-smote-$r.log")" \
		'{cp: $cp, job: $job, read: $rd, total: $tot} + $ph' >>"$RES/mlfs-smote.jsonl"
	log "mlfs smote round $r: $(tail -n 1 "$RES/mlfs-smote.jsonl")"
}

peer_smote() {
	"$PY" "$HELPER" smote "$DATA/train.csv" "$W/peer-smote.csv" 1 \
		>>"$RES/peer-smote.jsonl" || die "imbalanced-learn's SMOTE failed"
	log "imblearn smote round $1: $(tail -n 1 "$RES/peer-smote.jsonl")"
}

: >"$RES/mlfs-smote.jsonl"
: >"$RES/peer-smote.jsonl"
for ((r = 1; r <= ROUNDS; r++)); do
	note_load "smote-$r"
	if ((r % 2)); then
		mlfs_smote "$r"
		peer_smote "$r"
	else
		peer_smote "$r"
		mlfs_smote "$r"
	fi
done

log "checking the SMOTE outputs (segments, counts, a classifier)"
"$PY" "$HELPER" check-smote "$DATA/train.csv" "$W/mlfs-smote.csv" \
	>"$RES/check-smote-mlfs.json" ||
	{ cat "$RES/check-smote-mlfs.json" >&2; die "mlfs's SMOTE output fails the check"; }
"$PY" "$HELPER" check-smote "$DATA/train.csv" "$W/peer-smote.csv" \
	>"$RES/check-smote-peer.json" ||
	note "imbalanced-learn's own output fails the segment check: $(cat "$RES/check-smote-peer.json")"
"$PY" "$HELPER" classify "$DATA/test.csv" "$W/mlfs-smote.csv" \
	"$W/peer-smote.csv" >"$RES/classify.json" || die "the classifier check failed"
log "smote checks: $(jq -c '{counts_out, off_segment, mean_u, failed}' "$RES/check-smote-mlfs.json") $(cat "$RES/classify.json")"
rm -f "$W/mlfs-smote.csv" "$W/peer-smote.csv"

# ---------------------------------------------------------------- anonymize
ANON_STEP='{"anonymize": {"email": "hash", "work_email": "hash", "alt_email": "hash", "name": "drop", "phone": "drop"}}'

log "copying the anonymize data into datasets/anon (not timed)"
mkdir "$MNT/datasets/anon"
t0=$(now)
cp "$DATA/anon.csv" "$MNT/datasets/anon/data.csv" ||
	{ tail -n 20 "$W/mlfs.log" >&2; die "cp anon.csv into mlfs failed"; }
note "cp of the $(jq -r '.bytes / 1e6 | round' "$RES/gen-anon.json") MB anonymize CSV into the mount (a version, schema and stats): $(elapsed "$t0" "$(now)") s"

mlfs_anon() {
	local r=$1 t0 t1 t2 t3
	t0=$(now)
	jq -cn --argjson s "$ANON_STEP" '{dataset: "anon@1", steps: [$s]}' \
		>"$MNT/datasets/anon/prepare" ||
		{ tail -n 3 "$MNT/.mlfs/errors" >&2; die "prepare spec refused"; }
	t1=$(now)
	wait_job "anon-prepare-$r"
	t2=$(now)
	cat "$MNT/datasets/anon/latest/data.csv" >"$W/mlfs-anon.csv" ||
		die "cannot read datasets/anon/latest/data.csv"
	t3=$(now)
	cp "$MNT/jobs/anon-prepare-$r/log" "$RES/mlfs-anon-$r.log"
	jq -cn --argjson job "$(elapsed "$t0" "$t2")" \
		--argjson rd "$(elapsed "$t2" "$t3")" \
		--argjson ph "$(phases "$(elapsed "$t1" "$t2")" "$RES/mlfs-anon-$r.log")" \
		'{job: $job, read: $rd} + $ph' >>"$RES/mlfs-anon.jsonl"
	log "mlfs anonymize round $r: $(tail -n 1 "$RES/mlfs-anon.jsonl")"
}

peer_anon() {
	"$PY" "$HELPER" anon "$DATA/anon.csv" "$W/peer-anon.csv" "$W/anon.key" 0 \
		>>"$RES/peer-anon.jsonl" || die "the pandas anonymize failed"
	log "pandas anonymize round $1: $(tail -n 1 "$RES/peer-anon.jsonl")"
}

: >"$RES/mlfs-anon.jsonl"
: >"$RES/peer-anon.jsonl"
for ((r = 1; r <= ROUNDS; r++)); do
	note_load "anon-$r"
	if ((r % 2)); then
		mlfs_anon "$r"
		peer_anon "$r"
	else
		peer_anon "$r"
		mlfs_anon "$r"
	fi
done

log "checking mlfs's anonymized rows against pandas'"
"$PY" "$HELPER" check-anon "$W/mlfs-anon.csv" "$W/peer-anon.csv" \
	>"$RES/check-anon.json" ||
	{ cat "$RES/check-anon.json" >&2; die "mlfs's anonymized rows disagree with pandas'"; }
rm -f "$W/mlfs-anon.csv" "$W/peer-anon.csv"

# ---------------------------------------------------------------- end
note_load end
check_binaries
unmount "$MNT" "$ML_PID" mlfs
ML_PID=
grep -iE 'error|warning' "$W/mlfs.log" >"$RES/daemon-problems.txt" &&
	note "the daemon's stderr has $(wc -l <"$RES/daemon-problems.txt") error/warning lines, first: $(head -n 1 "$RES/daemon-problems.txt")"

{
	printf 'mlfs\t%s\n' "$REV"
	printf 'peers\t%s\n' "$("$PY" -c 'import sys, numpy, pandas, sklearn, imblearn
print("Python", sys.version.split()[0], "numpy", numpy.__version__, "pandas", pandas.__version__, "scikit-learn", sklearn.__version__, "imbalanced-learn", imblearn.__version__)')"
	printf 'machine\t%s, %s CPUs, %s, %s\n' \
		"$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
		"$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"
	printf 'load avg\t%s\n' "$(awk -F'\t' '{ printf "%s %s%s; ", $1, $2, $3 ? " (" $3 " compilers)" : "" }' "$RES/load.tsv")"
	printf 'scratch\t%s (%s)\n' "$W" "$(stat -f -c %T "$W")"
	printf 'rounds\t%s\n' "$ROUNDS"
	printf 'minutes\t%s\n' "$((($(date +%s) - START + 59) / 60))"
} >"$RES/machine.tsv"
"$PY" "$HELPER" report "$RES"
