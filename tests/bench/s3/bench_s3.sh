#!/usr/bin/env bash
# bench_s3.sh - mlfs over S3 against s3fs-fuse, rclone mount, aws s3 cp and
# plain curl, side by side in one run against one local s3rver.
#
# A benchmark, not a test: it measures, prints medians and ratios, and marks
# each goal of issue 4 ("Performance") met or not; it fails only when
# something cannot be measured.  Every client talks straight to s3rver
# (MLFS_S3_DIRECT_ENDPOINT from tests/s3/start.sh, no verifying gateway),
# which is single-threaded Node and therefore the ceiling.
#
#   1. cold sequential read of a 1 GiB object (dd bs=1M, page cache dropped,
#      every client's cache folder new and empty): mlfs (the object exported
#      by mlfs itself, read as datasets/big/v1/data.csv through a fresh
#      mount with an empty cache), s3fs -o use_cache, rclone mount
#      --vfs-cache-mode full (both on an object put by `aws s3 cp`),
#      `aws s3 cp` to a local file, one curl GET (the ceiling of one
#      connection), one curl of 64 MiB ranged GETs four at a time on
#      kept-alive connections into /dev/null (the server's ceiling for
#      large ranges: s3rver's CPU per GiB falls with the range's size),
#      and eight at a time into files (a client that keeps the bytes,
#      as mlfs and s3fs do)                                        -> MB/s
#   2. warm sequential read through the mounts of the last cold run (block
#      cache and page cache warm), and through a second s3fs mount with
#      -o kernel_cache (s3fs's own default drops the page cache at every
#      open; mlfs keeps it), native page-cache read of the local file;
#      also, for context, the clients' disk caches with the page cache
#      dropped                                                     -> MB/s
#   3. cold random 4 KiB reads, fio randread psync QD1 1 job 10,240 reads on
#      the 1 GiB object: mlfs vs s3fs                              -> IOPS
#   4. listing: a fresh mount (empty cache and index) of a prefix holding
#      1,000 datasets written by mlfs, `ls -l datasets/`, vs s3fs (and
#      rclone, for context) `ls -l` of a prefix of 1,000 small objects
#      (s3fs: a LIST and a HEAD per object); timed as mount + first `ls -l`
#      (mlfs lists from the catalog) and `ls -l` alone.  mlfs checks an
#      index from the catalog against the bucket (LIST and all) later
#      (verify_delay, 10 s): a second mlfs mount with verify_delay=0 is
#      also timed until its log says that check has finished  -> seconds
#   5. 1 GiB export: cp into datasets/x/data.csv then `echo sync >
#      .mlfs/cache` (each run a new prefix and cache) vs `aws s3 cp` upload
#      vs one curl PUT (the ceiling)                               -> MB/s
#   6. RssAnon of the mlfs daemon, sampled every 0.1 s, while streaming a
#      4 GiB object cold (and during every other mlfs phase)       -> MB
#   7. a lazy source's first read: a fresh mount (empty cache) writes
#      s3://BUCKET/peer/big.csv into datasets/src/source (a version made
#      without reading the object), then reads datasets/src/data.csv, which
#      fetches, scans and hashes the object first; vs s3fs's cold read of
#      the same object (fresh mount, empty cache)                  -> MB/s
#
# Goals (issue 4): cold mlfs >= 1.5x best FUSE peer and >= 0.9x curl; warm
# mlfs >= 3x s3fs cached and >= 0.5x native; random IOPS >= 2x s3fs;
# listing >= 5x faster than s3fs; export >= 1.0x aws s3 cp; RssAnon < 100 MB.
# Each goal is judged on the medians the report prints.  The warm goal
# compares like with like, s3fs with kernel_cache; the listing goal is
# judged on the first listing and, beside it, on the time until mlfs's
# check against the bucket finished.  The parallelism of each client is
# printed as each reports it (mlfs .mlfs/cache, s3fs and rclone --help).
#
# Usage: tests/bench/s3/bench_s3.sh    (as root: drop_caches, FUSE mounts)
# Environment:
#   MLFS_BUILD   release build dir (default <repo>/build-release), configured
#                -Dbuildtype=release -Db_sanitize=none -Dtests=false
#   MLFS_SRC     source tree to build (default the repo this script is in;
#                e.g. a `git archive HEAD` export to leave work in progress out)
#   BENCH_DIR    scratch dir (default mktemp -d in $TMPDIR or /tmp); must be
#                new or empty; removed at exit.  Needs about 8 GiB free
#                (plus STREAM_MB * 3 for part 6)
#   SIZE_MB      object size for parts 1-3 and 5 (default 1024)
#   RUNS         runs per cold/export/random/listing measurement (default 3)
#   WARM_RUNS    warm reads per client (default 5)
#   LIST_N       datasets / objects for part 4 (default 1000)
#   LIST_CSV     1: each listed dataset also gets a small data.csv (v1), as
#                a real bucket would; 0: only the datasets (default 1)
#   STREAM_MB    object size for part 6 (default 4096; 0 skips it)
#   FIO_RUNTIME  cap on each fio run, seconds (default 300)
#   AWS_CLI      the AWS CLI (default /usr/bin/aws, Debian's awscli 2)
#   PARTS        the parts to run, by number (default "1 2 3 4 5 6 7"; e.g.
#                PARTS=4 for the listing alone, a few minutes).  Parts run
#                what they need: 2 adds 1 (its mounts), 1, 3 and 7 add 5
#                (its object).  The report shows n/a for the parts left out.
#
# Needs: meson, ninja, gcc, fuse3, fusermount3, node + npm (s3rver, installed
# by tests/s3/start.sh), python3 (+ python3-botocore for start.sh's gateway),
# curl, s3fs, rclone, fio, awscli.  About 25-35 minutes on 2 vCPUs.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
SRC=${MLFS_SRC:-$REPO}
BUILD=${MLFS_BUILD:-$REPO/build-release}
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
WARM_RUNS=${WARM_RUNS:-5}
LIST_N=${LIST_N:-1000}
LIST_CSV=${LIST_CSV:-1}
STREAM_MB=${STREAM_MB:-4096}
FIO_RUNTIME=${FIO_RUNTIME:-300}
AWS=${AWS_CLI:-/usr/bin/aws}
PARTS=" ${PARTS:-1 2 3 4 5 6 7} "
want() { [[ $PARTS == *" $1 "* ]]; }
want 2 && PARTS+="1 "
{ want 1 || want 3 || want 7; } && PARTS+="5 "
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$EPOCHREALTIME

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (drop_caches, FUSE mounts)"
[[ -w /proc/sys/vm/drop_caches ]] || die "/proc/sys/vm/drop_caches is not writable"
for cmd in meson gcc fusermount3 python3 curl s3fs rclone fio dd awk node npm; do
	command -v "$cmd" >/dev/null ||
		die "$cmd not found (apt-get install meson gcc fuse3 python3 python3-botocore curl s3fs rclone fio awscli nodejs npm)"
done
[[ -x $AWS ]] || die "$AWS not found (apt-get install awscli)"

# ---------------------------------------------------------------- scratch
if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p "$BENCH_DIR"
	[[ -z $(ls -A "$BENCH_DIR") ]] || die "BENCH_DIR $BENCH_DIR is not empty"
	W=$(cd "$BENCH_DIR" && pwd -P)
else
	W=$(mktemp -d "${TMPDIR:-/tmp}/mlfs-s3bench.XXXXXX")
	W=$(cd "$W" && pwd -P)
fi
NATIVE=$W/data.csv
S3DIR=$W/s3
S3_STARTED=0

declare -A MOUNT_PID=()     # mountpoint -> daemon pid, for what we mounted
SAMPLER_PID=
POLL_PID=                   # part 4's watcher of mlfs's log

