#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_online.sh - the rest of issue 13's benchmark: the events stream,
# online reads against libfuse's passthrough_ll and Redis, and the daemon's
# memory, peers side by side in one run (bench_features.sh measures the
# offline sync and the point-in-time join against pandas).
#
# A benchmark, not a test: it measures, prints medians and ratios, and says
# whether each goal is met; it fails only when something cannot be
# measured.
#
#   data: bench_features.py gen, as bench_features.sh: N events
#     (MLFS_BENCH_EVENTS, default 10,000,000) of 100,000 entities over
#     2024, "customer_id,ts,amount,country", in time order.  The set:
#     entity customer_id, timestamp ts, no source (fed only through
#     events), txns_1h (count, 1h), amount_sum_7d (sum, 7d),
#     amount_mean_1d (mean, 1d), country_last (last, "type":
#     "categorical": without it an entity whose first event has no
#     country takes the column as numeric, and a later country fails the
#     write).
#   1. streaming ingest: the whole CSV, read into memory first, written
#      through one open handle of features/<fs>/events in writes of up to
#      CHUNK bytes (default 1 MiB) cut at a newline, the header at the
#      start of the first (online_bench ingest); events/s from open to
#      close, and the rate of each tenth of the stream.  Goal: 500,000/s.
#   2. online read, LAT_ROUNDS rounds of LAT_N reads each side,
#      interleaved, keys drawn at random (the same sequence on every side)
#      from the entities of `ls features/<fs>/online`:
#        passthrough  open + read 4 KiB + close of one file through
#                     passthrough_ll (the floor, as tests/bench/ml)
#        pt-keys      open + read + close of <key> through passthrough_ll,
#                     over a dir holding one file per entity with its
#                     vector (context: a lookup of a name not cached); as
#                     many keys as the descriptor limit allows (passthrough_ll
#                     holds one per inode looked up)
#        mlfs         open + read + close of features/<fs>/online/<key>
#        redis        GET <key> of the same vector (as read from mlfs),
#                     hiredis over TCP to a redis-server on 127.0.0.1
#                     started here (no persistence)
#      p50 and p99 in us.  Goal: mlfs p50 <= 1.5x passthrough.
#   3. the daemon's RssAnon (/proc/<pid>/status) once mounted, after the
#      stream, after reading every key once, after the latency rounds.
#      Goal: under 100 MB with 100,000 keys.
#
# Profiles (PROFILE=1, default; needs perf): the daemon during PERF_S
# seconds of the stream (from 5 s in; perf's sampling costs the stream a
# little there, see the rate of each tenth) and during mlfs online reads
# after the latency rounds, both with DWARF call graphs (the release
# build has no frame pointers); top symbols, self and with callees.
#
# Usage: tests/bench/features/bench_online.sh   (as root: FUSE mounts)
# Environment:
#   MLFS_BENCH_EVENTS  events streamed (10000000; e.g. 200000 to try it)
#   CHUNK        bytes a write of the stream (1048576)
#   LAT_N        reads a round per side (20000)
#   LAT_ROUNDS   rounds of the read latency (3)
#   PROFILE      1: perf profiles (see above); 0: none
#   PERF_S       seconds of the stream profiled (20)
#   STREAM_ROUNDS  streams of the events, each into a new set (the ones
#                before the last removed after it): the median is what
#                the goal is judged on (1)
#   STREAM_ONLY  1: stop after the stream
#   SEED         of the generator (13)
#   MLFS_BUILD   release build dir (default: <repo>/build-release), as
#                bench_features.sh; configured -Dbuildtype=release
#                -Dtests=false -Db_sanitize=none if missing
#   BENCH_DIR    scratch dir (default: mktemp -d in $TMPDIR or /tmp); must
#                be new or empty; removed at exit
#   KEEP=1       keep BENCH_DIR at exit
#   PY           the Python with numpy and pandas (/usr/bin/python3)
#
# Needs: meson, ninja, gcc, pkg-config, fusermount3, jq, python3-pandas,
# libfuse3-dev (passthrough_ll.c), redis-server and libhiredis-dev (Debian:
# apt-get install -y redis-server libhiredis-dev; the script installs them
# when missing and it runs as root with apt-get), perf (optional).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${MLFS_BUILD:-$REPO/build-release}
EVENTS=${MLFS_BENCH_EVENTS:-10000000}
CHUNK=${CHUNK:-1048576}
LAT_N=${LAT_N:-20000}
LAT_ROUNDS=${LAT_ROUNDS:-3}
PROFILE=${PROFILE:-1}
PERF_S=${PERF_S:-20}
STREAM_ROUNDS=${STREAM_ROUNDS:-1}
STREAM_ONLY=${STREAM_ONLY:-0}
SEED=${SEED:-13}
KEEP=${KEEP:-0}
PY=${PY:-/usr/bin/python3}
PT_SRC=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
START=$(date +%s)

