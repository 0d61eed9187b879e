#!/usr/bin/env bash
# bench_fs.sh - mlfs against the floor set by libfuse's passthrough_ll.
#
# A benchmark, not a test: it measures, prints medians and ratios, and marks
# each goal met or missed; it fails only when something cannot be measured.
#
#   sequential read of a 1 GiB CSV, warm page cache (5 runs) and cold (3 runs,
#     sync + drop_caches before each), for the file on the local disk
#     ("native"), through passthrough_ll, and as mlfs datasets/big/v1/data.csv
#   10,000 entries: `ls -l` of the directory (warm, 5 runs) and os.stat()
#     latency (p50, p99) over every name, mlfs datasets vs passthrough_ll files
#
# Goals: warm read mlfs/native >= 0.5; cold read mlfs/passthrough_ll >= 1.0;
#        ls -l and stat p50 mlfs/passthrough_ll <= 1.5.
#
# Usage: tests/bench/fs/bench_fs.sh        (as root, for drop_caches)
# Environment:
#   MLFS_BUILD   release build dir (default: <repo>/build-release); it is
#                configured -Dbuildtype=release -Dtests=false -Db_sanitize=none
#   BENCH_DIR    scratch dir on the disk to measure (default: mktemp -d in
#                $TMPDIR or /tmp); removed at exit, must be new or empty
#   SIZE_MB      size of the CSV in MiB (default 1024)
#   ENTRIES      number of entries for ls/stat (default 10000)
#   WARM_RUNS    (default 5)   COLD_RUNS (default 3)   STAT_PASSES (default 5)
#   PASSTHROUGH_LL_SRC  passthrough_ll.c to build
#                (default /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c)
#   PASSTHROUGH_LL_TUNED=1  run passthrough_ll with
#                GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304: by default
#                glibc serves its ~128 KiB read buffer with a fresh mmap and
#                munmap per request, and on VMs where page faults are costly
#                that alone caps it near 100 MB/s, even from the page cache
#
# Needs: meson, ninja, gcc, pkg-config, fuse3 (libfuse3-dev), fusermount3,
# python3, dd.  About 4 minutes on 2 vCPUs, half of it creating the mlfs
# datasets and importing the CSV.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BUILD=${MLFS_BUILD:-$REPO/build-release}
SIZE_MB=${SIZE_MB:-1024}
ENTRIES=${ENTRIES:-10000}
WARM_RUNS=${WARM_RUNS:-5}
COLD_RUNS=${COLD_RUNS:-3}
STAT_PASSES=${STAT_PASSES:-5}
PT_SRC=${PASSTHROUGH_LL_SRC:-/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c}
PT_TUNED=${PASSTHROUGH_LL_TUNED:-0}
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for cmd in meson gcc pkg-config fusermount3 python3 dd awk; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
[[ -r $PT_SRC ]] || die "$PT_SRC not found (install libfuse3-dev)"
pkg-config --exists fuse3 || die "pkg-config: fuse3 not found"

# ---------------------------------------------------------------- scratch
if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p "$BENCH_DIR"
	[[ -z $(ls -A "$BENCH_DIR") ]] || die "BENCH_DIR $BENCH_DIR is not empty"
	W=$(cd "$BENCH_DIR" && pwd -P)
else
	W=$(mktemp -d "${TMPDIR:-/tmp}/mlfs-bench.XXXXXX")
	W=$(cd "$W" && pwd -P)
fi
NATIVE=$W/native/data.csv          # the original, on the local disk
PT_SRCDIR=$W/pt-src                # passthrough_ll's source= directory
PT_MNT=$W/pt-mnt
ML_STORE=$W/mlfs-store
ML_CACHE=$W/mlfs-cache
ML_MNT=$W/mlfs-mnt
mkdir -p "$W/native" "$PT_SRCDIR" "$PT_MNT" "$ML_STORE" "$ML_CACHE" "$ML_MNT"

ML_PID=
PT_PID=

