#!/usr/bin/env bash
# bench_fs.sh - mlfs against the floor set by libfuse's passthrough_ll.
#
# A benchmark, not a test: it measures, prints medians and ratios, and marks
# each goal met or missed; it fails only when something cannot be measured.
#
#   ingest: `cp` of a 1 GiB CSV, then `sync FILE` (fsync; an mlfs close is
#     already durable), into a new dataset's datasets/<d>/data.csv (a new
#     dataset each run, removed after it), with the source warm in the page
#     cache (5 runs) and cold (3 runs, sync + drop_caches before each); the
#     same cp to a new file on the local disk ("native") and through
#     passthrough_ll are the floors
#   sequential read of the CSV, warm page cache (5 runs) and cold (3 runs,
#     sync + drop_caches before each), for the file on the local disk
#     ("native"), through passthrough_ll, and in mlfs both as
#     datasets/big/v1/data.csv and as datasets/big/data.csv (the path users
#     type: its handles bypass the page cache); warm again with dd
#     bs=SMALL_BS (4k), the read size of many readers, for every file
#   10,000 entries: `ls -l` of the directory (warm, 5 runs) and os.stat()
#     latency (p50, p99) over every name, mlfs datasets vs passthrough_ll files
#
# With MLFS_BUILD_BASE, a second mlfs (a release build of another commit) is
# mounted beside the first and measured in the same runs, interleaved with
# it, and every row also prints the base figure and the ratio mlfs/base.
#
# Goals: warm read mlfs/native >= 0.5; cold read mlfs/passthrough_ll >= 1.0;
#        ls -l and stat p50 mlfs/passthrough_ll <= 1.5; with a base, cp
#        (warm and cold) mlfs/base >= 0.95 (issue 11: the checks of a
#        write must not slow cp by more than noise).
#
# Usage: tests/bench/fs/bench_fs.sh        (as root, for drop_caches)
# Environment:
#   MLFS_BUILD   release build dir (default: <repo>/build-release); it is
#                configured -Dbuildtype=release -Dtests=false -Db_sanitize=none
#   MLFS_BUILD_BASE  a second mlfs build dir to compare against, e.g. of
#                `git worktree add ../base <commit>` (default: none); it is
#                configured and compiled like MLFS_BUILD, from its own source
#   BENCH_DIR    scratch dir on the disk to measure (default: mktemp -d in
#                $TMPDIR or /tmp); removed at exit, must be new or empty
#   SIZE_MB      size of the CSV in MiB (default 1024)
#   ENTRIES      number of entries for ls/stat (default 10000)
#   WARM_RUNS    (default 5)   COLD_RUNS (default 3)   STAT_PASSES (default 5)
#   SMALL_BS     block size of the second warm read of every file (default
#                4k): data.csv handles bypass the page cache, so each read()
#                of the application is a request to the daemon
#   PASSTHROUGH_LL_SRC  passthrough_ll.c to build
#                (default /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c)
#   PASSTHROUGH_LL_TUNED=1  run passthrough_ll with
#                GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304: by default
#                glibc serves its ~128 KiB read buffer with a fresh mmap and
#                munmap per request, and on VMs where page faults are costly
#                that alone caps it near 100 MB/s, even from the page cache
#
# Needs: meson, ninja, gcc, pkg-config, fuse3 (libfuse3-dev), fusermount3,
# python3, dd.  About 10 minutes on 2 vCPUs (about 16 with a base), a third
# of it the cp runs and a third creating the mlfs datasets.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BUILD=${MLFS_BUILD:-$REPO/build-release}
BUILD_BASE=${MLFS_BUILD_BASE:-}
SIZE_MB=${SIZE_MB:-1024}
ENTRIES=${ENTRIES:-10000}
WARM_RUNS=${WARM_RUNS:-5}
COLD_RUNS=${COLD_RUNS:-3}
STAT_PASSES=${STAT_PASSES:-5}
SMALL_BS=${SMALL_BS:-4k}
PT_SRC=${PASSTHROUGH_LL_SRC:-/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c}
PT_TUNED=${PASSTHROUGH_LL_TUNED:-0}
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