# log, is_mounted, unmount
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
die() { log "error: $*"; exit 1; }

if ! command -v redis-server >/dev/null || [[ ! -r /usr/include/hiredis/hiredis.h ]]; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing redis-server and libhiredis-dev"
		DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server \
			libhiredis-dev >/dev/null 2>&1 ||
			die "apt-get install redis-server libhiredis-dev failed"
	fi
fi
for cmd in meson gcc pkg-config fusermount3 awk jq redis-server redis-cli; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
[[ -r /usr/include/hiredis/hiredis.h ]] || die "hiredis.h not found (apt-get install libhiredis-dev)"
[[ -r $PT_SRC ]] || die "$PT_SRC not found (apt-get install libfuse3-dev)"
"$PY" -c 'import numpy, pandas' 2>/dev/null ||
	die "$PY lacks numpy or pandas (apt-get install python3-pandas)"
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
	W=$(mktemp -d "${TMPDIR:-/tmp}/mlfs-bench-online.XXXXXX")
	W=$(cd "$W" && pwd -P)
fi
DATA=$W/data
RES=$W/res
ML_STORE=$W/mlfs-store
ML_CACHE=$W/mlfs-cache
ML_MNT=$W/mlfs-mnt
PT_SRCDIR=$W/pt-src
PT_MNT=$W/pt-mnt
REDIS_DIR=$W/redis
mkdir -p "$DATA" "$RES" "$ML_STORE" "$ML_CACHE" "$ML_MNT" "$PT_SRCDIR/keys" \
	"$PT_MNT" "$REDIS_DIR"
ML_PID=
PT_PID=
REDIS_PID=
PERF_PID=


perf_stop() {
	[[ -n $PERF_PID ]] || return 0
	kill -INT "$PERF_PID" 2>/dev/null || true
	wait "$PERF_PID" 2>/dev/null || true
	PERF_PID=
}

redis_stop() {
	[[ -n $REDIS_PID ]] || return 0
	kill -TERM "$REDIS_PID" 2>/dev/null || true
	wait "$REDIS_PID" 2>/dev/null || true
	REDIS_PID=
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	perf_stop
	redis_stop
	unmount "$ML_MNT" "$ML_PID" mlfs
	unmount "$PT_MNT" "$PT_PID" passthrough_ll
	if is_mounted "$ML_MNT" || is_mounted "$PT_MNT"; then
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

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
note() { printf '%s\n' "$*" >>"$RES/notes.txt"; log "note: $*"; }
# mem WHEN: the daemon's RssAnon, RssFile and VmHWM (kB)
mem() {
	awk -v w="$1" '/^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 }
		/^VmHWM:/ { h = $2 } END { printf "%s\t%s\t%s\t%s\n", w, a, f, h }' \
		"/proc/$ML_PID/status" >>"$RES/mem.tsv"
	log "daemon memory $(tail -n 1 "$RES/mem.tsv") (when, RssAnon, RssFile, VmHWM kB)"
}

# perf_top DATA OUT: the top symbols of a recording, self and with callees
perf_top() {
	{
		echo "# self"
		perf report -i "$1" --no-children -g none --sort dso,symbol \
			--stdio 2>/dev/null | grep '%' | grep -v '^#' | head -n 25
		echo "# with callees"
		perf report -i "$1" --children -g none --sort symbol --stdio \
			2>/dev/null | grep '%' | grep -v '^#' |
			grep -v ' 0x0000' | head -n 45
	} >"$2" || true
}

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

log "building passthrough_ll and the C client"
cp "$PT_SRC" "$W/passthrough_ll.c"
pt_helpers=$(dirname "$PT_SRC")/passthrough_helpers.h
[[ -r $pt_helpers ]] && cp "$pt_helpers" "$W/"
# shellcheck disable=SC2046
gcc -O2 -o "$W/passthrough_ll" "$W/passthrough_ll.c" \
	$(pkg-config --cflags --libs fuse3) -lpthread ||
	die "cannot build passthrough_ll"
gcc -O2 -Wall -Wextra -o "$W/online_bench" "$HERE/online_bench.c" -lhiredis ||
	die "cannot build online_bench"
OB=$W/online_bench

# ---------------------------------------------------------------- data
log "generating $EVENTS events (numpy, seed $SEED)"
"$PY" "$HERE/bench_features.py" gen "$DATA/events.csv" "$DATA/rows.csv" \
	"$EVENTS" 0 "$SEED" >"$RES/gen.json" || die "generating data failed"
log "data: $(cat "$RES/gen.json")"
cat "$DATA/events.csv" >/dev/null

# ---------------------------------------------------------------- mount
log "mounting mlfs"
"$MLFS" -f -o "cache=$ML_CACHE" "$ML_STORE" "$ML_MNT" >"$W/mlfs.log" 2>&1 &
ML_PID=$!
wait_mounted "$ML_MNT" "$ML_PID" mlfs "$W/mlfs.log"
: >"$RES/mem.tsv"
mem mounted

FS=cust
SPEC='{"entity": "customer_id", "timestamp": "ts", "features": [
 {"name": "txns_1h", "agg": "count", "window": "1h"},
 {"name": "amount_sum_7d", "column": "amount", "agg": "sum", "window": "7d"},
 {"name": "amount_mean_1d", "column": "amount", "agg": "mean", "window": "1d"},
 {"name": "country_last", "column": "country", "agg": "last", "type": "categorical"}]}'
