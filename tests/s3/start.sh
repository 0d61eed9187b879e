#!/bin/bash
# SPDX-License-Identifier: MIT
# Start the S3 servers the tests use, with their state in DIR:
#   s3rver (npm, pinned; installed on first use into $MLFS_S3_NODE_DIR,
#   default <repo>/build-s3node, never committed) on 127.0.0.1 with one
#   bucket, and tests/s3/gateway.py in front of it: a port that verifies
#   every SigV4 signature with botocore and forwards, and a fault port
#   that does the same after applying the fault rules set through its
#   control endpoint; it serves the multipart uploads in progress from
#   s3rver's directory (ListMultipartUploads, AbortMultipartUpload).
# Prints the gateway's endpoint and writes DIR/env (KEY=value lines, for
# `set -a; . DIR/env`).  Stop everything with tests/s3/stop.sh DIR.
# Running it again on a DIR whose servers still run just prints the
# endpoint.  Needs nodejs, npm, python3-botocore and curl.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NODE_DIR=${MLFS_S3_NODE_DIR:-$ROOT/build-s3node}
S3RVER_VERSION=3.7.1
BUCKET=${MLFS_S3_BUCKET:-mlfs-test}
REGION=us-east-1
JS=$NODE_DIR/node_modules/s3rver/bin/s3rver.js
PY=/usr/bin/python3

alive() {
	[ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

if [ -f "$DIR/env" ] && alive "$DIR/s3rver.pid" && alive "$DIR/gateway.pid"; then
	sed -n 's/^MLFS_S3_ENDPOINT=//p' "$DIR/env"
	exit 0
fi
bash "$(dirname "$0")/stop.sh" "$DIR" >/dev/null 2>&1 || true

for tool in node npm curl "$PY"; do
	if ! command -v "$tool" >/dev/null; then
		echo "start.sh: $tool is missing (apt-get install nodejs npm curl python3-botocore)" >&2
		exit 1
	fi
done
if ! "$PY" -c 'import botocore.auth' 2>/dev/null; then
	echo "start.sh: python3-botocore is missing (apt-get install python3-botocore)" >&2
	exit 1
fi

# Install s3rver once; concurrent starts wait for the first one.
mkdir -p "$NODE_DIR"
(
	flock 9
	have=$(node -p "require('$NODE_DIR/node_modules/s3rver/package.json').version" 2>/dev/null || true)
	if [ "$have" != "$S3RVER_VERSION" ]; then
		echo "start.sh: installing s3rver@$S3RVER_VERSION into $NODE_DIR" >&2
		npm install --prefix "$NODE_DIR" --no-audit --no-fund \
			--loglevel=error "s3rver@$S3RVER_VERSION" >&2
	fi
) 9>"$NODE_DIR/.install.lock"

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Poll until cmd succeeds, giving up after 20 s or when pidfile's
# process is gone.
wait_for() {
	local pidfile=$1
	shift
	local i
	for i in $(seq 200); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		alive "$pidfile" || return 1
		sleep 0.1
	done
	return 1
}

mkdir -p "$DIR/data"
started=
for attempt in 1 2 3 4 5; do
	S3PORT=$(free_port)
	# --openssl-legacy-provider: s3rver's continuation tokens use DES;
	# without it every truncated listing fails with HTTP 500 on Node 20.
	NODE_OPTIONS=--openssl-legacy-provider nohup node "$JS" -d "$DIR/data" \
		-a 127.0.0.1 -p "$S3PORT" --silent --no-vhost-buckets \
		--configure-bucket "$BUCKET" >"$DIR/s3rver.log" 2>&1 </dev/null &
	echo $! >"$DIR/s3rver.pid"
	if wait_for "$DIR/s3rver.pid" curl -sf -o /dev/null "http://127.0.0.1:$S3PORT/"; then
		started=1
		break
	fi
	kill "$(cat "$DIR/s3rver.pid")" 2>/dev/null || true
	rm -f "$DIR/s3rver.pid"
done
if [ -z "$started" ]; then
	echo "start.sh: s3rver did not start; see $DIR/s3rver.log" >&2
	exit 1
fi

rm -f "$DIR/gateway.json"
nohup "$PY" "$ROOT/tests/s3/gateway.py" --upstream "127.0.0.1:$S3PORT" \
	--port-file "$DIR/gateway.json" --region "$REGION" --data "$DIR/data" \
	--cred S3RVER:S3RVER --cred MLFSTEMP:MLFSTEMPSECRET:MLFSTEMPTOKEN \
	--log "$DIR/gateway.log" >"$DIR/gateway.err" 2>&1 </dev/null &
echo $! >"$DIR/gateway.pid"
if ! wait_for "$DIR/gateway.pid" test -s "$DIR/gateway.json"; then
	echo "start.sh: the gateway did not start; see $DIR/gateway.err" >&2
	bash "$(dirname "$0")/stop.sh" "$DIR" >/dev/null 2>&1 || true
	exit 1
fi
read -r GWPORT FAULTPORT < <("$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["gateway"], d["fault"])' "$DIR/gateway.json")

cat >"$DIR/env.tmp" <<ENV
MLFS_S3_ENDPOINT=http://127.0.0.1:$GWPORT
MLFS_S3_FAULT_ENDPOINT=http://127.0.0.1:$FAULTPORT
MLFS_S3_FAULT_CONTROL=http://127.0.0.1:$FAULTPORT/_mlfs_fault
MLFS_S3_DIRECT_ENDPOINT=http://127.0.0.1:$S3PORT
MLFS_S3_BUCKET=$BUCKET
MLFS_S3_REGION=$REGION
MLFS_S3_DATA=$DIR/data
MLFS_S3_TOKEN_ACCESS_KEY_ID=MLFSTEMP
MLFS_S3_TOKEN_SECRET_ACCESS_KEY=MLFSTEMPSECRET
MLFS_S3_TOKEN_SESSION_TOKEN=MLFSTEMPTOKEN
MLFS_S3_PIDS="$(cat "$DIR/s3rver.pid") $(cat "$DIR/gateway.pid")"
AWS_ACCESS_KEY_ID=S3RVER
AWS_SECRET_ACCESS_KEY=S3RVER
AWS_REGION=$REGION
AWS_DEFAULT_REGION=$REGION
AWS_EC2_METADATA_DISABLED=true
ENV
mv "$DIR/env.tmp" "$DIR/env"
echo "http://127.0.0.1:$GWPORT"