# log, is_mounted, unmount
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
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
MB_STORE=$W/base-store             # the same for the base build
MB_CACHE=$W/base-cache
MB_MNT=$W/base-mnt
mkdir -p "$W/native" "$PT_SRCDIR" "$PT_MNT" "$ML_STORE" "$ML_CACHE" "$ML_MNT"
[[ -z $BUILD_BASE ]] || mkdir -p "$MB_STORE" "$MB_CACHE" "$MB_MNT"

ML_PID=
MB_PID=
PT_PID=


cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	unmount "$ML_MNT" "$ML_PID" mlfs
	unmount "$MB_MNT" "$MB_PID" "mlfs base"
	unmount "$PT_MNT" "$PT_PID" passthrough_ll
	if is_mounted "$ML_MNT" || is_mounted "$MB_MNT" || is_mounted "$PT_MNT"; then
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
	log "warning: /proc/sys/vm/drop_caches not writable (run as root); cold runs skipped"
fi
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# ---------------------------------------------------------------- build
# build_mlfs DIR SRC: configure (release) and compile; SRC for a new DIR
build_mlfs() {
	local dir=$1 src=$2
	log "building release mlfs in $dir"
	if [[ -f $dir/build.ninja ]]; then
		meson configure "$dir" -Dbuildtype=release -Dtests=false \
			-Db_sanitize=none >/dev/null
	else
		[[ -n $src ]] || die "$dir is not a meson build directory"
		meson setup "$dir" "$src" -Dbuildtype=release -Dtests=false \
			-Db_sanitize=none >"$W/meson-setup.log" 2>&1 ||
			{ tail -n 30 "$W/meson-setup.log" >&2; die "meson setup failed"; }
	fi
	meson compile -C "$dir" >"$W/meson-compile.log" 2>&1 ||
		{ tail -n 30 "$W/meson-compile.log" >&2; die "meson compile of $dir failed"; }
	[[ -x $dir/fs/mlfs ]] || die "$dir/fs/mlfs not built"
}
# src_rev DIR: the commit of a build directory's source tree
src_rev() {
	local src rev
	src=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["directories"]["source"])' \
		"$1/meson-info/meson-info.json" 2>/dev/null) || { echo unknown; return; }
	rev=$(git -C "$src" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
	git -C "$src" diff --quiet HEAD 2>/dev/null || rev+=" (with uncommitted changes)"
	echo "$rev"
}
build_mlfs "$BUILD" "$REPO"
MLFS=$BUILD/fs/mlfs
if [[ -n $BUILD_BASE ]]; then
	BUILD_BASE=$(cd "$BUILD_BASE" && pwd) || die "MLFS_BUILD_BASE $MLFS_BUILD_BASE not found"
	build_mlfs "$BUILD_BASE" ""
	MLFS_BASE=$BUILD_BASE/fs/mlfs
fi

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
if [[ -n $BUILD_BASE ]]; then
	log "mounting mlfs base"
	"$MLFS_BASE" -f -o "cache=$MB_CACHE" "$MB_STORE" "$MB_MNT" >"$W/base.log" 2>&1 &
	MB_PID=$!
	wait_mounted "$MB_MNT" "$MB_PID" "mlfs base" "$W/base.log"
fi

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