mkdir "$ML_MNT/features/$FS"
printf '%s\n' "$SPEC" >"$ML_MNT/features/$FS/spec" ||
	{ tail -n 5 "$ML_MNT/.mlfs/errors" >&2; die "spec refused"; }

# ---------------------------------------------------------------- ingest
log "streaming $EVENTS events through features/$FS/events (writes of up to $CHUNK bytes)"
printf 'start\t%s\n' "$(loadavg)" >"$RES/load.tsv"
if [[ $PROFILE == 1 ]]; then
	(
		sleep 5
		exec perf record -F 199 --call-graph dwarf,8192 -p "$ML_PID" \
			-o "$W/perf-ingest.data" -- sleep "$PERF_S"
	) >/dev/null 2>&1 &
	PERF_PID=$!
fi
# rounds before the last stream into sets of their own, removed after
for ((r = 1; r < STREAM_ROUNDS; r++)); do
	mkdir "$ML_MNT/features/warm$r"
	printf '%s\n' "$SPEC" >"$ML_MNT/features/warm$r/spec"
	"$OB" ingest "$DATA/events.csv" "$ML_MNT/features/warm$r/events" \
		"$CHUNK" >"$RES/ingest-$r.txt" 2>/dev/null ||
		die "the stream of round $r failed"
	log "stream round $r: events seconds events/s writes: $(cat "$RES/ingest-$r.txt")"
	rmdir "$ML_MNT/features/warm$r"