is_mounted() {
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# unmount MNT: fusermount3 -u, then wait for the daemon we started there
unmount() {
	local mnt=$1 pid=${MOUNT_PID[$1]:-} i
	if is_mounted "$mnt"; then
		fusermount3 -u "$mnt" 2>/dev/null || {
			sleep 1
			fusermount3 -u "$mnt" 2>/dev/null ||
				fusermount3 -u -z "$mnt" 2>/dev/null || true
		}
	fi
	if [[ -n $pid ]]; then
		for ((i = 0; i < 600; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "daemon of $mnt (pid $pid) still running 60 s after unmount; sending TERM"
			kill -TERM "$pid" 2>/dev/null || true
			sleep 1
		fi
		wait "$pid" 2>/dev/null || true
	fi
	unset "MOUNT_PID[$mnt]"
}

cleanup() {
	local rc=$? m busy=0
	set +e
	trap - EXIT INT TERM
	[[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null && wait "$SAMPLER_PID" 2>/dev/null
	[[ -n $POLL_PID ]] && kill "$POLL_PID" 2>/dev/null && wait "$POLL_PID" 2>/dev/null
	for m in "${!MOUNT_PID[@]}"; do
		unmount "$m"
	done
	for m in "${!MOUNT_PID[@]}"; do is_mounted "$m" && busy=1; done
	if ((S3_STARTED)); then
		bash "$REPO/tests/s3/stop.sh" "$S3DIR" >/dev/null 2>&1
	fi
	if ((busy)) || awk -v w="$W/" 'index($5, w) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		log "a mount under $W is still active; leaving $W in place"
	else
		rm -rf "$W"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { if (s + 0 <= 0) print "n/a"; else printf "%.1f", b / s / 1e6 }'; }

# median FORMAT VALUE...   ("n/a" values are ignored)
median() {
	local fmt=$1
	shift
	# awk, not grep: a grep that selects nothing fails the pipeline
	printf '%s\n' "$@" | awk 'NF && $1 != "n/a"' | sort -g | awk -v f="$fmt" '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { print "n/a"; exit }
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf f, m
		}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
	if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a";
	else printf "%.2f", a / b }'; }
# met VALUE OP LIMIT
met() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
	if (v == "n/a" || v == "") { print "n/a"; exit }
	ok = (op == ">=") ? (v + 0 >= l + 0) : (v + 0 < l + 0)
	print ok ? "met" : "**not met**" }'; }
maxof() { printf '%s\n' "$@" | awk 'NF && $1 != "n/a"' | sort -g | tail -n 1; }

# CPU seconds (user + system, all threads) a process has used so far
cpu_s() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' \
		"/proc/$1/stat" 2>/dev/null || echo 0
}
per_gib() { awk -v a="$1" -v b="$2" -v s="$SIZE" 'BEGIN { printf "%.1f", (b - a) / (s / 1073741824) }'; }
# rotated N NAME...: the names rotated left by N (run r starts at a different client)
rotated() { local k=$1; shift; local a=("$@"); k=$((k % ${#a[@]})); echo "${a[@]:k}" "${a[@]:0:k}"; }
cpu_pct() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { if (t + 0 <= 0) print "n/a"; else printf "%.0f", (b - a) / t * 100 }'; }

# RssAnon sampler: rss_start PID FILE; ...; rss_stop -> max RssAnon in MB
rss_start() {
	local pid=$1 out=$2
	echo 0 >"$out"
	(
		max=0
		while [[ -r /proc/$pid/status ]]; do
			v=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
			if [[ -n $v ]] && ((v > max)); then
				max=$v
				# rename: a kill never leaves the file empty
				echo "$max" >"$out.tmp" && mv -f "$out.tmp" "$out"
			fi
			sleep 0.1
		done
	) &
	SAMPLER_PID=$!
	RSS_FILE=$out
}
rss_stop() {
	if [[ -n $SAMPLER_PID ]]; then
		kill "$SAMPLER_PID" 2>/dev/null || true
		wait "$SAMPLER_PID" 2>/dev/null || true
		SAMPLER_PID=
	fi
	awk '{ printf "%.1f", $1 / 1024 }' "$RSS_FILE"
}
rss_now() { awk '/^RssAnon:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo n/a; }

# ---------------------------------------------------------------- build
log "building release mlfs from $SRC in $BUILD"
if [[ -f $BUILD/build.ninja ]]; then
	meson configure "$BUILD" -Dbuildtype=release -Dtests=false \
		-Db_sanitize=none >/dev/null
else
	meson setup "$BUILD" "$SRC" -Dbuildtype=release -Dtests=false \
		-Db_sanitize=none >"$W/meson-setup.log" 2>&1 ||
		{ tail -n 30 "$W/meson-setup.log" >&2; die "meson setup failed"; }
fi
meson compile -C "$BUILD" >"$W/meson-compile.log" 2>&1 ||
	{ tail -n 30 "$W/meson-compile.log" >&2; die "meson compile failed"; }
MLFS=$BUILD/fs/mlfs
[[ -x $MLFS ]] || die "$MLFS not built"

# ---------------------------------------------------------------- s3rver
log "starting s3rver (tests/s3/start.sh)"
S3_STARTED=1
bash "$REPO/tests/s3/start.sh" "$S3DIR" >/dev/null || die "tests/s3/start.sh failed"
set -a
# shellcheck disable=SC1091
. "$S3DIR/env"
set +a
unset AWS_CA_BUNDLE AWS_PROFILE AWS_SESSION_TOKEN  # rclone fails with AWS_CA_BUNDLE set here
E=$MLFS_S3_DIRECT_ENDPOINT
B=$MLFS_S3_BUCKET
S3PID=$(cat "$S3DIR/s3rver.pid")
awsc() { "$AWS" --endpoint-url "$E" "$@"; }

echo "S3RVER:S3RVER" >"$W/s3fs.passwd"
chmod 600 "$W/s3fs.passwd"
: >"$W/rclone.conf"
export RCLONE_CONFIG_X_TYPE=s3 RCLONE_CONFIG_X_PROVIDER=Other \
	RCLONE_CONFIG_X_ENDPOINT=$E RCLONE_CONFIG_X_ACCESS_KEY_ID=S3RVER \
	RCLONE_CONFIG_X_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_X_REGION=us-east-1 \
	RCLONE_CONFIG_X_FORCE_PATH_STYLE=true

# ---------------------------------------------------------------- mounts
# start_mount KIND PREFIX CACHE MNT LOG [OPTS]: mount and wait; sets PID
# and MOUNT_SECS (seconds from start until the mount shows in mountinfo).
# OPTS: more -o options for mlfs or s3fs.
# shellcheck disable=SC2034
start_mount() {
	local kind=$1 prefix=$2 cache=$3 mnt=$4 logf=$5 more=${6:+,$6} i t0
	mkdir -p "$cache" "$mnt"
	t0=$(now)
	case $kind in
	mlfs)
		"$MLFS" -f -o "cache=$cache,endpoint=$E,path_style$more" \
			"s3://$B/$prefix" "$mnt" >"$logf" 2>&1 &
		;;
	s3fs)
		s3fs "$B:/$prefix" "$mnt" -f -o "use_cache=$cache,url=$E,use_path_request_style,passwd_file=$W/s3fs.passwd$more" \
			>"$logf" 2>&1 &
		;;
	rclone)
		rclone --config "$W/rclone.conf" mount "X:$B/$prefix" "$mnt" \
			--vfs-cache-mode full --cache-dir "$cache" >"$logf" 2>&1 &
		;;
	*) die "unknown mount kind $kind" ;;
	esac
	PID=$!
	MOUNT_PID[$mnt]=$PID
	for ((i = 0; i < 6000; i++)); do
		if is_mounted "$mnt"; then
			MOUNT_SECS=$(elapsed "$t0" "$(now)")
			return 0
		fi
		if ! kill -0 "$PID" 2>/dev/null; then
			tail -n 20 "$logf" >&2 || true
			die "$kind exited before mounting $mnt"
		fi
		sleep 0.01
	done
	tail -n 20 "$logf" >&2 || true
	die "$kind did not mount $mnt within 60 s"
}

# timed_read FILE -> seconds (wall clock, open to close), checks the size
timed_read() {
	local f=$1 expect=$2 t0 t1 out bytes
	t0=$(now)
	out=$(LC_ALL=C dd if="$f" of=/dev/null bs=1M 2>&1) ||
		{ printf '%s\n' "$out" >&2; die "dd $f failed"; }
	t1=$(now)
	bytes=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) bytes.*/\1/p')
	[[ $bytes == "$expect" ]] || die "read $bytes bytes of $f, expected $expect"
	elapsed "$t0" "$t1"
}

mlfs_stat() { # mlfs_stat MNT KEY -> value from .mlfs/cache
	awk -v k="$2" '$1 == k { print $2 }' "$1/.mlfs/cache" 2>/dev/null || echo n/a
}
# the fetch threads an mlfs mount reports (read outside timed spans)
ML_THREADS=n/a
note_threads() { ML_THREADS=$(mlfs_stat "$1" fetch_threads); }

# ---------------------------------------------------------------- data
# The parts' bodies stay unindented inside their `if want N`: they hold
# heredocs.
SIZE=0
cat >"$W/gen.py" <<'EOF'
import random, sys
out, target, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
ncol = 8                      # x0..x6 floats, label an integer 0..9
rows, size = [], 0
while size < (1 << 20):       # a ~1 MiB block of rows, repeated
    vals = ["%.6f" % r.uniform(-100, 100) for _ in range(ncol - 1)]
    rows.append(",".join(vals + [str(r.randint(0, 9))]) + "\n")
    size += len(rows[-1])
block = "".join(rows).encode()
header = (",".join("x%d" % i for i in range(ncol - 1)) + ",label\n").encode()
with open(out, "wb", buffering=0) as f:
    f.write(header)
    n = len(header)
    while n < target:         # whole rows only, stopping at or just below target
        part = block if n + len(block) <= target else \
            block[:block.rfind(b"\n", 0, target - n) + 1]
        if not part:
            break
        f.write(part)
        n += len(part)
EOF
# ================================================================ 5. export
# Each mlfs run exports to a new prefix with a new cache, so nothing is
# deduplicated; run 1's prefix (exp1) is the object for the mlfs reads.
declare -a EXP_ML=() EXP_ML_CP=() EXP_ML_SYNC=() EXP_AWS=() EXP_CURL=() EXP_RSS=()
declare -a EXP_ML_CPU=() EXP_S3_ML=() EXP_S3_AWS=() EXP_S3_CURL=() EXP_G_ML=() EXP_G_AWS=() EXP_G_CURL=()
if want 5; then
log "generating a ${SIZE_MB} MiB numeric CSV"
python3 "$W/gen.py" "$NATIVE" "$((SIZE_MB * 1024 * 1024))" 42
SIZE=$(stat -c %s "$NATIVE")
sync

for ((r = 1; r <= RUNS; r++)); do
	d=$W/exp$r
	start_mount mlfs "exp$r" "$d/cache" "$d/mnt" "$d/mlfs.log"
	mkdir "$d/mnt/datasets/big"
	note_threads "$d/mnt"
	drop_caches
	rss_start "$PID" "$d/rss"
	c0=$(cpu_s "$PID"); s0=$(cpu_s "$S3PID")
	t0=$(now)
	cp "$NATIVE" "$d/mnt/datasets/big/data.csv" ||
		{ tail -n 20 "$d/mlfs.log" >&2; die "cp into mlfs failed"; }
	t1=$(now)
	echo sync >"$d/mnt/.mlfs/cache" ||
		{ tail -n 20 "$d/mlfs.log" >&2; die "sync through .mlfs/cache failed"; }
	t2=$(now)
	c1=$(cpu_s "$PID"); s1=$(cpu_s "$S3PID")
	EXP_RSS+=("$(rss_stop)")
	cp_s=$(elapsed "$t0" "$t1"); sync_s=$(elapsed "$t1" "$t2"); tot=$(elapsed "$t0" "$t2")
	EXP_ML+=("$(mbps "$SIZE" "$tot")"); EXP_ML_CP+=("$cp_s"); EXP_ML_SYNC+=("$sync_s")
	EXP_ML_CPU+=("$(cpu_pct "$c0" "$c1" "$tot")"); EXP_S3_ML+=("$(cpu_pct "$s0" "$s1" "$tot")")
	EXP_G_ML+=("$(per_gib "$s0" "$s1")")
	cp "$d/mnt/.mlfs/cache" "$d/stats"
	[[ $(mlfs_stat "$d/mnt" exports_queued) == 0 ]] || log "warning: exports still queued after sync"
	unmount "$d/mnt"
	got=$(awsc s3 ls --recursive "s3://$B/exp$r/blobs/" | awk -v s="$SIZE" '$3 == s { n++ } END { print n + 0 }')
	[[ $got == 1 ]] || die "exp$r: no ${SIZE}-byte blob in the bucket after sync"
	log "export $r/$RUNS mlfs: ${EXP_ML[-1]} MB/s (cp $cp_s s + sync $sync_s s), RssAnon max ${EXP_RSS[-1]} MB"
	rm -rf "$d/cache"

	drop_caches
	s0=$(cpu_s "$S3PID")
	t0=$(now)
	awsc s3 cp --only-show-errors --no-progress "$NATIVE" "s3://$B/peer/big.csv" >/dev/null || die "aws s3 cp upload failed"
	t1=$(now)
	s1=$(cpu_s "$S3PID")
	EXP_AWS+=("$(mbps "$SIZE" "$(elapsed "$t0" "$t1")")")
	EXP_S3_AWS+=("$(cpu_pct "$s0" "$s1" "$(elapsed "$t0" "$t1")")")
	EXP_G_AWS+=("$(per_gib "$s0" "$s1")")
	log "export $r/$RUNS aws s3 cp: ${EXP_AWS[-1]} MB/s"

	drop_caches
	s0=$(cpu_s "$S3PID")
	out=$(curl -sS -o /dev/null -H 'Expect:' -w '%{http_code} %{size_upload} %{time_total}' \
		-T "$NATIVE" "$E/$B/peer/curl-put.csv") || die "curl PUT failed"
	s1=$(cpu_s "$S3PID")
	read -r code up secs <<<"$out"
	[[ $code == 200 && ${up%.*} == "$SIZE" ]] || die "curl PUT: HTTP $code, $up bytes"
	EXP_CURL+=("$(mbps "$SIZE" "$secs")")
	EXP_S3_CURL+=("$(cpu_pct "$s0" "$s1" "$secs")")
	EXP_G_CURL+=("$(per_gib "$s0" "$s1")")
	log "export $r/$RUNS curl PUT: ${EXP_CURL[-1]} MB/s"
done
awsc s3 rm --only-show-errors "s3://$B/peer/curl-put.csv" >/dev/null
for ((r = 2; r <= RUNS; r++)); do awsc s3 rm --only-show-errors --recursive "s3://$B/exp$r/" >/dev/null; done
[[ $(awsc s3 ls "s3://$B/peer/big.csv" | awk '{ print $3 }') == "$SIZE" ]] ||
	die "peer/big.csv is not $SIZE bytes in the bucket"
fi # part 5

# ================================================================ 1. cold
ML_PREFIX=exp1
ML_REL=datasets/big/v1/data.csv
CLIENTS=(mlfs s3fs rclone aws curl curl4 curl8f)
CURL4_RANGE=$((64 << 20))
declare -A COLD=() COLD_CPU=() COLD_S3CPU=() COLD_S3G=() KEEP_MNT=()
declare -a COLD_RSS=() COLD_FETCH=()
for c in "${CLIENTS[@]}"; do COLD[$c]=""; COLD_CPU[$c]=""; COLD_S3CPU[$c]=""; COLD_S3G[$c]=""; done
if want 1; then
for ((r = 1; r <= RUNS; r++)); do
	# shellcheck disable=SC2046
	for c in $(rotated $((r - 1)) "${CLIENTS[@]}"); do
		d=$W/cold/$c-$r
		mkdir -p "$d"
		dpid=
		case $c in
		mlfs | s3fs | rclone)
			if [[ $c == mlfs ]]; then
				start_mount mlfs "$ML_PREFIX" "$d/cache" "$d/mnt" "$d/log"
				f=$d/mnt/$ML_REL
			else
				start_mount "$c" peer "$d/cache" "$d/mnt" "$d/log"
				f=$d/mnt/big.csv
			fi
			dpid=$PID
			drop_caches
			[[ $c == mlfs ]] && rss_start "$dpid" "$d/rss"
			c0=$(cpu_s "$dpid"); s0=$(cpu_s "$S3PID")
			secs=$(timed_read "$f" "$SIZE")
			c1=$(cpu_s "$dpid"); s1=$(cpu_s "$S3PID")
			if [[ $c == mlfs ]]; then
				COLD_RSS+=("$(rss_stop)")
				cp "$d/mnt/.mlfs/cache" "$d/stats"
				COLD_FETCH+=("$(mlfs_stat "$d/mnt" fetch_mb_per_s)")
			fi
			COLD_CPU[$c]+=" $(cpu_pct "$c0" "$c1" "$secs")"
			if ((r == RUNS)); then
				KEEP_MNT[$c]=$d/mnt    # kept mounted, caches warm, for part 2
			else
				unmount "$d/mnt"
				rm -rf "$d/cache"
			fi
			;;
		aws)
			drop_caches
			s0=$(cpu_s "$S3PID")
			t0=$(now)
			awsc s3 cp --only-show-errors --no-progress "s3://$B/peer/big.csv" "$d/big.csv" >/dev/null ||
				die "aws s3 cp download failed"
			t1=$(now)
			s1=$(cpu_s "$S3PID")
			[[ $(stat -c %s "$d/big.csv") == "$SIZE" ]] || die "aws s3 cp downloaded a short file"
			rm -f "$d/big.csv"
			secs=$(elapsed "$t0" "$t1")
			;;
		curl)
			drop_caches
			s0=$(cpu_s "$S3PID")
			out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}' \
				"$E/$B/peer/big.csv") || die "curl GET failed"
			s1=$(cpu_s "$S3PID")
			read -r code down secs <<<"$out"
			[[ $code == 200 && ${down%.*} == "$SIZE" ]] || die "curl GET: HTTP $code, $down bytes"
			;;
		curl4 | curl8f)
			# curl4: 4 at a time into /dev/null (the server's ceiling);
			# curl8f: 8 at a time into files on the local disk, a
			# client that keeps the bytes as mlfs and s3fs must
			par=4 i=0
			[[ $c == curl8f ]] && par=8
			: >"$W/$c.cfg"
			for ((o = 0; o < SIZE; o += CURL4_RANGE)); do
				f=/dev/null
				[[ $c == curl8f ]] && f=$d/part$i
				((i++)) && echo next >>"$W/$c.cfg"
				# "next": each range its own operation (else the last
				# range, and the first -w, would serve every URL)
				printf 'url = "%s"\nrange = "%d-%d"\noutput = "%s"\nwrite-out = "%%{http_code}\\n"\n' \
					"$E/$B/peer/big.csv" "$o" $((o + CURL4_RANGE - 1)) "$f" >>"$W/$c.cfg"
			done
			drop_caches
			s0=$(cpu_s "$S3PID")
			t0=$(now)
			out=$(curl -sS --parallel --parallel-max "$par" \
				-K "$W/$c.cfg") || die "curl's parallel ranged GETs failed"
			t1=$(now)
			s1=$(cpu_s "$S3PID")
			secs=$(elapsed "$t0" "$t1")
			# size_download with --parallel into /dev/null is not the
			# body's size (curl 7.88): each range's 206 is the check
			got=$(awk '$1 == 206 { n++ } END { print n + 0 }' <<<"$out")
			[[ $got == $(((SIZE + CURL4_RANGE - 1) / CURL4_RANGE)) ]] ||
				die "curl's parallel ranged GETs: $got answers of 206"
			if [[ $c == curl8f ]]; then
				[[ $(cat "$d"/part* | wc -c) == "$SIZE" ]] ||
					die "curl's parallel ranged GETs into files: not $SIZE bytes"
				rm -f "$d"/part*
			fi
			;;
		esac
		v=$(mbps "$SIZE" "$secs")
		COLD[$c]+=" $v"
		COLD_S3CPU[$c]+=" $(cpu_pct "$s0" "$s1" "$secs")"
		COLD_S3G[$c]+=" $(per_gib "$s0" "$s1")"
		log "cold read $r/$RUNS $c: $v MB/s ($secs s)"
	done