# ---------------------------------------------------------------- helpers
# read_mbps FILE [BS]: one sequential dd read (bs=1M), MB/s (10^6 bytes)
read_mbps() {
	local out secs
	out=$(LC_ALL=C dd if="$1" of=/dev/null bs="${2:-1M}" 2>&1) ||
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

# median_or_dash FORMAT VALUE...: "–" for no values
median_or_dash() {
	if [[ $# -gt 1 ]]; then median "$@"; else echo –; fi
}

# spread VALUE...: "min–max" of the runs
spread() {
	[[ $# -gt 0 ]] || { echo n/a; return; }
	printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 }
		END { printf "%s–%s", lo, hi }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
	if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a";
	else printf "%.2f", a / b }'; }

# met VALUE OP LIMIT
met() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
	if (v == "n/a") { print "n/a"; exit }
	ok = (op == ">=") ? (v + 0 >= l + 0) : (v + 0 <= l + 0)
	print ok ? "yes" : "**no**" }'; }

# ---------------------------------------------------------------- a. ingest
CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID: user + system clock ticks of a process, all its threads
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# busy_ticks: clock ticks every CPU of the machine spent busy (user, nice,
# system, irq, softirq, steal): the cp, the daemon, the kernel's writeback
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# ingest_mbps SYSTEM RUN: cp the CSV to a new file of SYSTEM, then
# `sync FILE`; prints MB/s over both, the CPU seconds the daemon spent
# meanwhile ("–" for native) and those of the whole machine.  Untimed:
# the new dataset's mkdir before, a check of the version made, and the
# removal of what cp made after.
ingest_mbps() {
	local s=$1 run=$2 dst mnt ds t0 t1 got pid='' c0 c1 m0 m1
	case $s in
	native) dst=$W/native/ingest.csv ;;
	passthrough_ll) dst=$PT_MNT/ingest.csv pid=$PT_PID ;;
	mlfs | base)
		[[ $s == mlfs ]] && mnt=$ML_MNT pid=$ML_PID || mnt=$MB_MNT pid=$MB_PID
		ds=$mnt/datasets/ingest$run
		mkdir "$ds" || die "$s: mkdir $ds failed"
		dst=$ds/data.csv
		;;
	esac
	[[ -z $pid ]] || c0=$(cpu_ticks "$pid")
	m0=$(busy_ticks)
	t0=$(now)
	cp "$NATIVE" "$dst" ||
		{ tail -q -n 20 "$W/mlfs.log" "$W/base.log" >&2 2>/dev/null; die "$s: cp to $dst failed"; }
	sync "$dst" || die "$s: sync $dst failed"
	t1=$(now)
	m1=$(busy_ticks)
	[[ -z $pid ]] || c1=$(cpu_ticks "$pid")
	case $s in
	mlfs | base)
		got=$(stat -c %s "$ds/v1/data.csv") || die "$s: $ds/v1/data.csv missing after cp"
		rmdir "$ds" || die "$s: rmdir $ds failed"
		;;
	*)
		got=$(stat -c %s "$dst")
		rm -f "$dst"
		;;
	esac
	[[ $got == "$SIZE" ]] || die "$s: cp made $got bytes, expected $SIZE"
	awk -v b="$SIZE" -v a="$t0" -v c="$t1" -v pid="$pid" -v c0="${c0:-}" \
		-v c1="${c1:-}" -v m0="$m0" -v m1="$m1" -v hz="$CLK_TCK" 'BEGIN {
		printf "%.1f %s %.2f", b / (c - a) / 1e6,
			pid == "" ? "–" : sprintf("%.2f", (c1 - c0) / hz), (m1 - m0) / hz }'
}

CP_SYSTEMS=(native passthrough_ll mlfs)
[[ -z $BUILD_BASE ]] || CP_SYSTEMS+=(base)
declare -A CPW CPC CPW_MED CPC_MED CPUW CPUC CPUW_MED CPUC_MED
declare -A MCW MCC MCW_MED MCC_MED
for s in "${CP_SYSTEMS[@]}"; do
	CPW[$s]=""; CPC[$s]=""; CPUW[$s]=""; CPUC[$s]=""; MCW[$s]=""; MCC[$s]=""
done
run=0
for ((r = 1; r <= WARM_RUNS; r++)); do
	for s in "${CP_SYSTEMS[@]}"; do
		sync
		cat "$NATIVE" >/dev/null   # the source in the page cache
		run=$((run + 1))
		out=$(ingest_mbps "$s" "$run")
		read -r v c mc <<<"$out"
		CPW[$s]+=" $v"
		MCW[$s]+=" $mc"
		[[ $c == – ]] || CPUW[$s]+=" $c"
		log "cp, warm source $r/$WARM_RUNS $s: $v MB/s, daemon CPU $c s, machine CPU $mc s"
	done