done
"$OB" ingest "$DATA/events.csv" "$ML_MNT/features/$FS/events" "$CHUNK" \
	>"$RES/ingest.txt" 2>"$RES/ingest-tenths.txt" || {
	cat "$RES/ingest-tenths.txt" >&2
	tail -n 5 "$ML_MNT/.mlfs/errors" >&2 || true
	die "the stream failed"
}
cat "$RES/ingest-tenths.txt" >&2
log "stream: events seconds events/s writes: $(cat "$RES/ingest.txt")"
cp "$RES/ingest.txt" "$RES/ingest-$STREAM_ROUNDS.txt"
STREAM_MED=$(for ((r = 1; r <= STREAM_ROUNDS; r++)); do
	awk '{ print $3 }' "$RES/ingest-$r.txt"
done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
if [[ $STREAM_ONLY == 1 ]]; then
	echo "stream: $STREAM_ROUNDS rounds of $EVENTS events, median $STREAM_MED events/s"
	exit 0
fi
printf 'after the stream\t%s\n' "$(loadavg)" >>"$RES/load.tsv"
if [[ $PROFILE == 1 ]]; then
	# a stream shorter than 5 + PERF_S s: stop perf (or the wait before it)
	if [[ $(cat "/proc/$PERF_PID/comm" 2>/dev/null) == perf ]]; then
		kill -INT "$PERF_PID" 2>/dev/null || true
	else
		kill -TERM "$PERF_PID" 2>/dev/null || true
	fi
	wait "$PERF_PID" 2>/dev/null || true
	PERF_PID=
	if [[ -s $W/perf-ingest.data ]]; then
		perf_top "$W/perf-ingest.data" "$RES/profile-ingest.txt"
		rm -f "$W/perf-ingest.data"
	else
		note "no profile of the stream (it ended within 5 s?)"
	fi
fi
mem "after the stream"

# ---------------------------------------------------------------- keys
ls "$ML_MNT/features/$FS/online" >"$DATA/keys.txt"
NKEYS=$(wc -l <"$DATA/keys.txt")
WANT=$(jq .entities "$RES/gen.json")
[[ $NKEYS == "$WANT" ]] || die "online/ lists $NKEYS keys, the events have $WANT entities"
log "$NKEYS keys; every vector read once into Redis and pt-src/keys"

REDIS_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
	--save '' --appendonly no --daemonize no \
	--logfile "$REDIS_DIR/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
for ((i = 0; i < 100; i++)); do
	redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
	kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited: $(tail -n 3 "$REDIS_DIR/redis.log")"
	sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || die "redis-server does not answer"
"$OB" redis-load 127.0.0.1 "$REDIS_PORT" "$ML_MNT/features/$FS/online" \
	"$DATA/keys.txt" "$PT_SRCDIR/keys" >"$RES/redis-load.txt" ||
	die "reading the vectors into Redis failed"
log "every vector read once: keys bytes seconds $(cat "$RES/redis-load.txt")"
mem "after reading every key once"
head -c 4096 /dev/urandom >"$PT_SRCDIR/file4k"
head -n 2 "$ML_MNT/features/$FS/online/$(head -n 1 "$DATA/keys.txt")" >"$RES/vector-example.csv"

# ---------------------------------------------------------------- latency
log "mounting passthrough_ll over $PT_SRCDIR"
# passthrough_ll keeps a descriptor open for every inode looked up (until
# the kernel forgets it): pt-keys reads the keys the descriptor limit
# allows, all of them if it can be raised (exec keeps $! the daemon's)
FDS=$(ulimit -Hn)
[[ $FDS == unlimited ]] && FDS=1048576
PT_KEYS=$((NKEYS + 1000 < FDS ? NKEYS : FDS - 1000))
head -n "$PT_KEYS" "$DATA/keys.txt" >"$DATA/keys-pt.txt"
((PT_KEYS == NKEYS)) ||
	note "pt-keys reads $PT_KEYS of the $NKEYS keys: passthrough_ll holds a descriptor per inode and the hard limit is $FDS"
bash -c 'ulimit -n "$1" && exec "$2" -f -o "source=$3" "$4"' _ \
	"$FDS" "$W/passthrough_ll" "$PT_SRCDIR" "$PT_MNT" >"$W/pt.log" 2>&1 &
PT_PID=$!
wait_mounted "$PT_MNT" "$PT_PID" passthrough_ll "$W/pt.log"

printf 'latency\t%s\n' "$(loadavg)" >>"$RES/load.tsv"
: >"$RES/lat.tsv"
for ((r = 1; r <= LAT_ROUNDS; r++)); do
	sides=(passthrough pt-keys mlfs redis)
	((r % 2)) || sides=(redis mlfs pt-keys passthrough)
	for side in "${sides[@]}"; do
		case $side in
		passthrough) out=$("$OB" file "$PT_MNT/file4k" "$LAT_N") ;;
		pt-keys) out=$("$OB" read "$PT_MNT/keys" "$DATA/keys-pt.txt" "$LAT_N" "$r") ;;
		mlfs) out=$("$OB" read "$ML_MNT/features/$FS/online" "$DATA/keys.txt" "$LAT_N" "$r") ;;
		redis) out=$("$OB" redis 127.0.0.1 "$REDIS_PORT" "$DATA/keys.txt" "$LAT_N" "$r") ;;
		esac || die "latency $side failed"
		printf '%s\t%s\n' "$side" "$out" >>"$RES/lat.tsv"
		log "latency round $r $side: p50 p99 mean (us) $out"
	done
done
mem "after the latency rounds"
printf 'end of latency\t%s\n' "$(loadavg)" >>"$RES/load.tsv"

if [[ $PROFILE == 1 ]]; then
	log "profiling the daemon during mlfs online reads"
	perf record -F 499 --call-graph dwarf,8192 -p "$ML_PID" \
		-o "$W/perf-read.data" >/dev/null 2>&1 &
	PERF_PID=$!
	sleep 0.5
	"$OB" read "$ML_MNT/features/$FS/online" "$DATA/keys.txt" \
		$((LAT_N / 4)) 99 >"$RES/lat-profiled.txt" || die "profiled reads failed"
	perf_stop
	perf_top "$W/perf-read.data" "$RES/profile-read.txt"
	rm -f "$W/perf-read.data"
fi

redis_stop
unmount "$PT_MNT" "$PT_PID" passthrough_ll
PT_PID=
du -sk "$ML_CACHE" | cut -f1 >"$RES/cache-kb.txt"
du -sk "$ML_STORE" | cut -f1 >"$RES/store-kb.txt"
unmount "$ML_MNT" "$ML_PID" mlfs
ML_PID=
grep -iE 'error|warning' "$W/mlfs.log" >"$RES/daemon-problems.txt" &&
	note "the daemon's stderr has $(wc -l <"$RES/daemon-problems.txt") error/warning lines, first: $(head -n 1 "$RES/daemon-problems.txt")"