done

fi # part 1

# ================================================================ 7. lazy source
declare -A LAZY=([mlfs]="" [s3fs]="")
if want 7; then
for ((r = 1; r <= RUNS; r++)); do
	# shellcheck disable=SC2046
	for c in $(rotated $((r - 1)) mlfs s3fs); do
		d=$W/lazy/$c-$r
		mkdir -p "$d"
		if [[ $c == mlfs ]]; then
			start_mount mlfs "lazy$r" "$d/cache" "$d/mnt" "$d/log"
			mkdir "$d/mnt/datasets/src"
			echo "s3://$B/peer/big.csv" >"$d/mnt/datasets/src/source" ||
				{ tail -n 20 "$d/log" >&2; die "lazy source failed"; }
			f=$d/mnt/datasets/src/data.csv
		else
			start_mount s3fs peer "$d/cache" "$d/mnt" "$d/log"
			f=$d/mnt/big.csv
		fi
		drop_caches
		secs=$(timed_read "$f" "$SIZE")
		LAZY[$c]+=" $(mbps "$SIZE" "$secs")"
		log "lazy source first read $r/$RUNS $c: $(mbps "$SIZE" "$secs") MB/s ($secs s)"
		unmount "$d/mnt"
		rm -rf "$d/cache"
	done
done
fi # part 7

