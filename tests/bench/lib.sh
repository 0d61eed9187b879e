# SPDX-License-Identifier: MIT
#
# tests/bench/lib.sh - what the benchmark scripts share; source it:
#   . "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
#   log MSG...              a timestamped line on stderr
#   is_mounted DIR          is DIR a mount point?
#   unmount MNT PID NAME    fusermount3 -u MNT, then wait for the daemon
#                           PID this script started (TERM after 30 s)
#   wait_mounted MNT PID NAME LOG   wait for the mount (30 s), or die
#   loadavg; compilers      the load average; compilers running now
#   ratio A B; verdict COND A / B (two decimals); "met" or "missed"
#   build_release           set up (if new) and build the release build
#                           $BUILD of $REPO (logs in $W), refusing
#                           another buildtype; sets REV, MLFS, and
#                           check_binaries warns if it is rebuilt later
# The last ones call die MSG, which the script defines.

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

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

# wait_mounted MNT PID NAME LOG: until MNT is mounted; die if PID exits
# first (showing the end of LOG) or after 30 s
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
# compilers running now (someone else building on the machine)
compilers() { ps -C cc1,cc1plus,ld,ld.bfd,rustc -o pid= | wc -l; }
# ratio A B: A / B, two decimals
# cpu_s PID: utime + stime of PID (all its threads) in seconds
cpu_s() { sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }'; }
# note_load PHASE: the load and compilers running, a line of $RES/load.tsv
note_load() { printf '%s\t%s\t%s\n' "$1" "$(loadavg)" "$(compilers)" >>"$RES/load.tsv"; }
# med: the median of the numbers on stdin, one a line (the mean of the
# middle two with MED_DIGITS decimals, 3 unless set)
med() {
	sort -g | awk -v d="${MED_DIGITS:-3}" '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%.*f\n", d, (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
# verdict COND: "met" or "missed" (COND an awk expression)
verdict() { awk "BEGIN { print (($1) ? \"met\" : \"missed\") }"; }

# build_release: $BUILD, a release build of $REPO without sanitizers
build_release() {
	local bt
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
	[[ -x $MLFS && -x $BUILD/fs/mlfs-job ]] || die "$MLFS or mlfs-job not built"
	# a build dir shared with someone who rebuilds it mid-run breaks jobs
	BIN_STAMP=$(stat -c %Y "$MLFS" "$BUILD/fs/mlfs-job" | tr '\n' ' ')
}

check_binaries() {
	[[ $(stat -c %Y "$MLFS" "$BUILD/fs/mlfs-job" | tr '\n' ' ') == "$BIN_STAMP" ]] ||
		log "warning: $BUILD was rebuilt during the run; use a private MLFS_BUILD"
}
