# SPDX-License-Identifier: MIT
#
# tests/bench/lib.sh - what the benchmark scripts share; source it:
#   . "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
#   log MSG...              a timestamped line on stderr
#   is_mounted DIR          is DIR a mount point?
#   unmount MNT PID NAME    fusermount3 -u MNT, then wait for the daemon
#                           PID this script started (TERM after 30 s)

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