# ---------------------------------------------------------------- report
med() { # med SIDE FIELD: the median over the rounds
	awk -F'\t' -v s="$1" -v f="$2" '$1 == s { split($2, a, " "); print a[f] }' \
		"$RES/lat.tsv" | sort -g |
		awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
goal() { awk -v x="$1" -v g="$2" -v op="$3" 'BEGIN {
	ok = op == "<=" ? x <= g : op == ">=" ? x >= g : x < g
	print ok ? "met" : "missed" }'; }
read -r n_ev secs rate writes <"$RES/ingest.txt"
{
	echo "== mlfs online: issue 13's stream, online reads and memory =="
	printf 'cpu        %s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	printf 'nproc      %s, mem %s, kernel %s, libfuse %s, %s\n' "$(nproc)" \
		"$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" \
		"$(uname -r)" "$(pkg-config --modversion fuse3)" "$(redis-server --version | cut -d' ' -f1-3)"
	printf 'mlfs       %s\n' "$REV"
	printf 'scratch    %s\n' "$(stat -f -c %T "$W")"
	printf 'minutes    %s\n' "$((($(date +%s) - START + 59) / 60))"
	echo "load       $(tr '\t' ' ' <"$RES/load.tsv" | paste -sd ';' | sed 's/;/; /g')"
	echo "data       $(cat "$RES/gen.json")"
	echo
	echo "1. streaming ingest through one events handle"
	printf '   %s events in %s s, %s writes: %s events/s\n' \
		"$n_ev" "$secs" "$writes" "$rate"
	printf '   median of %s rounds: %s events/s (goal >= 500000: %s)\n' \
		"$STREAM_ROUNDS" "$STREAM_MED" "$(goal "$STREAM_MED" 500000 '>=')"
	sed 's/^online_bench: /   /' "$RES/ingest-tenths.txt"
	echo
	echo "2. online read, $LAT_ROUNDS rounds x $LAT_N reads, medians over the rounds (us)"
	printf '   %-12s %10s %10s %10s\n' side p50 p99 mean
	for side in passthrough pt-keys mlfs redis; do
		printf '   %-12s %10s %10s %10s\n' "$side" "$(med "$side" 1)" \
			"$(med "$side" 2)" "$(med "$side" 3)"
	done
	p50m=$(med mlfs 1)
	printf '   mlfs/passthrough p50 %sx (goal <= 1.5: %s), p99 %sx\n' \
		"$(ratio "$p50m" "$(med passthrough 1)")" \
		"$(goal "$(ratio "$p50m" "$(med passthrough 1)")" 1.5 '<=')" \
		"$(ratio "$(med mlfs 2)" "$(med passthrough 2)")"
	printf '   mlfs/pt-keys p50 %sx, p99 %sx\n' \
		"$(ratio "$p50m" "$(med pt-keys 1)")" "$(ratio "$(med mlfs 2)" "$(med pt-keys 2)")"
	printf '   mlfs/redis p50 %sx, p99 %sx\n' \
		"$(ratio "$p50m" "$(med redis 1)")" "$(ratio "$(med mlfs 2)" "$(med redis 2)")"
	echo "   a vector: $(paste -sd '|' "$RES/vector-example.csv")"
	echo
	echo "3. daemon memory, $NKEYS keys (kB: RssAnon RssFile VmHWM)"
	awk -F'\t' '{ printf "   %-32s %9s %9s %9s\n", $1, $2, $3, $4 }' "$RES/mem.tsv"
	anon=$(awk -F'\t' 'NR > 1 && $2 > m { m = $2 } END { print m }' "$RES/mem.tsv")
	printf '   largest RssAnon %.1f MB (goal < 100 MB: %s)\n' \
		"$(awk -v a="$anon" 'BEGIN { print a / 1024 }')" \
		"$(goal "$((anon / 1024))" 100 '<')"
	printf '   LMDB and cache dir %s MB, store %s MB\n' \
		"$(($(cat "$RES/cache-kb.txt") / 1024))" "$(($(cat "$RES/store-kb.txt") / 1024))"
	if [[ -s $RES/notes.txt ]]; then
		echo
		echo "notes"
		sed 's/^/   /' "$RES/notes.txt"
	fi
	for p in ingest read; do
		[[ -s $RES/profile-$p.txt ]] || continue
		echo
		echo "profile of the daemon: $p"
		cat "$RES/profile-$p.txt"
	done
} | tee "$RES/report.txt"