done
if ((CAN_DROP)); then
	for ((r = 1; r <= COLD_RUNS; r++)); do
		for s in "${CP_SYSTEMS[@]}"; do
			drop_caches
			run=$((run + 1))
			out=$(ingest_mbps "$s" "$run")
			read -r v c mc <<<"$out"
			CPC[$s]+=" $v"
			MCC[$s]+=" $mc"
			[[ $c == – ]] || CPUC[$s]+=" $c"
			log "cp, cold source $r/$COLD_RUNS $s: $v MB/s, daemon CPU $c s, machine CPU $mc s"
		done
	done
fi
for s in "${CP_SYSTEMS[@]}"; do
	# shellcheck disable=SC2086
	CPW_MED[$s]=$(median %.1f ${CPW[$s]})
	# shellcheck disable=SC2086
	CPUW_MED[$s]=$(median_or_dash %.2f ${CPUW[$s]})
	# shellcheck disable=SC2086
	MCW_MED[$s]=$(median %.2f ${MCW[$s]})
	if ((CAN_DROP)); then
		# shellcheck disable=SC2086
		CPC_MED[$s]=$(median %.1f ${CPC[$s]})
		# shellcheck disable=SC2086
		CPUC_MED[$s]=$(median_or_dash %.2f ${CPUC[$s]})
		# shellcheck disable=SC2086
		MCC_MED[$s]=$(median %.2f ${MCC[$s]})
	else
		CPC_MED[$s]=n/a
		CPUC_MED[$s]=n/a
		MCC_MED[$s]=n/a
	fi
done
sync

# ---------------------------------------------------------------- b. import
# import MNT NAME LOG: mkdir datasets/big; cp; seconds
import_big() {
	local mnt=$1 name=$2 logf=$3 t0 t1 f
	mkdir "$mnt/datasets/big"
	t0=$(now)
	cp "$NATIVE" "$mnt/datasets/big/data.csv" ||
		{ tail -n 20 "$logf" >&2; die "cp into $name failed"; }
	t1=$(now)
	for f in "$mnt/datasets/big/v1/data.csv" "$mnt/datasets/big/data.csv"; do
		[[ -f $f ]] || die "$f missing after cp"
		[[ $(stat -c %s "$f") == "$SIZE" ]] || die "$f is not $SIZE bytes"
	done
	elapsed "$t0" "$t1"
}
log "importing the CSV into mlfs (mkdir datasets/big; cp)"
IMPORT_S=$(import_big "$ML_MNT" mlfs "$W/mlfs.log")
log "import took ${IMPORT_S} s"
if [[ -n $BUILD_BASE ]]; then
	log "importing the CSV into mlfs base"
	IMPORT_BASE_S=$(import_big "$MB_MNT" "mlfs base" "$W/base.log")
	log "import into base took ${IMPORT_BASE_S} s"
fi
sync

declare -A FILE=([native]=$NATIVE [passthrough_ll]=$PT_MNT/data.csv
	[mlfs]=$ML_MNT/datasets/big/v1/data.csv [mlfs_dc]=$ML_MNT/datasets/big/data.csv
	[base]=$MB_MNT/datasets/big/v1/data.csv [base_dc]=$MB_MNT/datasets/big/data.csv)
SYSTEMS=(native passthrough_ll mlfs mlfs_dc)
[[ -z $BUILD_BASE ]] || SYSTEMS+=(base base_dc)

# ---------------------------------------------------------------- c. warm
log "warm-up reads (cmp against the original checks content)"
cat "$NATIVE" >/dev/null
for s in "${SYSTEMS[@]}"; do
	[[ $s == native ]] && continue
	cmp "$NATIVE" "${FILE[$s]}" || die "$s: ${FILE[$s]} content differs"
done

declare -A WARM COLD
for s in "${SYSTEMS[@]}"; do WARM[$s]=""; COLD[$s]=""; done
for ((r = 1; r <= WARM_RUNS; r++)); do
	for s in "${SYSTEMS[@]}"; do
		v=$(read_mbps "${FILE[$s]}")
		WARM[$s]+=" $v"
		log "warm read $r/$WARM_RUNS $s: $v MB/s"
	done
