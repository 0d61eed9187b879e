#!/bin/bash
# SPDX-License-Identifier: MIT
# Stop the S3 servers tests/s3/start.sh DIR started, by the PIDs it wrote
# (and only if each PID still runs what start.sh started).  Keeps the
# data in DIR/data; removes DIR/env.
set -uo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
DIR=$1

stop_pid() {
	local pidfile=$1 what=$2 pid i
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$what"; then
		kill -TERM "$pid" 2>/dev/null
		for i in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
	fi
	rm -f "$pidfile"
}

stop_pid "$DIR/gateway.pid" gateway.py
stop_pid "$DIR/s3rver.pid" s3rver.js
rm -f "$DIR/env" "$DIR/gateway.json"
exit 0