is_mounted() {
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# unmount MNT PID NAME: fusermount3 -u, then wait for the daemon we started
unmount() {
	local mnt=$1 pid=$2 name=$3 i
	if is_mounted "$mnt"; then
		fusermount3 -u "$mnt" 2>/dev/null || {
			sleep 1
			fusermount3 -u "$mnt" 2>/dev/null ||
				fusermount3 -u -z "$mnt" 2>/dev/null || true
		}
	fi
	[[ -n $pid ]] || return 0
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name (pid $pid) still running 30 s after unmount; sending TERM"
		kill -TERM "$pid" 2>/dev/null || true
		sleep 1
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	unmount "$ML_MNT" "$ML_PID" mlfs
	unmount "$PT_MNT" "$PT_PID" passthrough_ll
	if is_mounted "$ML_MNT" || is_mounted "$PT_MNT"; then
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

CAN_DROP=0
if [[ -w /proc/sys/vm/drop_caches ]]; then
	CAN_DROP=1
else
	log "warning: /proc/sys/vm/drop_caches not writable (run as root); cold reads skipped"
fi
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# ---------------------------------------------------------------- build
log "building release mlfs in $BUILD"
if [[ -f $BUILD/build.ninja ]]; then
	meson configure "$BUILD" -Dbuildtype=release -Dtests=false \
		-Db_sanitize=none >/dev/null
else
	meson setup "$BUILD" "$REPO" -Dbuildtype=release -Dtests=false \
		-Db_sanitize=none >"$W/meson-setup.log" 2>&1 ||
		{ tail -n 30 "$W/meson-setup.log" >&2; die "meson setup failed"; }
fi
meson compile -C "$BUILD" >"$W/meson-compile.log" 2>&1 ||
	{ tail -n 30 "$W/meson-compile.log" >&2; die "meson compile failed"; }
MLFS=$BUILD/fs/mlfs
[[ -x $MLFS ]] || die "$MLFS not built"

log "building passthrough_ll from $PT_SRC"
cp "$PT_SRC" "$W/passthrough_ll.c"
pt_helpers=$(dirname "$PT_SRC")/passthrough_helpers.h
[[ -r $pt_helpers ]] && cp "$pt_helpers" "$W/"
# passthrough_ll.c defines its own FUSE_USE_VERSION
# shellcheck disable=SC2046
gcc -O2 -o "$W/passthrough_ll" "$W/passthrough_ll.c" \
	$(pkg-config --cflags --libs fuse3) -lpthread ||
	die "cannot build passthrough_ll"

# ---------------------------------------------------------------- data
log "generating a ${SIZE_MB} MiB numeric CSV"
python3 - "$NATIVE" "$((SIZE_MB * 1024 * 1024))" <<'EOF'
import random, sys
out, target = sys.argv[1], int(sys.argv[2])
r = random.Random(42)
ncol = 8                      # x0..x6 floats, label an integer 0..9
rows, size = [], 0
while size < (1 << 20):       # a ~1 MiB block of rows, repeated
    vals = ["%.6f" % r.uniform(-100, 100) for _ in range(ncol - 1)]
    line = ",".join(vals + [str(r.randint(0, 9))]) + "\n"
    rows.append(line)
    size += len(line)
block = "".join(rows).encode()
header = (",".join("x%d" % i for i in range(ncol - 1)) + ",label\n").encode()
with open(out, "wb") as f:
    f.write(header)
    for _ in range(-(-target // len(block))):
        f.write(block)
EOF
SIZE=$(stat -c %s "$NATIVE")
cp "$NATIVE" "$PT_SRCDIR/data.csv"
sync

# ---------------------------------------------------------------- mounts
log "mounting mlfs"
"$MLFS" -f -o "cache=$ML_CACHE" "$ML_STORE" "$ML_MNT" >"$W/mlfs.log" 2>&1 &
ML_PID=$!
wait_mounted "$ML_MNT" "$ML_PID" mlfs "$W/mlfs.log"

log "mounting passthrough_ll"
PT_DESC="passthrough_ll -f -o source=DIR"
if [[ $PT_TUNED == 1 ]]; then
	PT_DESC="GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304 $PT_DESC"
	GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304 \
		"$W/passthrough_ll" -f -o "source=$PT_SRCDIR" "$PT_MNT" >"$W/pt.log" 2>&1 &
else
	"$W/passthrough_ll" -f -o "source=$PT_SRCDIR" "$PT_MNT" >"$W/pt.log" 2>&1 &
fi
PT_PID=$!
wait_mounted "$PT_MNT" "$PT_PID" passthrough_ll "$W/pt.log"

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

log "importing the CSV into mlfs (mkdir datasets/big; cp)"
mkdir "$ML_MNT/datasets/big"
t0=$(now)
cp "$NATIVE" "$ML_MNT/datasets/big/data.csv" ||
	{ tail -n 20 "$W/mlfs.log" >&2; die "cp into mlfs failed"; }
t1=$(now)
IMPORT_S=$(elapsed "$t0" "$t1")
ML_FILE=$ML_MNT/datasets/big/v1/data.csv
PT_FILE=$PT_MNT/data.csv
[[ -f $ML_FILE ]] || die "$ML_FILE missing after cp"
log "import took ${IMPORT_S} s"
ml_size=$(stat -c %s "$ML_FILE")
[[ $ml_size == "$SIZE" ]] || die "$ML_FILE is $ml_size bytes, expected $SIZE"
sync

# ---------------------------------------------------------------- helpers
# read_mbps FILE: one sequential dd read, MB/s (10^6 bytes)
read_mbps() {
	local out secs
	out=$(LC_ALL=C dd if="$1" of=/dev/null bs=1M 2>&1) ||
		{ printf '%s\n' "$out" >&2; die "dd $1 failed"; }
	secs=$(printf '%s\n' "$out" | sed -n 's/.* copied, \([0-9.e+-]*\) s,.*/\1/p')
	[[ -n $secs ]] || die "cannot parse dd output: $out"
	awk -v b="$SIZE" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1e6 }'
}

# median FORMAT VALUE...
median() {
	local fmt=$1
	shift
	printf '%s\n' "$@" | sort -g | awk -v f="$fmt" '{ v[NR] = $1 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf f, m }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
	if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a";
	else printf "%.2f", a / b }'; }

# met VALUE OP LIMIT
met() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
	if (v == "n/a") { print "n/a"; exit }
	ok = (op == ">=") ? (v + 0 >= l + 0) : (v + 0 <= l + 0)
	print ok ? "yes" : "**no**" }'; }

declare -A FILE=([native]=$NATIVE [passthrough_ll]=$PT_FILE [mlfs]=$ML_FILE)
SYSTEMS=(native passthrough_ll mlfs)

# ---------------------------------------------------------------- a. warm
log "warm-up reads (cmp against the original checks content)"
cat "$NATIVE" >/dev/null
cmp "$NATIVE" "$PT_FILE" || die "passthrough_ll content differs"
cmp "$NATIVE" "$ML_FILE" || die "mlfs v1/data.csv content differs"

declare -A WARM COLD
for s in "${SYSTEMS[@]}"; do WARM[$s]=""; COLD[$s]=""; done
for ((r = 1; r <= WARM_RUNS; r++)); do
	for s in "${SYSTEMS[@]}"; do
		v=$(read_mbps "${FILE[$s]}")
		WARM[$s]+=" $v"
		log "warm read $r/$WARM_RUNS $s: $v MB/s"
	done
done

# ---------------------------------------------------------------- b. cold
if ((CAN_DROP)); then
	for ((r = 1; r <= COLD_RUNS; r++)); do
		for s in "${SYSTEMS[@]}"; do
			drop_caches
			v=$(read_mbps "${FILE[$s]}")
			COLD[$s]+=" $v"
			log "cold read $r/$COLD_RUNS $s: $v MB/s"
		done
	done
fi

declare -A WARM_MED COLD_MED
for s in "${SYSTEMS[@]}"; do
	# shellcheck disable=SC2086
	WARM_MED[$s]=$(median %.1f ${WARM[$s]})
	if ((CAN_DROP)); then
		# shellcheck disable=SC2086
		COLD_MED[$s]=$(median %.1f ${COLD[$s]})
	else
		COLD_MED[$s]=n/a
	fi
done

# the 1 GiB files are no longer needed
rm -f "$NATIVE"

# ---------------------------------------------------------------- c. entries
log "creating $ENTRIES datasets in mlfs (mkdir datasets/dNNNNN) and $ENTRIES files in passthrough_ll"
sync
cat >"$W/create.py" <<'EOF'
import os, sys, time
kind, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
last = t0
for i in range(n):
    if kind == "mkdir":
        os.mkdir(os.path.join(d, "d%05d" % i))
    else:
        os.close(os.open(os.path.join(d, "f%05d" % i),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    if (i + 1) % 1000 == 0:
        t = time.perf_counter()
        print("  %s %d/%d  %.1f s (last 1000: %.1f s)" % (kind, i + 1, n, t - t0, t - last),
              file=sys.stderr, flush=True)
        last = t
print("%.3f" % (time.perf_counter() - t0))
EOF
mkdir "$PT_MNT/many"
ML_DIR=$ML_MNT/datasets
PT_DIR=$PT_MNT/many
PT_CREATE_S=$(python3 "$W/create.py" create "$PT_DIR" "$ENTRIES" 2>/dev/null) ||
	die "creating files in passthrough_ll failed"
log "passthrough_ll: $ENTRIES creates took $PT_CREATE_S s"
ML_CREATE_S=$(python3 "$W/create.py" mkdir "$ML_DIR" "$ENTRIES") ||
	{ tail -n 20 "$W/mlfs.log" >&2; die "mkdir of datasets in mlfs failed"; }
log "mlfs: $ENTRIES mkdirs took $ML_CREATE_S s"

# completeness: what ls -l and plain readdir (ls -f, os.listdir) see
# shellcheck disable=SC2010 # counting what ls -l shows is the point
ML_LSL_N=$(ls -l "$ML_DIR" | grep -c ' d[0-9]\{5\}$' || true)
# shellcheck disable=SC2010
PT_LSL_N=$(ls -l "$PT_DIR" | grep -c ' f[0-9]\{5\}$' || true)
ML_LISTDIR_N=$(python3 -c 'import os,sys,re; print(sum(1 for n in os.listdir(sys.argv[1]) if re.fullmatch(r"d\d{5}", n)))' "$ML_DIR")
PT_LISTDIR_N=$(python3 -c 'import os,sys,re; print(sum(1 for n in os.listdir(sys.argv[1]) if re.fullmatch(r"f\d{5}", n)))' "$PT_DIR")
log "entries seen: ls -l mlfs $ML_LSL_N, passthrough_ll $PT_LSL_N; os.listdir mlfs $ML_LISTDIR_N, passthrough_ll $PT_LISTDIR_N (expected $ENTRIES)"

declare -A LS
LS[mlfs]=""; LS[passthrough_ll]=""
declare -A EDIR=([mlfs]=$ML_DIR [passthrough_ll]=$PT_DIR)
for s in passthrough_ll mlfs; do ls -l "${EDIR[$s]}" >/dev/null; done
for ((r = 1; r <= WARM_RUNS; r++)); do
	for s in passthrough_ll mlfs; do
		t0=$(now)
		ls -l "${EDIR[$s]}" >/dev/null
		t1=$(now)
		ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
		LS[$s]+=" $ms"
		log "ls -l $r/$WARM_RUNS $s: $ms ms"
	done
done

cat >"$W/stat.py" <<'EOF'
import os, sys, time
d, prefix, n, passes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
paths = [os.path.join(d, "%s%05d" % (prefix, i)) for i in range(n)]
for p in paths:                      # warm-up pass
    os.stat(p)
lat = []
clock = time.perf_counter_ns
for _ in range(passes):
    for p in paths:
        t = clock()
        os.stat(p)
        lat.append(clock() - t)
lat.sort()
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] / 1000.0
print("%.2f %.2f" % (q(0.50), q(0.99)))
EOF
declare -A STAT50 STAT99
declare -A PREFIX=([mlfs]=d [passthrough_ll]=f)
for s in passthrough_ll mlfs; do
	out=$(python3 "$W/stat.py" "${EDIR[$s]}" "${PREFIX[$s]}" "$ENTRIES" "$STAT_PASSES") ||
		die "stat loop over $s failed"
	read -r "STAT50[$s]" "STAT99[$s]" <<<"$out"
done
for s in passthrough_ll mlfs; do
	log "stat $s: p50 ${STAT50[$s]} us, p99 ${STAT99[$s]} us"
done

declare -A LS_MED
for s in passthrough_ll mlfs; do
	# shellcheck disable=SC2086
	LS_MED[$s]=$(median %.1f ${LS[$s]})
done

# ---------------------------------------------------------------- report
r_warm_nat=$(ratio "${WARM_MED[mlfs]}" "${WARM_MED[native]}")
r_warm_pt=$(ratio "${WARM_MED[mlfs]}" "${WARM_MED[passthrough_ll]}")
r_cold_nat=$(ratio "${COLD_MED[mlfs]}" "${COLD_MED[native]}")
r_cold_pt=$(ratio "${COLD_MED[mlfs]}" "${COLD_MED[passthrough_ll]}")
r_ls=$(ratio "${LS_MED[mlfs]}" "${LS_MED[passthrough_ll]}")
r_s50=$(ratio "${STAT50[mlfs]}" "${STAT50[passthrough_ll]}")
r_s99=$(ratio "${STAT99[mlfs]}" "${STAT99[passthrough_ll]}")

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
fstype=$(stat -f -c %T "$W")
dev=$(df -P "$W" | awk 'NR == 2 { print $1 }')
rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$REPO" diff --quiet HEAD 2>/dev/null || rev+=" (with uncommitted changes)"
mib=$(awk -v b="$SIZE" 'BEGIN { printf "%.0f", b / 1048576 }')

cat <<EOF

## mlfs vs passthrough_ll

Medians; reads are \`dd bs=1M\` of a ${mib} MiB numeric CSV (MB/s = 10^6 B/s,
higher is better): warm ${WARM_RUNS} runs after a warm-up read, cold ${COLD_RUNS} runs
each after \`sync; echo 3 > /proc/sys/vm/drop_caches\`. Entries: ${ENTRIES} mlfs
datasets (\`datasets/dNNNNN\`) vs ${ENTRIES} files in a passthrough_ll directory;
\`ls -l\` warm, ${WARM_RUNS} runs (ms, lower is better); \`os.stat\` per call over all
names after a warm-up pass, ${STAT_PASSES} passes pooled (µs, lower is better).
"native" is the original file on the local disk.

| Measurement | native | passthrough_ll | mlfs | mlfs/native | mlfs/passthrough_ll | Goal | Met |
|---|---:|---:|---:|---:|---:|---|---|
| Sequential read, warm (MB/s) | ${WARM_MED[native]} | ${WARM_MED[passthrough_ll]} | ${WARM_MED[mlfs]} | ${r_warm_nat} | ${r_warm_pt} | mlfs/native ≥ 0.5 | $(met "$r_warm_nat" ">=" 0.5) |
| Sequential read, cold (MB/s) | ${COLD_MED[native]} | ${COLD_MED[passthrough_ll]} | ${COLD_MED[mlfs]} | ${r_cold_nat} | ${r_cold_pt} | mlfs/passthrough_ll ≥ 1.0 | $(met "$r_cold_pt" ">=" 1.0) |
| \`ls -l\`, ${ENTRIES} entries, warm (ms) | – | ${LS_MED[passthrough_ll]} | ${LS_MED[mlfs]} | – | ${r_ls} | mlfs/passthrough_ll ≤ 1.5 | $(met "$r_ls" "<=" 1.5) |
| stat p50 (µs) | – | ${STAT50[passthrough_ll]} | ${STAT50[mlfs]} | – | ${r_s50} | mlfs/passthrough_ll ≤ 1.5 | $(met "$r_s50" "<=" 1.5) |
| stat p99 (µs) | – | ${STAT99[passthrough_ll]} | ${STAT99[mlfs]} | – | ${r_s99} | – | – |

Not goals, for context: \`cp\` of the CSV into mlfs (makes v1) took ${IMPORT_S} s;
creating the ${ENTRIES} entries took ${ML_CREATE_S} s in mlfs (mkdir of datasets)
and ${PT_CREATE_S} s in passthrough_ll (create of empty files).
Entries seen by \`ls -l\`: mlfs ${ML_LSL_N}, passthrough_ll ${PT_LSL_N}; by
\`os.listdir\` (plain readdir): mlfs ${ML_LISTDIR_N}, passthrough_ll ${PT_LISTDIR_N} (of ${ENTRIES}).

Machine: ${cpu}, nproc $(nproc), ${mem} RAM, kernel $(uname -r),
libfuse $(pkg-config --modversion fuse3), scratch on ${fstype} (${dev}),
load average at start ${LOADAVG}, mlfs ${rev}.
Daemons: mlfs -f -o cache=DIR STORE MNT; ${PT_DESC} MNT.

Individual runs:
- warm MB/s: native${WARM[native]}; passthrough_ll${WARM[passthrough_ll]}; mlfs${WARM[mlfs]}
- cold MB/s: native${COLD[native]:- n/a}; passthrough_ll${COLD[passthrough_ll]:- n/a}; mlfs${COLD[mlfs]:- n/a}
- ls -l ms: passthrough_ll${LS[passthrough_ll]}; mlfs${LS[mlfs]}
EOF

if [[ $ML_LSL_N != "$ENTRIES" || $ML_LISTDIR_N != "$ENTRIES" ]]; then
	printf '\nwarning: mlfs listed fewer than %s datasets (see "Entries seen" above)\n' "$ENTRIES"
fi