done

declare -A WSMALL WSMALL_MED
for s in "${SYSTEMS[@]}"; do WSMALL[$s]=""; done
for ((r = 1; r <= WARM_RUNS; r++)); do
	for s in "${SYSTEMS[@]}"; do
		v=$(read_mbps "${FILE[$s]}" "$SMALL_BS")
		WSMALL[$s]+=" $v"
		log "warm read bs=$SMALL_BS $r/$WARM_RUNS $s: $v MB/s"
	done
done
for s in "${SYSTEMS[@]}"; do
	# shellcheck disable=SC2086
	WSMALL_MED[$s]=$(median %.1f ${WSMALL[$s]})
done

# ---------------------------------------------------------------- d. cold
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

# ---------------------------------------------------------------- e. entries
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
PT_DIR=$PT_MNT/many
E_SYSTEMS=(passthrough_ll mlfs)
[[ -z $BUILD_BASE ]] || E_SYSTEMS+=(base)
declare -A EDIR=([mlfs]=$ML_MNT/datasets [base]=$MB_MNT/datasets [passthrough_ll]=$PT_DIR)
declare -A ELOG=([mlfs]=$W/mlfs.log [base]=$W/base.log)
declare -A PREFIX=([mlfs]=d [base]=d [passthrough_ll]=f)
declare -A CREATE_S LSL_N LISTDIR_N
CREATE_S[passthrough_ll]=$(python3 "$W/create.py" create "$PT_DIR" "$ENTRIES" 2>/dev/null) ||
	die "creating files in passthrough_ll failed"
log "passthrough_ll: $ENTRIES creates took ${CREATE_S[passthrough_ll]} s"
for s in "${E_SYSTEMS[@]}"; do
	[[ $s == passthrough_ll ]] && continue
	CREATE_S[$s]=$(python3 "$W/create.py" mkdir "${EDIR[$s]}" "$ENTRIES") ||
		{ tail -n 20 "${ELOG[$s]}" >&2; die "mkdir of datasets in $s failed"; }
	log "$s: $ENTRIES mkdirs took ${CREATE_S[$s]} s"
done

# completeness: what ls -l and plain readdir (ls -f, os.listdir) see
for s in "${E_SYSTEMS[@]}"; do
	p=${PREFIX[$s]}
	# shellcheck disable=SC2010 # counting what ls -l shows is the point
	LSL_N[$s]=$(ls -l "${EDIR[$s]}" | grep -c " ${p}[0-9]\{5\}\$" || true)
	LISTDIR_N[$s]=$(python3 -c 'import os,sys,re; print(sum(1 for n in os.listdir(sys.argv[1]) if re.fullmatch(sys.argv[2] + r"\d{5}", n)))' "${EDIR[$s]}" "$p")
	log "entries seen in $s: ls -l ${LSL_N[$s]}, os.listdir ${LISTDIR_N[$s]} (expected $ENTRIES)"
done

declare -A LS
for s in "${E_SYSTEMS[@]}"; do LS[$s]=""; ls -l "${EDIR[$s]}" >/dev/null; done
for ((r = 1; r <= WARM_RUNS; r++)); do
	for s in "${E_SYSTEMS[@]}"; do
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
for s in "${E_SYSTEMS[@]}"; do
	out=$(python3 "$W/stat.py" "${EDIR[$s]}" "${PREFIX[$s]}" "$ENTRIES" "$STAT_PASSES") ||
		die "stat loop over $s failed"
	read -r "STAT50[$s]" "STAT99[$s]" <<<"$out"
	log "stat $s: p50 ${STAT50[$s]} us, p99 ${STAT99[$s]} us"
done

declare -A LS_MED
for s in "${E_SYSTEMS[@]}"; do
	# shellcheck disable=SC2086
	LS_MED[$s]=$(median %.1f ${LS[$s]})
done