# ================================================================ 2. warm
declare -A WARM=() DISK=() WFILE=()
WCLIENTS=(native mlfs s3fs s3fs-kc rclone)
for c in "${WCLIENTS[@]}"; do WARM[$c]=""; DISK[$c]=""; done
ML_WARM_CPU=n/a
if want 2; then
WFILE[mlfs]=${KEEP_MNT[mlfs]}/$ML_REL
WFILE[s3fs]=${KEEP_MNT[s3fs]}/big.csv
WFILE[rclone]=${KEEP_MNT[rclone]}/big.csv
WFILE[native]=$NATIVE
# s3fs as mlfs runs, keeping the page cache: its own mount and disk cache,
# filled by the warm-up read below
d=$W/cold/s3fs-kc
start_mount s3fs peer "$d/cache" "$d/mnt" "$d/log" kernel_cache
KEEP_MNT[s3fs-kc]=$d/mnt
WFILE[s3fs-kc]=$d/mnt/big.csv
log "checking content: cmp of every mount's file against the original"
for c in mlfs s3fs s3fs-kc rclone; do
	cmp "$NATIVE" "${WFILE[$c]}" || {
		is_mounted "${KEEP_MNT[$c]}" || log "$c is no longer mounted"
		tail -n 5 "$(dirname "${KEEP_MNT[$c]}")/log" >&2 || true
		die "$c: content differs from the original"
	}
done
for c in "${WCLIENTS[@]}"; do
	WARM[$c]=""
	timed_read "${WFILE[$c]}" "$SIZE" >/dev/null   # warm-up
done
ML_KEEP_PID=${MOUNT_PID[${KEEP_MNT[mlfs]}]}
ML_WARM_C0=$(cpu_s "$ML_KEEP_PID")
ML_WARM_T=0
for ((r = 1; r <= WARM_RUNS; r++)); do
	for c in "${WCLIENTS[@]}"; do
		secs=$(timed_read "${WFILE[$c]}" "$SIZE")
		[[ $c == mlfs ]] && ML_WARM_T=$(awk -v a="$ML_WARM_T" -v b="$secs" 'BEGIN { print a + b }')
		v=$(mbps "$SIZE" "$secs")
		WARM[$c]+=" $v"
		log "warm read $r/$WARM_RUNS $c: $v MB/s"
	done
done
ML_WARM_CPU=$(cpu_pct "$ML_WARM_C0" "$(cpu_s "$ML_KEEP_PID")" "$ML_WARM_T")
# context: page cache dropped, each client's disk cache kept
for ((r = 1; r <= RUNS; r++)); do
	for c in "${WCLIENTS[@]}"; do
		drop_caches
		v=$(mbps "$SIZE" "$(timed_read "${WFILE[$c]}" "$SIZE")")
		DISK[$c]+=" $v"
		log "disk-cache read (page cache dropped) $r/$RUNS $c: $v MB/s"
	done
done
cp "${KEEP_MNT[mlfs]}/.mlfs/cache" "$W/cold/mlfs-warm.stats"
for c in mlfs s3fs s3fs-kc rclone; do
	unmount "${KEEP_MNT[$c]}"
	rm -rf "$(dirname "${KEEP_MNT[$c]}")/cache"
done
fi # part 2

# ================================================================ 3. random
cat >"$W/fio.py" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
j = d["jobs"][0]["read"]
p = j.get("clat_ns", {}).get("percentile", {})
print("%.0f %d %.0f %.0f" % (j["iops"], j["total_ios"],
      p.get("50.000000", 0) / 1000, p.get("99.000000", 0) / 1000))
EOF
declare -A RAND=() RAND_P50=() RAND_P99=() RAND_FETCHED=() RAND_S3CPU=() RAND_S3S=()
for c in mlfs s3fs; do RAND[$c]=""; RAND_P50[$c]=""; RAND_P99[$c]=""; RAND_FETCHED[$c]=""; RAND_S3CPU[$c]=""; RAND_S3S[$c]=""; done
RAND_IOS_SHORT=0
GET4K_MS=n/a GET4K_N=2000
if want 3; then
# What one ranged GET of 4 KiB costs s3rver: GET4K_N of them at random
# offsets over one connection (curl -K, signed), its CPU time / N.  Ten
# thousand reads served by small GETs cost it 10,240 times that; served
# by fetching the object, its CPU-s per GiB of part 1.
python3 - "$E/$B/peer/big.csv" "$SIZE" "$GET4K_N" >"$W/get4k.cfg" <<'EOF2'
import random, sys
url, size, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(1)
for i in range(n):
    off = random.randrange(0, size // 4096) * 4096
    if i:
        print("next")
    print('url = "%s"\nrange = "%d-%d"\noutput = "/dev/null"' % (url, off, off + 4095))
    print('aws-sigv4 = "aws:amz:us-east-1:s3"\nuser = "S3RVER:S3RVER"')
    print('header = "x-amz-content-sha256: '
          'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"')
EOF2
s0=$(cpu_s "$S3PID")
curl -sS -K "$W/get4k.cfg" || die "curl's ranged GETs failed"
s1=$(cpu_s "$S3PID")
GET4K_MS=$(awk -v a="$s0" -v b="$s1" -v n="$GET4K_N" 'BEGIN { printf "%.2f", (b - a) / n * 1000 }')
log "s3rver CPU per ranged 4 KiB GET: $GET4K_MS ms ($GET4K_N GETs)"
for ((r = 1; r <= RUNS; r++)); do
	# shellcheck disable=SC2046
	for c in $(rotated $((r - 1)) mlfs s3fs); do
		d=$W/rand/$c-$r
		mkdir -p "$d"
		if [[ $c == mlfs ]]; then
			start_mount mlfs "$ML_PREFIX" "$d/cache" "$d/mnt" "$d/log"
			f=$d/mnt/$ML_REL
		else
			start_mount s3fs peer "$d/cache" "$d/mnt" "$d/log"
			f=$d/mnt/big.csv
		fi
		drop_caches
		s0=$(cpu_s "$S3PID"); t0=$(now)
		fio --name=randread --filename="$f" --readonly --rw=randread --bs=4k \
			--ioengine=psync --iodepth=1 --numjobs=1 --number_ios=10240 \
			--randrepeat=1 --runtime="$FIO_RUNTIME" --output-format=json \
			--output="$d/fio.json" >"$d/fio.err" 2>&1 ||
			{ cat "$d/fio.err" >&2; die "fio on $c failed"; }
		s1=$(cpu_s "$S3PID"); t1=$(now)
		RAND_S3CPU[$c]+=" $(cpu_pct "$s0" "$s1" "$(elapsed "$t0" "$t1")")"
		RAND_S3S[$c]+=" $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f", b - a }')"
		read -r iops ios p50 p99 < <(python3 "$W/fio.py" "$d/fio.json")
		((ios >= 10240)) || RAND_IOS_SHORT=1
		RAND[$c]+=" $iops"; RAND_P50[$c]+=" $p50"; RAND_P99[$c]+=" $p99"
		if [[ $c == mlfs ]]; then
			fetched=$(awk -v b="$(mlfs_stat "$d/mnt" fetch_bytes)" 'BEGIN { printf "%.0f", b / 1048576 }')
			cp "$d/mnt/.mlfs/cache" "$d/stats"
		else
			sleep 1   # s3fs may still be writing its cache file
			fetched=$(du -s --block-size=1 "$d/cache" | awk '{ printf "%.0f", $1 / 1048576 }')
		fi
		RAND_FETCHED[$c]+=" $fetched"
		log "random 4k $r/$RUNS $c: $iops IOPS ($ios reads, p50 ${p50} us, p99 ${p99} us), ${fetched} MiB fetched/cached"
		unmount "$d/mnt"
		rm -rf "$d/cache"
	done
done

fi # part 3

# ================================================================ 4. listing
LIST_MAKE_S=n/a LIST_SYNC_S=n/a LIST_OBJS=n/a
LCLIENTS=(mlfs mlfs-check s3fs rclone)
declare -A LS_TOT=() LS_ONLY=() LS_MOUNT=() LS_N=()
for c in "${LCLIENTS[@]}"; do LS_TOT[$c]=""; LS_ONLY[$c]=""; LS_MOUNT[$c]=""; LS_N[$c]=""; done
LS_CHECKED=""   # mlfs-check: mount until the log says the check finished
LS_CHECK_OWN="" # the check's own time, as that log line gives it
if want 4; then
log "creating $LIST_N datasets through one mlfs mount (LIST_CSV=$LIST_CSV)"
cat >"$W/mkds.py" <<'EOF'
import os, sys, time
root, n, csv = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
t0 = time.perf_counter()
for i in range(n):
    d = os.path.join(root, "datasets", "d%04d" % i)
    os.mkdir(d)
    if csv:
        with open(os.path.join(d, "data.csv"), "w") as f:
            f.write("x,y,label\n")
            for k in range(20):
                f.write("%d,%d.%d,%d\n" % (i, k, i, k % 3))
    if (i + 1) % 250 == 0:
        print("  %d/%d datasets, %.1f s" % (i + 1, n, time.perf_counter() - t0),
              file=sys.stderr, flush=True)
EOF
d=$W/list/make
start_mount mlfs list "$d/cache" "$d/mnt" "$d/mlfs.log"
note_threads "$d/mnt"
t0=$(now)
python3 "$W/mkds.py" "$d/mnt" "$LIST_N" "$LIST_CSV" ||
	{ tail -n 20 "$d/mlfs.log" >&2; die "creating datasets failed"; }
t1=$(now)
echo sync >"$d/mnt/.mlfs/cache" || die "sync failed"
t2=$(now)
LIST_MAKE_S=$(elapsed "$t0" "$t1"); LIST_SYNC_S=$(elapsed "$t1" "$t2")
LIST_OBJS=$(awsc s3 ls --recursive "s3://$B/list/" | wc -l)
log "made $LIST_N datasets in $LIST_MAKE_S s, sync $LIST_SYNC_S s; $LIST_OBJS objects under list/"
unmount "$d/mnt"
rm -rf "$d"

log "putting $LIST_N small objects under lists3/ with aws s3 cp --recursive"
mkdir -p "$W/list/objs"
python3 - "$W/list/objs" "$LIST_N" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, "f%04d.csv" % i), "w") as f:
        f.write("x,y,label\n")
        for k in range(20):
            f.write("%d,%d.%d,%d\n" % (i, k, i, k % 3))
EOF
awsc s3 cp --only-show-errors --recursive "$W/list/objs" "s3://$B/lists3/" >/dev/null || die "aws s3 cp --recursive failed"
rm -rf "$W/list/objs"