# ---------------------------------------------------------------- report
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
fstype=$(stat -f -c %T "$W")
dev=$(df -P "$W" | awk 'NR == 2 { print $1 }')
rev=$(src_rev "$BUILD")
mib=$(awk -v b="$SIZE" 'BEGIN { printf "%.0f", b / 1048576 }')

B=${BUILD_BASE:+1}
# row LABEL NATIVE PT MLFS BASE GOAL_RATIO GOAL_TEXT OP LIMIT: one table row;
# GOAL_RATIO is nat, pt or base (which ratio the goal is on) or -
row() {
	local label=$1 nat=$2 pt=$3 ml=$4 base=$5 on=$6 goal=$7 op=$8 lim=$9
	local rn rp rb g m
	rn=$(ratio "$ml" "$nat"); [[ $nat == – ]] && rn=–
	rp=$(ratio "$ml" "$pt")
	rb=$(ratio "$ml" "$base")
	case $on in
	nat) g=$rn ;; pt) g=$rp ;; base) g=$rb ;; *) g= ;;
	esac
	if [[ -n $g ]]; then m=$(met "$g" "$op" "$lim"); else goal=–; m=–; fi
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |' \
		"$label" "$nat" "$pt" "$ml" "$rn" "$rp" "$goal" "$m"
	[[ -z $B ]] || printf ' %s | %s |' "$base" "$rb"
	printf '\n'
}
hdr='| Measurement | native | passthrough_ll | mlfs | mlfs/native | mlfs/passthrough_ll | Goal | Met |'
sep='|---|---:|---:|---:|---:|---:|---|---|'
if [[ -n $B ]]; then
	hdr+=' mlfs base | mlfs/base |'
	sep+='---:|---:|'
fi
bv() { [[ -n $B ]] && printf '%s' "$1" || printf 'n/a'; }
cp_goal=base
[[ -n $B ]] || cp_goal=-

cat <<EOF

## mlfs vs passthrough_ll