for ((r = 1; r <= RUNS; r++)); do
	# shellcheck disable=SC2046
	for c in $(rotated $((r - 1)) "${LCLIENTS[@]}"); do
		d=$W/list/$c-$r
		drop_caches
		t0=$(now)
		if [[ $c == mlfs ]]; then
			start_mount mlfs list "$d/cache" "$d/mnt" "$d/log"
			dir=$d/mnt/datasets/
		elif [[ $c == mlfs-check ]]; then
			# fs/repo/verify.c logs this line when the check is done; the
			# poller notes when, even if that is before `ls -l` ends
			mkdir -p "$d"
			(
				until grep -q 'checked against the bucket in' "$d/log" 2>/dev/null; do
					sleep 0.01
				done
				echo "$EPOCHREALTIME" >"$d/checked.tmp" && mv "$d/checked.tmp" "$d/checked"
			) &
			POLL_PID=$!
			start_mount mlfs list "$d/cache" "$d/mnt" "$d/log" verify_delay=0
			dir=$d/mnt/datasets/
		else
			start_mount "$c" lists3 "$d/cache" "$d/mnt" "$d/log"
			dir=$d/mnt/
		fi
		t1=$(now)
		ls -l "$dir" >"$d/ls.out" || die "ls -l $dir failed"
		t2=$(now)
		LS_N[$c]+=" $(grep -c -E ' (d|f)[0-9]{4}(\.csv)?$' "$d/ls.out" || true)"
		LS_MOUNT[$c]+=" $(elapsed "$t0" "$t1")"
		LS_ONLY[$c]+=" $(elapsed "$t1" "$t2")"
		LS_TOT[$c]+=" $(elapsed "$t0" "$t2")"
		log "listing $r/$RUNS $c: mount $(elapsed "$t0" "$t1") s + ls -l $(elapsed "$t1" "$t2") s"
		if [[ $c == mlfs-check ]]; then
			for ((i = 0; i < 1200; i++)); do
				[[ -s $d/checked ]] && break
				sleep 0.1
			done
			kill "$POLL_PID" 2>/dev/null || true
			wait "$POLL_PID" 2>/dev/null || true
			POLL_PID=
			grep -q 'index from the catalog; checking it' "$d/log" ||
				{ tail -n 5 "$d/log" >&2; die "mlfs did not take its index from the catalog"; }
			own=$(sed -n 's/.*checked against the bucket in \([0-9.]*\) s.*/\1/p' "$d/log")
			[[ -n $own && -s $d/checked ]] || { tail -n 5 "$d/log" >&2; die "mlfs did not finish its check within 120 s"; }
			t3=$(cat "$d/checked")
			LS_CHECKED+=" $(elapsed "$t0" "$t3")"
			LS_CHECK_OWN+=" $own"
			log "listing $r/$RUNS $c: check against the bucket finished $(elapsed "$t0" "$t3") s after the mount began (the check itself: $own s)"
		fi
		unmount "$d/mnt"
		rm -rf "$d"
	done
done
awsc s3 rm --only-show-errors --recursive "s3://$B/lists3/" >/dev/null
fi # part 4

# ================================================================ 6. 4 GiB stream
STREAM_RSS=n/a STREAM_MBPS=n/a STREAM_FETCH=n/a STREAM_CPU=n/a STREAM_EXP_RSS=n/a
if want 6 && ((STREAM_MB > 0)); then
	rm -f "$NATIVE"     # only parts 1-5 needed it; frees the disk
	log "writing a ${STREAM_MB} MiB CSV through mlfs (prefix stream) and exporting it"
	d=$W/stream
	start_mount mlfs stream "$d/cache0" "$d/mnt0" "$d/mlfs0.log"
	mkdir "$d/mnt0/datasets/s"
	rss_start "$PID" "$d/rss0"
	python3 "$W/gen.py" "$d/mnt0/datasets/s/data.csv" "$((STREAM_MB * 1024 * 1024))" 7 ||
		{ tail -n 20 "$d/mlfs0.log" >&2; die "writing the stream CSV failed"; }
	echo sync >"$d/mnt0/.mlfs/cache" || die "sync failed"
	STREAM_EXP_RSS=$(rss_stop)
	STREAM_SIZE=$(stat -c %s "$d/mnt0/datasets/s/v1/data.csv")
	unmount "$d/mnt0"
	rm -rf "$d/cache0"
	log "streaming it cold through a fresh mount, sampling RssAnon"
	start_mount mlfs stream "$d/cache" "$d/mnt" "$d/mlfs.log"
	drop_caches
	rss_start "$PID" "$d/rss"
	c0=$(cpu_s "$PID")
	secs=$(timed_read "$d/mnt/datasets/s/v1/data.csv" "$STREAM_SIZE")
	c1=$(cpu_s "$PID")
	STREAM_RSS=$(rss_stop)
	STREAM_MBPS=$(mbps "$STREAM_SIZE" "$secs")
	STREAM_CPU=$(cpu_pct "$c0" "$c1" "$secs")
	STREAM_FETCH=$(mlfs_stat "$d/mnt" fetch_mb_per_s)
	cp "$d/mnt/.mlfs/cache" "$d/stats"
	log "stream ${STREAM_MB} MiB: $STREAM_MBPS MB/s, RssAnon max $STREAM_RSS MB"
	unmount "$d/mnt"
	rm -rf "$d"
	awsc s3 rm --only-show-errors --recursive "s3://$B/stream/" >/dev/null
fi

# ================================================================ report
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
TOTAL_MIN=$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) / 60 }')
declare -A CM=() WM=() DM=() RM=()
for c in "${CLIENTS[@]}"; do
	# shellcheck disable=SC2086
	CM[$c]=$(median %.1f ${COLD[$c]})
done
for c in "${WCLIENTS[@]}"; do
	# shellcheck disable=SC2086
	WM[$c]=$(median %.1f ${WARM[$c]})
	# shellcheck disable=SC2086
	DM[$c]=$(median %.1f ${DISK[$c]})
done
for c in mlfs s3fs; do
	# shellcheck disable=SC2086
	RM[$c]=$(median %.0f ${RAND[$c]})
done
# shellcheck disable=SC2086
med() { median "$1" $2; }    # med FORMAT "LIST": the list is split on purpose
EXP_ML_M=$(median %.1f "${EXP_ML[@]}")
EXP_AWS_M=$(median %.1f "${EXP_AWS[@]}")
EXP_CURL_M=$(median %.1f "${EXP_CURL[@]}")

best_peer=s3fs
awk -v a="${CM[rclone]}" -v b="${CM[s3fs]}" 'BEGIN { exit !(a + 0 > b + 0) }' && best_peer=rclone
r_cold_peer=$(ratio "${CM[mlfs]}" "${CM[$best_peer]}")
r_cold_curl=$(ratio "${CM[mlfs]}" "${CM[curl]}")
r_warm_s3fs=$(ratio "${WM[mlfs]}" "${WM[s3fs]}")
r_warm_kc=$(ratio "${WM[mlfs]}" "${WM[s3fs-kc]}")
r_warm_nat=$(ratio "${WM[mlfs]}" "${WM[native]}")
r_rand=$(ratio "${RM[mlfs]}" "${RM[s3fs]}")
# The most IOPS a client that keeps the bytes could reach in part 3: the
# object fetched as fast as curl8f fetched it into files (part 1), then
# 10,240 reads at mlfs's p50 from the local copy.
RAND_BOUND=$(awk -v sz="$SIZE" -v v="${CM[curl8f]}" -v p="$(median %.1f ${RAND_P50[mlfs]})" 'BEGIN {
	if (v == "n/a" || p == "n/a" || v + 0 <= 0) print "n/a";
	else printf "%.0f", 10240 / (sz / (v * 1e6) + 10240 * p / 1e6) }')
r_rand_bound=$(ratio "$RAND_BOUND" "${RM[s3fs]}")
LT_ML=$(med %.3f "${LS_TOT[mlfs]}"); LT_S3=$(med %.3f "${LS_TOT[s3fs]}"); LT_RC=$(med %.3f "${LS_TOT[rclone]}")
LO_ML=$(med %.3f "${LS_ONLY[mlfs]}"); LO_S3=$(med %.3f "${LS_ONLY[s3fs]}"); LO_RC=$(med %.3f "${LS_ONLY[rclone]}")
LM_ML=$(med %.3f "${LS_MOUNT[mlfs]}"); LM_S3=$(med %.3f "${LS_MOUNT[s3fs]}"); LM_RC=$(med %.3f "${LS_MOUNT[rclone]}")
LT_MC=$(med %.3f "${LS_TOT[mlfs-check]}"); LO_MC=$(med %.3f "${LS_ONLY[mlfs-check]}"); LM_MC=$(med %.3f "${LS_MOUNT[mlfs-check]}")
LC_MC=$(med %.3f "$LS_CHECKED"); LCO_MC=$(med %.3f "$LS_CHECK_OWN")
r_ls_tot=$(ratio "$LT_S3" "$LT_ML")
r_ls_only=$(ratio "$LO_S3" "$LO_ML")
r_ls_checked=$(ratio "$LT_S3" "$LC_MC")
r_exp=$(ratio "$EXP_ML_M" "$EXP_AWS_M")
LZ_ML=$(med %.1f "${LAZY[mlfs]}"); LZ_S3=$(med %.1f "${LAZY[s3fs]}")
r_lazy=$(ratio "$LZ_ML" "$LZ_S3")
r_exp_curl=$(ratio "$EXP_ML_M" "$EXP_CURL_M")
COLD_RSS_MAX=$(maxof "${COLD_RSS[@]}")
EXP_RSS_MAX=$(maxof "${EXP_RSS[@]}")
if [[ $STREAM_RSS != n/a ]]; then
	rss_goal_v=$STREAM_RSS; rss_goal_what="${STREAM_MB} MiB stream"