Medians. Ingest is \`cp\` of a ${mib} MiB numeric CSV to a new file, then
\`sync FILE\` (for mlfs: into a new dataset's \`datasets/<d>/data.csv\`, which
makes v1; the dataset is removed after each run), timed together; the source
warm in the page cache (${WARM_RUNS} runs) or cold (${COLD_RUNS} runs, each after
\`sync; echo 3 > /proc/sys/vm/drop_caches\`). Reads are \`dd bs=1M\` of the CSV
(and warm again with \`bs=${SMALL_BS}\`): warm ${WARM_RUNS} runs after a warm-up read, cold ${COLD_RUNS} runs each after drop_caches;
"mlfs" reads \`datasets/big/v1/data.csv\` and "mlfs data.csv" reads
\`datasets/big/data.csv\`. MB/s = 10^6 B/s, higher is better. Entries: ${ENTRIES} mlfs
datasets (\`datasets/dNNNNN\`) vs ${ENTRIES} files in a passthrough_ll directory;
\`ls -l\` warm, ${WARM_RUNS} runs (ms, lower is better); \`os.stat\` per call over all
names after a warm-up pass, ${STAT_PASSES} passes pooled (µs, lower is better).
"daemon CPU per cp" is the user + system time of the FUSE daemon (all its
threads) over one cp, from /proc/PID/stat: less noisy than MB/s on a busy host;
"machine CPU per cp" is every CPU's busy time over it (/proc/stat: the cp, the
daemon, the kernel's writeback), against $(nproc) CPUs × the cp's seconds.
"native" is the local disk.$([[ -z $B ]] || printf '\n"mlfs base" is a second build measured in the same runs, interleaved; mlfs/base\nabove 1 is faster for MB/s rows, slower for ms and µs rows.')

${hdr}
${sep}
$(row "cp into datasets/<d>/data.csv, warm source (MB/s)" "${CPW_MED[native]}" "${CPW_MED[passthrough_ll]}" "${CPW_MED[mlfs]}" "$(bv "${CPW_MED[base]:-}")" "$cp_goal" "mlfs/base ≥ 0.95" ">=" 0.95)
$(row "cp into datasets/<d>/data.csv, cold source (MB/s)" "${CPC_MED[native]}" "${CPC_MED[passthrough_ll]}" "${CPC_MED[mlfs]}" "$(bv "${CPC_MED[base]:-}")" "$cp_goal" "mlfs/base ≥ 0.95" ">=" 0.95)
$(row "daemon CPU per cp, warm source (s)" – "${CPUW_MED[passthrough_ll]}" "${CPUW_MED[mlfs]}" "$(bv "${CPUW_MED[base]:-}")" - - - -)
$(row "daemon CPU per cp, cold source (s)" – "${CPUC_MED[passthrough_ll]}" "${CPUC_MED[mlfs]}" "$(bv "${CPUC_MED[base]:-}")" - - - -)
$(row "machine CPU per cp, warm source (s)" "${MCW_MED[native]}" "${MCW_MED[passthrough_ll]}" "${MCW_MED[mlfs]}" "$(bv "${MCW_MED[base]:-}")" - - - -)
$(row "machine CPU per cp, cold source (s)" "${MCC_MED[native]}" "${MCC_MED[passthrough_ll]}" "${MCC_MED[mlfs]}" "$(bv "${MCC_MED[base]:-}")" - - - -)
$(row "Sequential read v1/data.csv, warm (MB/s)" "${WARM_MED[native]}" "${WARM_MED[passthrough_ll]}" "${WARM_MED[mlfs]}" "$(bv "${WARM_MED[base]:-}")" nat "mlfs/native ≥ 0.5" ">=" 0.5)
$(row "Sequential read data.csv, warm (MB/s)" "${WARM_MED[native]}" "${WARM_MED[passthrough_ll]}" "${WARM_MED[mlfs_dc]}" "$(bv "${WARM_MED[base_dc]:-}")" - - - -)
$(row "Sequential read v1/data.csv, warm, bs=${SMALL_BS} (MB/s)" "${WSMALL_MED[native]}" "${WSMALL_MED[passthrough_ll]}" "${WSMALL_MED[mlfs]}" "$(bv "${WSMALL_MED[base]:-}")" - - - -)
$(row "Sequential read data.csv, warm, bs=${SMALL_BS} (MB/s)" "${WSMALL_MED[native]}" "${WSMALL_MED[passthrough_ll]}" "${WSMALL_MED[mlfs_dc]}" "$(bv "${WSMALL_MED[base_dc]:-}")" - - - -)
$(row "Sequential read v1/data.csv, cold (MB/s)" "${COLD_MED[native]}" "${COLD_MED[passthrough_ll]}" "${COLD_MED[mlfs]}" "$(bv "${COLD_MED[base]:-}")" pt "mlfs/passthrough_ll ≥ 1.0" ">=" 1.0)
$(row "Sequential read data.csv, cold (MB/s)" "${COLD_MED[native]}" "${COLD_MED[passthrough_ll]}" "${COLD_MED[mlfs_dc]}" "$(bv "${COLD_MED[base_dc]:-}")" - - - -)
$(row "\`ls -l\`, ${ENTRIES} entries, warm (ms)" – "${LS_MED[passthrough_ll]}" "${LS_MED[mlfs]}" "$(bv "${LS_MED[base]:-}")" pt "mlfs/passthrough_ll ≤ 1.5" "<=" 1.5)
$(row "stat p50 (µs)" – "${STAT50[passthrough_ll]}" "${STAT50[mlfs]}" "$(bv "${STAT50[base]:-}")" pt "mlfs/passthrough_ll ≤ 1.5" "<=" 1.5)
$(row "stat p99 (µs)" – "${STAT99[passthrough_ll]}" "${STAT99[mlfs]}" "$(bv "${STAT99[base]:-}")" - - - -)

\`datasets/big/data.csv\` against \`datasets/big/v1/data.csv\` (data.csv/v1): mlfs warm
$(ratio "${WARM_MED[mlfs_dc]}" "${WARM_MED[mlfs]}"), warm bs=${SMALL_BS} $(ratio "${WSMALL_MED[mlfs_dc]}" "${WSMALL_MED[mlfs]}"), cold $(ratio "${COLD_MED[mlfs_dc]}" "${COLD_MED[mlfs]}")$([[ -z $B ]] || printf '; mlfs base warm %s, warm bs=%s %s, cold %s' "$(ratio "${WARM_MED[base_dc]}" "${WARM_MED[base]}")" "$SMALL_BS" "$(ratio "${WSMALL_MED[base_dc]}" "${WSMALL_MED[base]}")" "$(ratio "${COLD_MED[base_dc]}" "${COLD_MED[base]}")").

Not goals, for context: \`cp\` of the CSV into mlfs \`datasets/big\` (makes v1) took ${IMPORT_S} s$([[ -z $B ]] || printf ' (base %s s)' "$IMPORT_BASE_S");
creating the ${ENTRIES} entries took ${CREATE_S[mlfs]} s in mlfs (mkdir of datasets)$([[ -z $B ]] || printf ', %s s in mlfs base' "${CREATE_S[base]}")
and ${CREATE_S[passthrough_ll]} s in passthrough_ll (create of empty files).
Entries seen by \`ls -l\`: mlfs ${LSL_N[mlfs]}$([[ -z $B ]] || printf ', base %s' "${LSL_N[base]}"), passthrough_ll ${LSL_N[passthrough_ll]}; by
\`os.listdir\` (plain readdir): mlfs ${LISTDIR_N[mlfs]}$([[ -z $B ]] || printf ', base %s' "${LISTDIR_N[base]}"), passthrough_ll ${LISTDIR_N[passthrough_ll]} (of ${ENTRIES}).

Machine: ${cpu}, nproc $(nproc), ${mem} RAM, kernel $(uname -r),
libfuse $(pkg-config --modversion fuse3), scratch on ${fstype} (${dev}),
load average at start ${LOADAVG}, at end $(cut -d' ' -f1-3 /proc/loadavg);
mlfs ${rev}$([[ -z $B ]] || printf ', mlfs base %s (%s)' "$(src_rev "$BUILD_BASE")" "$BUILD_BASE").
Daemons: mlfs -f -o cache=DIR STORE MNT; ${PT_DESC} MNT.

Individual runs (spread min–max in brackets):
EOF
# runs NAME ARRAY KEY...: one line of runs
runs() {
	local name=$1 k v line=""
	local -n arr=$2
	shift 2
	for k in "$@"; do
		v=${arr[$k]:-}
		# shellcheck disable=SC2086
		line+="; $k${v:- n/a} [$(spread $v)]"
	done
	printf -- '- %s: %s\n' "$name" "${line#; }"
}
runs "cp, warm source MB/s" CPW "${CP_SYSTEMS[@]}"
runs "cp, cold source MB/s" CPC "${CP_SYSTEMS[@]}"
runs "daemon CPU per cp, warm source s" CPUW "${CP_SYSTEMS[@]:1}"
runs "daemon CPU per cp, cold source s" CPUC "${CP_SYSTEMS[@]:1}"
runs "machine CPU per cp, warm source s" MCW "${CP_SYSTEMS[@]}"
runs "machine CPU per cp, cold source s" MCC "${CP_SYSTEMS[@]}"
runs "read, warm MB/s" WARM "${SYSTEMS[@]}"
runs "read, warm bs=$SMALL_BS MB/s" WSMALL "${SYSTEMS[@]}"
runs "read, cold MB/s" COLD "${SYSTEMS[@]}"
runs "ls -l ms" LS "${E_SYSTEMS[@]}"

for s in "${E_SYSTEMS[@]}"; do
	[[ $s == passthrough_ll ]] && continue
	if [[ ${LSL_N[$s]} != "$ENTRIES" || ${LISTDIR_N[$s]} != "$ENTRIES" ]]; then
		printf '\nwarning: %s listed fewer than %s datasets (see "Entries seen" above)\n' "$s" "$ENTRIES"
	fi
done