else
	rss_goal_v=$COLD_RSS_MAX; rss_goal_what="${SIZE_MB} MiB cold read (stream skipped)"
fi

mib=$(awk -v b="$SIZE" 'BEGIN { printf "%.0f", b / 1048576 }')
RAND_NBLK=$(awk -v b="$SIZE" 'BEGIN { n = int((b + 1048575) / 1048576); print n }')
RAND_BLOCKS=$(awk -v n="$RAND_NBLK" 'BEGIN { if (n < 2) { print n; exit }; printf "%.0f", n * (1 - exp(10240 * log(1 - 1 / n))) }')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $SRC != "$REPO" ]]; then
	rev="built from $SRC"
elif ! git -C "$REPO" diff --quiet HEAD 2>/dev/null; then
	rev+=" (with uncommitted changes)"
fi
s3fsv=$(s3fs --version 2>&1 | sed -n 's/.*V\([0-9.]*\).*/\1/p' | head -n 1)
rclonev=$(rclone version 2>/dev/null | awk 'NR == 1 { print $2 }')
awsv=$("$AWS" --version 2>&1 | awk '{ print $1 }')
curlv=$(curl --version | awk 'NR == 1 { print $2 }')
s3fs_default() { s3fs --help 2>&1 | sed -n "s/^ *$1 (default=\"\([0-9]*\)\").*/\1/p" | head -n 1; }
rclone_default() { rclone help flags 2>/dev/null | sed -n "s/.*--$1 int .*(default \([0-9]*\)).*/\1/p" | head -n 1; }
aws_conc=$("$AWS" configure get s3.max_concurrent_requests 2>/dev/null || true)
PARALLEL="mlfs ${ML_THREADS} fetch threads (.mlfs/cache fetch_threads); s3fs parallel_count $(s3fs_default parallel_count), multireq_max $(s3fs_default multireq_max) (its defaults, from --help); rclone --transfers $(rclone_default transfers), --multi-thread-streams $(rclone_default multi-thread-streams) (defaults, from help flags); aws s3 max_concurrent_requests ${aws_conc:-10 (default, not configured)}; curl one connection, and four (to /dev/null) or eight (into files) for its 64 MiB ranges"
s3rverv=$(node -p "require('${MLFS_S3_NODE_DIR:-$REPO/build-s3node}/node_modules/s3rver/package.json').version" 2>/dev/null || echo "?")
sp() { echo "$1" | sed 's/^ //; s/ /, /g'; }

cat <<EOF

## mlfs on S3 vs s3fs, rclone, aws s3 cp and curl

One s3rver ${s3rverv} on 127.0.0.1 (no gateway), ${mib} MiB numeric CSV object.
Medians of ${RUNS} runs (warm: ${WARM_RUNS}); MB/s = 10^6 B/s, wall clock from open
to close (\`dd bs=1M\`). Cold = \`sync; echo 3 > /proc/sys/vm/drop_caches\` and a new,
empty cache folder (and a fresh mount) for every client, every run. "CPU" columns
are CPU time / wall time of the FUSE daemon and of s3rver (100% = one core), and
s3rver's CPU seconds per GiB moved (what each client's requests cost the server).
Each run starts with a different client (rotated), so load on the machine that
drifts during a run does not always fall on the same client.

| Measurement | Client | Median | Runs | Daemon CPU % | s3rver CPU % | s3rver CPU-s per GiB |
|---|---|---:|---|---|---|---|
| Cold sequential read (MB/s) | mlfs | ${CM[mlfs]} | $(sp "${COLD[mlfs]}") | $(sp "${COLD_CPU[mlfs]}") | $(sp "${COLD_S3CPU[mlfs]}") | $(sp "${COLD_S3G[mlfs]}") |
| | s3fs | ${CM[s3fs]} | $(sp "${COLD[s3fs]}") | $(sp "${COLD_CPU[s3fs]}") | $(sp "${COLD_S3CPU[s3fs]}") | $(sp "${COLD_S3G[s3fs]}") |
| | rclone | ${CM[rclone]} | $(sp "${COLD[rclone]}") | $(sp "${COLD_CPU[rclone]}") | $(sp "${COLD_S3CPU[rclone]}") | $(sp "${COLD_S3G[rclone]}") |
| | aws s3 cp (to a file) | ${CM[aws]} | $(sp "${COLD[aws]}") | – | $(sp "${COLD_S3CPU[aws]}") | $(sp "${COLD_S3G[aws]}") |
| | curl, one GET | ${CM[curl]} | $(sp "${COLD[curl]}") | – | $(sp "${COLD_S3CPU[curl]}") | $(sp "${COLD_S3G[curl]}") |
| | curl, 64 MiB ranges, 4 at a time | ${CM[curl4]} | $(sp "${COLD[curl4]}") | – | $(sp "${COLD_S3CPU[curl4]}") | $(sp "${COLD_S3G[curl4]}") |
| | curl, 64 MiB ranges, 8 at a time, into files | ${CM[curl8f]} | $(sp "${COLD[curl8f]}") | – | $(sp "${COLD_S3CPU[curl8f]}") | $(sp "${COLD_S3G[curl8f]}") |
| Warm sequential read (MB/s) | mlfs | ${WM[mlfs]} | $(sp "${WARM[mlfs]}") | ${ML_WARM_CPU} | – | – |
| | s3fs (cached) | ${WM[s3fs]} | $(sp "${WARM[s3fs]}") | – | – | – |
| | s3fs (cached, kernel_cache) | ${WM[s3fs-kc]} | $(sp "${WARM[s3fs-kc]}") | – | – | – |
| | rclone (cached) | ${WM[rclone]} | $(sp "${WARM[rclone]}") | – | – | – |
| | native page cache | ${WM[native]} | $(sp "${WARM[native]}") | – | – | – |
| Disk cache, page cache dropped (MB/s) | mlfs | ${DM[mlfs]} | $(sp "${DISK[mlfs]}") | – | – | – |
| | s3fs | ${DM[s3fs]} | $(sp "${DISK[s3fs]}") | – | – | – |
| | s3fs kernel_cache | ${DM[s3fs-kc]} | $(sp "${DISK[s3fs-kc]}") | – | – | – |
| | rclone | ${DM[rclone]} | $(sp "${DISK[rclone]}") | – | – | – |
| | native (local disk) | ${DM[native]} | $(sp "${DISK[native]}") | – | – | – |
| Cold random 4 KiB reads (IOPS) | mlfs | ${RM[mlfs]} | $(sp "${RAND[mlfs]}") | – | $(sp "${RAND_S3CPU[mlfs]}") | – |
| | s3fs | ${RM[s3fs]} | $(sp "${RAND[s3fs]}") | – | $(sp "${RAND_S3CPU[s3fs]}") | – |
| Listing ${LIST_N}: mount + first \`ls -l\` (s) | mlfs | ${LT_ML} | $(sp "${LS_TOT[mlfs]}") | – | – | – |
| | mlfs verify_delay=0 | ${LT_MC} | $(sp "${LS_TOT[mlfs-check]}") | – | – | – |
| | s3fs | ${LT_S3} | $(sp "${LS_TOT[s3fs]}") | – | – | – |
| | rclone | ${LT_RC} | $(sp "${LS_TOT[rclone]}") | – | – | – |
| Listing: mount until the check against the bucket finished (s) | mlfs verify_delay=0 | ${LC_MC} | $(sp "$LS_CHECKED") | – | – | – |
| | (the check itself, from mlfs's log) | ${LCO_MC} | $(sp "$LS_CHECK_OWN") | – | – | – |
| Listing: \`ls -l\` alone (s) | mlfs | ${LO_ML} | $(sp "${LS_ONLY[mlfs]}") | – | – | – |
| | mlfs verify_delay=0 | ${LO_MC} | $(sp "${LS_ONLY[mlfs-check]}") | – | – | – |
| | s3fs | ${LO_S3} | $(sp "${LS_ONLY[s3fs]}") | – | – | – |
| | rclone | ${LO_RC} | $(sp "${LS_ONLY[rclone]}") | – | – | – |
| Listing: mount alone (s) | mlfs | ${LM_ML} | $(sp "${LS_MOUNT[mlfs]}") | – | – | – |
| | mlfs verify_delay=0 | ${LM_MC} | $(sp "${LS_MOUNT[mlfs-check]}") | – | – | – |
| | s3fs | ${LM_S3} | $(sp "${LS_MOUNT[s3fs]}") | – | – | – |
| | rclone | ${LM_RC} | $(sp "${LS_MOUNT[rclone]}") | – | – | – |
| ${mib} MiB export (MB/s) | mlfs (cp + sync) | ${EXP_ML_M} | $(sp " ${EXP_ML[*]}") | $(sp " ${EXP_ML_CPU[*]}") | $(sp " ${EXP_S3_ML[*]}") | $(sp " ${EXP_G_ML[*]}") |
| | aws s3 cp upload | ${EXP_AWS_M} | $(sp " ${EXP_AWS[*]}") | – | $(sp " ${EXP_S3_AWS[*]}") | $(sp " ${EXP_G_AWS[*]}") |
| | curl, one PUT | ${EXP_CURL_M} | $(sp " ${EXP_CURL[*]}") | – | $(sp " ${EXP_S3_CURL[*]}") | $(sp " ${EXP_G_CURL[*]}") |
| Lazy source: first read (MB/s) | mlfs (\`source s3://…\`, then \`dd\`) | ${LZ_ML} | $(sp "${LAZY[mlfs]}") | – | – | – |
| | s3fs cold read | ${LZ_S3} | $(sp "${LAZY[s3fs]}") | – | – | – |
| mlfs RssAnon max (MB) | ${mib} MiB cold read | ${COLD_RSS_MAX} | $(sp " ${COLD_RSS[*]}") | – | – | – |
| | ${mib} MiB export | ${EXP_RSS_MAX} | $(sp " ${EXP_RSS[*]}") | – | – | – |
| | ${STREAM_MB} MiB write + export | ${STREAM_EXP_RSS} | – | – | – | – |
| | ${STREAM_MB} MiB cold stream | ${STREAM_RSS} | ${STREAM_MBPS} MB/s | ${STREAM_CPU} | – | – |

### Goals (issue 4)

| Goal | Value | Target | Result |
|---|---:|---|---|
| Cold read, mlfs / best FUSE peer (${best_peer}) | ${r_cold_peer} | ≥ 1.5 | $(met "$r_cold_peer" ">=" 1.5) |
| Cold read, mlfs / curl | ${r_cold_curl} | ≥ 0.9 | $(met "$r_cold_curl" ">=" 0.9) |
| Warm read, mlfs / s3fs cached with kernel_cache | ${r_warm_kc} | ≥ 3 | $(met "$r_warm_kc" ">=" 3) |
| (warm read, mlfs / s3fs cached, its default: no kernel_cache) | ${r_warm_s3fs} | (≥ 3) | $(met "$r_warm_s3fs" ">=" 3) |
| Warm read, mlfs / native page cache | ${r_warm_nat} | ≥ 0.5 | $(met "$r_warm_nat" ">=" 0.5) |
| Cold random 4 KiB IOPS, mlfs / s3fs | ${r_rand} | ≥ 2 | $(met "$r_rand" ">=" 2) |
| Listing ${LIST_N}, fresh mount + \`ls -l\`, s3fs time / mlfs time | ${r_ls_tot} | ≥ 5 | $(met "$r_ls_tot" ">=" 5) |
| Lazy source first read, mlfs / s3fs cold read (issue 20) | ${r_lazy} | ≥ 1.0 | $(met "$r_lazy" ">=" 1.0) |
| (same, \`ls -l\` alone, mount excluded) | ${r_ls_only} | (≥ 5) | $(met "$r_ls_only" ">=" 5) |
| Listing ${LIST_N}, s3fs mount + \`ls -l\` (LIST + HEADs) / mlfs mount until its check against the bucket finished | ${r_ls_checked} | ≥ 5 | $(met "$r_ls_checked" ">=" 5) |
| ${mib} MiB export, mlfs / aws s3 cp | ${r_exp} | ≥ 1.0 | $(met "$r_exp" ">=" 1.0) |
| (export, mlfs / curl PUT ceiling) | ${r_exp_curl} | – | – |
| mlfs RssAnon max, ${rss_goal_what} (MB) | ${rss_goal_v} | < 100 | $(met "$rss_goal_v" "<" 100) |

Details:
- mlfs export = \`cp\` into datasets/big/data.csv (import: hash, schema, stats;
  local outbox) + \`echo sync > .mlfs/cache\` (upload): cp $(sp " ${EXP_ML_CP[*]}") s,
  sync $(sp " ${EXP_ML_SYNC[*]}") s.
- mlfs cold read: fetch_mb_per_s in .mlfs/cache $(sp " ${COLD_FETCH[*]}"); $( ((STREAM_MB > 0)) && echo "${STREAM_MB} MiB stream ${STREAM_FETCH}" || echo "stream skipped (STREAM_MB=0)")
- random 4 KiB: p50 latency (µs) mlfs $(sp "${RAND_P50[mlfs]}"), s3fs $(sp "${RAND_P50[s3fs]}");
  p99 mlfs $(sp "${RAND_P99[mlfs]}"), s3fs $(sp "${RAND_P99[s3fs]}"); MiB fetched from S3
  (mlfs fetch_bytes) / cached on disk (s3fs cache folder) after 10,240 reads (40 MiB):
  mlfs $(sp "${RAND_FETCHED[mlfs]}"), s3fs $(sp "${RAND_FETCHED[s3fs]}"). 10,240 uniform reads touch about
  ${RAND_BLOCKS} of the ${RAND_NBLK} 1 MiB blocks, so neither run can end before nearly the whole
  object has been fetched: IOPS is bounded by 10,240 / (time to fetch the object).
  s3rver CPU seconds a run: mlfs $(sp "${RAND_S3S[mlfs]}"), s3fs $(sp "${RAND_S3S[s3fs]}"). One ranged
  4 KiB GET costs s3rver ${GET4K_MS} ms of CPU (${GET4K_N} at random offsets, one connection):
  serving the 10,240 reads by small GETs instead would cost it
  $(awk -v m="$GET4K_MS" 'BEGIN { if (m == "n/a") print "n/a"; else printf "%.1f", m * 10240 / 1000 }') s, more than fetching the whole object.
  A client that keeps the bytes, fetching the object as fast as curl did
  into files (8 ranges of 64 MiB at a time, ${CM[curl8f]} MB/s, part 1) and
  then reading at mlfs's p50, would reach ${RAND_BOUND} IOPS: ${r_rand_bound}× s3fs.$( ((RAND_IOS_SHORT)) && echo " Some fio runs hit FIO_RUNTIME=${FIO_RUNTIME}s before 10,240 reads.")
- listing: ${LIST_N} datasets made through one mount in ${LIST_MAKE_S} s (LIST_CSV=${LIST_CSV}), sync
  ${LIST_SYNC_S} s, ${LIST_OBJS} objects under the prefix; s3fs and rclone list ${LIST_N} small
  objects (about 200 bytes each). Entries listed per run: mlfs $(sp "${LS_N[mlfs]}"), s3fs $(sp "${LS_N[s3fs]}"), rclone $(sp "${LS_N[rclone]}").

Machine: ${cpu}, nproc $(nproc), ${mem} RAM, kernel $(uname -r); load average
at start ${LOAD_START}, at end ${LOAD_END} (other work on the machine shares the
CPUs, and s3rver needs one). Total ${TOTAL_MIN} min. mlfs ${rev} (release, no sanitizers),
s3fs ${s3fsv}, rclone ${rclonev}, ${awsv}, curl ${curlv}, fio $(fio --version | sed 's/^fio-//').
Parallelism: ${PARALLEL}.
Mounts: \`mlfs -f -o cache=DIR,endpoint=URL,path_style s3://BUCKET/PREFIX\` (listing: also
with \`verify_delay=0\`, so that the check against the bucket starts at once);
\`s3fs BUCKET:/PREFIX -o use_cache=DIR,url=URL,use_path_request_style\` (warm: also with
\`kernel_cache\`, which keeps the page cache across opens as mlfs does);
\`rclone mount X:BUCKET/PREFIX --vfs-cache-mode full --cache-dir DIR\` (all defaults otherwise).
EOF
